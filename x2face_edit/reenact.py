"""Reenactment: the source face takes the pose and expression of each driving frame."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .choices import LOCK_MODES
from .driving import DrivingOptions, RenderReport, write_driven
from .errors import X2FaceError
from .faces import crop
from .lock import LandmarkLock
from .model import X2Face
from .model.images import to_image, to_tensor
from .model.inference import GridPredictor, InferenceOptions
from .model.networks import resize_grid, sample
from .outputs import atomic_output
from .paint import composite, opaque_layer
from .source import SourceFace
from .tracking import track_video
from .video import Frame, VideoWriter, check_video_output, probe


@dataclass(frozen=True)
class ReenactOptions:
    """Each output frame is the generated face, ``size`` pixels square; ``side_by_side``
    puts the driving face on its left; ``paste_back`` instead pastes the generated face
    into the source frame, where ``lock`` "landmarks" (``lock.py``) makes its features
    follow the driving face's landmarks exactly. ``face`` picks the driving video's face;
    ``inference`` says how the network runs; ``force`` overwrites an existing output."""

    size: int = 256
    side_by_side: bool = False
    paste_back: bool = False
    lock: str = "landmarks"
    face: int = 0
    inference: InferenceOptions = field(default_factory=InferenceOptions)
    force: bool = False

    def __post_init__(self) -> None:
        if self.lock not in LOCK_MODES:
            raise X2FaceError(f"lock must be one of {', '.join(LOCK_MODES)}")
        if self.side_by_side and self.paste_back:
            raise X2FaceError("choose one of --side-by-side and --paste-back")


@torch.inference_mode()
def reenact(model: X2Face, source: SourceFace, drive: str | Path, out: str | Path, options: ReenactOptions = ReenactOptions(),
            *, on_frame: Callable[[int, int], None] | None = None) -> RenderReport:
    """Write a video of the source face driven by every frame of ``drive``. Where the
    driving face is lost the last result is held. The driving video's sound is kept."""
    check_video_output(out, force=options.force, inputs=(drive,))
    total = probe(drive).frame_count
    track = track_video(drive, face=options.face, on_frame=lambda i: on_frame and on_frame(i + 1, 2 * total))
    device = next(model.parameters()).device
    embedded = to_tensor([source.embedded]).to(device)
    layer = opaque_layer(source.embedded)
    size = options.size
    if options.paste_back:
        height, width = source.background.shape[:2]
    else:
        height, width = size, size * (2 if options.side_by_side else 1)
    last_result: np.ndarray | None = None

    def compose(index: int, driving_frame: Frame, grid: torch.Tensor | None) -> np.ndarray:
        nonlocal last_result
        if options.paste_back:
            frame = source.background.copy()
            if grid is not None:
                composite(frame, source.crop_box, grid, layer)
                last_result = frame
            return last_result if last_result is not None else frame
        if grid is not None:
            last_result = to_image(sample(embedded, resize_grid(grid.unsqueeze(0).to(device), size, size))[0])
        result = last_result if last_result is not None else crop(source.background, source.crop_box, size)
        if not options.side_by_side:
            return result
        box = track.crop_box(index)
        left = crop(driving_frame.rgb, box, size) if box is not None else np.zeros_like(result)
        return np.concatenate([left, result], axis=1)

    with atomic_output(out, force=options.force) as partial:
        with VideoWriter(partial, fps=track.info.fps, width=width, height=height, audio_from=drive) as writer:
            lock = LandmarkLock(source.landmarks) if options.paste_back and options.lock == "landmarks" else None
            write_driven(GridPredictor(model, options.inference), track, drive, writer, compose, DrivingOptions(lock),
                         on_frame=on_frame and (lambda index: on_frame(total + index + 1, 2 * total)))
    return RenderReport(frames=track.info.frame_count, lost=track.lost_ranges())
