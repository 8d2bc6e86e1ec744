"""The source face that ``reenact``, ``pose`` and ``audio`` drive: its embedded face from
a video or from images, where its landmarks lie on it, the frame it came from, and
writing it driven by grids or driving vectors.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .embedding import choose_source_frames, driving_vectors, embed
from .errors import X2FaceError
from .faces import FaceDetector, LandmarkDetector, face_box_of, to_crop_grid, voxceleb_box
from .lock import pinned_grids
from .model import X2Face
from .model.images import to_image, to_tensor
from .model.modalities import PoseMaps
from .model.networks import resize_grid, sample
from .outputs import atomic_output
from .tracking import VideoTrack, track_video
from .video import VideoWriter

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
        embedding = embed(model, images, boxes, size)
        return SourceFace(embedding.image, embedding.landmarks, images[0], boxes[0], video, float(track.times[next(iter(chosen))]), track)
    detector = FaceDetector()
    images, boxes = [], []
    for path in sources:
        image = _read_image(path)
        found = detector.detect(image)
        if len(found) <= face:
            raise X2FaceError(f"no face found in {path}")
        images.append(image)
        boxes.append(voxceleb_box(found[face]))
    embedding = embed(model, images, boxes, size)
    return SourceFace(embedding.image, embedding.landmarks, images[0], boxes[0])


def _read_image(path: Path) -> np.ndarray:
    if not path.is_file():
        raise X2FaceError(f"no such file: {path}")
    try:
        return np.asarray(Image.open(path).convert("RGB"))
    except OSError:
        raise X2FaceError(f"not an image: {path}") from None


def generate_video(model: X2Face, source: SourceFace, vectors: torch.Tensor, out: str | Path, *, fps: float,
                   size: int = 256, audio_from: str | Path | None = None, force: bool = False) -> None:
    """Write the source face driven by each of the (T, 128) driving vectors, one frame each."""
    write_frames(generated_frames(model, source, vectors, size=size), out, fps=fps, size=size, audio_from=audio_from, force=force)


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


def grids_moving_landmarks(model: X2Face, maps: PoseMaps, source: SourceFace, vector: torch.Tensor,
                           landmarks: np.ndarray, targets: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 2) grids that drive the source face, whose frame has the (1, 128) driving
    ``vector`` and crop ``landmarks`` (68, 2), so that the landmarks move to each of the
    (N, 68, 2) ``targets``: the vector shifted by what moves landmarks so
    (``PoseMaps.landmarks_to_vector``), the warp pinned there (``pinned_grids``)."""
    shift = (targets - torch.from_numpy(landmarks).float()).flatten(1)
    return pinned_grids(model, vector + shift @ maps.landmarks_to_vector, source.landmarks, targets)
