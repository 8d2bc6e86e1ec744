"""Training losses: the photometric L1 (stage I) and the identity losses (stage II)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .identity import HIGH_LAYER, LOW_LAYER, IdentityNet, face_region


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
