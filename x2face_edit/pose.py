"""Head pose (yaw, pitch, roll in degrees) from dlib's 68 landmarks.

The paper took pose labels from AFLW; here they come from fitting a generic 3D face to six
landmarks with ``cv2.solvePnP`` (camera: focal length = image width, centre = image
centre). Conventions, as seen in the image: yaw > 0 when the face turns towards the
image's right, pitch > 0 when it tilts down, roll > 0 when it rotates clockwise. A
mirrored image flips the signs of yaw and roll.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch

from .errors import X2FaceError
from .faces import FaceDetector, LandmarkDetector
from .lock import LandmarkLock
from .model import X2Face
from .model.modalities import PoseMaps
from .outputs import check_video_output
from .reenact import SourceFace, frames_from_grids, generate_video, write_frames

# dlib indices and a generic face in millimetres, camera axes (x right, y down, z away).
POSE_LANDMARKS = [30, 8, 36, 45, 48, 54]  # nose tip, chin, eye corners, mouth corners
GENERIC_FACE = np.array([
    [0.0, 0.0, 0.0],
    [0.0, 330.0, 65.0],
    [-225.0, -170.0, 135.0],
    [225.0, -170.0, 135.0],
    [-150.0, 150.0, 125.0],
    [150.0, 150.0, 125.0],
])
MAX_ANGLE = 90.0
POSE_METHODS = ("landmarks", "paper")
# Fixed-point steps that make the moved landmarks read as the commanded pose.
TARGET_STEPS = 12


def head_pose(landmarks: np.ndarray, image_width: int, image_height: int) -> np.ndarray:
    """(yaw, pitch, roll) in degrees from (68, 2) landmark coordinates."""
    camera = np.array([[image_width, 0, image_width / 2], [0, image_width, image_height / 2], [0, 0, 1]], dtype=np.float64)
    points = np.ascontiguousarray(landmarks[POSE_LANDMARKS], dtype=np.float64)
    ok, rotation_vector, _ = cv2.solvePnP(GENERIC_FACE, points, camera, None, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return np.full(3, np.nan)
    rotation, _ = cv2.Rodrigues(rotation_vector)
    # rotation = Rz(roll) @ Ry(yaw) @ Rx(pitch)
    pitch = math.atan2(rotation[2, 1], rotation[2, 2])
    yaw = math.asin(float(np.clip(-rotation[2, 0], -1, 1)))
    roll = math.atan2(rotation[1, 0], rotation[0, 0])
    # Ry(+) turns the nose towards -x in these axes: negate so yaw > 0 faces the image's right.
    return np.degrees([-yaw, -pitch, roll])


class PoseEstimator:
    """Head pose of the largest face in an image."""

    def __init__(self) -> None:
        self.detector = FaceDetector()
        self.landmarks = LandmarkDetector()

    def __call__(self, rgb: np.ndarray, face_box: np.ndarray | None = None) -> np.ndarray:
        """(yaw, pitch, roll), NaN if no face is found."""
        if face_box is None:
            found = self.detector.detect(rgb)
            if not len(found):
                return np.full(3, np.nan)
            face_box = found[0]
        return head_pose(self.landmarks(rgb, face_box), rgb.shape[1], rgb.shape[0])


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


def pinned_grids(model: X2Face, vectors: torch.Tensor, embedded_landmarks: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 2) driving grids of the (N, 128) ``vectors`` (the network's warp: the far
    cheek narrows, the near one widens), each corrected by the landmark lock's thin-plate
    field so that the embedded face's landmarks land exactly on the (N, 68, 2) ``targets``."""
    lock = LandmarkLock(embedded_landmarks)
    grids = []
    for grid, points in zip(model.decode(vectors), targets):
        correction, _ = lock.correction(grid, points.numpy())
        grids.append(grid if correction is None else lock.apply(grid, correction))
    return torch.stack(grids)


def grids_moving_landmarks(model: X2Face, maps: PoseMaps, source: SourceFace, vector: torch.Tensor,
                           landmarks: np.ndarray, targets: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 2) grids that drive the source face, whose frame has the (1, 128) driving
    ``vector`` and crop ``landmarks`` (68, 2), so that the landmarks move to each of the
    (N, 68, 2) ``targets``: the vector shifted by what moves landmarks so
    (``PoseMaps.landmarks_to_vector``), the warp pinned there (``pinned_grids``)."""
    shift = (targets - torch.from_numpy(landmarks).float()).flatten(1)
    return pinned_grids(model, vector + shift @ maps.landmarks_to_vector, source.landmarks, targets)


@torch.inference_mode()
def drive_by_pose(model: X2Face, maps: PoseMaps, source: SourceFace, ranges: dict[str, tuple[float, float] | None],
                  out: str | Path, *, frames: int = 50, fps: float = 25, size: int = 256, method: str = "landmarks",
                  force: bool = False) -> np.ndarray:
    """Write the source face turned through the given pose ranges; return the (frames, 6)
    table of commanded poses and the poses read back (dlib's landmarks of the generated
    frames for "landmarks"; f_v->p of the new vectors for "paper").

    ``method`` "landmarks" (the default) moves the source's landmarks as heads turn
    (``landmark_targets``), changes the driving vector by what moves landmarks so
    (``PoseMaps.landmarks_to_vector``) and pins the warp to the moved landmarks
    (``pinned_grids``); "paper" is equation (1), v = v_src + f_p->v(Δp), which turns heads
    by a fraction of the command.
    """
    if method not in POSE_METHODS:
        raise X2FaceError(f"method must be one of {', '.join(POSE_METHODS)}")
    check_video_output(out, force=force)
    if method == "paper":
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
