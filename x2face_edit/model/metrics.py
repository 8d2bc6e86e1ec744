"""The paper's photometric measure: L1 between a generated frame and its driving frame.

Pairs are drawn with a fixed seed, so every model (and the copy-the-source baseline) is
scored on exactly the same (sources, driving) pairs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from .data import TrackPairs
from .landmarks import inter_ocular
from .losses import central_region, round_trip
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
        for i, (sources, driving, *_) in enumerate(DataLoader(dataset, batch_size=batch_size, shuffle=False)):
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


@torch.inference_mode()
def frame_round_trip(model: X2Face, frames: torch.Tensor) -> torch.Tensor:
    """(B,) mean |E(D(p)) - p| over the central region of each (B, 3, H, W) frame, in grid
    units: how far a point taken into the embedded face by the frame's driving grid lands
    from where it was when the frame's own embedding grid brings it back."""
    embedding_grid, _ = model.embedding_grid(frames)
    error = round_trip(embedding_grid, model.decode(model.driving_vector(frames))).norm(dim=-1)
    region = central_region(*error.shape[1:], device=error.device)
    return error[:, region].mean(dim=1)


def round_trip_error(model: X2Face, dataset: TrackPairs, *, batches: int | None = None, batch_size: int = 16,
                     device: torch.device | str = "cpu") -> float:
    """The mean round trip (``frame_round_trip``) of the dataset's driving frames in percent
    of each frame's eye distance (dlib's outer eye corners); NaN where no frame has
    landmarks. The model's mode is restored afterwards."""
    was_training = model.training
    model.eval()
    errors = []
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(PAIRS_SEED)
            for i, (_, driving, *rest) in enumerate(DataLoader(dataset, batch_size=batch_size, shuffle=False)):
                if i == batches:
                    break
                iod = inter_ocular(rest[-1]) if rest else torch.full(driving.shape[:1], float("nan"))
                keep = ~iod.isnan()
                if keep.any():
                    errors.append(frame_round_trip(model, driving[keep].to(device)).cpu() / iod[keep] * 100)
    finally:
        model.train(was_training)
    return float(torch.cat(errors).mean()) if errors else math.nan


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
