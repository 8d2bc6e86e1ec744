"""What lies in front of the face: a visibility matte per frame, 1 where the face itself
is seen and 0 where something covers it (a hand, a phone, a cup, hair).

The clean embedded face (its sources are the frames where the face shows most clearly),
carried into a frame by the same locked driving grid the paint uses, predicts how the
face looks there; so does each source frame's own picture on the embedded face, carried
the same way. Where the sources disagree (a head turned one way and the other), their
average shows a ghost of each that no frame shows, so each place of a frame is judged
against whichever prediction it agrees with best: an occluder agrees with none. Where the
frame disagrees by more than lighting and the face's own changes explain, something is in
front of the face. Lighting is taken
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
through the flat cells of its own colour (``_grown_over_flat``). The disagreement is blurred
over a cell, so that single cells at sharp features do not count; at a covered region's
edge, a cell whose own colour agrees with the face (and is not the region's) is shown
again (``_edges_trimmed``): a strand of hair hides itself, not the face beside it. The
matte is computed on the grid's cells (the model's resolution across the crop) and
interpolated at the frame's pixels with the paint. Where a tight shot's crop reaches past
the frame's edge it shows black there, which is no evidence of anything: those cells are
not judged (``faces.cells_in_frame``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

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
# The blur spreads what a thin occluder (a strand of hair) disagrees over the face beside it:
# a covered region's cells within TRIM_CELLS of its edge are shown where their own colour
# agrees with the prediction (unblurred, below TRIM_AGREEMENT of where covering starts), no
# neighbour's disagrees by itself (a cell's margin stays around what the occluder covers),
# and it lies further than TRIM_APART (in some RGB channel, in [0, 1]) from the region's own
# colour: the edge of a hand in the face's own tone looks like the hand and stays covered
# (``_edges_trimmed``).
TRIM_CELLS, TRIM_AGREEMENT, TRIM_APART = 2, 0.5, 0.08
# The face's own moving parts (``_moving_parts``): the outlines of the eyes and lips scaled
# about their centres, (across, down) by EYE_SCALE (the lids sweep the eye's own height) and
# LIP_SCALE. What the frame shows there changes by itself (blinks, teeth, the tongue) more
# than any tolerance allows, so those cells take the visibility of the face around them (a
# Gaussian's sigma of SURROUND_CELLS): a hand over the mouth covers its surroundings too. An
# eye keeps its own evidence where the frame is darker than the prediction: a closing lid is
# lighter than the eye it covers, a strand of hair darker.
EYE_SCALE, LIP_SCALE, SURROUND_CELLS = (1.6, 2.6), (1.3, 1.4), 4.0
# Each frame's matte is the median of its own and its neighbours', this many on each side.
STEADY_FRAMES = 1
# An occluder moves the driving network's warp of the face beside it too (it drives the face
# it sees): a frame with at least REDRIVE_SHARE of the face's central cells covered is driven
# again with the covered part replaced by the prediction (``Occlusion.refilled``), up to
# REDRIVE_MOST: beyond it the prediction would drive more of the warp than the frame does.
# Clean footage's matte mostly covers less than the least (its false alarms on eight training
# clips: 0.04-0.06 where they are few), an occluder's mostly more (benchmarks/README.md).
REDRIVE_SHARE, REDRIVE_MOST = 0.06, 0.4
# A frame with at least PARTLY_COVERED of the face's central cells covered, however much, has
# its landmarks read with the covered part filled by the prediction (dlib's are dragged by an
# occluder: ``Occlusion.filled_in_frame``, ``driving.CHAIN_FRAMES``), and its matte judged
# again on the grid it is finished with, the paint hidden where either judgement finds the
# face covered (the first pass's grid, moved by the occluder, places the prediction the matte
# compares the frame with less well).
PARTLY_COVERED = REDRIVE_SHARE
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
    # (1, 2, R, R) float on the embedded face: 1 on its lips, 1 on its eyes (``_moving_parts``); None: unknown.
    moving: torch.Tensor | None = None
    # (K, 3, R, R): each source frame's own picture on the embedded face, in the order of the
    # views ``learnt`` is given; None: the average alone predicts the face.
    sources: torch.Tensor | None = None

    @classmethod
    def of(cls, embedded: np.ndarray, resolution: int, landmarks: torch.Tensor | None = None,
           sources: Sequence[np.ndarray] = ()) -> Occlusion:
        """From the clean embedded face (S, S, 3 uint8) and its ``sources``' own pictures
        (``Embedding.source_images``), shrunk to the grid's resolution (sampling them at a
        coarse grid's cells would alias their fine detail), and where dlib's 68 ``landmarks``
        lie on it (grid coordinates), which place its moving parts."""
        faces = F.interpolate(to_tensor([embedded, *sources]), size=(resolution, resolution), mode="area")
        v, u = torch.meshgrid(torch.linspace(-1, 1, resolution), torch.linspace(-1, 1, resolution), indexing="ij")
        central = (u.abs() < FACE_REACH) & (v.abs() < FACE_REACH)
        moving = None if landmarks is None else torch.from_numpy(_moving_parts(landmarks.numpy(), resolution))[None]
        return cls(faces[0], central, moving=moving, sources=faces[1:] if len(sources) else None)

    def learnt(self, views: list[tuple[np.ndarray, torch.Tensor, np.ndarray | None]]) -> Occlusion:
        """This occlusion with its tolerance learnt from ``views`` (crop, grid, the crop's cells
        within the frame or None: all, as ``visibility`` takes them) of frames where nothing
        covers the face (the embedded face's sources, in the order of ``sources``):
        per place on the embedded face, the median over the views of the most it disagrees
        there (its sharp features are where the warp's small misplacements disagree most).
        Each view is judged without its own picture, as a frame the sources do not include."""
        per_view = []
        own = self.sources is not None and len(self.sources) == len(views)
        for number, (crop, grid, in_frame) in enumerate(views):
            disagreement = torch.from_numpy(self._disagreement(crop, grid, self._carried(grid)[0], in_frame,
                                                               without=number if own else None)[0])
            # A render's grid misplaces the face by up to a cell against this one (its lock is
            # smoothed over time): what a cell's neighbours disagree, it may too.
            disagreement = F.max_pool2d(disagreement[None, None], 3, 1, 1)[0, 0].reshape(-1)
            ids = torch.from_numpy(_tolerance_bins(grid.numpy()).reshape(-1))
            if in_frame is not None:  # beyond the frame a source shows nothing of the face
                kept = torch.from_numpy(in_frame.reshape(-1))
                ids, disagreement = ids[kept], disagreement[kept]
            unseen = torch.full((TOLERANCE_BINS ** 2,), float("nan"))
            per_view.append(unseen.scatter_reduce(0, ids, disagreement, "amax", include_self=False))
        if not per_view:
            return self
        tolerance = torch.stack(per_view).nanmedian(dim=0).values.view(TOLERANCE_BINS, TOLERANCE_BINS)
        return Occlusion(self.face, self.central, tolerance, self.moving, self.sources)

    @cached_property
    def _planes(self) -> torch.Tensor:
        """(1, 3 P + M, R, R): the average, then each source's own picture, then the moving
        parts (``moving``, where known): stacked once, sampled by a frame's grid at once."""
        predictions = [self.face[None]] if self.sources is None else [self.face[None], self.sources]
        moving = [] if self.moving is None else [self.moving[0]]
        return torch.cat([torch.cat(predictions).flatten(0, 1), *moving])[None]

    def _carried(self, grid: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """The (P, 3, h, w) predictions and the (2, h, w) moving parts (None: unknown)
        carried by a frame's (h, w, 2) driving ``grid``."""
        planes = sample(self._planes, grid[None].float())[0].numpy()
        count = len(planes) - (0 if self.moving is None else 2)
        return planes[:count].reshape(-1, 3, *planes.shape[1:]), None if self.moving is None else planes[count:]

    def _disagreement(self, crop: np.ndarray, grid: torch.Tensor, predicted: np.ndarray, in_frame: np.ndarray | None = None,
                      without: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(h, w) disagreement of the frame's face ``crop`` (h, w, 3 uint8) with the prediction
        it agrees with best, place by place (of the (P, 3, h, w) ``predicted`` ones, carried by
        its (h, w, 2) driving ``grid``; leaving out source number ``without``; the crop's cells
        ``in_frame`` alone, where given); the (h, w) bool cells on the face (and in the frame);
        those where the frame is darker than the average's prediction; and each cell's own
        colour disagreement (unblurred, with the prediction it agrees with best)."""
        # NumPy and OpenCV on one frame's cells: PyTorch's small operators, run beside the
        # network's thread, would each start a team of threads competing with it for the cores.
        on_face = self._on_face(grid) if in_frame is None else self._on_face(grid) & in_frame
        if on_face.sum() < 16:
            nothing = np.zeros(on_face.shape, np.float32)
            return nothing, on_face, np.zeros(on_face.shape, bool), nothing
        if without is not None:
            predicted = np.concatenate([predicted[: without + 1], predicted[without + 2 :]])
        seen = np.ascontiguousarray(crop.transpose(2, 0, 1), dtype=np.float32) / 255
        # One gain per prediction and channel: the median ratio over every other cell of the face
        # in each direction (as robust as all of them, at a quarter of the work).
        sparse = on_face[::2, ::2]
        gains = _gains(seen[:, ::2, ::2][:, sparse], predicted[:, :, ::2, ::2][:, :, sparse])
        if in_frame is not None and not in_frame.all():
            # Beyond the frame's edge the crop is black, not something in front of the face:
            # shown there as the average predicts it, in the frame's light, it disagrees with nothing.
            seen = np.where(in_frame, seen, gains[0][:, None, None] * predicted[0])
        differences = seen - gains[..., None, None] * predicted
        colour = np.abs(differences).sum(axis=1) / 3
        blurred = _blurred_planes(np.concatenate([differences[:1].sum(axis=1) / 3, colour]), BLUR_CELLS)
        # The texture's local statistics vary slowly (over STRUCTURE_CELLS): compared on cells
        # twice as large, then interpolated back.
        halved = _halved(np.concatenate([seen.sum(axis=0, keepdims=True), predicted.sum(axis=1)]) / 3)
        structure = _doubled(_structure_mismatch(halved[0], halved[1:], STRUCTURE_CELLS / 2), on_face.shape)
        disagreement = np.min(blurred[1:] + STRUCTURE * structure, axis=0)
        return disagreement, on_face, blurred[0] < 0, colour.min(axis=0)

    def visibility(self, crop: np.ndarray, grid: torch.Tensor, in_frame: np.ndarray | None = None) -> torch.Tensor:
        """(h, w) in [0, 1] on the cells of the (h, w, 2) driving ``grid`` of a frame whose
        face crop at that resolution is ``crop`` (h, w, 3 uint8); where only the (h, w) bool
        cells ``in_frame`` lie within the frame (``faces.cells_in_frame``; None: all), each
        beyond it takes the visibility of the nearest within."""
        predicted, moving_parts = self._carried(grid)
        disagreement, on_face, darker, own = self._disagreement(crop, grid, predicted, in_frame)
        if on_face.sum() < 16:
            return torch.ones(grid.shape[:2])
        typical = disagreement[on_face]
        median = _median(typical)
        spread = _median(np.abs(typical - median))
        start = np.full(disagreement.shape, np.clip(median + SPREAD * spread, FLOOR, CEILING), np.float32)
        failed = median > CEILING
        if self.tolerance is not None:
            expected = self.tolerance.numpy().reshape(-1)[_tolerance_bins(grid.numpy())]
            known = on_face & ~np.isnan(expected)
            if known.any():
                # A frame the warp follows worse than the sources disagrees more everywhere: the
                # excess of most of its face (an occluder covers less) raises the threshold.
                excess = max(0.0, _quantile(disagreement[known] - expected[known], EXCESS_QUANTILE))
                local = np.minimum(TOLERANCE_SCALE * expected + TOLERANCE_MARGIN + excess, CEILING)
                start = np.where(np.isnan(expected), start, local)
                failed = excess > CEILING or _median(expected[known]) > CEILING
        if failed:
            # Most of the face disagrees (more than the sources did, or the sources themselves):
            # the prediction failed (a model that has not learnt this face), not the face
            # covered; nothing is hidden.
            return torch.ones(grid.shape[:2])
        judged = 1 - np.clip((disagreement - start) / RAMP, 0, 1)
        moving = None if moving_parts is None else (moving_parts > 0.5).any(axis=0)
        # The frame's colours, and a little blurred, as the trimming and the growing compare them.
        seen = crop.astype(np.float32) / 255
        colour = _blurred_image(seen, 1.0)
        visibility = _edges_trimmed(judged, own, start, colour, moving)
        if moving_parts is not None:
            eyes = moving_parts[1] > 0.5
            # From the surroundings as judged before the trimming: a hand or a strand that
            # covers them covers the eyes and lips as far as it did.
            surrounded = _from_surroundings(judged, moving & on_face, on_face & ~moving)
            visibility = np.where(moving & on_face, np.where(eyes & darker, np.minimum(judged, surrounded), surrounded), visibility)
        grown = _grown_over_flat(seen, colour, (visibility < GROW_SEED) & on_face)
        visibility = np.minimum(visibility, 1 - grown).astype(np.float32)
        return torch.from_numpy(visibility if in_frame is None else _edges_repeated(visibility, in_frame))

    def _on_face(self, grid: torch.Tensor) -> np.ndarray:
        """(h, w) bool: the central cells of the (h, w, 2) ``grid`` that sample the embedded face."""
        values = grid.numpy()
        return self.central.numpy() & (np.abs(values[..., 0]) <= 1) & (np.abs(values[..., 1]) <= 1)

    def covered_share(self, grid: torch.Tensor, visibility: torch.Tensor) -> float:
        """The share of the face's central cells that ``visibility`` (on the cells of the
        (h, w, 2) ``grid``) shows covered (0 where no cell samples the face)."""
        on_face = self._on_face(grid)
        return float((visibility.numpy()[on_face] < 0.5).mean()) if on_face.any() else 0.0

    def partly_covered(self, grid: torch.Tensor, visibility: torch.Tensor) -> bool:
        """Whether ``visibility`` (on the cells of the (h, w, 2) ``grid``) covers at least
        ``PARTLY_COVERED`` of the face's central cells."""
        return self.covered_share(grid, visibility) >= PARTLY_COVERED

    def worth_redriving(self, grid: torch.Tensor, visibility: torch.Tensor) -> bool:
        """Whether ``visibility`` (on the cells of the (h, w, 2) ``grid``) covers from
        ``REDRIVE_SHARE`` to ``REDRIVE_MOST`` of the face's central cells."""
        return REDRIVE_SHARE <= self.covered_share(grid, visibility) < REDRIVE_MOST

    def refilled(self, crop: np.ndarray, grid: torch.Tensor, visibility: torch.Tensor) -> np.ndarray:
        """The frame's face ``crop`` (h, w, 3 uint8) with what covers the face replaced by the
        clean embedded face carried by its (h, w, 2) driving ``grid``, in the frame's light
        (one gain per channel, from the cells clearly seen), blended by ``visibility``."""
        seen = np.ascontiguousarray(crop.transpose(2, 0, 1), dtype=np.float32) / 255
        shown = visibility.numpy()
        filled = seen * shown + self._predicted_in_light(seen, grid, shown) * (1 - shown)
        return np.round(filled.transpose(1, 2, 0) * 255).astype(np.uint8)

    def filled_in_frame(self, pixels: np.ndarray, offset: np.ndarray, crop_box: np.ndarray, crop: np.ndarray,
                        grid: torch.Tensor, visibility: torch.Tensor) -> np.ndarray:
        """``refilled`` at the frame's own resolution: ``pixels`` (H, W, 3 uint8, the frame's
        from ``offset`` (x, y)) with what ``visibility`` (on the cells of ``crop_box``'s face
        ``crop`` at the (h, w, 2) ``grid``'s resolution) covers replaced by the face as
        ``grid`` carries it; every pixel it does not cover is the frame's own."""
        shown = visibility.numpy()
        filled = pixels.copy()
        if (hidden_cells := np.argwhere(shown < 1)).size == 0:
            return filled
        seen = np.ascontiguousarray(crop.transpose(2, 0, 1), dtype=np.float32) / 255
        planes = np.concatenate([self._predicted_in_light(seen, grid, shown), (1 - shown)[None]]).transpose(1, 2, 0)
        height, width = pixels.shape[:2]
        cells_high, cells_wide = shown.shape
        # Each pixel's centre in the crop's cells (``faces.to_crop_grid``, then as ``grid_sample``
        # reads a grid): x = scale x (offset + column + 0.5 - the box's left) - 0.5, rows alike.
        scale = np.array([cells_wide / (crop_box[2] - crop_box[0]), cells_high / (crop_box[3] - crop_box[1])])
        start = (offset + 0.5 - crop_box[:2]) * scale - 0.5
        xs, ys = start[0] + scale[0] * np.arange(width), start[1] + scale[1] * np.arange(height)
        # Only pixels within a cell of a covered one can be changed (the interpolation's reach).
        (first_row, first_column), (last_row, last_column) = hidden_cells.min(axis=0) - 1, hidden_cells.max(axis=0) + 1
        rows = np.flatnonzero((ys > first_row) & (ys < last_row))
        columns = np.flatnonzero((xs > first_column) & (xs < last_column))
        if rows.size == 0 or columns.size == 0:
            return filled
        block = slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1)
        to_cells = np.array([[scale[0], 0, xs[columns[0]]], [0, scale[1], ys[rows[0]]]])
        carried = cv2.warpAffine(np.ascontiguousarray(planes, dtype=np.float32), to_cells, (columns.size, rows.size),
                                 flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                                 borderValue=0)  # beyond the crop: nothing hidden
        region = pixels[block].astype(np.float32)
        region += (carried[..., :3] * 255 - region) * carried[..., 3:]
        filled[block] = np.rint(region).astype(np.uint8)
        return filled

    def _predicted_in_light(self, seen: np.ndarray, grid: torch.Tensor, shown: np.ndarray) -> np.ndarray:
        """(3, h, w) the clean embedded face carried by ``grid``, in the light of the frame's
        ``seen`` cells (one gain per channel, from the cells ``shown`` clearly)."""
        predicted = sample(self.face[None], grid[None].float())[0].numpy()
        clear = self._on_face(grid) & (shown > 0.9)
        gains = _gains(seen[:, clear], predicted[:, clear]) if clear.sum() >= 16 else np.ones(3, np.float32)
        return np.clip(gains[:, None, None] * predicted, 0, 1)


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
            return torch.from_numpy(_median_of_planes([value.numpy() for value in found]))

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


def _median_of_planes(planes: list[np.ndarray]) -> np.ndarray:
    """The median, cell by cell, of an odd number of planes of one shape: of three (the
    steadying's window) by their minima and maxima, many times faster than ``np.median``."""
    if len(planes) == 3:
        first, second, third = planes
        return np.maximum(np.minimum(first, second), np.minimum(np.maximum(first, second), third))
    return np.median(np.stack(planes), axis=0)


def _gains(seen: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """The frame's light against a prediction's: per channel, the median ratio of the (3, N)
    ``seen`` cells to the (..., 3, N) ``predicted`` ones, within 0.25 and 4."""
    return np.clip(_median(seen / np.maximum(predicted, 0.02), axis=-1), 0.25, 4.0)


def _tolerance_bins(grid: np.ndarray) -> np.ndarray:
    """(h, w) int: the tolerance bin each cell of an (h, w, 2) grid samples, row by row."""
    bins = np.clip(np.floor((grid.astype(np.float32) + 1) / 2 * TOLERANCE_BINS), 0, TOLERANCE_BINS - 1).astype(np.int64)
    return bins[..., 1] * TOLERANCE_BINS + bins[..., 0]


def _grown_over_flat(seen: np.ndarray, colour: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """(h, w) bool: each region of the ``covered`` cells (h, w bool) of the frame's face as
    ``seen`` (h, w, 3 colours in [0, 1]; ``colour``, the same blurred by a cell)
    large enough to be an occluder's, with the cells connected to it through the frame's flat
    cells of the region's own colour: what lies within the edges that were found (a palm's
    inside, where it hides a cheek as flat)."""
    _, regions, stats, _ = cv2.connectedComponentsWithStats(covered.astype(np.uint8), connectivity=8)
    grown = np.zeros(covered.shape, bool)
    large = [region for region in range(1, len(stats)) if stats[region, cv2.CC_STAT_AREA] >= GROW_CELLS]
    if not large:
        return grown
    brightness = _channel_mean(seen)
    mean, square = (_blurred_image(values, FLAT_CELLS) for values in (brightness, brightness * brightness))
    flat = square - mean * mean < FLAT * FLAT
    colour = np.ascontiguousarray(colour.transpose(2, 0, 1))
    for region in large:
        inside = regions == region
        tone = np.median(colour[:, inside], axis=1)
        similar = flat & (np.abs(colour - tone[:, None, None]).max(axis=0) < GROW_TONE)
        count, pieces = cv2.connectedComponents((similar | inside).astype(np.uint8), connectivity=4)
        reached = np.zeros(count, bool)
        reached[pieces[inside]] = True
        grown |= reached[pieces]
    return grown


def _edges_trimmed(visibility: np.ndarray, own: np.ndarray, start: np.ndarray, colour: np.ndarray,
                   moving: np.ndarray | None = None) -> np.ndarray:
    """``visibility`` (h, w) with the cells of each covered region within ``TRIM_CELLS`` of its
    edge shown where their ``own`` (h, w) colour disagreement is under ``TRIM_AGREEMENT`` of
    where covering ``start``s and no neighbour's is over it, and their ``colour`` in the frame
    (h, w, 3, blurred by a cell) is not the region's own (its other cells' median,
    ``TRIM_APART``): what the blur carried from the occluder onto the face beside it. Not on
    the face's ``moving`` parts (h, w bool), where a dark strand agrees with a dark eye."""
    covered = visibility < 0.5
    if not covered.any():
        return visibility
    disagreeing = cv2.dilate((own >= start).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    agrees = (own < TRIM_AGREEMENT * start) & ~disagreeing
    edge = (cv2.distanceTransform(covered.astype(np.uint8), cv2.DIST_L2, 3) <= TRIM_CELLS) & covered & agrees
    if moving is not None:
        edge &= ~moving
    if not edge.any():
        return visibility
    regions = cv2.connectedComponents(covered.astype(np.uint8), connectivity=8)[1].reshape(-1)
    colour = colour.reshape(-1, 3)
    edge_cells = np.flatnonzero(edge)
    rest_cells = np.flatnonzero(covered.reshape(-1) & ~edge.reshape(-1))
    edge_regions, rest_regions = regions[edge_cells], regions[rest_cells]
    count = int(regions.max()) + 1
    bare = np.bincount(rest_regions, minlength=count) == 0  # a region all edge (a thin one): its tone from its edge
    members = np.concatenate([rest_cells, edge_cells[bare[edge_regions]]])
    tones = _medians_by_group(colour[members], regions[members], count)
    unlike = np.abs(colour[edge_cells] - tones[edge_regions]).max(axis=1) >= TRIM_APART
    trimmed = visibility.copy()
    trimmed.reshape(-1)[edge_cells[unlike]] = 1
    return trimmed


def _medians_by_group(values: np.ndarray, groups: np.ndarray, count: int) -> np.ndarray:
    """(count, C): the median (as ``np.median``: of an even number, the mean of the two middle
    values) of the (N, C) ``values`` (colours, from 0 to 1) in each of ``count`` ``groups`` (N
    ints); 0 where empty."""
    sizes = np.bincount(groups, minlength=count)
    starts = np.cumsum(sizes) - sizes
    filled = sizes > 0
    lower, upper = (starts + (sizes - 1) // 2)[filled], (starts + sizes // 2)[filled]
    medians = np.zeros((count, values.shape[1]), values.dtype)
    # One sort of every channel at once, by group and then value: each value halved (0 to 0.5)
    # and added to its group's number, exactly (float64 holds both), so groups stay apart.
    keys = np.sort(groups[:, None] + values.astype(np.float64) / 2, axis=0)
    ordered = ((keys - np.sort(groups)[:, None]) * 2).astype(values.dtype)
    medians[filled] = (ordered[lower] + ordered[upper]) / 2
    return medians


def _edges_repeated(values: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """(h, w) ``values`` with the cells outside the rectangle of ``kept`` (h, w bool) cells
    given those of the nearest cell within it (``values`` itself where all are kept)."""
    if kept.all():
        return values
    rows, columns = np.flatnonzero(kept.any(axis=1)), np.flatnonzero(kept.any(axis=0))
    if rows.size == 0:
        return values
    height, width = values.shape
    inner = values[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
    return np.pad(inner, ((rows[0], height - rows[-1] - 1), (columns[0], width - columns[-1] - 1)), mode="edge")


def _blurred_image(values: np.ndarray, sigma: float) -> np.ndarray:
    """A float32 (h, w) or (h, w, C) array blurred (each channel alone) by a Gaussian of
    ``sigma`` cells, three sigmas each side, the edges repeated."""
    taps = 2 * max(1, round(3 * sigma)) + 1
    return cv2.GaussianBlur(values, (taps, taps), sigma, borderType=cv2.BORDER_REPLICATE)


def _blurred_planes(planes: np.ndarray, sigma: float) -> np.ndarray:
    """(C, h, w) float32 planes, each blurred as ``_blurred_image`` blurs."""
    return _interleaved(planes, lambda image: _blurred_image(image, sigma))


def _interleaved(planes: np.ndarray, operation: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``operation`` (an OpenCV one, fastest on an interleaved (h, w, C) image) applied to (C,
    h, w) planes, its result as contiguous planes again."""
    result = operation(np.ascontiguousarray(planes.transpose(1, 2, 0)))
    return np.ascontiguousarray(result.reshape(*result.shape[:2], len(planes)).transpose(2, 0, 1))


def _moving_parts(landmarks: np.ndarray, resolution: int) -> np.ndarray:
    """(2, R, R) float32 on the embedded face: 1 over its lips, 1 over its eyes, as dlib's 68
    ``landmarks`` (grid coordinates) outline them, widened (``EYE_SCALE``, ``LIP_SCALE``)."""
    masks = np.zeros((2, resolution, resolution), np.uint8)
    points = (landmarks + 1) / 2 * resolution - 0.5
    for part, outline, scale in ((0, points[48:60], LIP_SCALE), (1, points[36:42], EYE_SCALE), (1, points[42:48], EYE_SCALE)):
        centre = outline.mean(axis=0)
        widened = centre + (outline - centre) * np.array(scale)
        cv2.fillPoly(masks[part], [np.round(widened).astype(np.int32)], 1)
    return masks.astype(np.float32)


def _from_surroundings(visibility: np.ndarray, inside: np.ndarray, around: np.ndarray) -> np.ndarray:
    """``visibility`` with its ``inside`` cells given the visibility of the ``around`` cells
    near them (their Gaussian-weighted mean, ``SURROUND_CELLS``; 1 where none is near)."""
    weights = around.astype(np.float32)
    total = _blurred_image(visibility * weights, SURROUND_CELLS)
    weight = _blurred_image(weights, SURROUND_CELLS)
    near = np.divide(total, weight, out=np.ones_like(total), where=weight > 1e-3)
    return np.where(inside, near, visibility).astype(np.float32)


def _channel_mean(image: np.ndarray) -> np.ndarray:
    """The (h, w) mean of an (h, w, 3) float32 image's channels (a product: NumPy's mean over
    the last axis is several times slower)."""
    return image @ np.full(3, 1 / 3, np.float32)


def _quantile(values: np.ndarray, share: float) -> float:
    """The ``share`` quantile of a 1-D array, interpolated between its two nearest values (as
    ``np.quantile``), from a partial sort."""
    position = share * (len(values) - 1)
    below, above = int(np.floor(position)), int(np.ceil(position))
    parted = np.partition(values, (below, above))
    return float(parted[below] + (parted[above] - parted[below]) * (position - below))


def _median(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """The median along ``axis``; the lower middle value of an even count (as PyTorch's)."""
    middle = (values.shape[axis] - 1) // 2
    return np.take(np.partition(values, middle, axis=axis), middle, axis=axis)


def _halved(planes: np.ndarray) -> np.ndarray:
    """(C, h, w) float32 planes on cells twice as large (each the mean of four)."""
    _, height, width = planes.shape
    return _interleaved(planes, lambda image: cv2.resize(image[: height // 2 * 2, : width // 2 * 2], (width // 2, height // 2),
                                                          interpolation=cv2.INTER_AREA))


def _doubled(planes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(C, h, w) float32 planes made by ``_halved``, interpolated back to cells of ``shape``."""
    return _interleaved(planes, lambda image: cv2.resize(image, shape[::-1], interpolation=cv2.INTER_LINEAR))


def _structure_mismatch(seen: np.ndarray, predictions: np.ndarray, sigma: float = STRUCTURE_CELLS) -> np.ndarray:
    """(P, h, w) in [0, 1]: how little the frame's local (h, w) texture follows each of the
    (P, h, w) predictions', where that prediction has texture (1 - local correlation, times
    the prediction's texture)."""
    count = len(predictions)
    local = _blurred_planes(np.concatenate([seen[None], seen[None] ** 2, predictions, predictions ** 2, seen * predictions]), sigma)
    mean_seen, mean_predicted = local[0], local[2 : 2 + count]
    variance_seen = np.maximum(local[1] - mean_seen ** 2, 0)
    variance_predicted = np.maximum(local[2 + count : 2 + 2 * count] - mean_predicted ** 2, 0)
    correlation = (local[2 + 2 * count :] - mean_seen * mean_predicted) / np.maximum(np.sqrt(variance_seen * variance_predicted), 1e-6)
    textured = np.minimum(np.sqrt(variance_predicted) / TEXTURE, 1)
    return np.clip((1 - np.clip(correlation, -1, 1)) / 2 * textured, 0, 1)
