"""A before/after contact sheet of a few frames: what ``render`` will do, in seconds.

Only the chosen frames are searched for the face (no tracking pass over the video), and
each is locked to its own landmarks without the temporal smoothing of a render, so a
preview frame can differ from the same frame of a render by the smoothing's share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from .errors import X2FaceError
from .faces import SAME_PERSON, FaceDescriber, FaceDetector, LandmarkDetector, cells_in_frame, crop, to_crop_grid, voxceleb_box
from .frame_paint import FrameEdit, prepare_frame_paint, read_frame_paints
from .lock import LandmarkLock, smoothed
from .model import ModelInfo, X2Face
from .model.images import to_tensor
from .model.inference import GridPredictor
from .outputs import atomic_output, check_output
from .paint import Paint, PaintOptions, composite, prepare_paint
from .tracking import track_video
from .video import eight_bit, frames_at, probe

PREVIEW_SUFFIXES = (".png", ".jpg", ".jpeg")
# Side of each before/after picture on the sheet, and before/after pairs per row.
TILE, PAIRS_PER_ROW = 256, 2
# The area shown around the face: its crop box enlarged by this factor.
SHOWN = 1.25


@dataclass(frozen=True)
class PreviewOptions:
    """``count`` frames shown; ``paint`` as for ``render``; ``painted_frames``, where the
    paint was made on frames of the video (none: on the embedded face; ``render.RenderOptions.painted_frames``);
    ``sequence_fps``, the rate of a driving image sequence; ``force`` overwrites an existing sheet."""

    count: int = 6
    paint: PaintOptions = field(default_factory=PaintOptions)
    painted_frames: tuple[FrameEdit, ...] = ()
    sequence_fps: float | None = None
    force: bool = False


def spread_frames(frame_count: int, count: int) -> list[int]:
    """``count`` frame indices spread evenly over a video: the middles of equal parts."""
    count = min(count, frame_count)
    return sorted({int((i + 0.5) * frame_count / count) for i in range(count)})


def _locked(lock: LandmarkLock | None, grid: torch.Tensor, landmarks: np.ndarray | None) -> torch.Tensor:
    """A frame's driving ``grid`` corrected by ``lock`` by its ``landmarks`` alone (a preview
    has no neighbouring frames to smooth the correction with)."""
    if lock is None or (field := smoothed([lock.correction(grid, landmarks)], 0)) is None:
        return grid
    return lock.apply(grid, field)


def _face_box(detectors: list[FaceDetector], describe: FaceDescriber, rgb: np.ndarray, face: int,
              looks_like: np.ndarray | None) -> np.ndarray | None:
    """The box of the face that looks like the descriptor ``looks_like`` (within
    ``SAME_PERSON``), else the ``face``-th largest, searched at 640 px and then full size."""
    for detector in detectors:
        boxes = detector.detect(rgb)
        if looks_like is not None and len(boxes):
            distances = [np.linalg.norm(describe(rgb, box) - looks_like) for box in boxes]
            if min(distances) < SAME_PERSON:
                return boxes[int(np.argmin(distances))]
        if len(boxes) > face:
            return boxes[face]
    return None


def _tile(rgb: np.ndarray, box: np.ndarray | None) -> np.ndarray:
    """The area around a crop ``box`` (the whole frame for None) as a TILE square."""
    if box is None:
        height, width = rgb.shape[:2]
        side = max(height, width)
        box = np.array([(width - side) / 2, (height - side) / 2, (width + side) / 2, (height + side) / 2])
    centre, half = (box[:2] + box[2:]) / 2, (box[2] - box[0]) * SHOWN / 2
    return crop(rgb, np.concatenate([centre - half, centre + half]), TILE)


def contact_sheet(pairs: list[tuple[int, np.ndarray, np.ndarray, bool]]) -> Image.Image:
    """Before/after tiles of (frame index, before, after, face found), labelled."""
    label = 16
    columns = min(len(pairs), PAIRS_PER_ROW)
    rows = -(-len(pairs) // columns)
    sheet = Image.new("RGB", (columns * 2 * TILE, rows * (TILE + label)), (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    for n, (index, before, after, found) in enumerate(pairs):
        x, y = (n % columns) * 2 * TILE, (n // columns) * (TILE + label)
        sheet.paste(Image.fromarray(before), (x, y + label))
        sheet.paste(Image.fromarray(after), (x + TILE, y + label))
        draw.text((x + 4, y + 2), f"frame {index}: before / after" + ("" if found else " (no face: left as it is)"), fill=(230, 230, 230))
    return sheet


@dataclass(frozen=True)
class PreviewFrame:
    """Frame ``index`` before and after the paint (8-bit RGB, full size), and the crop
    box of the face painted there (None: no face found, left as it is)."""

    index: int
    before: np.ndarray
    after: np.ndarray
    crop_box: np.ndarray | None


@torch.inference_mode()
def preview(model: X2Face, model_info: ModelInfo, paint: Paint, drive: str | Path, out: str | Path,
            options: PreviewOptions = PreviewOptions(), *, on_frame: Callable[[int, int], None] | None = None) -> list[int]:
    """Write a contact sheet of ``options.count`` frames of ``drive``, before and after
    ``paint``, to ``out`` (PNG or JPEG); return the frame indices shown."""
    out = Path(out)
    if out.suffix.lower() not in PREVIEW_SUFFIXES:
        raise X2FaceError(f"{out.name}: write the preview as {', '.join(PREVIEW_SUFFIXES)}")
    check_output(out, force=options.force, inputs=(drive, paint.edited))
    shown = preview_frames(model, model_info, paint, drive, options, on_frame=on_frame)
    pairs = [(f.index, _tile(f.before, f.crop_box), _tile(f.after, f.crop_box), f.crop_box is not None) for f in shown]
    with atomic_output(out, force=options.force) as partial:
        contact_sheet(pairs).save(partial, format="JPEG" if out.suffix.lower() in (".jpg", ".jpeg") else "PNG")
    return [f.index for f in shown]


@torch.inference_mode()
def preview_frames(model: X2Face, model_info: ModelInfo, paint: Paint, drive: str | Path,
                   options: PreviewOptions = PreviewOptions(), *,
                   on_frame: Callable[[int, int], None] | None = None) -> list[PreviewFrame]:
    """``options.count`` frames of ``drive`` spread over it, before and after ``paint``."""
    paint.sidecar.check_model(model, model_info)
    fps = options.sequence_fps
    info = probe(drive, fps=fps)
    predictor = GridPredictor(model)
    number, looks_like = paint.sidecar.followed_face(options.paint.face)
    if not options.painted_frames:
        prepared = prepare_paint(model, paint, options.paint)
    else:
        frame_paints = read_frame_paints(options.painted_frames, drive, info.frame_count, sequence_fps=fps)
        track = track_video(drive, face=number, looks_like=looks_like, fps=fps, info=info)
        prepared = prepare_frame_paint(model, paint, frame_paints, options.paint, drive, track, predictor)
    indices = spread_frames(info.frame_count, options.count)
    frames = frames_at(drive, indices, fps=fps)
    detectors = [FaceDetector(max_side=640), FaceDetector(max_side=max(info.width, info.height))]
    landmarks, describe = LandmarkDetector(), FaceDescriber()
    shown = []
    for done, index in enumerate(indices):
        rgb = eight_bit(frames[index])
        face_box = _face_box(detectors, describe, rgb, number, looks_like)
        crop_box = None if face_box is None else voxceleb_box(face_box)
        painted = rgb.copy()
        if crop_box is not None:
            face = crop(rgb, crop_box, model.config.resolution)
            points = to_crop_grid(landmarks(rgb, face_box), crop_box) if prepared.lock is not None else None
            grid = _locked(prepared.lock, predictor(to_tensor([face]))[0], points)
            visibility = None
            if (occlusion := prepared.occlusion) is not None:
                visibility = occlusion.visibility(face, grid, cells_in_frame(crop_box, model.config.resolution, *rgb.shape[:2]))
                if occlusion.worth_redriving(grid, visibility):  # driven again, as render drives it
                    grid = _locked(prepared.lock, predictor(to_tensor([occlusion.refilled(face, grid, visibility)]))[0], points)
            composite(painted, crop_box, grid, prepared.layer, visibility=visibility)
        shown.append(PreviewFrame(index, rgb, painted, crop_box))
        if on_frame:
            on_frame(done + 1, len(indices))
    return shown
