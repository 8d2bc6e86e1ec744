"""Head pose (yaw, pitch, roll in degrees) from dlib's 68 landmarks.

The paper took pose labels from AFLW; here they come from fitting a generic 3D face to six
landmarks with ``cv2.solvePnP`` (camera: focal length = image width, centre = image
centre). Conventions, as seen in the image: yaw > 0 when the face turns towards the
image's right, pitch > 0 when it tilts down, roll > 0 when it rotates clockwise. A
mirrored image flips the signs of yaw and roll.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .faces import FaceDetector, LandmarkDetector

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
