"""Random occluders pasted over driving frames in training, so that the driving network
learns to read pose and expression from the face that shows and not from what covers it.

The shapes are drawn at random (unions of rounded rectangles and ellipses, and thin
curved strokes) and filled with another crop of the batch (another person's skin, hair
or background, with a random colour gain) or with a shaded flat colour; they are not
the benchmark's occluders (`synthetic.OCCLUDERS`), which judge what this teaches."""

from __future__ import annotations

import math

import torch

# Each blob is a superellipse |x/a|^p + |y/b|^p <= 1: p 2 is an ellipse, higher p a
# rectangle with rounder or sharper corners (a card, a phone).
BLOBS = (1, 3)
EXPONENT = (2.0, 8.0)
# Half axes and stroke widths in crop widths: a blob from a finger to a palm, a stroke
# from a strand of hair to a pen.
HALF_AXIS = (0.05, 0.28)
STROKE_WIDTH = (0.008, 0.04)
STROKE_SHARE = 0.25  # of occluders that are a stroke rather than blobs
FLAT_SHARE = 0.3  # of occluders filled with one shaded colour rather than another crop
# Where occluders are centred: the central part of the crop, which holds the face.
CENTRE_SPREAD = 0.35
EDGE_PIXELS = 0.75  # soft edge, as a real occluder's is blurred by the lens and resampling


def _uniform(low: float, high: float, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator)


def _blob_alpha(xs: torch.Tensor, ys: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(H, W) alpha of a union of up to three superellipses near one random centre."""
    size = xs.shape[-1]
    count = int(torch.randint(BLOBS[0], BLOBS[1] + 1, (), generator=generator))
    centre = _uniform(0.5 - CENTRE_SPREAD, 0.5 + CENTRE_SPREAD, (2,), generator)
    alpha = torch.zeros_like(xs)
    for _ in range(count):
        middle = centre + _uniform(-0.12, 0.12, (2,), generator)
        half_x, half_y = _uniform(*HALF_AXIS, (2,), generator)
        angle = float(_uniform(0, math.pi, (), generator))
        exponent = float(_uniform(*EXPONENT, (), generator))
        u = ((xs - middle[0]) * math.cos(angle) + (ys - middle[1]) * math.sin(angle)) / half_x
        v = (-(xs - middle[0]) * math.sin(angle) + (ys - middle[1]) * math.cos(angle)) / half_y
        # The superellipse's level 1, as a signed distance of about one pixel per unit.
        level = (u.abs() ** exponent + v.abs() ** exponent) ** (1 / exponent)
        inside = torch.sigmoid((1 - level) * float(min(half_x, half_y)) * size / EDGE_PIXELS)
        alpha = torch.maximum(alpha, inside)
    return alpha


def _stroke_alpha(xs: torch.Tensor, ys: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(H, W) alpha of a thin quadratic curve crossing the face."""
    size = xs.shape[-1]
    ends = _uniform(0.5 - CENTRE_SPREAD - 0.2, 0.5 + CENTRE_SPREAD + 0.2, (3, 2), generator)
    t = torch.linspace(0, 1, 25)[:, None]
    points = (1 - t) ** 2 * ends[0] + 2 * (1 - t) * t * ends[1] + t**2 * ends[2]  # (25, 2): 24 segments
    starts, steps = points[:-1], points[1:] - points[:-1]
    pixels = torch.stack([xs, ys], dim=-1).reshape(-1, 1, 2)
    along = (((pixels - starts) * steps).sum(-1) / (steps * steps).sum(-1).clamp_min(1e-12)).clamp(0, 1)
    distance = (pixels - starts - along[..., None] * steps).norm(dim=-1).amin(dim=1).reshape(xs.shape)
    half_width = float(_uniform(*STROKE_WIDTH, (), generator)) / 2
    return torch.sigmoid((half_width - distance) * size / EDGE_PIXELS)


def _fill(images: torch.Tensor, item: int, generator: torch.Generator) -> torch.Tensor:
    """(3, H, W) colour of an occluder over ``images[item]``: another crop of the batch
    with a colour gain, or one colour shaded from top to bottom."""
    size = images.shape[-1]
    if len(images) > 1 and float(torch.rand((), generator=generator)) >= FLAT_SHARE:
        other = (item + int(torch.randint(1, len(images), (), generator=generator))) % len(images)
        shift = torch.randint(-size // 4, size // 4 + 1, (2,), generator=generator).tolist()
        donor = images[other].roll(shifts=shift, dims=(-2, -1))
        return (donor * _uniform(0.6, 1.4, (3, 1, 1), generator)).clamp(0, 1)
    colour = torch.rand((3, 1, 1), generator=generator)
    shading = torch.linspace(*_uniform(0.7, 1.2, (2,), generator).tolist(), size)[None, :, None]
    return (colour * shading).clamp(0, 1).expand(3, size, size)


def occluded(images: torch.Tensor, share: float, generator: torch.Generator) -> torch.Tensor:
    """A copy of ``images`` (B, 3, H, W; square crops in [0, 1]) in which each picture,
    with probability ``share``, has a random occluder pasted over it."""
    size = images.shape[-1]
    coordinates = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    ys, xs = torch.meshgrid(coordinates, coordinates, indexing="ij")
    pictures = images.detach().float().cpu()
    result = pictures.clone()
    for item in range(len(images)):
        if float(torch.rand((), generator=generator)) >= share:
            continue
        if float(torch.rand((), generator=generator)) < STROKE_SHARE:
            alpha = _stroke_alpha(xs, ys, generator)
        else:
            alpha = _blob_alpha(xs, ys, generator)
        result[item] = pictures[item] * (1 - alpha) + _fill(pictures, item, generator) * alpha
    return result.to(images.device, images.dtype)
