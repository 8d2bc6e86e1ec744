"""Reenactment: the source face takes the pose and expression of each driving frame."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import X2FaceError
from .extract import choose_source_frames, driving_vectors, embed_frames, embedded_landmarks, to_image, to_tensor
from .faces import FaceDetector, LandmarkDetector, crop, face_box_of, to_crop_grid, voxceleb_box
from .lock import LOCK_MODES, LandmarkLock
from .model import X2Face
from .model.inference import GridPredictor, InferenceOptions
from .model.networks import resize_grid, sample
from .outputs import atomic_output, check_video_output
from .render import RenderReport, composite, opaque_layer, write_driven
from .tracking import VideoTrack, track_video
from .video import Frame, VideoWriter, probe

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


@dataclass
class SourceFace:
    """The source identity: its embedded face, where its landmarks lie on it, and a frame
    with its crop box to paste into."""

    embedded: np.ndarray  # (S, S, 3) uint8
    landmarks: torch.Tensor  # (68, 2) on the embedded face, grid coordinates (for the landmark lock)
    background: np.ndarray
    crop_box: np.ndarray
    video: Path | None = None  # where the background frame came from, if a video
    time: float = 0.0  # and when, in seconds
    track: VideoTrack | None = None  # the video's followed face, for work that needs every frame

    def driving_vector(self, model: X2Face) -> torch.Tensor:
        """(1, 128): the pose and expression of the source frame itself."""
        return driving_vectors(model, [self.background], [self.crop_box])

    def frame_landmarks(self) -> np.ndarray:
        """(68, 2): dlib's landmarks of the source frame, in its crop's grid coordinates."""
        return to_crop_grid(LandmarkDetector()(self.background, face_box_of(self.crop_box)), self.crop_box)


def source_face(model: X2Face, sources: Sequence[Path], *, count: int = 3, size: int = 256, face: int = 0) -> SourceFace:
    """The embedded face of a source video (``count`` frames chosen to differ in pose) or
    of one or more face images (all of them)."""
    if len(sources) == 1 and sources[0].suffix.lower() not in IMAGE_SUFFIXES:
        video = sources[0]
        track = track_video(video, face=face)
        chosen = choose_source_frames(model, video, track, count)
        images, boxes = list(chosen.values()), [track.crop_box(i) for i in chosen]
        return SourceFace(embed_frames(model, images, boxes, size), embedded_landmarks(model, images, boxes), images[0], boxes[0],
                          video, float(track.times[next(iter(chosen))]), track)
    detector = FaceDetector()
    images, boxes = [], []
    for path in sources:
        image = _read_image(path)
        found = detector.detect(image)
        if len(found) <= face:
            raise X2FaceError(f"no face found in {path}")
        images.append(image)
        boxes.append(voxceleb_box(found[face]))
    return SourceFace(embed_frames(model, images, boxes, size), embedded_landmarks(model, images, boxes), images[0], boxes[0])


def _read_image(path: Path) -> np.ndarray:
    if not path.is_file():
        raise X2FaceError(f"no such file: {path}")
    try:
        return np.asarray(Image.open(path).convert("RGB"))
    except OSError:
        raise X2FaceError(f"not an image: {path}") from None


@torch.inference_mode()
def reenact(
    model: X2Face,
    source: SourceFace,
    drive: str | Path,
    out: str | Path,
    *,
    size: int = 256,
    side_by_side: bool = False,
    paste_back: bool = False,
    lock: str = "landmarks",
    face: int = 0,
    force: bool = False,
    options: InferenceOptions = InferenceOptions(),
    on_frame: Callable[[int, int], None] | None = None,
) -> RenderReport:
    """Write a video of the source face driven by every frame of ``drive``.

    Each output frame is the generated face (``size`` pixels square); ``side_by_side``
    puts the driving face on its left; ``paste_back`` instead pastes the generated face
    into the source frame, where ``lock`` "landmarks" (``lock.py``) makes its features
    follow the driving face's landmarks exactly. Where the driving face is lost the last
    result is held. The driving video's sound is kept. ``options`` say how the network runs.
    """
    if lock not in LOCK_MODES:
        raise X2FaceError(f"lock must be one of {', '.join(LOCK_MODES)}")
    check_video_output(out, force=force, inputs=(drive,))
    total = probe(drive).frame_count
    track = track_video(drive, face=face, on_frame=lambda i: on_frame and on_frame(i + 1, 2 * total))
    device = next(model.parameters()).device
    embedded = to_tensor([source.embedded]).to(device)
    layer = opaque_layer(source.embedded)
    if paste_back:
        height, width = source.background.shape[:2]
    else:
        height, width = size, size * (2 if side_by_side else 1)
    last_result: np.ndarray | None = None

    def compose(index: int, driving_frame: Frame, grid: torch.Tensor | None) -> np.ndarray:
        nonlocal last_result
        if paste_back:
            frame = source.background.copy()
            if grid is not None:
                composite(frame, source.crop_box, grid, layer)
                last_result = frame
            return last_result if last_result is not None else frame
        if grid is not None:
            last_result = to_image(sample(embedded, resize_grid(grid.unsqueeze(0).to(device), size, size))[0])
        result = last_result if last_result is not None else crop(source.background, source.crop_box, size)
        if not side_by_side:
            return result
        box = track.crop_box(index)
        left = crop(driving_frame.rgb, box, size) if box is not None else np.zeros_like(result)
        return np.concatenate([left, result], axis=1)

    with atomic_output(out, force=force) as partial:
        with VideoWriter(partial, fps=track.info.fps, width=width, height=height, audio_from=drive) as writer:
            write_driven(GridPredictor(model, options), track, drive, writer, compose,
                         lock=LandmarkLock(source.landmarks) if paste_back and lock == "landmarks" else None,
                         on_frame=on_frame and (lambda index: on_frame(total + index + 1, 2 * total)))
    return RenderReport(frames=track.info.frame_count, lost=track.lost_ranges())


def generate_video(model: X2Face, source: SourceFace, vectors: torch.Tensor, out: str | Path, *, fps: float,
                   size: int = 256, audio_from: str | Path | None = None, force: bool = False, batch: int = 16) -> None:
    """Write the source face driven by each of the (T, 128) driving vectors, one frame each."""
    write_frames(generated_frames(model, source, vectors, size=size, batch=batch), out, fps=fps, size=size,
                 audio_from=audio_from, force=force)


def write_frames(frames: Iterable[np.ndarray], out: str | Path, *, fps: float, size: int,
                 audio_from: str | Path | None = None, force: bool = False) -> None:
    """Write ``size``-square frames to ``out`` at ``fps``, with the sound of ``audio_from``."""
    with atomic_output(out, force=force) as partial:
        with VideoWriter(partial, fps=fps, width=size, height=size, audio_from=audio_from) as writer:
            for frame in frames:
                writer.write(frame)


@torch.inference_mode()
def generated_frames(model: X2Face, source: SourceFace, vectors: torch.Tensor, *, size: int = 256,
                     batch: int = 16) -> Iterator[np.ndarray]:
    """The source face driven by each of the (T, 128) driving vectors, ``size`` pixels square."""
    device = next(model.parameters()).device
    for chunk in vectors.split(batch):
        yield from frames_from_grids(source, model.decode(chunk.to(device)), size)


@torch.inference_mode()
def frames_from_grids(source: SourceFace, grids: torch.Tensor, size: int = 256) -> Iterator[np.ndarray]:
    """The source's embedded face sampled by each of the (T, H, W, 2) driving grids."""
    embedded = to_tensor([source.embedded]).to(grids.device)
    resized = resize_grid(grids, size, size)
    for grid in resized:
        yield to_image(sample(embedded, grid.unsqueeze(0))[0])
