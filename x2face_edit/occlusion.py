"""What lies in front of the face: a visibility matte per frame, 1 where the face itself
is seen and 0 where something covers it (a hand, a phone, a cup, hair).

The clean embedded face (its sources are the frames where the face shows most clearly),
carried into a frame by the same locked driving grid the paint uses, predicts how the
face looks there. Where the frame disagrees with that prediction by more than lighting
and the face's own changes explain, something is in front of the face. Lighting is taken
out by one gain per colour channel (the median ratio of frame to prediction over the
face: an occluder covering less than half of it does not move the median). What the face's
own changes explain is learnt per place on the face from the source frames themselves
(``Occlusion.learnt``): how much each place disagrees where nothing covers it (eyes and
mouth move, a cheek or the chin barely does), so a hand of the face's own tone stands out
over a chin although it would not over an eye. Places the sources did not show are judged
against the frame's own spread of disagreement over the face (median + ``SPREAD`` x its
median absolute deviation, within ``FLOOR`` and ``CEILING``). An occluder's flat inside
(a palm over a smooth cheek of the same tone) agrees with the prediction; its edges,
crossing the features, do not: each region found covered is grown, in the frame itself,
through the flat cells of its own colour (``_grown_over_flat``). The matte is computed on
the grid's cells (the model's resolution across the crop) and interpolated at the frame's
pixels with the paint.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .model.images import to_tensor
from .model.networks import sample
from .video import Frame

# A frame's visibility on its grid's cells (``Occlusion.visibility``), None where it has none.
VisibilityOf = Callable[[int, Frame, torch.Tensor | None], torch.Tensor | None]

# Disagreement (mean absolute RGB difference in [0, 1], after the gain) judged against the
# frame's own: covered from median + SPREAD x MAD (within FLOOR and CEILING), fully from that + RAMP.
FLOOR, CEILING, SPREAD, RAMP = 0.07, 0.12, 3.0, 0.05
# Disagreement is averaged over this many cells (a Gaussian's sigma) before it is judged:
# single cells at sharp features (eye corners, nostrils) where the warp errs by a cell.
BLUR_CELLS = 1.0
# Where the prediction has texture (features, edges) the frame must show the same texture:
# one minus their local correlation over STRUCTURE_CELLS (a Gaussian's sigma), weighted by
# how much texture the prediction has there (against TEXTURE, a local standard deviation),
# adds STRUCTURE x that to the disagreement. It finds what colour cannot: a hand of the
# face's own tone over the lips and nose.
STRUCTURE, STRUCTURE_CELLS, TEXTURE = 0.3, 2.0, 0.04
# What the source frames teach (``Occlusion.learnt``): per place on the embedded face (one of
# TOLERANCE_BINS x TOLERANCE_BINS), the most it disagrees there, the median over the sources.
# A cell is covered from TOLERANCE_SCALE x that + TOLERANCE_MARGIN (at most CEILING), raised
# by the EXCESS_QUANTILE of the frame's disagreement over that expected on its face.
TOLERANCE_BINS, TOLERANCE_SCALE, TOLERANCE_MARGIN, EXCESS_QUANTILE = 64, 1.5, 0.03, 0.25
# Growing what is covered over its own flat inside (``_grown_over_flat``): from regions of at
# least GROW_CELLS cells at most GROW_SEED visible, through the frame's cells within GROW_TONE
# (each RGB channel, in [0, 1]) of the region's median colour whose local standard deviation
# (over FLAT_CELLS, a Gaussian's sigma) is below FLAT.
GROW_SEED, GROW_CELLS, GROW_TONE, FLAT, FLAT_CELLS = 0.3, 10, 0.02, 0.015, 1.5
# Each frame's matte is the median of its own and its neighbours', this many on each side.
STEADY_FRAMES = 1
# The cells whose statistics describe the face: the central part of the crop (the crop is
# the face box enlarged 1.6x).
FACE_REACH = 0.55


@dataclass(frozen=True)
class Occlusion:
    face: torch.Tensor  # (3, R, R): the clean embedded face at the driving grid's resolution
    central: torch.Tensor  # (R, R) bool: the grid's cells within FACE_REACH of the crop's centre
    # (TOLERANCE_BINS, TOLERANCE_BINS) on the embedded face: the disagreement expected where
    # nothing covers it (NaN where unknown); None: judged by each frame's spread alone.
    tolerance: torch.Tensor | None = None

    @classmethod
    def of(cls, embedded: np.ndarray, resolution: int) -> Occlusion:
        """From the clean embedded face (S, S, 3 uint8), shrunk to the grid's resolution
        (sampling it at a coarse grid's cells would alias its fine detail)."""
        face = to_tensor([embedded])
        v, u = torch.meshgrid(torch.linspace(-1, 1, resolution), torch.linspace(-1, 1, resolution), indexing="ij")
        central = (u.abs() < FACE_REACH) & (v.abs() < FACE_REACH)
        return cls(F.interpolate(face, size=(resolution, resolution), mode="area")[0], central)

    def learnt(self, views: list[tuple[np.ndarray, torch.Tensor]]) -> Occlusion:
        """This occlusion with its tolerance learnt from ``views`` (crop, grid) of frames where
        nothing covers the face (the embedded face's sources): per place on the embedded face,
        the median over the views of the most it disagrees there (its sharp features are
        where the warp's small misplacements disagree most)."""
        per_view = []
        for crop, grid in views:
            disagreement, _ = self.disagreement(crop, grid)
            # A render's grid misplaces the face by up to a cell against this one (its lock is
            # smoothed over time): what a cell's neighbours disagree, it may too.
            disagreement = F.max_pool2d(disagreement[None, None], 3, 1, 1)[0, 0]
            ids = _tolerance_bins(grid).reshape(-1)
            unseen = torch.full((TOLERANCE_BINS ** 2,), float("nan"))
            per_view.append(unseen.scatter_reduce(0, ids, disagreement.reshape(-1), "amax", include_self=False))
        if not per_view:
            return self
        tolerance = torch.stack(per_view).nanmedian(dim=0).values.view(TOLERANCE_BINS, TOLERANCE_BINS)
        return Occlusion(self.face, self.central, tolerance)

    def disagreement(self, crop: np.ndarray, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(h, w) disagreement of the frame's face ``crop`` (h, w, 3 uint8) with the prediction
        on the cells of its (h, w, 2) driving ``grid``, and the (h, w) bool cells on the face."""
        disagreement, on_face = self._disagreement(crop, grid)
        return torch.from_numpy(disagreement), torch.from_numpy(on_face)

    def _disagreement(self, crop: np.ndarray, grid: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        # NumPy and OpenCV on one frame's cells: PyTorch's small operators, run beside the
        # network's thread, would each start a team of threads competing with it for the cores.
        on_face = (self.central & (grid.abs() <= 1).all(dim=-1)).numpy()
        if on_face.sum() < 16:
            return np.zeros(on_face.shape, np.float32), on_face
        predicted = sample(self.face.unsqueeze(0), grid.unsqueeze(0).float())[0].permute(1, 2, 0).numpy()
        seen = crop.astype(np.float32) / 255
        ratio = seen[on_face] / np.maximum(predicted[on_face], 0.02)
        gain = np.clip(_median(ratio), 0.25, 4.0)
        disagreement = _blurred_image(_channel_mean(np.abs(seen - gain * predicted)), BLUR_CELLS)
        return disagreement + STRUCTURE * _structure_mismatch(_channel_mean(seen), _channel_mean(predicted)), on_face

    def visibility(self, crop: np.ndarray, grid: torch.Tensor) -> torch.Tensor:
        """(h, w) in [0, 1] on the cells of the (h, w, 2) driving ``grid`` of a frame whose
        face crop at that resolution is ``crop`` (h, w, 3 uint8)."""
        disagreement, on_face = self._disagreement(crop, grid)
        if on_face.sum() < 16:
            return torch.ones(grid.shape[:2])
        typical = disagreement[on_face]
        median = _median(typical)
        spread = _median(np.abs(typical - median))
        start = np.full(disagreement.shape, np.clip(median + SPREAD * spread, FLOOR, CEILING), np.float32)
        failed = median > CEILING
        if self.tolerance is not None:
            expected = self.tolerance.numpy().reshape(-1)[_tolerance_bins(grid).numpy()]
            known = on_face & ~np.isnan(expected)
            if known.any():
                # A frame the warp follows worse than the sources disagrees more everywhere: the
                # excess of most of its face (an occluder covers less) raises the threshold.
                excess = max(0.0, float(np.quantile(disagreement[known] - expected[known], EXCESS_QUANTILE)))
                local = np.minimum(TOLERANCE_SCALE * expected + TOLERANCE_MARGIN + excess, CEILING)
                start = np.where(np.isnan(expected), start, local)
                failed = excess > CEILING or _median(expected[known]) > CEILING
        if failed:
            # Most of the face disagrees (more than the sources did, or the sources themselves):
            # the prediction failed (a model that has not learnt this face), not the face
            # covered; nothing is hidden.
            return torch.ones(grid.shape[:2])
        visibility = 1 - np.clip((disagreement - start) / RAMP, 0, 1)
        grown = _grown_over_flat(crop, (visibility < GROW_SEED) & on_face)
        return torch.from_numpy(np.minimum(visibility, 1 - grown).astype(np.float32))


def steadied(items: Iterable[tuple[int, Frame, torch.Tensor | None]], visibility_of: VisibilityOf,
             cuts: Sequence[int] = ()) -> Iterator[tuple[int, Frame, torch.Tensor | None, Callable[[], torch.Tensor | None]]]:
    """(index, frame, grid) items in order, each with what gives its visibility steadied over
    time: the median of its own (``visibility_of``; None where it has none) and its
    neighbours' (``STEADY_FRAMES`` on each side, on the crop's cells, which follow the face)
    where the neighbours have one within its shot (``cuts``: the frames that begin one).
    Each visibility is computed once, when first asked for (where the frame is finished, off
    the thread that drives the network). Items come out ``STEADY_FRAMES`` behind the input."""
    window: deque = deque()  # (index, frame, grid, shot, visibility once asked for), up to STEADY_FRAMES behind the next out

    def emit(position: int) -> tuple[int, Frame, torch.Tensor | None, Callable[[], torch.Tensor | None]]:
        index, frame, grid, shot, own = window[position]
        near = [entry[4] for entry in window if entry[3] == shot and abs(entry[0] - index) <= STEADY_FRAMES]

        def steady() -> torch.Tensor | None:
            visibility = own()
            found = [value for value in (once() for once in near) if value is not None]
            if visibility is None or len(found) < 2 * STEADY_FRAMES + 1:
                return visibility
            return torch.from_numpy(np.median(np.stack([value.numpy() for value in found]), axis=0))

        return index, frame, grid, steady

    for index, frame, grid in items:
        window.append((index, frame, grid, int(np.searchsorted(cuts, index, side="right")), _once(visibility_of, index, frame, grid)))
        if len(window) > STEADY_FRAMES:
            yield emit(len(window) - 1 - STEADY_FRAMES)
        if len(window) > 2 * STEADY_FRAMES:
            window.popleft()
    for position in range(max(0, len(window) - STEADY_FRAMES), len(window)):
        yield emit(position)


def _once(visibility_of: VisibilityOf, index: int, frame: Frame, grid: torch.Tensor | None) -> Callable[[], torch.Tensor | None]:
    """``visibility_of(index, frame, grid)``, computed the first time it is asked for."""
    known: list = []

    def value() -> torch.Tensor | None:
        if not known:
            known.append(visibility_of(index, frame, grid))
        return known[0]

    return value


def _tolerance_bins(grid: torch.Tensor) -> torch.Tensor:
    """(h, w) long: the tolerance bin each cell of an (h, w, 2) grid samples, row by row."""
    bins = ((grid.float() + 1) / 2 * TOLERANCE_BINS).floor().long().clamp(0, TOLERANCE_BINS - 1)
    return bins[..., 1] * TOLERANCE_BINS + bins[..., 0]


def _grown_over_flat(crop: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """(h, w) bool: each region of the ``covered`` cells (h, w bool) of the frame's face
    ``crop`` (h, w, 3 uint8) large enough to be an occluder's, with the cells connected to it
    through the frame's flat cells of the region's own colour: what lies within the edges
    that were found (a palm's inside, where it hides a cheek as flat)."""
    _, regions, stats, _ = cv2.connectedComponentsWithStats(covered.astype(np.uint8), connectivity=8)
    grown = np.zeros(covered.shape, bool)
    large = [region for region in range(1, len(stats)) if stats[region, cv2.CC_STAT_AREA] >= GROW_CELLS]
    if not large:
        return grown
    seen = crop.astype(np.float32) / 255
    brightness = _channel_mean(seen)
    mean, square = (_blurred_image(values, FLAT_CELLS) for values in (brightness, brightness * brightness))
    flat = square - mean * mean < FLAT * FLAT
    colour = np.ascontiguousarray(_blurred_image(seen, 1.0).transpose(2, 0, 1))
    for region in large:
        inside = regions == region
        tone = np.median(colour[:, inside], axis=1)
        similar = flat & (np.abs(colour - tone[:, None, None]).max(axis=0) < GROW_TONE)
        count, pieces = cv2.connectedComponents((similar | inside).astype(np.uint8), connectivity=4)
        reached = np.zeros(count, bool)
        reached[pieces[inside]] = True
        grown |= reached[pieces]
    return grown


def _blurred_image(values: np.ndarray, sigma: float) -> np.ndarray:
    """A float32 (h, w) or (h, w, C) array blurred (each channel alone) by a Gaussian of
    ``sigma`` cells, three sigmas each side, the edges repeated."""
    taps = 2 * max(1, round(3 * sigma)) + 1
    return cv2.GaussianBlur(values, (taps, taps), sigma, borderType=cv2.BORDER_REPLICATE)


def _channel_mean(image: np.ndarray) -> np.ndarray:
    """The (h, w) mean of an (h, w, 3) float32 image's channels (a product: NumPy's mean over
    the last axis is several times slower)."""
    return image @ np.full(3, 1 / 3, np.float32)


def _median(values: np.ndarray) -> np.ndarray:
    """The median along the first axis; the lower middle value of an even count (as PyTorch's)."""
    middle = (len(values) - 1) // 2
    return np.partition(values, middle, axis=0)[middle]


def _structure_mismatch(seen: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """(h, w) in [0, 1]: how little the frame's local texture follows the prediction's, where
    the prediction has texture (1 - local correlation, times the prediction's texture)."""
    local = _blurred_image(np.dstack([seen, predicted, seen * seen, predicted * predicted, seen * predicted]), STRUCTURE_CELLS)
    mean_seen, mean_predicted = local[..., 0], local[..., 1]
    variance_seen = np.maximum(local[..., 2] - mean_seen ** 2, 0)
    variance_predicted = np.maximum(local[..., 3] - mean_predicted ** 2, 0)
    covariance = local[..., 4] - mean_seen * mean_predicted
    correlation = covariance / np.maximum(np.sqrt(variance_seen * variance_predicted), 1e-6)
    textured = np.clip(np.sqrt(variance_predicted) / TEXTURE, 0, 1)
    return np.clip((1 - np.clip(correlation, -1, 1)) / 2 * textured, 0, 1)
