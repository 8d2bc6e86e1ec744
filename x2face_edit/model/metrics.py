"""The paper's photometric measure: L1 between a generated frame and its driving frame.

Pairs are drawn with a fixed seed, so every model (and the copy-the-source baseline) is
scored on exactly the same (sources, driving) pairs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from .data import TrackPairs
from .networks import X2Face

PAIRS_SEED = 1234


@torch.inference_mode()
def mean_l1(predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], dataset: TrackPairs, *,
            batches: int | None = None, batch_size: int = 16, device: torch.device | str = "cpu") -> float:
    """Mean absolute error of ``predict(sources, driving)`` against ``driving``, per pixel
    and channel, over the first ``batches`` batches (all of the set for None)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(PAIRS_SEED)
        total, count = 0.0, 0
        for i, (sources, driving) in enumerate(DataLoader(dataset, batch_size=batch_size, shuffle=False)):
            if i == batches:
                break
            sources, driving = sources.to(device), driving.to(device)
            total += F.l1_loss(predict(sources, driving).float(), driving, reduction="sum").item()
            count += driving.numel()
    return total / count


def model_l1(model: X2Face, dataset: TrackPairs, **options) -> float:
    """The model's L1 (eval mode; the model's mode is restored afterwards)."""
    was_training = model.training
    model.eval()
    try:
        return mean_l1(model, dataset, **options)
    finally:
        model.train(was_training)


def copy_source_l1(dataset: TrackPairs, **options) -> float:
    """The baseline that outputs the first source frame unchanged."""
    return mean_l1(lambda sources, driving: sources[:, 0], dataset, **options)


def photometric_table(models: dict[str, X2Face], tracks: list, *, source_counts: tuple[int, ...] = (1, 3),
                      batches: int | None = None, batch_size: int = 16, device: torch.device | str = "cpu") -> list[dict]:
    """The paper's Table 1 on ``tracks``: L1 of each model with each number of source
    frames, and the copy-the-source baseline, all on the same pairs."""
    rows = []
    options = dict(batches=batches, batch_size=batch_size, device=device)
    for count in source_counts:
        first = next(iter(models.values()))
        baseline_set = TrackPairs(tracks, num_sources=count, size=first.config.resolution)
        rows.append({"method": "copy source frame", "sources": count, "l1": copy_source_l1(baseline_set, **options),
                     "pairs": len(baseline_set)})
        for name, model in models.items():
            dataset = TrackPairs(tracks, num_sources=count, size=model.config.resolution)
            rows.append({"method": name, "sources": count, "l1": model_l1(model.to(device), dataset, **options),
                         "pairs": len(dataset)})
    return rows
