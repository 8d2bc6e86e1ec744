"""Rendering painted embedded faces through a video: the paint follows the face in every
frame, composited onto the original footage (``paint.py``), the warp locked to each
frame's landmarks (``lock.py``), decoded, driven and encoded in overlapping threads
(``driving.py``). Sound, frame rate and frame count stay as they were.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .driving import DrivingOptions, RenderReport, seeing, write_driven
from .errors import X2FaceError
from .faces import SAME_PERSON
from .frame_paint import FrameEdit, prepare_frame_paint, read_frame_paints
from .model import ModelInfo, X2Face
from .model.inference import GridPredictor, InferenceOptions
from .outputs import atomic_output
from .paint import (
    Paint,
    PaintOptions,
    composited,
    fade_weights,
    paint_alone,
    paint_bounds,
    prepare_paint,
    visibility_matte,
)
from .sequences import is_sequence
from .tracking import VideoTrack, track_video
from .video import Encoding, Frame, VideoWriter, check_video_output, choose_encoding, probe


@dataclass(frozen=True)
class RenderOptions:
    """How ``render`` writes: ``paint`` (how the paint follows the face); ``layer_only``
    writes the warped paint alone with its alpha, to lay over the footage; ``codec`` and
    ``crf`` (default: what the output's suffix implies, ``video.choose_encoding``);
    ``sequence_fps``, the rate of a driving image sequence; ``inference``, how the network
    runs; ``overlap`` runs decoding, the network and compositing with encoding side by
    side (the same output either way); ``matte``, a second output (a video or image
    sequence, frame for frame) of the grey visibility matte the paint was multiplied by
    (white: the face shows or no face; black: something covers it), for a compositor to
    refine; ``painted_frames``, where the paint was made on frames of the driving video
    (the ``frame`` command's pictures; none: on the embedded face): each carried into the
    embedded face through its frame's own warp, several merged by how well each frame shows
    each part of the face; ``frames`` (first, last), inclusive, renders only
    those frames, each exactly as a whole render writes it (a chunk on a render farm; an
    image sequence keeps their numbers, a video holds just them, without sound);
    ``force`` overwrites an existing output."""

    paint: PaintOptions = field(default_factory=PaintOptions)
    layer_only: bool = False
    codec: str | None = None
    crf: int | None = None
    sequence_fps: float | None = None
    inference: InferenceOptions = field(default_factory=InferenceOptions)
    overlap: bool = True
    matte: Path | None = None
    painted_frames: tuple[FrameEdit, ...] = ()
    frames: tuple[int, int] | None = None
    force: bool = False


@torch.inference_mode()
def render(model: X2Face, model_info: ModelInfo, paint: Paint, drive: str | Path, out: str | Path,
           options: RenderOptions = RenderOptions(), *, track: VideoTrack | None = None,
           on_frame: Callable[[int, int], None] | None = None) -> RenderReport:
    """Render ``paint`` through every frame of ``drive`` into ``out``.

    ``drive`` and ``out`` may be image sequences (``shot_%05d.png``). High-bit-depth input
    stays high where the codec allows. The model must share its embedding network with the
    one the sidecar was made with (the same model, or one fitted with ``driving_only``).
    ``track`` is ``drive``'s face track where already made (else it is tracked here).
    ``on_frame(done, total)`` reports progress over both passes (tracking, then rendering).
    """
    paint.sidecar.check_model(model, model_info)
    info = track.info if track is not None else probe(drive, fps=options.sequence_fps)
    chunk = frame_range(options.frames, info.frame_count)
    numbers = None if chunk is None else range(info.first_number + chunk.start, info.first_number + chunk.stop)
    inputs = (drive, paint.edited, *(edit.edited for edit in options.painted_frames), paint.sidecar.video)
    encoding, warning = check_video_output(out, force=options.force, inputs=inputs, codec=options.codec, crf=options.crf,
                                           alpha=options.layer_only, deep=info.deep, numbers=numbers)
    if options.matte is not None:
        check_matte_output(options.matte, out, options, numbers)
    total = info.frame_count
    if not options.painted_frames:
        prepared = prepare_paint(model, paint, options.paint)
    else:  # before tracking: bad paint is said at once
        frame_paints = read_frame_paints(options.painted_frames, drive, total, sequence_fps=options.sequence_fps)
    number, looks_like = paint.sidecar.followed_face(options.paint.face)
    if track is None:
        track = track_video(drive, face=number, looks_like=looks_like, fps=options.sequence_fps, info=info,
                            on_frame=lambda i: on_frame and on_frame(i + 1, 2 * total))
    info = track.info
    predictor = GridPredictor(model, options.inference)
    if options.painted_frames:
        prepared = prepare_frame_paint(model, paint, frame_paints, options.paint, drive, track, predictor)
    opacity = fade_weights(track.found)
    layer, occlusion = prepared.layer, prepared.occlusion
    bounds = paint_bounds(layer)

    matte_writer: VideoWriter | None = None

    def finish(index: int, frame: Frame, grid: torch.Tensor | None, steady: Callable[[], torch.Tensor | None]) -> np.ndarray | Frame:
        canvas = np.zeros((frame.height, frame.width, 4), np.uint16 if encoding.deep else np.uint8) if options.layer_only else None
        box, visibility = track.crop_box(index), steady()
        if matte_writer is not None:
            matte = np.ones((frame.height, frame.width)) if visibility is None else visibility_matte(
                (frame.height, frame.width), box, grid, visibility)
            matte_writer.write(np.repeat(np.round(matte * 255).astype(np.uint8)[..., None], 3, axis=2), track.times[index])
        if grid is not None and opacity[index] > 0:
            faded = layer if opacity[index] == 1 else layer * opacity[index]
            if canvas is None:
                return composited(frame, box, grid, faded, bounds, visibility)
            paint_alone(canvas, box, grid, faded, bounds, visibility)
        return frame if canvas is None else canvas

    warnings = [warning] if warning else []
    with ExitStack() as outputs:
        partial = outputs.enter_context(atomic_output(out, force=options.force, numbers=numbers))
        writer = outputs.enter_context(VideoWriter(partial, fps=info.fps, width=info.width, height=info.height, encoding=encoding,
                                                   audio_from=None if is_sequence(drive) or chunk else drive,
                                                   first_number=info.first_number + (chunk.start if chunk else 0)))
        if options.matte is not None:
            matte_partial = outputs.enter_context(atomic_output(options.matte, force=options.force, numbers=numbers))
            matte_writer = outputs.enter_context(VideoWriter(matte_partial, fps=info.fps, width=info.width, height=info.height,
                                                             encoding=matte_encoding(options.matte),
                                                             first_number=info.first_number + (chunk.start if chunk else 0)))
        if (writer.width, writer.height) != (info.width, info.height):
            warnings.append(f"{info.width}x{info.height} is written as {writer.width}x{writer.height}: {encoding.codec} "
                            "needs even sizes (a png/tiff sequence keeps every pixel)")
        write_driven(predictor, track, drive, writer, finish,
                     seeing(occlusion, track, DrivingOptions(prepared.lock, chunk, options.overlap)),
                     on_frame=on_frame and (lambda index: on_frame(total + index + 1, 2 * total)))
    if looks_like is not None and track.person is not None and np.linalg.norm(track.person - looks_like) >= SAME_PERSON:
        warnings.append(f"nobody in {Path(drive).name} looks like the face the paint was made on: it follows face number "
                        f"{number} (--face picks another)")
    if track.info.frame_count < total:  # the header announces frames the file does not hold
        warnings.append(f"only {track.info.frame_count} of the {total} frames {Path(drive).name} announces could be decoded "
                        "(a truncated file?): the output has those")
    return RenderReport(frames=len(chunk) if chunk else track.info.frame_count, lost=track.lost_ranges(), warnings=tuple(warnings))


def frame_range(frames: tuple[int, int] | None, total: int) -> range | None:
    """The frames (first, last), inclusive, of a video of ``total`` frames, as a range;
    None for all of them."""
    if frames is None:
        return None
    first, last = frames
    if not 0 <= first <= last < total:
        raise X2FaceError(f"--frames {first}-{last}: the video has frames 0-{total - 1}")
    return range(first, last + 1)


def check_matte_output(matte: Path, out: str | Path, options: RenderOptions, numbers: range | None = None) -> None:
    """Refuse a ``--matte`` output that cannot be written beside ``out`` (an image sequence
    of the frames ``numbers``, where given), before any work."""
    if options.paint.occlusion == "off":
        raise X2FaceError("--matte is the occlusion matte: it needs --occlusion auto (with off nothing is hidden)")
    if Path(matte).resolve() == Path(out).resolve():
        raise X2FaceError(f"--matte {matte} is the output itself: name another file")
    check_video_output(matte, force=options.force, codec=matte_encoding(matte).codec, numbers=numbers)


def matte_encoding(matte: str | Path) -> Encoding:
    """ProRes in a .mov or .mkv (what compositors take a matte in), else what the suffix implies."""
    return choose_encoding(matte, codec="prores" if Path(matte).suffix.lower() in (".mov", ".mkv") else None)[0]
