"""Driving grids through a video: each frame's tracked face cropped, the driving network
run on batches of crops, the grids corrected by the landmark lock, and a finished frame
written for every frame, decoding, the network and encoding overlapping in threads.
``render`` and ``reenact`` differ only in how they finish a frame.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from functools import cache
from itertools import takewhile
from pathlib import Path

import numpy as np
import torch

from .errors import X2FaceError
from .faces import LandmarkDetector, cells_in_frame, crop, to_crop_grid
from .lock import CORRECT_EVERY, Corrections, LandmarkLock, locked_grids, reach_frames
from .model.images import to_tensor
from .model.inference import GridPredictor
from .occlusion import STEADY_FRAMES, Occlusion, steadied
from .pipeline import InOrderWorker, opencv_in_one_thread, read_ahead
from .tracking import VideoTrack
from .video import Frame, VideoWriter, eight_bit, iter_frames, iter_frames_from

# Under an occluder dlib's landmarks are dragged with it (its shape model stretches the whole
# face, not only the points covered), and the lock pulls the warp after them. A frame the
# matte shows partly covered has its landmarks read instead on the frame with the covered part
# filled by the face as its driven grid, corrected as the frame before was, places it: a chain
# from the last clear frame (placed by the frame's own first-pass grid, which the occluder
# moved, the fill would lead dlib astray in turn). The chain starts anew every CHAIN_FRAMES
# frames, so that what a frame depends on is bounded, at the frames the lock's reach before a
# multiple of CHAIN_FRAMES: a render-farm chunk that starts at such a multiple (25, 50, 100
# frames a chunk) reads back no further than the lock needs (``considered_for``).
CHAIN_FRAMES = 25


@dataclass(frozen=True)
class RenderReport:
    frames: int
    lost: list[tuple[int, int]]  # inclusive frame ranges left untouched: no face tracked
    warnings: tuple[str, ...] = ()


def around(frame: Frame, box: np.ndarray, margin: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The 8-bit RGB pixels of ``frame`` within ``margin`` pixels of ``box`` (as much as
    the frame holds) and their top-left corner's (x, y) in the frame: all that a crop of
    the box, or dlib's landmarks of a face whose crop box it is, reads."""
    left, top = max(0, int(np.floor(box[0])) - margin), max(0, int(np.floor(box[1])) - margin)
    right, bottom = min(frame.width, int(np.ceil(box[2])) + margin), min(frame.height, int(np.ceil(box[3])) + margin)
    if right <= left or bottom <= top:  # a box beyond the frame: nothing of it to read
        return eight_bit(frame.rgb), np.zeros(2)
    return eight_bit(frame.pixels(slice(top, bottom), slice(left, right))), np.array([left, top], dtype=np.float64)


def face_crop(frame: Frame, box: np.ndarray, size: int) -> np.ndarray:
    """The ``size`` crop of ``box`` from ``frame`` (8-bit RGB, not to be changed), converting
    only what it reads (``around``); made once (``Frame.derived``): the network's crop is the
    matte's, and a frame's crops are all made before it is finished."""
    key = ("face crop", size, *np.asarray(box, dtype=np.float64).tolist())
    if (made := frame.derived.get(key)) is None:
        pixels, offset = around(frame, box)
        made = frame.derived[key] = crop(pixels, box - np.tile(offset, 2), size)
    return made


def locked_driving_grids(predictor: GridPredictor, track: VideoTrack, frames: Iterable[Frame],
                         lock: LandmarkLock | None) -> Iterator[tuple[int, Frame, torch.Tensor | None]]:
    """``driving_grids``, corrected by ``lock`` (None: the pure X2Face warp)."""
    items = driving_grids(predictor, track, frames)
    return items if lock is None else locked_grids(items, lock, _landmarks_of(track), cuts=track.cuts)


def _landmarks_of(track: VideoTrack) -> Callable[[int, Frame], np.ndarray]:
    """What gives frame ``index``'s landmarks of its followed face, in its crop's grid coordinates."""
    landmarks_in = _landmarks_in(track)

    def landmarks_of(index: int, frame: Frame) -> np.ndarray:
        return landmarks_in(index, *around(frame, track.crop_box(index)))

    return landmarks_of


def _landmarks_in(track: VideoTrack) -> Callable[[int, np.ndarray, np.ndarray], np.ndarray]:
    """What gives frame ``index``'s landmarks of its followed face, in its crop's grid
    coordinates, from the pixels around it and their offset in the frame (``around``)."""
    detector = LandmarkDetector()

    def landmarks_in(index: int, pixels: np.ndarray, offset: np.ndarray) -> np.ndarray:
        return to_crop_grid(detector(pixels, track.face_boxes[index] - np.tile(offset, 2)) + offset, track.crop_box(index))

    return landmarks_in


class _LandmarkChain:
    """Where a frame is partly covered, its landmarks read on the frame with the covered part
    filled as its driven grid, corrected as the frame before was, places the face
    (``CHAIN_FRAMES``); the correction they give is put in ``corrections`` for the second
    pass's lock. ``follow`` every frame in order."""

    def __init__(self, lock: LandmarkLock, track: VideoTrack, filled: Callable[..., tuple[np.ndarray, np.ndarray] | None],
                 corrections: Corrections) -> None:
        self.lock, self.filled, self.corrections = lock, filled, corrections
        self.landmarks_in = _landmarks_in(track)
        self.cuts = set(track.cuts)
        self.last: tuple[int, torch.Tensor | None, float] | None = None  # a frame's index, its correction and trust

    def follow(self, index: int, frame: Frame, locked: torch.Tensor | None, driven: torch.Tensor | None, more: tuple) -> None:
        """Frame ``index`` with its first pass's ``locked`` grid and the ``driven`` one the
        second pass corrects (None: the face is lost), and what the stage added."""
        last, self.last = self.last, None
        if locked is None or driven is None:
            return
        chained = last is not None and last[0] == index - 1 and not chain_starts_at(index) and index not in self.cuts

        def placed() -> torch.Tensor:
            return self.lock.apply(driven, last[1] * last[2]) if chained and last[1] is not None else locked

        if (view := self.filled(index, frame, locked, placed, *more)) is None:
            # In view: the first pass's correction, or between corrected frames the one before's.
            made = self.corrections.get(index, last[1:] if chained else None)
            self.last = None if made is None else (index, *made)
            return
        correction, trust = self.lock.correction(driven, self.landmarks_in(index, *view))
        if index % CORRECT_EVERY == 0:
            self.corrections[index] = correction, trust
        self.last = index, correction, trust

    def skip(self) -> None:
        """A frame not followed: the chain starts anew after it."""
        self.last = None


def redriven_grids(predictor: GridPredictor, track: VideoTrack, frames: Iterable[Frame], options: DrivingOptions,
                   considered: range | None = None) -> Iterator[tuple]:
    """``locked_driving_grids`` (corrected by ``options.lock``) through ``options.stage``
    (which adds what finishing a frame takes, reading ahead as far as its reach), with the
    frames ``options.refilled(index, frame, grid, *more)`` gives a face crop for (the covered
    part of the face replaced by what it looks like there) driven again on that crop and
    corrected by the lock again, the corrections of the others reused; only the frames in
    ``considered`` (all: None) are offered to ``refilled``. With ``options.filled(index,
    frame, grid, placed, *more)`` (the pixels around a partly covered frame's face, and their
    offset, with the covered part filled as the grid ``placed()`` carries the face; None where
    nothing covers it), those frames' landmarks are read there, through a chain of frames
    (``CHAIN_FRAMES``); with ``options.seen_again(index, frame, grid, *more)``, what finishing
    a frame takes is made anew for its final grid. The first pass runs in a thread of its own
    (``read_ahead``): its batches do not wait for the stage's work or for the second pass."""
    lock, stage, refilled, seen_again = options.lock, options.stage, options.refilled, options.seen_again
    landmarks_of = _landmarks_of(track)
    driven: dict[int, torch.Tensor | None] = {}
    corrections: Corrections = {}

    def remembered(items: Iterator[tuple[int, Frame, torch.Tensor | None]]) -> Iterator[tuple[int, Frame, torch.Tensor | None]]:
        for index, frame, grid in items:
            driven[index] = grid
            yield index, frame, grid

    first = remembered(driving_grids(predictor, track, frames))
    if lock is not None:
        first = locked_grids(first, lock, landmarks_of, cuts=track.cuts, made=corrections)
    chain = None if lock is None or options.filled is None else _LandmarkChain(lock, track, options.filled, corrections)

    def again() -> Iterator[tuple[int, tuple[Frame, tuple], torch.Tensor | None]]:
        with closing(read_ahead(stage(first))) as staged:
            for index, frame, grid, *more in staged:
                grid_in = driven.pop(index)
                offered = considered is None or index in considered
                if grid is not None and offered and (crop := refilled(index, frame, grid, *more)) is not None:
                    grid_in = predictor(to_tensor([crop]))[0]
                    corrections.pop(index, None)
                if chain is not None and offered:
                    chain.follow(index, frame, grid, grid_in, tuple(more))
                elif chain is not None:
                    chain.skip()
                yield index, (frame, tuple(more)), grid_in

    second = again()
    if lock is not None:
        second = locked_grids(second, lock, lambda index, packed: landmarks_of(index, packed[0]), cuts=track.cuts, known=corrections)
    for index, (frame, more), grid in second:
        yield index, frame, grid, *(more if seen_again is None else seen_again(index, frame, grid, *more))


def locked_grid_of(predictor: GridPredictor, track: VideoTrack, drive: str | Path, index: int,
                   lock: LandmarkLock | None) -> tuple[Frame, torch.Tensor]:
    """Frame ``index`` of ``drive`` and its driving grid as ``write_driven`` corrects it by
    ``lock``, from the frames around it that a whole run reads for it (``frames_read_for``)."""
    if not track.found[index]:
        raise X2FaceError(f"the face is not followed in frame {index} of {Path(drive).name}: paint on a frame where it is")
    read = frames_read_for(range(index, index + 1), predictor.batch)
    with closing(iter_frames_from(drive, read.start, track.times, fps=float(track.info.fps))) as decoded:
        around_it = takewhile(lambda f: f.index < read.stop, decoded)
        for number, frame, grid in locked_driving_grids(predictor, track, around_it, lock):
            if number == index and grid is not None:
                return frame, grid
    raise X2FaceError(f"{Path(drive).name} has no frame {index}")


def driving_grids(predictor: GridPredictor, track: VideoTrack,
                  frames: Iterable[Frame]) -> Iterator[tuple[int, Frame, torch.Tensor | None]]:
    """Each frame's index and the frame with the driving grid of its tracked face (None
    where the face is lost), the network run on batches of frames."""
    resolution = predictor.model.config.resolution
    pending: list[Frame] = []

    def flush() -> Iterator[tuple[int, Frame, torch.Tensor | None]]:
        tracked = [f for f in pending if track.found[f.index]]
        grids: dict[int, torch.Tensor] = {}
        if tracked:
            crops = to_tensor([face_crop(f, track.crop_box(f.index), resolution) for f in tracked])
            grids = dict(zip((f.index for f in tracked), predictor(crops)))
        yield from ((f.index, f, grids.get(f.index)) for f in pending)
        pending.clear()

    for frame in frames:
        pending.append(frame)
        if (frame.index + 1) % predictor.batch == 0:  # batches by frame number: a chunk's are the whole video's
            yield from flush()
    yield from flush()


@dataclass(frozen=True)
class DrivingOptions:
    """How ``write_driven`` drives: ``lock`` corrects each grid (None: the pure X2Face
    warp); ``frames``, where given, are the only ones written, each exactly as a whole run
    writes it (the network and the lock see the frames around them that a whole run's
    would: ``frames_read_for``); ``overlap`` runs decoding, the network, and finishing with
    encoding in three threads, else one after another (the same output, more slowly)."""

    lock: LandmarkLock | None = None
    frames: range | None = None
    overlap: bool = True
    # ``stage(items)``, where given, turns the (index, frame, grid) items into those finish
    # takes (index, frame, grid, *more), reading up to ``stage_reach`` frames ahead and behind.
    stage: Callable[[Iterator[tuple[int, Frame, torch.Tensor | None]]], Iterator[tuple]] | None = None
    stage_reach: int = 0
    # ``refilled(index, frame, grid, *more)``, where given with a stage, re-drives the frames
    # it gives a crop for (``redriven_grids``): a frame then depends on the lock's reach twice.
    refilled: Callable[..., np.ndarray | None] | None = None
    # ``filled(index, frame, grid, placed, *more)``, where given with ``refilled``, gives the
    # pixels a partly covered frame's landmarks are read on, the face placed by the grid
    # ``placed()`` gives (``redriven_grids``): a frame then depends on the frames back to where
    # the chain starts (``CHAIN_FRAMES``).
    filled: Callable[..., tuple[np.ndarray, np.ndarray] | None] | None = None
    # ``seen_again(index, frame, grid, *more)``, where given with ``refilled``, gives anew what
    # the stage added, for the grid the frame is finished with (``redriven_grids``).
    seen_again: Callable[..., tuple] | None = None


def write_driven(
    predictor: GridPredictor,
    track: VideoTrack,
    drive: str | Path,
    writer: VideoWriter,
    finish: Callable[..., np.ndarray | Frame],
    options: DrivingOptions = DrivingOptions(),
    *,
    on_frame: Callable[[int], None] | None = None,
) -> None:
    """Write ``finish(index, frame, grid)`` (RGB pixels, or the frame: ``VideoWriter.write``)
    for every frame of ``drive`` (or ``options.frames``) at that frame's time, ``grid``
    being its tracked face's driving grid (None where the face is lost), corrected by
    ``options.lock`` (and ``finish(index, frame, grid, *more)`` with what ``options.stage``
    adds); frames are decoded at 16 bits where the writer's encoding is deep."""
    frames, overlap = options.frames, options.overlap

    def finish_and_write(index: int, frame: Frame, grid: torch.Tensor | None, *more) -> None:
        if frames is not None and index not in frames:
            return
        writer.write(finish(index, frame, grid, *more), track.times[index])
        if on_frame:
            on_frame(index)

    decoded = iter_frames(drive, fps=float(track.info.fps), deep=writer.encoding.deep)
    if frames is not None:
        read = frames_read_for(considered_for(frames, options) if options.refilled else frames, predictor.batch, options.stage_reach)
        decoded = takewhile(lambda f: f.index < read.stop, iter_frames_from(drive, read.start, track.times, fps=float(track.info.fps),
                                                                           deep=writer.encoding.deep))

    if not overlap:
        for item in driven(predictor, track, decoded, options):
            finish_and_write(*item)
        return
    with closing(read_ahead(decoded)) as ahead, InOrderWorker() as worker, opencv_in_one_thread():
        for item in driven(predictor, track, ahead, options):
            worker.submit(finish_and_write, *item)


def driven(predictor: GridPredictor, track: VideoTrack, frames: Iterable[Frame],
           options: DrivingOptions = DrivingOptions()) -> Iterator[tuple]:
    """(index, frame, grid) for each of ``frames`` as ``options`` drives it (corrected by its
    lock; ``(index, frame, grid, *more)`` through its stage, frames driven again where it
    says): what ``write_driven`` finishes, all of them (not only ``options.frames``)."""
    if options.stage is not None and options.refilled is not None:
        considered = None if options.frames is None else considered_for(options.frames, options)
        return redriven_grids(predictor, track, frames, options, considered)
    grids = locked_driving_grids(predictor, track, frames, options.lock)
    return grids if options.stage is None else options.stage(grids)


def seeing(occlusion: Occlusion | None, track: VideoTrack, options: DrivingOptions = DrivingOptions()) -> DrivingOptions:
    """``options`` with a stage that adds to each item what gives its frame's visibility
    (``occlusion``'s of its face crop, steadied over time; None without occlusion or where
    the face is lost), and with the frames whose face is partly covered
    (``Occlusion.worth_redriving``) driven again on their crop refilled with the prediction
    (``Occlusion.refilled``): what covers the face then no longer moves the warp beside it.
    A partly covered frame's landmarks are read with the covered part filled
    (``Occlusion.filled_in_frame``, ``CHAIN_FRAMES``), and its visibility judged again on the
    grid it is finished with, the lesser of the two kept (``Occlusion.partly_covered``)."""
    def seen(index: int, frame: Frame, grid: torch.Tensor) -> torch.Tensor:
        box, size = track.crop_box(index), grid.shape[0]
        return occlusion.visibility(face_crop(frame, box, size), grid, cells_in_frame(box, size, frame.height, frame.width))

    def visibility_of(index: int, frame: Frame, grid: torch.Tensor | None) -> torch.Tensor | None:
        if grid is None or occlusion is None:
            return None
        return seen(index, frame, grid)

    steadying = replace(options, stage=lambda items: steadied(items, visibility_of, track.cuts), stage_reach=STEADY_FRAMES)
    if occlusion is None:
        return steadying

    def refilled(index: int, frame: Frame, grid: torch.Tensor, steady: Callable[[], torch.Tensor | None]) -> np.ndarray | None:
        if (visibility := steady()) is None or not occlusion.worth_redriving(grid, visibility):
            return None
        return occlusion.refilled(face_crop(frame, track.crop_box(index), grid.shape[0]), grid, visibility)

    def filled(index: int, frame: Frame, grid: torch.Tensor, placed: Callable[[], torch.Tensor],
               steady: Callable[[], torch.Tensor | None]) -> tuple[np.ndarray, np.ndarray] | None:
        if (visibility := steady()) is None or not occlusion.partly_covered(grid, visibility):
            return None
        box = track.crop_box(index)
        pixels, offset = around(frame, box)
        return occlusion.filled_in_frame(pixels, offset, box, face_crop(frame, box, grid.shape[0]), placed(), visibility), offset

    def seen_again(index: int, frame: Frame, grid: torch.Tensor | None, steady: Callable[[], torch.Tensor | None]) -> tuple:
        @cache
        def visibility() -> torch.Tensor | None:
            first = steady()
            if first is None or grid is None or not occlusion.partly_covered(grid, first):
                return first
            # Hidden where either judgement finds the face covered: judged on the final grid
            # alone, a hand the first judgement found is missed in some frames.
            return torch.minimum(first, seen(index, frame, grid))

        return (visibility,)

    return replace(steadying, refilled=refilled, filled=filled, seen_again=seen_again)


def considered_for(frames: range, options: DrivingOptions) -> range:
    """The frames a run that writes ``frames`` offers for a second drive: those whose second
    drive the written frames depend on, within the lock's reach of them, and, with
    ``options.filled``, back to where the landmark chain of the first of them starts; those
    beyond, read for the first pass's lock alone, need not be judged."""
    start = frames.start - reach_frames()
    if options.filled is not None and options.lock is not None:
        start -= frames.start % CHAIN_FRAMES  # back to the chain's start (``chain_starts_at``)
    return range(max(0, start), frames.stop + reach_frames())


def chain_starts_at(index: int) -> bool:
    """Whether the landmark chain starts anew at frame ``index`` (``CHAIN_FRAMES``)."""
    return (index + reach_frames()) % CHAIN_FRAMES == 0


def frames_read_for(frames: range, batch: int, stage_reach: int = 0) -> range:
    """The frames a run that writes ``frames`` reads: as far around them as the lock's
    smoothing reaches (``lock.reach_frames``), and a stage after it (``stage_reach``) beyond,
    from the start of the network's batch there."""
    reach = reach_frames() + stage_reach
    first = max(0, frames.start - reach)
    return range(first - first % batch, frames.stop + reach)
