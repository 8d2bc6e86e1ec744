"""Running the driving network fast: device, channels_last, bf16 autocast, torch.compile.

bf16 halves memory traffic and doubles throughput where the hardware computes in it
(recent GPUs; CPUs with AVX-512 BF16 or AMX). Elsewhere PyTorch emulates it and it is
slower than fp32, so ``precision="auto"`` picks bf16 only where it is native.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from ..errors import X2FaceError
from .networks import X2Face

PRECISIONS = ("auto", "fp32", "bf16")
# The stated tolerance of bf16 against fp32, in grid units ([-1, 1] across the crop): 99 %
# of a grid's points move less than this (0.5 % of the crop's side; benchmarks/README.md, "Where the constants come from").
BF16_GRID_TOLERANCE = 0.01


def resolve_device(name: str) -> torch.device:
    """``name`` as a device: "auto" is CUDA where there is one, else the CPU; asking for
    CUDA where there is none is an X2FaceError, not a crash deep in PyTorch."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise X2FaceError(f"unknown device {name!r}: use auto, cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise X2FaceError(f"device {name}: no CUDA GPU is usable here (use --device cpu)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise X2FaceError(f"device {name}: there are only {torch.cuda.device_count()} CUDA devices")
    return device


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bf16 natively (so bf16 autocast is faster than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return False


@dataclass(frozen=True)
class InferenceOptions:
    """How to run the network: on ``device`` ("cpu", "cuda", "cuda:1"; None: where the
    model is), in ``precision`` (auto, fp32 or bf16), compiled by torch.compile or not,
    ``batch`` frames a call."""

    device: str | None = None
    precision: str = "auto"
    compile: bool = False
    batch: int = 8

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.batch < 1:
            raise ValueError("batch must be at least 1")

    def resolved_precision(self, device: torch.device) -> str:
        if self.precision == "auto":
            return "bf16" if native_bf16(device) else "fp32"
        return self.precision


class GridPredictor:
    """The driving half of a model set up for inference: face crops in, sampling grids out.

    Calls take (N, 3, S, S) crops in [0, 1] on any device and return the (N, S, S, 2)
    float32 grids on the CPU, where compositing happens.
    """

    def __init__(self, model: X2Face, options: InferenceOptions = InferenceOptions()) -> None:
        self.device = torch.device(options.device) if options.device else next(model.parameters()).device
        # A copy: converting the caller's model in place would change what it computes next
        # (channels_last convolutions round differently), so a second render in one process
        # would embed its face differently from the first.
        self.model = copy.deepcopy(model).to(self.device, memory_format=torch.channels_last).eval()
        self.batch = options.batch
        self.precision = options.resolved_precision(self.device)
        self._grids = torch.compile(self._predict, dynamic=False) if options.compile else self._predict

    def _predict(self, crops: torch.Tensor) -> torch.Tensor:
        return self.model.decode(self.model.driving_vector(crops))

    @torch.inference_mode()
    def __call__(self, crops: torch.Tensor) -> torch.Tensor:
        crops = crops.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            grids = self._grids(crops)
        return grids.float().cpu()
