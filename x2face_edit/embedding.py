"""The embedded face of source frames: choosing the frames, embedding them, and where
points of the frames (dlib's landmarks) lie on the result.

``extract`` writes it once; ``render``, ``preview`` and ``reenact`` rebuild it from the
frames a sidecar names, so the same code makes it every time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import X2FaceError
from .faces import FaceDetector, LandmarkDetector, crop, face_box_of, to_crop_grid
from .guide import coverage_mask
from .model import X2Face
from .model.images import to_image, to_tensor
from .model.landmarks import invert_grid
from .model.networks import resize_grid, sample, weighted_average
from .sequences import media_exists
from .sidecar import Sidecar
from .tracking import VideoTrack
from .video import frames_at

# Candidate frames scored when choosing sources automatically.
CANDIDATES = 48


@torch.inference_mode()
def driving_vectors(model: X2Face, frames: list[np.ndarray], boxes: list[np.ndarray], *, batch: int = 16) -> torch.Tensor:
    resolution = model.config.resolution
    device = next(model.parameters()).device
    vectors = []
    for start in range(0, len(frames), batch):
        crops = [crop(f, b, resolution) for f, b in zip(frames[start : start + batch], boxes[start : start + batch])]
        vectors.append(model.driving_vector(to_tensor(crops).to(device)).cpu())
    return torch.cat(vectors)


def choose_source_frames(model: X2Face, video: Path, track: VideoTrack, count: int) -> dict[int, np.ndarray]:
    """``count`` tracked frames whose driving vectors are far apart (different poses), by
    index, decoded (so that the video need not be decoded again for them).

    Farthest-point sampling over the clearer half (``FaceDetector.visibility``) of up to
    ``CANDIDATES`` evenly spaced tracked frames, starting from the one nearest their
    average pose. Only the clearer half, because a hand or a phone over the face makes a
    frame unusual, which is what farthest-point sampling seeks (benchmarks/README.md).
    """
    tracked = np.flatnonzero(track.found)
    candidates = sorted({int(tracked[round(i)]) for i in np.linspace(0, len(tracked) - 1, min(CANDIDATES, len(tracked)))})
    frames = frames_at(video, candidates, times=track.times[candidates].tolist())
    detector = FaceDetector()
    visibility = np.array([detector.visibility(frames[i], track.face_boxes[i]) for i in candidates])
    clearest = np.sort(np.argsort(-visibility, kind="stable")[: max(count, math.ceil(len(candidates) / 2))])
    candidates = [candidates[i] for i in clearest]
    vectors = driving_vectors(model, [frames[i] for i in candidates], [track.crop_box(i) for i in candidates])
    chosen = [int(torch.cdist(vectors.mean(0, keepdim=True), vectors).argmin())]
    while len(chosen) < min(count, len(candidates)):
        distance = torch.cdist(vectors, vectors[chosen]).min(dim=1).values
        chosen.append(int(distance.argmax()))
    return {candidates[i]: frames[candidates[i]] for i in sorted(chosen)}


@dataclass
class Embedding:
    """An embedded face and what is known of it from its source frames."""

    image: np.ndarray  # (S, S, 3) uint8
    landmarks: torch.Tensor  # (68, 2): where dlib's landmarks lie on it, grid coordinates
    coverage: np.ndarray | None = None  # (S, S) uint8: the part of it the frames' driving grids sample
    frame_landmarks: tuple[np.ndarray, ...] = ()  # each source frame's (68, 2) landmarks, its crop's grid coordinates
    # Each source frame's own (S, S, 3) uint8 picture on the embedded face, before they are
    # averaged into ``image`` (where the sources disagree, the average shows both).
    source_images: tuple[np.ndarray, ...] = ()


def _model_crops(model: X2Face, frames: list[np.ndarray], boxes: list[np.ndarray]) -> torch.Tensor:
    device = next(model.parameters()).device
    return to_tensor([crop(f, b, model.config.resolution) for f, b in zip(frames, boxes)]).to(device)


def _textures(frames: list[np.ndarray], boxes: list[np.ndarray], grids: torch.Tensor, confidence: torch.Tensor,
              size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The confidence-weighted average of the frames' ``size`` crops sampled by their
    embedding grids, and each frame's sampled crop alone."""
    large = to_tensor([crop(f, b, size) for f, b in zip(frames, boxes)]).to(grids.device)
    embedded = sample(large, resize_grid(grids, size, size))
    confidence = torch.nn.functional.interpolate(confidence, size=(size, size), mode="bilinear", align_corners=False)
    return to_image(weighted_average(embedded.unsqueeze(0), confidence.unsqueeze(0))[0]), [to_image(e) for e in embedded]


def _located(grids: torch.Tensor, points: list[np.ndarray]) -> torch.Tensor:
    """Each frame's crop ``points`` carried through the inverse of its embedding grid, averaged over the frames."""
    located = [invert_grid(grid.cpu(), torch.as_tensor(p, dtype=torch.float32)) for grid, p in zip(grids, points)]
    return torch.stack(located).mean(dim=0)


def _landmarks(frames: list[np.ndarray], boxes: list[np.ndarray]) -> list[np.ndarray]:
    detector = LandmarkDetector()
    return [to_crop_grid(detector(frame, face_box_of(box)), box) for frame, box in zip(frames, boxes)]


@torch.inference_mode()
def embed(model: X2Face, frames: list[np.ndarray], boxes: list[np.ndarray], size: int, *, coverage: bool = False) -> Embedding:
    """The embedded face of several frames at ``size`` pixels (``embed_frames``), where their
    landmarks lie on it (``embedded_landmarks``) and, with ``coverage``, the part of it their
    driving grids sample (``guide.coverage_mask``); the frames are cropped and embedded once."""
    crops = _model_crops(model, frames, boxes)
    grids, confidence = model.embedding_grid(crops)
    covered = coverage_mask(model.decode(model.driving_vector(crops)).reshape(-1, 2).cpu().numpy(), size) if coverage else None
    points = _landmarks(frames, boxes)
    image, source_images = _textures(frames, boxes, grids, confidence, size)
    return Embedding(image, _located(grids, points), covered, tuple(points), tuple(source_images))


@torch.inference_mode()
def embed_frames(model: X2Face, frames: list[np.ndarray], boxes: list[np.ndarray], size: int) -> np.ndarray:
    """The confidence-weighted embedded face of several frames at ``size`` pixels.

    The model predicts each frame's embedding grid at its own resolution; the grid and the
    confidence are upsampled and sample a ``size`` crop, so the texture keeps the video's
    detail rather than the model's resolution.
    """
    return _textures(frames, boxes, *model.embedding_grid(_model_crops(model, frames, boxes)), size)[0]


@torch.inference_mode()
def locate_in_embedded_face(model: X2Face, frames: list[np.ndarray], boxes: list[np.ndarray],
                            points: list[np.ndarray]) -> torch.Tensor:
    """Where points of source frames lie on their embedded face, in grid coordinates.

    ``points[i]`` (N, 2) are frame i's points in its crop's grid coordinates; each frame's
    are carried through the inverse of its own embedding grid (which says, for every
    embedded-face position, which crop position it samples), then averaged over the
    frames, as the embedded face averages them. Paint put there lands on those points.
    """
    grids, _ = model.embedding_grid(_model_crops(model, frames, boxes))
    return _located(grids, points)


def embedded_landmarks(model: X2Face, frames: list[np.ndarray], boxes: list[np.ndarray]) -> torch.Tensor:
    """Where the face's 68 dlib landmarks lie on the embedded face of these source frames
    (grid coordinates, ``locate_in_embedded_face``)."""
    return locate_in_embedded_face(model, frames, boxes, _landmarks(frames, boxes))


def source_frames(sidecar: Sidecar) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The source frames a sidecar names, decoded from its video (unless it holds them
    decoded, ``Sidecar.decoded``), and their crop boxes."""
    decoded = sidecar.decoded
    if decoded is None or any(index not in decoded for index in sidecar.frames):
        if not media_exists(sidecar.video):
            raise X2FaceError(f"the video the face was extracted from is gone: {sidecar.video}")
        decoded = frames_at(sidecar.video, sidecar.frames, times=sidecar.times)
    return [decoded[i] for i in sidecar.frames], sidecar.boxes


def rebuild(model: X2Face, sidecar: Sidecar) -> np.ndarray:
    """The unpainted embedded face a sidecar describes, recomputed from its video."""
    return embed_frames(model, *source_frames(sidecar), sidecar.size)
