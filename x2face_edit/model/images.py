"""Pictures in and out of the network: HxWx3 uint8 arrays and [0, 1] float tensors."""

from __future__ import annotations

import numpy as np
import torch


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """(N, 3, H, W) float in [0, 1] from HxWx3 uint8 arrays."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255)


def to_image(tensor: torch.Tensor) -> np.ndarray:
    """HxWxC uint8 from a (C, H, W) tensor in [0, 1]."""
    return (tensor.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
