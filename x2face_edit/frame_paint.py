"""Paint made on frames of the footage (the ``frame`` command's picture): read against
each frame, carried into the embedded face through that frame's own locked warp and
merged there by how well each frame shows each part of the face, so ``render`` and
``preview`` take it as they take paint made on the embedded face."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .driving import locked_grid_of
from .errors import X2FaceError
from .lock import LandmarkLock
from .model import X2Face
from .model.inference import GridPredictor
from .paint import CarriedPaint, Paint, PaintOptions, PreparedPaint, carried_from_frame, paint_layer, prepare_paint, require_paint
from .tracking import VideoTrack
from .video import frames_at

# The embedded layer that paint made on a frame is carried into has texels this many times
# finer than the crop's pixels in that frame, so that none of the frame's detail is lost:
# carrying into texels and warping back each spread a line over a texel, and at the crop's
# own size a one-pixel line came back wider and fainter (benchmarks/thin_line.py). Its
# side is at most MAX_FRAME_LAYER.
LAYER_OVERSAMPLE = 2
MAX_FRAME_LAYER = 2048


@dataclass(frozen=True)
class FrameEdit:
    """Paint made on frame ``index`` of the driving video: ``edited``, a layer or a painted
    copy of the picture ``frame`` wrote for it."""

    edited: Path
    index: int


@dataclass(frozen=True)
class FramePaint:
    """The paint made on frame ``index`` of a video, as a premultiplied (4, H, W) ``layer`` of the frame's size."""

    index: int
    layer: torch.Tensor


def read_frame_paints(edits: Sequence[FrameEdit], drive: str | Path, total: int, *,
                      sequence_fps: float | None = None) -> list[FramePaint]:
    """The paint of each of ``edits``, made on frames of ``drive`` (which has ``total`` frames)."""
    for edit in edits:
        if not 0 <= edit.index < total:
            raise X2FaceError(f"--frame {edit.index}: {Path(drive).name} has frames 0-{total - 1}")
    frames = frames_at(drive, sorted({edit.index for edit in edits}), fps=sequence_fps)
    paints = []
    for edit in edits:
        layer = paint_layer(edit.edited, frames[edit.index], canvas=f"frame {edit.index} of {Path(drive).name}")
        require_paint(layer, edit.edited)
        paints.append(FramePaint(edit.index, layer))
    return paints


def prepare_frame_paint(model: X2Face, paint: Paint, frame_paints: Sequence[FramePaint], options: PaintOptions,
                        drive: str | Path, track: VideoTrack, predictor: GridPredictor) -> PreparedPaint:
    """``prepare_paint`` for paint made on frames of ``drive`` (whose face ``track`` follows)."""

    def carried(lock: LandmarkLock | None) -> torch.Tensor:
        placed = [(frame_paint, track.crop_box(frame_paint.index), locked_grid_of(predictor, track, drive, frame_paint.index, lock)[1])
                  for frame_paint in frame_paints]
        largest_crop = max(np.ceil(box[2] - box[0]) for _, box, _ in placed)
        size = int(min(MAX_FRAME_LAYER, max(paint.sidecar.size, LAYER_OVERSAMPLE * largest_crop)))
        return merged([carried_from_frame(frame_paint.layer, box, grid, size) for frame_paint, box, grid in placed])

    return prepare_paint(model, paint, options, layer_of=carried)


def merged(carried: Sequence[CarriedPaint]) -> torch.Tensor:
    """One premultiplied layer of paints carried from several frames: painted wherever any
    of them is (each laid over the others), and where several are, of the colour of the
    frames that show that part of the face best (weighted by the square of their
    coverage, so a profile's foreshortened paint gives way to a frontal frame's instead of
    mixing into it; the weights change smoothly, so the paints meet without a seam)."""
    if len(carried) == 1:
        return carried[0].layer
    layers = torch.stack([c.layer for c in carried])
    weights = torch.stack([c.coverage for c in carried])[:, None] ** 2 + 1e-6
    alpha = 1 - torch.prod(1 - layers[:, 3:], dim=0)
    colour = (weights * layers[:, :3]).sum(dim=0) / (weights * layers[:, 3:]).sum(dim=0).clamp(min=1e-12)
    return torch.cat([colour * alpha, alpha]).clamp(0, 1)
