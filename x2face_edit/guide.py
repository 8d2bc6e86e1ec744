"""The painting guide: a transparent layer over the embedded face that shows where the
face's features lie on it (eyes, brows, nose, lips, jaw) and how far the video's frames
reach into it, so paint is put where it will show. ``render`` refuses it as paint."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, PngImagePlugin

# The PNG text entry that marks a guide.
GUIDE_KEY, GUIDE_VALUE = "x2face-edit", "painting guide"
# dlib's 68 points as drawn: (first, last, closed).
FEATURES = (
    (0, 16, False),  # jaw
    (17, 21, False), (22, 26, False),  # brows
    (27, 30, False), (31, 35, False),  # nose bridge, nostrils
    (36, 41, True), (42, 47, True),  # eyes
    (48, 59, True), (60, 67, True),  # outer and inner lips
)
FEATURE_COLOUR = (0, 255, 255, 230)
COVERAGE_COLOUR = (255, 64, 255, 200)


def to_pixels(points: np.ndarray, size: int) -> np.ndarray:
    """Grid coordinates ([-1, 1], pixel-edge convention) -> pixel coordinates of a ``size`` image."""
    return (np.asarray(points, dtype=np.float64) + 1) * size / 2


def coverage_mask(positions: np.ndarray, size: int) -> np.ndarray:
    """Where on a ``size`` embedded face the (N, 2) grid ``positions`` fall (the embedded
    positions the frames' driving grids sample), closed over small holes: the part of the
    embedded face the video can show."""
    pixels = np.floor(to_pixels(positions, size)).astype(int)
    inside = ((pixels >= 0) & (pixels < size)).all(axis=1)
    mask = np.zeros((size, size), np.uint8)
    mask[pixels[inside, 1], pixels[inside, 0]] = 255
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (max(3, size // 24) | 1,) * 2)
    return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)


def draw_guide(size: int, landmarks: np.ndarray, coverage: np.ndarray | None = None) -> Image.Image:
    """The guide layer (RGBA, ``size`` square): the 68 ``landmarks`` (grid coordinates)
    joined feature by feature, and the outline of the ``coverage`` mask."""
    canvas = np.zeros((size, size, 4), np.uint8)
    thickness = max(1, size // 256)
    if coverage is not None:
        contours, _ = cv2.findContours(coverage, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(canvas, contours, -1, COVERAGE_COLOUR, thickness, cv2.LINE_AA)
    shift = 4  # sub-pixel drawing: coordinates in 1/16 pixel
    points = np.round((to_pixels(landmarks, size) - 0.5) * (1 << shift)).astype(np.int32)
    for first, last, closed in FEATURES:
        cv2.polylines(canvas, [points[first : last + 1]], closed, FEATURE_COLOUR, thickness, cv2.LINE_AA, shift)
    return Image.fromarray(canvas, "RGBA")


def save_guide(image: Image.Image, path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text(GUIDE_KEY, GUIDE_VALUE)
    image.save(path, format="PNG", pnginfo=info)


def is_guide(image: Image.Image) -> bool:
    """Whether an opened image is a painting guide ``save_guide`` wrote."""
    return getattr(image, "text", {}).get(GUIDE_KEY) == GUIDE_VALUE
