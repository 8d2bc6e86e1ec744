"""What lies in front of the face: a visibility matte per frame, 1 where the face itself
is seen and 0 where something covers it (a hand, a phone, a cup, hair).

The clean embedded face (its sources are the frames where the face shows most clearly),
carried into a frame by the same locked driving grid the paint uses, predicts how the
face looks there. Where the frame disagrees with that prediction by more than lighting
explains, something is in front of the face. Lighting is taken out by one gain per colour
channel (the median ratio of frame to prediction over the face: an occluder covering less
than half of it does not move the median), and what is left is judged against the frame's
own spread of disagreement over the face (median + ``SPREAD`` x its median absolute
deviation, within ``FLOOR`` and ``CEILING``): blinks, an opening mouth and the warp's small misplacements
spread the disagreement of every frame alike, an occluder stands out of it. The matte is
computed on the grid's cells (the model's resolution across the crop) and interpolated
at the frame's pixels with the paint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .model.images import to_tensor
from .model.networks import sample

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
# The cells whose statistics describe the face: the central part of the crop (the crop is
# the face box enlarged 1.6x).
FACE_REACH = 0.55


@dataclass(frozen=True)
class Occlusion:
    face: torch.Tensor  # (3, R, R): the clean embedded face at the driving grid's resolution
    central: torch.Tensor  # (R, R) bool: the grid's cells within FACE_REACH of the crop's centre

    @classmethod
    def of(cls, embedded: np.ndarray, resolution: int) -> Occlusion:
        """From the clean embedded face (S, S, 3 uint8), shrunk to the grid's resolution
        (sampling it at a coarse grid's cells would alias its fine detail)."""
        face = to_tensor([embedded])
        v, u = torch.meshgrid(torch.linspace(-1, 1, resolution), torch.linspace(-1, 1, resolution), indexing="ij")
        central = (u.abs() < FACE_REACH) & (v.abs() < FACE_REACH)
        return cls(F.interpolate(face, size=(resolution, resolution), mode="area")[0], central)

    def visibility(self, crop: np.ndarray, grid: torch.Tensor) -> torch.Tensor:
        """(h, w) in [0, 1] on the cells of the (h, w, 2) driving ``grid`` of a frame whose
        face crop at that resolution is ``crop`` (h, w, 3 uint8)."""
        predicted = sample(self.face.unsqueeze(0), grid.unsqueeze(0).float())[0]
        seen = to_tensor([crop])[0]
        height, width = grid.shape[:2]
        on_face = self.central & (grid.abs() <= 1).all(dim=-1)
        if on_face.sum() < 16:
            return torch.ones(height, width)
        ratio = seen[:, on_face] / predicted[:, on_face].clamp(min=0.02)
        gain = ratio.median(dim=1).values.clamp(0.25, 4.0)
        disagreement = _blurred((seen - gain[:, None, None] * predicted).abs().mean(dim=0), BLUR_CELLS)
        disagreement = disagreement + STRUCTURE * _structure_mismatch(seen.mean(dim=0), predicted.mean(dim=0))
        typical = disagreement[on_face]
        median = typical.median()
        if median > CEILING:
            # Most of the face disagrees: the prediction failed (a model that has not learnt
            # this face), not half the face covered; nothing is hidden.
            return torch.ones(height, width)
        spread = (typical - median).abs().median()
        start = torch.clamp(median + SPREAD * spread, min=FLOOR, max=CEILING)
        return 1 - ((disagreement - start) / RAMP).clamp(0, 1)


def _blurred(values: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, round(3 * sigma))
    taps = torch.exp(-torch.arange(-radius, radius + 1, dtype=torch.float32) ** 2 / (2 * sigma ** 2))
    taps = taps / taps.sum()
    padded = F.pad(values[None, None], (radius, radius, radius, radius), mode="replicate")
    rows = F.conv2d(padded, taps.view(1, 1, 1, -1))
    return F.conv2d(rows, taps.view(1, 1, -1, 1))[0, 0]


def _structure_mismatch(seen: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """(h, w) in [0, 1]: how little the frame's local texture follows the prediction's, where
    the prediction has texture (1 - local correlation, times the prediction's texture)."""
    mean_seen, mean_predicted = _blurred(seen, STRUCTURE_CELLS), _blurred(predicted, STRUCTURE_CELLS)
    variance_seen = (_blurred(seen * seen, STRUCTURE_CELLS) - mean_seen ** 2).clamp(min=0)
    variance_predicted = (_blurred(predicted * predicted, STRUCTURE_CELLS) - mean_predicted ** 2).clamp(min=0)
    covariance = _blurred(seen * predicted, STRUCTURE_CELLS) - mean_seen * mean_predicted
    correlation = covariance / (variance_seen * variance_predicted).sqrt().clamp(min=1e-6)
    textured = (variance_predicted.sqrt() / TEXTURE).clamp(0, 1)
    return ((1 - correlation.clamp(-1, 1)) / 2 * textured).clamp(0, 1)
