"""Paint made on a frame of the footage (the ``frame`` command's picture): read against
that frame, then carried into the embedded face through the frame's own locked warp, so
``render`` and ``preview`` take it as they take paint made on the embedded face."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .driving import locked_grid_of
from .errors import X2FaceError
from .lock import LandmarkLock
from .model import X2Face
from .model.inference import GridPredictor
from .paint import Paint, PaintOptions, PreparedPaint, carried_from_frame, paint_layer, prepare_paint, require_paint
from .tracking import VideoTrack
from .video import frames_at

# The largest side of the embedded layer that paint made on a frame is carried into: as
# large as the face's crop in that frame, so that none of the frame's detail is lost.
MAX_FRAME_LAYER = 2048


@dataclass(frozen=True)
class FramePaint:
    """The paint made on frame ``index`` of a video, as a premultiplied (4, H, W) ``layer`` of the frame's size."""

    index: int
    layer: torch.Tensor


def read_frame_paint(paint: Paint, drive: str | Path, index: int, options: PaintOptions, total: int, *,
                     sequence_fps: float | None = None) -> FramePaint:
    """The paint made on frame ``index`` of ``drive`` (a layer or a painted copy of the
    frame, as ``frame`` wrote it; ``drive`` has ``total`` frames)."""
    if not 0 <= index < total:
        raise X2FaceError(f"--frame {index}: {Path(drive).name} has frames 0-{total - 1}")
    frame = frames_at(drive, [index], fps=sequence_fps)[index]
    layer = paint_layer(paint.edited, frame, canvas=f"frame {index} of {Path(drive).name}")
    require_paint(layer, paint.edited)
    return FramePaint(index, layer)


def prepare_frame_paint(model: X2Face, paint: Paint, frame_paint: FramePaint, options: PaintOptions, drive: str | Path,
                        track: VideoTrack, predictor: GridPredictor) -> PreparedPaint:
    """``prepare_paint`` for paint made on a frame of ``drive`` (whose face ``track`` follows)."""
    index = frame_paint.index

    def carried(lock: LandmarkLock | None) -> torch.Tensor:
        _, grid = locked_grid_of(predictor, track, drive, index, lock)
        crop_box = track.crop_box(index)
        size = int(min(MAX_FRAME_LAYER, max(paint.sidecar.size, np.ceil(crop_box[2] - crop_box[0]))))
        return carried_from_frame(frame_paint.layer, crop_box, grid, size)

    return prepare_paint(model, paint, options, layer_of=carried)
