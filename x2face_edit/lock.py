"""The landmark lock: dlib's landmarks in each frame pin X2Face's warp down.

A frame's driving grid D takes crop positions to embedded-face positions. Where the face's
68 landmarks are found in the frame, D should take each one to that landmark's place on
the embedded face (found once, on the source frames). The differences (residuals) become
a smooth correction field over the crop, a regularised thin-plate spline, added to D
near the landmarks and fading with the distance from them: the landmarks pin the warp
where they are, and X2Face supplies the dense warp between and beyond them (cheeks,
forehead), where the spline would only extrapolate dlib's errors.

The corrections are smoothed over time with a centred Gaussian (the video is read a few
frames ahead, so nothing lags). A frame whose landmarks disagree with the warp by more
than ``TRUST_IOD`` (a hand over the face, a detector failure) counts for less, and from
twice that for nothing: its neighbours' correction is used, fading to the pure warp where
none is near. The trust falls continuously, so a frame near the bound cannot make the
paint jump (or a re-run with other float round-off differ).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .model import X2Face
from .model.landmarks import inter_ocular, sample_at
from .model.networks import identity_grid

# A frame's landmarks are trusted fully while their median residual is within this
# fraction of the eye distance on the embedded face, less and less up to twice that, and
# not at all beyond: the warp and dlib then disagree by far more than either errs on a
# visible face.
TRUST_IOD = 0.2
# Temporal smoothing of the correction, in frames (a Gaussian's sigma); it reaches
# 3 sigma ahead, which is how far the renderer reads ahead.
TEMPORAL_SIGMA = 1.5
# Thin-plate-spline regularisation (grid units squared): the spline passes within dlib's
# jitter of each landmark rather than through it, and bends less between and beyond them.
# Chosen with the MediaPipe judge (benchmarks/README.md, "Where the constants come from").
SPLINE_REGULARISATION = 1e-2
# How far the correction reaches (grid units; the crop spans 2, the eyes are about 0.5
# apart): it is weighted by exp(-(d / reach)^2), d the distance to the nearest landmark.
# Chosen with the MediaPipe judge (benchmarks/tune_lock.py; benchmarks/README.md, "Where the constants come from"). The crops are
# placed by the landmarks (faces.aligned_face_box), so this is the same fraction of every face.
CORRECTION_REACH = 0.2
# The correction is computed on a coarse grid over the crop and upsampled: it is smooth.
FIELD_SIZE = 32
# Landmarks and a correction every second frame: the temporal smoothing fills the frames
# between, and the lock then costs half as much.
CORRECT_EVERY = 2


def _spline_kernel(squared_distance: torch.Tensor) -> torch.Tensor:
    """The thin-plate kernel r^2 log r, written with r^2."""
    return 0.5 * squared_distance * torch.log(squared_distance.clamp_min(1e-12))


def reach_weights(points: torch.Tensor, size: int = FIELD_SIZE, reach: float = CORRECTION_REACH) -> torch.Tensor:
    """(size, size, 1) weights over a crop's grid positions: 1 at the (N, 2) ``points``
    (grid coordinates), falling as exp(-(d / reach)^2) with the distance d to the nearest."""
    where = identity_grid(size, size)[0].reshape(-1, 2)
    nearest = torch.cdist(where, points).min(dim=1).values
    return torch.exp(-(nearest / reach) ** 2).reshape(size, size, 1)


def thin_plate_field(points: torch.Tensor, values: torch.Tensor, size: int = FIELD_SIZE,
                     regularisation: float = SPLINE_REGULARISATION) -> torch.Tensor:
    """The (size, size, 2) field over a crop's grid positions of the thin-plate spline
    that takes (N, 2) ``points`` (grid coordinates) to (N, 2) ``values``."""
    count = points.shape[0]
    kernel = _spline_kernel(torch.cdist(points, points) ** 2) + regularisation * torch.eye(count)
    affine = torch.cat([torch.ones(count, 1), points], dim=1)
    system = torch.zeros(count + 3, count + 3)
    system[:count, :count] = kernel
    system[:count, count:] = affine
    system[count:, :count] = affine.T
    right = torch.cat([values, torch.zeros(3, 2)])
    weights = torch.linalg.solve(system.double(), right.double()).float()
    where = identity_grid(size, size)[0].reshape(-1, 2)
    basis = torch.cat([_spline_kernel(torch.cdist(where, points) ** 2), torch.ones(len(where), 1), where], dim=1)
    return (basis @ weights).reshape(size, size, 2)


class LandmarkLock:
    """Corrections of driving grids by landmarks, for one embedded face.

    ``embedded_landmarks`` (68, 2) is where the face's landmarks lie on the embedded face
    (grid coordinates): the positions each frame's landmarks must be carried to.
    ``regularisation``, ``reach`` and ``trust_iod`` as ``SPLINE_REGULARISATION``,
    ``CORRECTION_REACH`` (``math.inf``: no fading) and ``TRUST_IOD``.
    """

    def __init__(self, embedded_landmarks: torch.Tensor, *, regularisation: float = SPLINE_REGULARISATION,
                 reach: float = CORRECTION_REACH, trust_iod: float = TRUST_IOD) -> None:
        self.targets = embedded_landmarks.float()
        self.regularisation = regularisation
        self.reach = reach
        self.bound = trust_iod * float(inter_ocular(self.targets))

    def correction(self, grid: torch.Tensor | None, landmarks: np.ndarray | None) -> tuple[torch.Tensor | None, float]:
        """The (FIELD_SIZE, FIELD_SIZE, 2) correction of a frame's (H, W, 2) driving grid
        whose face has ``landmarks`` (68, 2) in the crop's grid coordinates, and how far it
        is trusted (0 to 1); (None, 0) where there is no grid (face lost), no landmarks or
        no trust."""
        if grid is None or landmarks is None:
            return None, 0.0
        points = torch.from_numpy(np.asarray(landmarks, dtype=np.float32))
        residuals = self.targets - sample_at(grid.unsqueeze(0).float(), points.unsqueeze(0))[0]
        trust = min(1.0, 2.0 - float(residuals.norm(dim=1).median()) / self.bound)
        if trust <= 0:
            return None, 0.0
        field = thin_plate_field(points, residuals, regularisation=self.regularisation)
        return field * reach_weights(points, reach=self.reach), trust

    @staticmethod
    def apply(grid: torch.Tensor, correction: torch.Tensor) -> torch.Tensor:
        """``grid`` (H, W, 2) plus the correction field upsampled to its size."""
        height, width = grid.shape[:2]
        field = F.interpolate(correction.permute(2, 0, 1).unsqueeze(0), size=(height, width), mode="bilinear",
                              align_corners=False)
        return grid + field[0].permute(1, 2, 0)


def smoothed(corrections: list[tuple[torch.Tensor | None, float] | None], centre: int,
             sigma: float = TEMPORAL_SIGMA) -> torch.Tensor | None:
    """The Gaussian- and trust-weighted mean of the (correction, trust) pairs around
    ``centre``; None entries were not corrected (frames between corrected ones) and do not
    count. Where the frames that were corrected have little trust, the mean is scaled
    towards zero (the pure warp) in proportion, so the lock fades rather than jumps."""
    total, weight, window = None, 0.0, 0.0
    for offset, entry in enumerate(corrections):
        if entry is None:
            continue
        w = float(np.exp(-0.5 * ((offset - centre) / sigma) ** 2))
        window += w
        correction, trust = entry
        if correction is not None:
            total = correction * (w * trust) if total is None else total + correction * (w * trust)
            weight += w * trust
    if total is None:
        return None
    return total / weight * min(1.0, 2 * weight / window)


def reach_frames(sigma: float = TEMPORAL_SIGMA) -> int:
    """How many frames on each side of a frame its locked grid depends on."""
    return max(1, int(np.ceil(3 * sigma)))


# A frame's (correction, trust) by its index (``LandmarkLock.correction``), made by one run of
# ``locked_grids`` for another to use.
Corrections = dict[int, tuple[torch.Tensor | None, float]]


def locked_grids(items: Iterable[tuple[int, np.ndarray, torch.Tensor | None]], lock: LandmarkLock,
                 landmarks_of: Callable[[int, np.ndarray], np.ndarray | None], sigma: float = TEMPORAL_SIGMA,
                 every: int = CORRECT_EVERY, cuts: Sequence[int] = (), *, made: Corrections | None = None,
                 known: Corrections | None = None) -> Iterator[tuple[int, np.ndarray, torch.Tensor | None]]:
    """(index, frame, grid) items with each grid corrected by the lock, smoothed over time.

    ``landmarks_of(index, frame)`` gives the frame's landmarks in its crop's grid
    coordinates (or None); it is asked for every ``every``-th frame, and the smoothing
    carries the corrections to the frames between, within each shot (``cuts``: the frames
    that begin one). Items come out in order, ``3 * sigma`` frames behind the input.
    Each correction made is put in ``made``; one in ``known`` for its frame is taken out and
    used instead of correcting the frame again (its grid must be the one it was made for).
    """
    radius = reach_frames(sigma)
    entries: deque = deque()  # (index, frame, grid, correction, shot), up to radius behind the next out
    next_out = 0

    def emit(position: int) -> tuple[int, np.ndarray, torch.Tensor | None]:
        index, frame, grid, _, shot = entries[position]
        first = max(0, position - radius)
        window = [entries[i][3] if entries[i][4] == shot else None for i in range(first, min(len(entries), position + radius + 1))]
        if grid is not None and (correction := smoothed(window, position - first, sigma)) is not None:
            grid = lock.apply(grid, correction)
        return index, frame, grid

    for index, frame, grid in items:
        correction = None
        if index % every == 0:
            if known is not None and index in known:
                correction = known.pop(index)
            else:
                correction = lock.correction(grid, landmarks_of(index, frame) if grid is not None else None)
            if made is not None:
                made[index] = correction
        entries.append((index, frame, grid, correction, int(np.searchsorted(cuts, index, side="right"))))
        while len(entries) - 1 - next_out >= radius:
            yield emit(next_out)
            next_out += 1
            if next_out > radius:
                entries.popleft()
                next_out -= 1
    while next_out < len(entries):
        yield emit(next_out)
        next_out += 1


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
