"""An identity network for the stage-II content losses: dlib's ResNet face descriptor.

The paper used VGG-Face; its weights cannot be had here. dlib's 29-layer ResNet maps a
150x150 RGB face to a 128-D descriptor, and its weights ship (quantised to uint8) with
the npm package @vladmandic/face-api. This module rebuilds that network in PyTorch from
the package's definition (``src/faceRecognitionNet``) and loads the weights from a path
the user gives: the manifest JSON and the .bin it names. Nothing is fetched at run time.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import X2FaceError

INPUT_SIZE = 150
MEAN_RGB = (122.782, 117.001, 104.298)
# (name, channels, downsamples) of the residual stages, in order.
STAGES = [
    ("conv32_1", 32, False), ("conv32_2", 32, False), ("conv32_3", 32, False),
    ("conv64_down", 64, True), ("conv64_1", 64, False), ("conv64_2", 64, False), ("conv64_3", 64, False),
    ("conv128_down", 128, True), ("conv128_1", 128, False), ("conv128_2", 128, False),
    ("conv256_down", 256, True), ("conv256_1", 256, False), ("conv256_2", 256, False),
    ("conv256_down_out", 256, True),
]
# Features for the content losses: low after the first stage, high before the descriptor.
LOW_LAYER, HIGH_LAYER = "conv32_3", "conv256_down_out"


class ScaledConv(nn.Module):
    """Convolution + bias, then a per-channel affine 'scale' layer (dlib's folded batch norm)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, bias=True)
        self.scale = nn.Parameter(torch.ones(out_channels))
        self.shift = nn.Parameter(torch.zeros(out_channels))
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:  # TensorFlow 'same' padding
            pad = self.conv.kernel_size[0] // 2
            x = F.pad(x, (pad, pad, pad, pad))
        # stride 2 uses 'valid' padding: none
        return self.conv(x) * self.scale[:, None, None] + self.shift[:, None, None]


class Residual(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv1 = ScaledConv(in_channels, out_channels, 3, 2 if down else 1)
        self.conv2 = ScaledConv(out_channels, out_channels, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(x)))
        if self.down:
            shortcut = F.avg_pool2d(x, 2, 2)
            if shortcut.shape[1] != out.shape[1]:
                shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, out.shape[1] - shortcut.shape[1]))
            if shortcut.shape[2:] != out.shape[2:]:
                # face-api pads the strided branch with a zero row and column at the end.
                out = F.pad(out, (0, shortcut.shape[3] - out.shape[3], 0, shortcut.shape[2] - out.shape[2]))
        else:
            shortcut = x
        return F.relu(out + shortcut)


class IdentityNet(nn.Module):
    """dlib's face descriptor network. Input: (B, 3, 150, 150) RGB in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv32_down = ScaledConv(3, 32, 7, 2)
        channels = 32
        self.stages = nn.ModuleDict()
        for name, out_channels, down in STAGES:
            self.stages[name] = Residual(channels, out_channels, down)
            channels = out_channels
        self.fc = nn.Linear(256, 128, bias=False)
        self.register_buffer("mean", torch.tensor(MEAN_RGB).view(1, 3, 1, 1) / 255)

    def features(self, faces: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every stage's output by name, and the 128-D 'descriptor'."""
        x = F.relu(self.conv32_down(faces - self.mean))
        x = F.max_pool2d(x, 3, 2)
        outputs = {}
        for name, stage in self.stages.items():
            x = stage(x)
            outputs[name] = x
        outputs["descriptor"] = self.fc(x.mean(dim=(2, 3)))
        return outputs

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return self.features(faces)["descriptor"]


def load_identity_net(path: str | Path) -> IdentityNet:
    """Build the network from face-api's weights manifest (or the folder holding it)."""
    path = Path(path)
    manifest_path = path / "face_recognition_model-weights_manifest.json" if path.is_dir() else path
    if not manifest_path.is_file():
        raise X2FaceError(f"no identity-network manifest at {manifest_path}")
    try:
        groups = json.loads(manifest_path.read_text())
        tensors = {}
        for group in groups:
            data = b"".join((manifest_path.parent / name).read_bytes() for name in group["paths"])
            offset = 0
            for entry in group["weights"]:
                count = int(np.prod(entry["shape"]))
                quantisation = entry.get("quantization")
                if quantisation:
                    raw = np.frombuffer(data, np.uint8, count, offset).astype(np.float32)
                    values = raw * quantisation["scale"] + quantisation["min"]
                    offset += count
                else:
                    values = np.frombuffer(data, np.float32, count, offset)
                    offset += 4 * count
                tensors[entry["name"]] = torch.from_numpy(values.reshape(entry["shape"]).copy())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise X2FaceError(f"{manifest_path} is not a readable face-api weights manifest: {exc}") from None

    net = IdentityNet()
    state = {}

    def scaled_conv(module_name: str, prefix: str) -> None:
        state[f"{module_name}.conv.weight"] = tensors[f"{prefix}/conv/filters"].permute(3, 2, 0, 1)  # HWIO -> OIHW
        state[f"{module_name}.conv.bias"] = tensors[f"{prefix}/conv/bias"]
        state[f"{module_name}.scale"] = tensors[f"{prefix}/scale/weights"]
        state[f"{module_name}.shift"] = tensors[f"{prefix}/scale/biases"]

    try:
        scaled_conv("conv32_down", "conv32_down")
        for name, _, _ in STAGES:
            scaled_conv(f"stages.{name}.conv1", f"{name}/conv1")
            scaled_conv(f"stages.{name}.conv2", f"{name}/conv2")
        state["fc.weight"] = tensors["fc"].T
        state["mean"] = net.mean
        net.load_state_dict(state)
    except (KeyError, RuntimeError) as exc:
        raise X2FaceError(f"{manifest_path} does not hold dlib's face descriptor network: {exc}") from None
    return net.eval().requires_grad_(False)


def face_region(crops: torch.Tensor, fraction: float = 0.75) -> torch.Tensor:
    """The identity network's view of X2Face crops: their central ``fraction`` (VoxCeleb
    crops are 1.6x the face box; dlib's face chips are tighter) resized to 150x150."""
    size = crops.shape[-1]
    margin = round(size * (1 - fraction) / 2)
    centre = crops[..., margin : size - margin, margin : size - margin]
    return F.interpolate(centre, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True)
