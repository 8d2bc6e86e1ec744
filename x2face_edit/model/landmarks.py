"""dlib's 68 facial landmarks in grid coordinates: mirroring, the canonical template,
and reading a sampling grid at points.

Grid coordinates are ``grid_sample``'s (align_corners=False): [-1, 1] across the crop, x
to the right, y down. A driving grid maps crop positions to embedded-face positions; an
embedding grid maps embedded-face positions to source-crop positions. The template is
where each landmark lies on the embedded face: a fixed, frontal, left-right symmetric
layout that every identity's embedded face shares.
"""

from __future__ import annotations

import numpy as np
import torch

from .networks import identity_grid, sample

LANDMARK_COUNT = 68
# dlib's outer eye corners: their distance (the inter-ocular distance, IOD) is the unit of
# every landmark error this project reports.
OUTER_EYE_CORNERS = (36, 45)

# The landmark that each landmark becomes when the face is mirrored left-right.
_MIRRORED_PAIRS = (
    [(i, 16 - i) for i in range(8)]  # jaw
    + [(17 + i, 26 - i) for i in range(5)]  # brows
    + [(31, 35), (32, 34)]  # nostrils
    + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    + [(48, 54), (49, 53), (50, 52), (59, 55), (58, 56)]  # outer lips
    + [(60, 64), (61, 63), (67, 65)]  # inner lips
)


def _mirror_index() -> list[int]:
    index = list(range(LANDMARK_COUNT))
    for a, b in _MIRRORED_PAIRS:
        index[a], index[b] = b, a
    return index


MIRROR_INDEX = _mirror_index()


def mirror_landmarks(points: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """The landmarks of the left-right mirrored crop: (..., 68, 2) in grid coordinates."""
    mirrored = points[..., MIRROR_INDEX, :] * 1  # a copy, whatever the array type
    mirrored[..., 0] = -mirrored[..., 0]
    return mirrored


def crop_pixels_to_grid(points: np.ndarray, size: int) -> np.ndarray:
    """Continuous crop-pixel coordinates (as ``prepare`` records them) to grid coordinates."""
    return np.asarray(points, dtype=np.float32) / size * 2 - 1


def symmetric_template(landmarks: np.ndarray) -> np.ndarray:
    """The (68, 2) template: the mean of (N, 68, 2) crop landmarks (NaN rows skipped),
    averaged with its own mirror image so that it is exactly symmetric."""
    mean = np.nanmean(landmarks.reshape(-1, LANDMARK_COUNT, 2), axis=0)
    return ((mean + mirror_landmarks(mean)) / 2).astype(np.float32)


def sample_at(grid: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """A (B, H, W, 2) grid's values at (B, N, 2) points given in its own coordinates:
    (B, N, 2), bilinear, border values outside."""
    values = sample(grid.permute(0, 3, 1, 2), points.unsqueeze(1).to(grid.dtype), padding="border")
    return values[:, :, 0].transpose(1, 2)


def inter_ocular(points: torch.Tensor | np.ndarray):
    """(...,) outer-eye-corner distance of (..., 68, 2) landmarks."""
    left, right = OUTER_EYE_CORNERS
    difference = points[..., right, :] - points[..., left, :]
    return (difference**2).sum(-1) ** 0.5


def invert_grid(grid: torch.Tensor, targets: torch.Tensor, *, steps: int = 4) -> torch.Tensor:
    """Where a (H, W, 2) sampling grid takes the values (N, 2) ``targets``: the (N, 2)
    positions p of its own domain with grid(p) = target (grid coordinates).

    Starts at the nearest grid node, then takes Newton steps on the bilinear grid (its
    Jacobian by central differences), each at most two pixels long, so a fold in the grid
    cannot throw the answer far.
    """
    height, width = grid.shape[:2]
    grid = grid.float().unsqueeze(0)
    targets = targets.float()
    nodes = identity_grid(height, width, device=grid.device)[0].reshape(-1, 2)
    positions = nodes[torch.cdist(targets, grid.reshape(-1, 2)).argmin(dim=1)]
    pixel = 2.0 / width
    dx = torch.tensor([pixel / 2, 0.0], device=grid.device)
    dy = torch.tensor([0.0, pixel / 2], device=grid.device)
    for _ in range(steps):
        probes = torch.stack([positions, positions + dx, positions - dx, positions + dy, positions - dy])
        values = sample_at(grid.expand(5, -1, -1, -1), probes)
        jacobian = torch.stack([(values[1] - values[2]) / pixel, (values[3] - values[4]) / pixel], dim=-1)
        step = torch.linalg.lstsq(jacobian, (targets - values[0]).unsqueeze(-1)).solution.squeeze(-1)
        positions = positions + step.clamp(-2 * pixel, 2 * pixel)
    return positions
