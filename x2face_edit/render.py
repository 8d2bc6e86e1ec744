"""Rendering a painted embedded face through a video.

For every frame the driving network gives the grid that samples the embedded face in
that frame's pose; with the landmark lock (the default, ``lock.py``) each grid is
corrected so that the frame's landmarks land where they lie on the embedded face. Only
the paint is warped: the grid is resampled at the frame's own
pixels inside the crop box (so the edit lands at full resolution with sub-pixel
placement) and the warped paint is alpha-composited onto the original frame. Pixels the
paint does not reach keep the original frame's values exactly. Where the face is lost,
nothing is painted; the paint fades out over the frames before and in over the frames
after.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import X2FaceError
from .extract import embed_frames, embedded_landmarks, followed_face, source_frames, to_tensor
from .faces import SAME_PERSON, LandmarkDetector, crop, to_crop_grid
from .guide import is_guide
from .lock import LOCK_MODES, LandmarkLock, locked_grids
from .model import X2Face
from .model.inference import GridPredictor, InferenceOptions
from .model.networks import sample
from .outputs import atomic_output, check_video_output
from .pipeline import InOrderWorker, read_ahead
from .sequences import is_sequence
from .tracking import VideoTrack, track_video
from .video import Frame, VideoWriter, eight_bit, iter_frames, probe

MODES = ("edit", "generate")
# Colour differences (0-255) below LOW are unpainted (editor round-off); above HIGH, fully painted.
PAINT_LOW, PAINT_HIGH = 3.0, 15.0
# An image at least this transparent (fraction of fully transparent pixels) is a paint layer.
LAYER_TRANSPARENT = 0.25
# Frames over which the paint fades out before the face is lost and in after it returns.
FADE_FRAMES = 6


@dataclass(frozen=True)
class RenderReport:
    frames: int
    lost: list[tuple[int, int]]  # inclusive frame ranges left untouched: no face tracked
    warnings: tuple[str, ...] = ()


def paint_layer(edited: str | Path, original: np.ndarray) -> torch.Tensor:
    """The paint as a premultiplied RGBA (4, S, S) tensor in [0, 1].

    An image that is transparent over much of its area (``LAYER_TRANSPARENT``) is a layer:
    its alpha says where the paint is. Anything else (an opaque image, or a painted copy
    of the embedded face with a few erased pixels) is a painted copy: the paint is where
    its colours differ from the embedded face.
    """
    edited = Path(edited)
    if not edited.is_file():
        raise X2FaceError(f"no such file: {edited}")
    try:
        image = Image.open(edited)
        image.load()
    except (OSError, ValueError):
        raise X2FaceError(f"not an image: {edited}") from None
    if is_guide(image):
        raise X2FaceError(f"{edited.name} is the painting guide, not paint: paint on a copy of the embedded face or on its .edit.png layer")
    if image.size != original.shape[1::-1]:
        raise X2FaceError(
            f"{edited.name} is {image.size[0]}x{image.size[1]} but the embedded face is "
            f"{original.shape[1]}x{original.shape[0]}: paint on the image 'extract' wrote, without resizing it"
        )
    rgba = np.asarray(image.convert("RGBA")).astype(np.float32)
    if np.mean(rgba[..., 3] == 0) >= LAYER_TRANSPARENT:
        alpha = rgba[..., 3] / 255
    else:
        difference = np.abs(rgba[..., :3] - original.astype(np.float32)).max(axis=2)
        alpha = np.clip((difference - PAINT_LOW) / (PAINT_HIGH - PAINT_LOW), 0, 1)
    colour = rgba[..., :3] / 255 * alpha[..., None]
    return torch.from_numpy(np.concatenate([colour, alpha[..., None]], axis=2)).permute(2, 0, 1).contiguous()


def require_paint(layer: torch.Tensor, edited: str | Path) -> None:
    """Refuse a paint layer with no paint: rendering it would only re-encode the video."""
    if not layer[3].any():
        raise X2FaceError(f"no paint in {Path(edited).name}: paint on it (or on a copy of the embedded face) first")


def opaque_layer(image: np.ndarray, feather: float = 0.06) -> torch.Tensor:
    """A premultiplied RGBA layer of a whole RGB image, opaque but for a border of
    ``feather`` x its side where alpha fades to 0, so a pasted face has no hard seam."""
    rgb = to_tensor([image])[0]
    height, width = image.shape[:2]
    ramp_y = torch.minimum(torch.arange(height) + 0.5, height - 0.5 - torch.arange(height)) / max(feather * height, 1e-6)
    ramp_x = torch.minimum(torch.arange(width) + 0.5, width - 0.5 - torch.arange(width)) / max(feather * width, 1e-6)
    alpha = torch.minimum(ramp_y[:, None], ramp_x[None, :]).clamp(0, 1).unsqueeze(0)
    return torch.cat([rgb * alpha, alpha])


def paint_bounds(layer: torch.Tensor) -> tuple[float, float, float, float] | None:
    """The (x0, y0, x1, y1) grid coordinates of the texels of ``layer`` that hold paint,
    widened by a texel (bilinear sampling reaches that far); None for a layer without paint."""
    rows, columns = torch.nonzero(layer[3] > 0, as_tuple=True)
    if not len(rows):
        return None
    size_y, size_x = layer.shape[1:]
    return (float(columns.min() - 1) / size_x * 2 - 1, float(rows.min() - 1) / size_y * 2 - 1,
            float(columns.max() + 2) / size_x * 2 - 1, float(rows.max() + 2) / size_y * 2 - 1)


def footprint(grid: torch.Tensor, bounds: tuple[float, float, float, float]) -> tuple[int, int, int, int] | None:
    """The crop cells (first column, first row, last column + 1, last row + 1) of a
    (h, w, 2) ``grid`` that can sample inside ``bounds``, widened by a cell, since pixels
    between cells interpolate the grid; None if none can (the paint is out of view)."""
    step = max(float((grid[1:] - grid[:-1]).abs().max()), float((grid[:, 1:] - grid[:, :-1]).abs().max()))
    x, y = grid[..., 0], grid[..., 1]
    inside = (x >= bounds[0] - step) & (x <= bounds[2] + step) & (y >= bounds[1] - step) & (y <= bounds[3] + step)
    rows, columns = torch.nonzero(inside, as_tuple=True)
    if not len(rows):
        return None
    return int(columns.min()) - 1, int(rows.min()) - 1, int(columns.max()) + 2, int(rows.max()) + 2


def warp_paint(shape: tuple[int, ...], crop_box: np.ndarray, grid: torch.Tensor, layer: torch.Tensor,
               bounds: tuple[float, float, float, float] | None = None) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """``layer`` warped by the crop's (h, w, 2) ``grid`` onto the pixels of a frame of
    ``shape`` inside the crop box: the region's slices and its premultiplied (h, w, 4)
    float RGBA in [0, 1]; None where no paint lands. With the layer's ``paint_bounds``,
    only the pixels the paint can reach are warped."""
    height, width = shape[:2]
    x0, y0, x1, y1 = crop_box
    left, top = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    right, bottom = min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1)))
    if bounds is not None:
        if (cells := footprint(grid, bounds)) is None:
            return None
        cell_width, cell_height = (x1 - x0) / grid.shape[1], (y1 - y0) / grid.shape[0]
        left, right = max(left, int(np.floor(x0 + cells[0] * cell_width))), min(right, int(np.ceil(x0 + cells[2] * cell_width)))
        top, bottom = max(top, int(np.floor(y0 + cells[1] * cell_height))), min(bottom, int(np.ceil(y0 + cells[3] * cell_height)))
    if right <= left or bottom <= top:
        return None
    # Each frame pixel's centre in the crop's [-1, 1] coordinates.
    u = (torch.arange(left, right, dtype=torch.float32) + 0.5 - x0) / (x1 - x0) * 2 - 1
    v = (torch.arange(top, bottom, dtype=torch.float32) + 0.5 - y0) / (y1 - y0) * 2 - 1
    positions = torch.stack(torch.meshgrid(v, u, indexing="ij")[::-1], dim=-1).unsqueeze(0)
    frame_grid = sample(grid.permute(2, 0, 1).unsqueeze(0).float(), positions, padding="border").permute(0, 2, 3, 1)
    warped = sample(layer.unsqueeze(0), frame_grid)[0].permute(1, 2, 0).numpy()
    if not (warped[..., 3] > 0).any():
        return None
    return (slice(top, bottom), slice(left, right)), warped


def composite(frame: np.ndarray, crop_box: np.ndarray, grid: torch.Tensor, layer: torch.Tensor,
              bounds: tuple[float, float, float, float] | None = None) -> None:
    """Warp ``layer`` by the crop's (h, w, 2) ``grid`` and blend it into ``frame`` (8- or
    16-bit) in place; ``bounds`` (``paint_bounds``) limits the work to where paint lands."""
    if (warped := warp_paint(frame.shape, crop_box, grid, layer, bounds)) is None:
        return
    region_slices, paint = warped
    blend(frame[region_slices], paint)


def composited(frame: Frame, crop_box: np.ndarray, grid: torch.Tensor, layer: torch.Tensor,
               bounds: tuple[float, float, float, float] | None = None) -> Frame:
    """``frame`` with ``layer`` composited as ``composite`` does, pasted (``Frame.paste``)
    so that only the pixels the paint reaches are converted, here and for the encoder."""
    if (warped := warp_paint((frame.height, frame.width), crop_box, grid, layer, bounds)) is not None:
        region_slices, paint = warped
        region = frame.pixels(*region_slices)
        frame.paste(*region_slices, region, blend(region, paint))
    return frame


def blend(region: np.ndarray, paint: np.ndarray) -> np.ndarray:
    """Blend premultiplied (h, w, 4) ``paint`` in [0, 1] into an (h, w, 3) 8- or 16-bit
    ``region`` in place; the mask of the pixels painted."""
    full = np.iinfo(region.dtype).max
    alpha = paint[..., 3]
    painted = alpha > 0
    blended = region.astype(np.float32) * (1 - alpha[..., None]) + paint[..., :3] * full
    region[painted] = np.clip(np.round(blended[painted]), 0, full).astype(region.dtype)
    return painted


def paint_alone(canvas: np.ndarray, crop_box: np.ndarray, grid: torch.Tensor, layer: torch.Tensor,
                bounds: tuple[float, float, float, float] | None = None) -> None:
    """Warp ``layer`` like ``composite`` into a transparent (H, W, 4) ``canvas`` with
    straight (not premultiplied) colour, as compositors expect of a layer's alpha."""
    if (warped := warp_paint(canvas.shape, crop_box, grid, layer, bounds)) is None:
        return
    region_slices, paint = warped
    full = np.iinfo(canvas.dtype).max
    alpha = paint[..., 3:]
    colour = np.divide(paint[..., :3], alpha, out=np.zeros_like(paint[..., :3]), where=alpha > 0)
    canvas[region_slices] = np.clip(np.round(np.concatenate([colour, alpha], axis=2) * full), 0, full).astype(canvas.dtype)


def fade_weights(found: np.ndarray, frames: int = FADE_FRAMES) -> np.ndarray:
    """Per-frame paint opacity: 0 where the face is lost, rising linearly to 1 over
    ``frames`` frames away from a lost frame (the video's ends are not losses)."""
    weights = np.where(found, 1.0, 0.0)
    if found.all() or frames <= 0:
        return weights
    # Distance to the nearest lost frame before and after, in one pass each way (a
    # frames x lost-frames table would not fit in memory for a long video).
    index = np.arange(len(found))
    far = 2 * len(found)
    before = index - np.maximum.accumulate(np.where(found, -far, index))
    after = np.minimum.accumulate(np.where(found, far, index)[::-1])[::-1] - index
    return np.minimum(weights, np.minimum(before, after) / (frames + 1))


def around(frame: Frame, box: np.ndarray, margin: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The 8-bit RGB pixels of ``frame`` within ``margin`` pixels of ``box`` (as much as
    the frame holds) and their top-left corner's (x, y) in the frame: all that a crop of
    the box, or dlib's landmarks of a face whose crop box it is, reads."""
    left, top = max(0, int(np.floor(box[0])) - margin), max(0, int(np.floor(box[1])) - margin)
    right, bottom = min(frame.width, int(np.ceil(box[2])) + margin), min(frame.height, int(np.ceil(box[3])) + margin)
    if right <= left or bottom <= top:  # a box beyond the frame: nothing of it to read
        return eight_bit(frame.rgb), np.zeros(2)
    return eight_bit(frame.pixels(slice(top, bottom), slice(left, right))), np.array([left, top], dtype=np.float64)


def locked_driving_grids(predictor: GridPredictor, track: VideoTrack, frames: Iterable[Frame],
                         lock: LandmarkLock | None) -> Iterator[tuple[int, Frame, torch.Tensor | None]]:
    """``driving_grids``, corrected by ``lock`` (None: the pure X2Face warp)."""
    items = driving_grids(predictor, track, frames)
    if lock is None:
        return items
    detector = LandmarkDetector()

    def landmarks_of(index: int, frame: Frame) -> np.ndarray:
        pixels, offset = around(frame, track.crop_box(index))
        return to_crop_grid(detector(pixels, track.face_boxes[index] - np.tile(offset, 2)) + offset, track.crop_box(index))

    return locked_grids(items, lock, landmarks_of, cuts=track.cuts)


def driving_grids(predictor: GridPredictor, track: VideoTrack,
                  frames: Iterable[Frame]) -> Iterator[tuple[int, Frame, torch.Tensor | None]]:
    """Each frame's index and the frame with the driving grid of its tracked face (None
    where the face is lost), the network run on batches of frames."""
    resolution = predictor.model.config.resolution
    pending: list[Frame] = []

    def flush() -> Iterator[tuple[int, Frame, torch.Tensor | None]]:
        tracked = [f for f in pending if track.found[f.index]]
        grids: dict[int, torch.Tensor] = {}
        if tracked:
            crops = to_tensor([crop(pixels, track.crop_box(f.index) - np.tile(offset, 2), resolution)
                               for f in tracked for pixels, offset in [around(f, track.crop_box(f.index))]])
            grids = dict(zip((f.index for f in tracked), predictor(crops)))
        yield from ((f.index, f, grids.get(f.index)) for f in pending)
        pending.clear()

    for frame in frames:
        pending.append(frame)
        if len(pending) == predictor.batch:
            yield from flush()
    yield from flush()


def write_driven(
    predictor: GridPredictor,
    track: VideoTrack,
    drive: str | Path,
    writer: VideoWriter,
    finish: Callable[[int, Frame, torch.Tensor | None], np.ndarray | Frame],
    *,
    overlap: bool = True,
    on_frame: Callable[[int], None] | None = None,
    lock: LandmarkLock | None = None,
    deep: bool = False,
) -> None:
    """Write ``finish(index, frame, grid)`` (RGB pixels, or the frame: ``VideoWriter.write``)
    for every frame of ``drive`` at that frame's time, ``grid`` being its tracked face's
    driving grid (None where the face is lost), corrected by ``lock``; ``deep`` decodes
    the frames at 16 bits.

    With ``overlap``, decoding, the network, and finishing with encoding run in three
    threads; without, one after another (the same output, more slowly).
    """

    def finish_and_write(index: int, frame: Frame, grid: torch.Tensor | None) -> None:
        writer.write(finish(index, frame, grid), track.times[index])
        if on_frame:
            on_frame(index)

    frames = iter_frames(drive, fps=float(track.info.fps), deep=deep)
    if not overlap:
        for item in locked_driving_grids(predictor, track, frames, lock):
            finish_and_write(*item)
        return
    with closing(read_ahead(frames)) as decoded, InOrderWorker() as worker:
        for item in locked_driving_grids(predictor, track, decoded, lock):
            worker.submit(finish_and_write, *item)


def check_render_inputs(model: X2Face, model_info: dict, sidecar: dict, *, mode: str, lock: str) -> None:
    """Refuse an unknown mode or lock, and a model whose embedding network is not the one
    the face was extracted with."""
    if mode not in MODES:
        raise X2FaceError(f"mode must be one of {', '.join(MODES)}")
    if lock not in LOCK_MODES:
        raise X2FaceError(f"lock must be one of {', '.join(LOCK_MODES)}")
    if sidecar["model"].get("embedding") != model.embedding_fingerprint():
        raise X2FaceError(
            f"the face was extracted with another model ({sidecar['model'].get('path')}) than this one "
            f"({model_info.get('path')}): their embedding networks differ, so the paint would land elsewhere; "
            "pass that --model, or extract again"
        )


def prepare_paint(model: X2Face, sidecar: dict, edited: str | Path, *, mode: str,
                  lock: str) -> tuple[torch.Tensor, LandmarkLock | None]:
    """The layer to warp (the paint; in "generate" mode the whole painted embedded face)
    and the landmark lock (None for ``lock`` "none"), rebuilt from the sidecar's frames."""
    sources, boxes = source_frames(sidecar)
    original = embed_frames(model, sources, boxes, sidecar["size"])
    layer = paint_layer(edited, original)
    if mode == "edit":
        require_paint(layer, edited)
    landmark_lock = LandmarkLock(embedded_landmarks(model, sources, boxes)) if lock == "landmarks" else None
    if mode == "generate":
        painted = (layer[:3] + to_tensor([original])[0] * (1 - layer[3:])).permute(1, 2, 0).numpy()
        layer = opaque_layer(np.round(painted * 255).astype(np.uint8))
    return layer, landmark_lock


@torch.inference_mode()
def render(
    model: X2Face,
    model_info: dict,
    sidecar: dict,
    edited: str | Path,
    drive: str | Path,
    out: str | Path,
    *,
    mode: str = "edit",
    lock: str = "landmarks",
    face: int | None = None,
    force: bool = False,
    track: VideoTrack | None = None,
    options: InferenceOptions = InferenceOptions(),
    overlap: bool = True,
    on_frame: Callable[[int, int], None] | None = None,
    layer_only: bool = False,
    codec: str | None = None,
    crf: int | None = None,
    fps: float | None = None,
) -> RenderReport:
    """Render the paint of ``edited`` through every frame of ``drive`` into ``out``.

    ``drive`` and ``out`` may be image sequences (``shot_%05d.png``; ``fps`` is the input
    sequence's rate); ``out``'s suffix picks the codec unless ``codec`` names one, at
    constant quality ``crf``. High-bit-depth input stays high where the codec allows.
    ``layer_only`` writes the warped paint alone, with its alpha, to lay over the footage.
    ``face`` picks the face of ``drive`` by number (0: the most prominent); by default the
    paint follows the person it was painted on (``extract.followed_face``).

    The model must share its embedding network with the one the sidecar was made with
    (the same model, or one fitted with ``driving_only``). ``mode`` "generate"
    instead pastes the whole X2Face-generated face (the painted embedded face sampled by
    the driving grid), the paper's output. ``lock`` "landmarks" corrects each frame's
    warp by its landmarks (``lock.py``); "none" keeps the paper's pure X2Face warp.
    ``options`` say how the network runs;
    ``overlap`` runs decoding, the network and compositing with encoding side by side.
    ``on_frame(done, total)`` reports progress over both passes (tracking, then rendering).
    """
    check_render_inputs(model, model_info, sidecar, mode=mode, lock=lock)
    info = track.info if track is not None else probe(drive, fps=fps)
    encoding, warning = check_video_output(out, force=force, inputs=(drive, edited, sidecar["video"]), codec=codec, crf=crf,
                                           alpha=layer_only, deep=info.deep)
    total = info.frame_count
    layer, landmark_lock = prepare_paint(model, sidecar, edited, mode=mode, lock=lock)
    number, looks_like = followed_face(sidecar, face)
    if track is None:
        track = track_video(drive, face=number, looks_like=looks_like, fps=fps,
                            on_frame=lambda i: on_frame and on_frame(i + 1, 2 * total))
    info = track.info
    opacity = fade_weights(track.found)
    bounds = paint_bounds(layer)

    def paint(index: int, frame: Frame, grid: torch.Tensor | None) -> np.ndarray | Frame:
        canvas = np.zeros((frame.height, frame.width, 4), np.uint16 if encoding.deep else np.uint8) if layer_only else None
        if grid is not None and opacity[index] > 0:
            faded = layer if opacity[index] == 1 else layer * opacity[index]
            if canvas is None:
                return composited(frame, track.crop_box(index), grid, faded, bounds)
            paint_alone(canvas, track.crop_box(index), grid, faded, bounds)
        return frame if canvas is None else canvas

    warnings = [warning] if warning else []
    with atomic_output(out, force=force) as partial:
        with VideoWriter(partial, fps=info.fps, width=info.width, height=info.height, encoding=encoding,
                         audio_from=None if is_sequence(drive) else drive, first_number=info.first_number) as writer:
            if (writer.width, writer.height) != (info.width, info.height):
                warnings.append(f"{info.width}x{info.height} is written as {writer.width}x{writer.height}: {encoding.codec} "
                                "needs even sizes (a png/tiff sequence keeps every pixel)")
            write_driven(GridPredictor(model, options), track, drive, writer, paint, overlap=overlap, lock=landmark_lock,
                         deep=encoding.deep, on_frame=on_frame and (lambda index: on_frame(total + index + 1, 2 * total)))
    if looks_like is not None and track.person is not None and np.linalg.norm(track.person - looks_like) >= SAME_PERSON:
        warnings.append(f"nobody in {Path(drive).name} looks like the face the paint was made on: it follows face number "
                        f"{number} (--face picks another)")
    if track.info.frame_count < total:  # the header announces frames the file does not hold
        warnings.append(f"only {track.info.frame_count} of the {total} frames {Path(drive).name} announces could be decoded "
                        "(a truncated file?): the output has those")
    return RenderReport(frames=track.info.frame_count, lost=track.lost_ranges(), warnings=tuple(warnings))
