"""Training losses beside the photometric L1: the identity losses (stage II), and the
warp losses that pin the embedded face down (landmark correspondence, round-trip cycle)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .identity import HIGH_LAYER, LOW_LAYER, IdentityNet, face_region
from .landmarks import sample_at
from .networks import identity_grid, sample

# Robust (smooth L1) transition points, in grid units ([-1, 1] across the crop; the eye
# distance is about 0.55): quadratic below, so dlib's pixel jitter is not chased, linear
# above, so a wrong landmark (occlusion, profile) cannot dominate. The round trip has no
# label noise and a target of 1.5 % of the eye distance (0.008): it stays linear, with
# a full gradient, down to well below that.
LANDMARK_BETA = 0.02
CYCLE_BETA = 0.002
# The round trip is checked over the central half of the crop, which holds the face
# (the crop is the face box enlarged 1.6x); outside it lie hair and background.
CYCLE_REGION = 0.5


def _robust_mean(difference: torch.Tensor, valid: torch.Tensor, beta: float) -> torch.Tensor:
    """Smooth-L1 mean of ``difference`` (..., 2) over the entries where ``valid`` (...)."""
    if not valid.any():
        return difference.sum() * 0  # keeps the graph: every rank must backpropagate
    return F.smooth_l1_loss(difference[valid], torch.zeros_like(difference[valid]), beta=beta)


def correspondence_losses(embedding_grids: torch.Tensor, driving_grid: torch.Tensor, source_landmarks: torch.Tensor,
                          driving_landmarks: torch.Tensor, template: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(driving term, embedding term) that make landmarks correspond through the template.

    - driving: the driving grid (B, H, W, 2) read at the driving frame's (B, 68, 2)
      landmarks must give the template's (68, 2) embedded positions;
    - embedding: each source's embedding grid (B, K, H, W, 2) read at the template must
      give that source's (B, K, 68, 2) landmarks.

    Landmarks are grid coordinates; NaN marks a frame without them (skipped).
    """
    template = template.to(driving_grid.dtype)
    driving_valid = ~driving_landmarks.isnan().any(-1)
    carried = sample_at(driving_grid.float(), driving_landmarks.nan_to_num(0.0))
    driving_term = _robust_mean(carried - template, driving_valid, LANDMARK_BETA)
    grids = embedding_grids.flatten(0, 1).float()
    targets = source_landmarks.flatten(0, 1)
    pulled = sample_at(grids, template.expand(grids.shape[0], -1, -1))
    embedding_term = _robust_mean(pulled - targets.nan_to_num(0.0), ~targets.isnan().any(-1), LANDMARK_BETA)
    return driving_term, embedding_term


def round_trip(embedding_grid: torch.Tensor, driving_grid: torch.Tensor) -> torch.Tensor:
    """E(D(p)) - p for every crop position p of one frame's own grids (B, H, W, 2): the
    driving grid takes p into the embedded face, the embedding grid brings it back."""
    back = sample(embedding_grid.permute(0, 3, 1, 2).float(), driving_grid.float(), padding="border")
    height, width = driving_grid.shape[1:3]
    return back.permute(0, 2, 3, 1) - identity_grid(height, width, device=back.device, dtype=back.dtype)


def central_region(height: int, width: int, *, device: torch.device | None = None, half_side: float = CYCLE_REGION) -> torch.Tensor:
    """(H, W) mask of the crop positions within ``half_side`` of the centre in grid units."""
    grid = identity_grid(height, width, device=device)[0]
    return (grid.abs() <= half_side).all(-1)


def _over_face(error: torch.Tensor) -> torch.Tensor:
    """The robust mean of a (B, H, W, 2) error field over the central region of the crop."""
    region = central_region(*error.shape[1:3], device=error.device).expand(error.shape[:3])
    return _robust_mean(error, region, CYCLE_BETA)


def cycle_loss(embedding_grid: torch.Tensor, driving_grid: torch.Tensor) -> torch.Tensor:
    """Robust mean round-trip error over the central region of the crop, for grids
    (B, H, W, 2) that a frame gave as source and as driving frame."""
    return _over_face(round_trip(embedding_grid, driving_grid))


def anchor_loss(driving_grid: torch.Tensor, anchor_grid: torch.Tensor) -> torch.Tensor:
    """How far the driving grids (B, H, W, 2) lie from another model's grids of the same
    clean frames over the face (the crop's central half), robust as the round trip is."""
    return _over_face(driving_grid.float() - anchor_grid.float())


class IdentityLosses(nn.Module):
    """The paper's two stage-II content losses, on a frozen identity network.

    - content: L1 between identity features (a low and a high layer) of the frame
      generated for a same-identity driving frame and that driving frame;
    - identity: L1 between high-layer features of the frame generated for another
      identity's driving frame and the source frame (the source identity must survive
      being driven by someone else).
    """

    def __init__(self, identity_net: IdentityNet) -> None:
        super().__init__()
        self.net = identity_net.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> IdentityLosses:
        super().train(mode)
        self.net.eval()  # the identity network stays frozen in eval mode
        return self

    def forward(self, generated_same: torch.Tensor, driving_same: torch.Tensor, generated_other: torch.Tensor,
                source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(content loss, identity loss)."""
        same = self.net.features(face_region(generated_same.float()))
        other_high = self.net.features(face_region(generated_other.float()))[HIGH_LAYER]
        with torch.no_grad():
            target = self.net.features(face_region(driving_same.float()))
            source_high = self.net.features(face_region(source.float()))[HIGH_LAYER]
        content = (F.l1_loss(same[LOW_LAYER], target[LOW_LAYER]) + F.l1_loss(same[HIGH_LAYER], target[HIGH_LAYER])) / 2
        return content, F.l1_loss(other_high, source_high)
