"""The X2Face networks (Wiles, Koepke, Zisserman, ECCV 2018).

An embedding network maps each source frame to a sampling grid that pulls its pixels
into a pose-free *embedded face*; a driving network maps a driving frame to a 128-D
driving vector and decodes that vector into a grid that samples the embedded face in the
driving frame's pose and expression. Both networks follow pix2pix: 4x4 stride-2 encoder
convolutions, and a decoder of bilinear x2 upsampling + 3x3 convolutions (the original
release's "better upsampler"), with U-Net skips in the embedding network only.

Layer order within a level follows the original release (pix2pix): the activation of
level i is applied at the start of level i+1, and the U-Net skip carries the activated
features.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

DRIVING_VECTOR_SIZE = 128
# The original release weights each source by exp(confidence) + 0.1 so that no source's
# weight can vanish entirely.
CONFIDENCE_FLOOR = 0.1


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild an X2Face model of a given shape."""

    resolution: int = 256
    width: int = 64
    # The released X2Face weights (import-official): their grids used align_corners=True
    # and their driving decoder's tanh was applied twice.
    original_release: bool = False
    # Where dlib's 68 landmarks lie on the embedded face ((x, y) in grid coordinates), for
    # models trained with the landmark correspondence losses; None for the others.
    landmark_template: tuple[tuple[float, float], ...] | None = None

    def __post_init__(self) -> None:
        levels = math.log2(self.resolution)
        if self.resolution < 32 or levels != int(levels):
            raise ValueError(f"resolution must be a power of two >= 32, got {self.resolution}")
        if self.width < 1:
            raise ValueError(f"width must be positive, got {self.width}")
        if self.landmark_template is not None:
            # Checkpoints store lists; a frozen config keeps tuples.
            template = tuple(tuple(float(v) for v in point) for point in self.landmark_template)
            if len(template) != 68 or any(len(point) != 2 for point in template):
                raise ValueError("landmark_template must hold 68 (x, y) points")
            object.__setattr__(self, "landmark_template", template)

    @property
    def levels(self) -> int:
        """Stride-2 encoder levels: enough to bring the image down to 1x1."""
        return int(math.log2(self.resolution))

    def encoder_channels(self, innermost: int | None = None) -> list[int]:
        """Channels after each encoder level: w, 2w, 4w, 8w, 8w, ... (pix2pix)."""
        channels = [self.width * min(2**i, 8) for i in range(self.levels)]
        if innermost is not None:
            channels[-1] = innermost
        return channels

    def to_dict(self) -> dict:
        return asdict(self)


def _encoder_level(in_channels: int, out_channels: int, *, activate_input: bool, normalise: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    if activate_input:
        layers.append(nn.LeakyReLU(0.2))
    layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1, bias=False))
    if normalise:
        layers.append(nn.BatchNorm2d(out_channels))
    return nn.Sequential(*layers)


def _decoder_level(in_channels: int, out_channels: int, *, normalise: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.ReLU(),
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False),
    ]
    if normalise:
        layers.append(nn.BatchNorm2d(out_channels))
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """Strided convolutions from a 3-channel image down to a 1x1 code."""

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        inputs = [3, *channels[:-1]]
        last = len(channels) - 1
        self.levels = nn.ModuleList(
            _encoder_level(cin, cout, activate_input=i > 0, normalise=0 < i < last)
            for i, (cin, cout) in enumerate(zip(inputs, channels))
        )

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Return every level's output, outermost first (the last one is the code)."""
        features = []
        x = image
        for level in self.levels:
            x = level(x)
            features.append(x)
        return features


class Decoder(nn.Module):
    """Upsampling decoder from the 1x1 code to a full-resolution map.

    With ``skips`` each level (except the innermost) also takes the mirrored encoder
    level's activated features, making the pair a U-Net.
    """

    def __init__(self, encoder_channels: list[int], out_channels: int, *, skips: bool) -> None:
        super().__init__()
        self.skips = skips
        inner_to_outer = encoder_channels[::-1]
        targets = [*inner_to_outer[1:], out_channels]
        levels = []
        for i, (cin, cout) in enumerate(zip(inner_to_outer, targets)):
            takes_skip = skips and i > 0
            levels.append(_decoder_level(cin * 2 if takes_skip else cin, cout, normalise=i < len(targets) - 1))
        self.levels = nn.ModuleList(levels)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        mirrored = features[-2::-1]
        for i, level in enumerate(self.levels):
            if self.skips and i > 0:
                x = torch.cat([x, F.leaky_relu(mirrored[i - 1], 0.2)], dim=1)
            x = level(x)
        return x


def identity_grid(height: int, width: int, *, device: torch.device | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The (1, H, W, 2) grid that makes ``grid_sample`` (align_corners=False) a no-op."""
    ys = (torch.arange(height, device=device, dtype=dtype) * 2 + 1) / height - 1
    xs = (torch.arange(width, device=device, dtype=dtype) * 2 + 1) / width - 1
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1).unsqueeze(0)


def offsets_to_grid(raw_offsets: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Turn a (B, 2, H, W) network output into a (B, H, W, 2) sampling grid.

    tanh bounds each offset to the image's extent (times ``scale``); the identity grid is
    added so that a zero output samples every pixel where it already is.
    """
    _, _, height, width = raw_offsets.shape
    offsets = torch.tanh(raw_offsets).permute(0, 2, 3, 1) * scale
    return offsets + identity_grid(height, width, device=raw_offsets.device, dtype=offsets.dtype)


def sample(image: torch.Tensor, grid: torch.Tensor, *, padding: str = "zeros") -> torch.Tensor:
    """Bilinearly sample ``image`` (B, C, H, W) at ``grid`` (B, h, w, 2) in [-1, 1]."""
    return F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode=padding, align_corners=False)


def resize_grid(grid: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinearly resample a (B, h, w, 2) sampling grid to (B, height, width, 2).

    Grid values are resolution-free image coordinates, so a grid predicted at the model's
    resolution can sample a larger image of the same crop.
    """
    resized = F.interpolate(grid.permute(0, 3, 1, 2), size=(height, width), mode="bilinear", align_corners=False)
    return resized.permute(0, 2, 3, 1)


def weighted_average(embedded: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """Average K embedded faces (B, K, 3, H, W) weighted per pixel by (B, K, 1, H, W)."""
    return (embedded * confidence).sum(dim=1) / confidence.sum(dim=1)


class X2Face(nn.Module):
    """The whole X2Face model: embedding network, driving network and the sampler."""

    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        self.config = config
        embedding_channels = config.encoder_channels()
        driving_channels = config.encoder_channels(innermost=DRIVING_VECTOR_SIZE)
        self.embedding_encoder = Encoder(embedding_channels)
        # Two flow channels and one confidence channel.
        self.embedding_decoder = Decoder(embedding_channels, 3, skips=True)
        self.driving_encoder = Encoder(driving_channels)
        self.driving_decoder = Decoder(driving_channels, 2, skips=False)
        # An align_corners=True grid g samples where an align_corners=False grid g*(N-1)/N does.
        self._offset_scale = (config.resolution - 1) / config.resolution if config.original_release else 1.0

    def embedding_fingerprint(self) -> str:
        """A hash of the embedding network's weights: embedded faces (and paint on them)
        carry over between models that share it, e.g. after a driving-only fit."""
        digest = hashlib.sha256()
        for name, tensor in self.state_dict().items():
            if name.startswith("embedding_"):
                digest.update(name.encode())
                digest.update(tensor.detach().to(torch.float16).cpu().numpy().tobytes())
        return digest.hexdigest()[:16]

    def embedding_grid(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For (N, 3, H, W) source frames: the (N, H, W, 2) grid that samples each into the
        embedded face, and its (N, 1, H, W) confidence weight (exp(c) + 0.1)."""
        out = self.embedding_decoder(self.embedding_encoder(frames))
        confidence = out[:, 2:3].float().exp() + CONFIDENCE_FLOOR
        return offsets_to_grid(out[:, :2], self._offset_scale), confidence

    def embed_each(self, sources: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed K source frames separately.

        ``sources`` is (B, K, 3, H, W); returns the embedded faces (B, K, 3, H, W) and
        their confidence weights (B, K, 1, H, W).
        """
        batch, count = sources.shape[:2]
        flat = sources.flatten(0, 1)
        grid, confidence = self.embedding_grid(flat)
        embedded = sample(flat, grid)
        return embedded.unflatten(0, (batch, count)), confidence.unflatten(0, (batch, count))

    def embed(self, sources: torch.Tensor) -> torch.Tensor:
        """The embedded face of one or several source frames.

        ``sources`` is (B, 3, H, W) for one source frame each, or (B, K, 3, H, W) for K,
        whose embedded faces are averaged with the network's confidence weights.
        """
        if sources.dim() == 4:
            sources = sources.unsqueeze(1)
        embedded, confidence = self.embed_each(sources)
        return weighted_average(embedded.float(), confidence).to(embedded.dtype)

    def driving_vector(self, frame: torch.Tensor) -> torch.Tensor:
        """The (B, 128) driving vector of a (B, 3, H, W) driving frame."""
        return self.driving_encoder(frame)[-1].flatten(1)

    def decode(self, driving_vector: torch.Tensor) -> torch.Tensor:
        """The (B, H, W, 2) grid that samples an embedded face in the vector's pose."""
        code = driving_vector.reshape(driving_vector.shape[0], -1, 1, 1)
        raw = self.driving_decoder([code])
        if self.config.original_release:
            raw = torch.tanh(raw)
        return offsets_to_grid(raw, self._offset_scale)

    def generate(self, embedded: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """Sample the embedded face with a driving grid: the generated frame."""
        return sample(embedded, grid)

    def template(self) -> torch.Tensor | None:
        """The (68, 2) landmark template of the embedded face, or None."""
        if self.config.landmark_template is None:
            return None
        return torch.tensor(self.config.landmark_template, dtype=torch.float32)

    def forward(self, sources: torch.Tensor, driving: torch.Tensor, *, grids: bool = False):
        """The source identity in the driving frame's pose and expression.

        With ``grids`` (training with warp losses; one forward call, as DDP wants) it
        returns (generated, each source's embedding grid (B, K, H, W, 2), the driving
        frame's driving grid, the first source's own driving grid): the last pairs with
        that source's embedding grid for the round-trip loss.
        """
        if not grids:
            return self.generate(self.embed(sources), self.decode(self.driving_vector(driving)))
        if sources.dim() == 4:
            sources = sources.unsqueeze(1)
        batch, count = sources.shape[:2]
        flat = sources.flatten(0, 1)
        embedding_grid, confidence = self.embedding_grid(flat)
        embedded = weighted_average(sample(flat, embedding_grid).unflatten(0, (batch, count)).float(),
                                    confidence.unflatten(0, (batch, count)))
        driving_grids = self.decode(self.driving_vector(torch.cat([driving, sources[:, 0]])))
        driving_grid, source_grid = driving_grids.split(batch)
        return self.generate(embedded.to(flat.dtype), driving_grid), embedding_grid.unflatten(0, (batch, count)), driving_grid, source_grid


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
