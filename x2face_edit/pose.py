"""Driving a face by head-pose angles (paper section 4.1): the source face turned through
commanded yaw, pitch and roll, with the angles read back from the frames written
(``head_pose.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .choices import POSE_METHODS
from .errors import X2FaceError
from .head_pose import MAX_ANGLE, PoseEstimator, head_pose
from .model import X2Face
from .model.modalities import PoseMaps
from .outputs import atomic_output
from .source import SourceFace, frames_from_grids, generate_video, grids_moving_landmarks, write_frames
from .video import check_video_output

# Fixed-point steps that make the moved landmarks read as the commanded pose.
TARGET_STEPS = 12


def parse_angle_range(text: str, name: str) -> tuple[float, float]:
    """'A:B' (from A to B degrees) or 'A' (held at A); both within +-90."""
    try:
        parts = [float(p) for p in text.split(":")]
    except ValueError:
        raise X2FaceError(f"--{name} takes START:END in degrees, got {text!r}") from None
    if len(parts) not in (1, 2):
        raise X2FaceError(f"--{name} takes START:END in degrees, got {text!r}")
    if any(abs(p) > MAX_ANGLE for p in parts):
        raise X2FaceError(f"--{name} {text}: angles must lie within -{MAX_ANGLE:.0f} and {MAX_ANGLE:.0f} degrees")
    return parts[0], parts[-1]


def pose_sequence(start: np.ndarray, ranges: dict[str, tuple[float, float] | None], frames: int) -> np.ndarray:
    """(frames, 3) target poses: each named angle swept linearly over its range, the
    others held at the ``start`` pose."""
    targets = np.repeat(np.asarray(start, np.float32)[None], frames, axis=0)
    for column, name in enumerate(("yaw", "pitch", "roll")):
        if ranges.get(name) is not None:
            targets[:, column] = np.linspace(*ranges[name], frames)
    return targets


def landmark_targets(landmarks: np.ndarray, targets: np.ndarray, motion: np.ndarray, size: int) -> np.ndarray:
    """(N, 68, 2) crop landmarks (grid coordinates) of the face whose crop landmarks are
    ``landmarks`` turned to each of the (N, 3) ``targets``: moved along the per-degree
    ``motion`` (3, 68, 2) until ``head_pose`` reads the target from them in a ``size``
    crop (a few fixed-point steps: the linear motion is only right on average)."""
    def pose_of(points: np.ndarray) -> np.ndarray:
        return head_pose((points + 1) * size / 2, size, size)

    start = pose_of(landmarks)
    moved = []
    for target in np.asarray(targets, np.float64):
        change = target - start
        for _ in range(TARGET_STEPS):
            points = landmarks + np.tensordot(change, motion, axes=1)
            read = pose_of(points)
            if np.isnan(read).any():
                break
            change = change + (target - read)
        moved.append(landmarks + np.tensordot(change, motion, axes=1))
    return np.stack(moved).astype(np.float32)


@dataclass(frozen=True)
class PoseOptions:
    """``frames`` frames at ``fps``, ``size`` pixels square, turned by ``method``
    (``POSE_METHODS``, ``drive_by_pose``); ``force`` overwrites an existing output."""

    frames: int = 50
    fps: float = 25.0
    size: int = 256
    method: str = "landmarks"
    force: bool = False

    def __post_init__(self) -> None:
        if self.method not in POSE_METHODS:
            raise X2FaceError(f"method must be one of {', '.join(POSE_METHODS)}")


@torch.inference_mode()
def drive_by_pose(model: X2Face, maps: PoseMaps, source: SourceFace, ranges: dict[str, tuple[float, float] | None],
                  out: str | Path, options: PoseOptions = PoseOptions()) -> np.ndarray:
    """Write the source face turned through the given pose ranges; return the (frames, 6)
    table of commanded poses and the poses read back (dlib's landmarks of the generated
    frames for "landmarks"; f_v->p of the new vectors for "paper").

    ``options.method`` "landmarks" (the default) moves the source's landmarks as heads turn
    (``landmark_targets``), changes the driving vector by what moves landmarks so
    (``PoseMaps.landmarks_to_vector``) and pins the warp to the moved landmarks
    (``pinned_grids``); "paper" is equation (1), v = v_src + f_p->v(Δp), which turns heads
    by a fraction of the command.
    """
    frames, fps, size, force = options.frames, options.fps, options.size, options.force
    check_video_output(out, force=force)
    if options.method == "paper":
        vector = source.driving_vector(model)
        targets = torch.from_numpy(pose_sequence(maps.vector_to_pose(vector)[0].numpy(), ranges, frames))
        vectors = maps.repose(vector.expand(frames, -1), targets)
        generate_video(model, source, vectors, out, fps=fps, size=size, force=force)
        return np.concatenate([targets.numpy(), maps.vector_to_pose(vectors).numpy()], axis=1)
    landmarks = source.frame_landmarks()
    start = head_pose((landmarks + 1) * size / 2, size, size)
    targets = pose_sequence(start, ranges, frames)
    moved = torch.from_numpy(landmark_targets(landmarks, targets, maps.landmark_motion.numpy(), size))
    grids = grids_moving_landmarks(model, maps, source, source.driving_vector(model), landmarks, moved)
    estimate = PoseEstimator()
    read = []

    def frames_read_back():
        for frame in frames_from_grids(source, grids, size):
            read.append(estimate(frame))
            yield frame

    write_frames(frames_read_back(), out, fps=fps, size=size, force=force)
    return np.concatenate([targets, np.array(read)], axis=1)


def write_pose_table(table: np.ndarray, path: str | Path, *, force: bool = False) -> None:
    """``drive_by_pose``'s table as CSV: each frame's commanded angles and those read back."""
    with atomic_output(path, force=force) as partial:
        lines = ["frame,yaw,pitch,roll,read_yaw,read_pitch,read_roll"]
        lines += [",".join([str(i), *(f"{v:.2f}" for v in row)]) for i, row in enumerate(table)]
        partial.write_text("\n".join(lines) + "\n")
