"""Following one face through every frame of a video, for editing and reenactment."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cached_property
from pathlib import Path

import av
import cv2
import dlib
import numpy as np

from . import faces, video
from .cache import input_fingerprint, remembered, source_fingerprint
from .errors import X2FaceError
from .faces import SMALLEST_FACE, FaceDescriber, FaceFollower, boxes_through, choose_person, link_people, voxceleb_box
from .outputs import atomic_output
from .pipeline import read_ahead
from .video import VideoInfo, iter_frames, probe, with_rgb

# Detection costs 25-60 times what landmark following does; following between detections
# every 5 frames tracks 3-4x faster with the same paint-tracking error (benchmarks/README.md, "Where the constants come from").
DETECT_EVERY = 5
# A face that leaves (hidden, out of view) and comes back is the same face if it looks the
# same (DESCRIBE_SECONDS), or, where it was not described, if it comes back near where it
# was within REJOIN_SECONDS; gaps up to FILL_SECONDS (missed detections) are bridged,
# longer ones are lost frames, where nothing is painted.
REJOIN_SECONDS = 10.0
FILL_SECONDS = 0.2
# A frame begins a new shot (a cut) where its 32x32 grey thumbnail differs from the frame
# before's by at least CUT_CHANGE levels (0-255) on average, and CUT_RATIO times the median
# change between its neighbours (fast motion changes every frame; benchmarks/README.md, "Where the constants come from").
CUT_CHANGE = 12.0
CUT_RATIO = 6.0
CUT_CONTEXT = 4  # frames on each side whose changes are the neighbours'
# Who a face is (dlib's descriptor, slow) is asked whenever faces appear or leave,
# at a change as large as a cut's, and at least this often: a face that returns is then
# known wherever and whenever it does.
DESCRIBE_SECONDS = 2.0
# Faces smaller than this in the copy searched are near the detector's limit and missed in
# some frames: the search moves to a larger copy.
COMFORTABLE_FACE = 1.5 * SMALLEST_FACE
# What an analysis computed by other code (this module, faces.py, video.py's decoding, and
# the libraries that detect, resize and decode) would differ by.
ANALYSIS_CODE = source_fingerprint([__file__, faces.__file__, video.__file__], dlib.__version__, cv2.__version__, av.__version__)


@dataclass(frozen=True)
class VideoTrack:
    """A video's facts and its followed face: ``face_boxes[i]`` is NaN where the face is
    lost; ``times[i]`` is frame i's presentation time in seconds (variable frame rates
    keep theirs)."""

    info: VideoInfo
    face_boxes: np.ndarray  # (frames, 4)
    times: np.ndarray  # (frames,)
    person: np.ndarray | None = None  # the followed face's mean descriptor (FaceDescriber)
    cuts: tuple[int, ...] = ()  # the frames that begin a new shot (shot_cuts)

    @cached_property
    def found(self) -> np.ndarray:
        """(frames,) bool: where the face is followed (made once: frames ask for it every
        time their box is wanted, and a long video's would cost as many passes over it)."""
        return ~np.isnan(self.face_boxes[:, 0])

    def crop_box(self, index: int) -> np.ndarray | None:
        """The VoxCeleb crop box of frame ``index``, or None where the face is lost."""
        return voxceleb_box(self.face_boxes[index]) if self.found[index] else None

    def lost_ranges(self) -> list[tuple[int, int]]:
        """Inclusive (first, last) frame ranges where the face is not tracked."""
        ranges, start = [], None
        for i, found in enumerate(self.found):
            if not found and start is None:
                start = i
            elif found and start is not None:
                ranges.append((start, i - 1))
                start = None
        if start is not None:
            ranges.append((start, len(self.found) - 1))
        return ranges


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """A frame's 32x32 grey thumbnail (float32), from every 8th pixel: cheap at any size."""
    return cv2.resize(cv2.cvtColor(np.ascontiguousarray(rgb[::8, ::8]), cv2.COLOR_RGB2GRAY), (32, 32),
                      interpolation=cv2.INTER_AREA).astype(np.float32)


def shot_cuts(changes: np.ndarray) -> list[int]:
    """The frames that begin a new shot, from ``changes[i]``: the mean absolute difference
    of frame i's thumbnail from frame i-1's (``changes[0]`` is 0)."""
    cuts = []
    for index in np.flatnonzero(changes >= CUT_CHANGE):
        neighbours = np.concatenate([changes[max(1, index - CUT_CONTEXT):index], changes[index + 1:index + 1 + CUT_CONTEXT]])
        if not len(neighbours) or changes[index] >= CUT_RATIO * float(np.median(neighbours)):
            cuts.append(int(index))
    return cuts


def analyse(path: str | Path, *, fps: float, detect_every: int, max_side: int,
            on_frame: Callable[[int], None] | None = None) -> tuple[list[np.ndarray], list[np.ndarray | None], np.ndarray, np.ndarray]:
    """One pass over a video's frames (at ``fps``, its rate), faces searched
    for in a copy at most ``max_side`` pixels long: each frame's face boxes (``FaceFollower``),
    their descriptors where described (else None), its time, and its thumbnail's change
    from the frame before (``shot_cuts``). Kept in the cache (``cache.remembered``): a
    video is analysed once for its `extract` and every `render` after."""
    key = (input_fingerprint(path), str(fps), str(detect_every), str(max_side), ANALYSIS_CODE)
    stored = remembered("analysis", key, lambda: _analysis_arrays(*_analyse(path, fps, detect_every, max_side, on_frame)))
    counts, described = stored["counts"], stored["described"]
    boxes = np.split(stored["boxes"], np.cumsum(counts)[:-1])
    described_boxes = np.split(stored["descriptors"], np.cumsum(np.where(described, counts, 0))[:-1])
    descriptors = [d if was else None for d, was in zip(described_boxes, described)]
    return boxes, descriptors, stored["times"], stored["changes"]


def _analysis_arrays(detections: list[np.ndarray], descriptors: list[np.ndarray | None], times: list[float],
                     changes: list[float]) -> dict[str, np.ndarray]:
    counts = np.array([len(boxes) for boxes in detections], dtype=np.int64)
    return {"counts": counts, "boxes": np.concatenate([np.zeros((0, 4)), *detections]),
            "described": np.array([d is not None for d in descriptors], dtype=bool),
            "descriptors": np.concatenate([np.zeros((0, 128)), *(d.reshape(-1, 128) for d in descriptors if d is not None)]),
            "times": np.array(times, dtype=np.float64), "changes": np.array(changes, dtype=np.float64)}


def _analyse(path: str | Path, fps: float, detect_every: int, max_side: int,
             on_frame: Callable[[int], None] | None) -> tuple[list[np.ndarray], list[np.ndarray | None], list[float], list[float]]:
    describe = FaceDescriber()
    follower = FaceFollower(detect_every, max_side=max_side)
    detections, descriptors, times, changes = [], [], [], []
    describe_every = max(1, round(DESCRIBE_SECONDS * fps))
    described_at, before, previous = -describe_every, 0, None
    with closing(read_ahead(with_rgb(iter_frames(path, fps=fps)))) as frames:
        for frame in frames:
            small = thumbnail(frame.rgb)
            changes.append(0.0 if previous is None else float(np.abs(small - previous).mean()))
            previous = small
            maybe_cut = changes[-1] >= CUT_CHANGE
            # Landmarks followed across a cut would box whatever lies where the face was.
            boxes, position = follower(frame.rgb, detect=maybe_cut), len(detections)
            due = len(boxes) > 0 and (len(boxes) != before or position - described_at >= describe_every or maybe_cut)
            descriptors.append(np.array([describe(frame.rgb, box) for box in boxes]) if due else None)
            described_at = position if due else described_at
            before = len(boxes)
            detections.append(boxes)
            times.append(frame.time)
            if on_frame:
                on_frame(frame.index)
    return detections, descriptors, times, changes


def track_video(
    path: str | Path,
    *,
    face: int = 0,
    looks_like: np.ndarray | None = None,
    smoothing: float = 2.0,
    detect_every: int = DETECT_EVERY,
    on_frame: Callable[[int], None] | None = None,
    fps: float | None = None,
    info: VideoInfo | None = None,
) -> VideoTrack:
    """Find faces in every frame and follow one person: the one who looks like the
    descriptor ``looks_like`` (a sidecar's), else the ``face``-th most prominent.

    Faces are detected every ``detect_every`` frames and followed by their landmarks in
    between; where no face is followed, every frame is searched until one returns. Faces
    are described (who they are) when faces appear or leave and every
    ``DESCRIBE_SECONDS``, so a face that returns is followed again wherever it returns.
    ``fps`` is an image sequence's frame rate; ``info`` its ``probe`` where already
    made. Raises ``X2FaceError`` if no face is found
    at all, even at full resolution.
    """
    info = info or probe(path, fps=fps)
    fps = float(info.fps)
    longest = max(info.width, info.height)
    # Faces are searched for on a copy at most 640 pixels wide. Where none is found there,
    # or faces near the detector's limit are found in under half the frames (a small face
    # in a wide shot, found in some frames and missed in others), the video is searched
    # again at the resolution that shows them comfortably large, up to full resolution.
    max_side = 640
    while True:
        detections, descriptors, times, changes = analyse(path, fps=fps, detect_every=detect_every, max_side=max_side,
                                                          on_frame=on_frame)
        max_fill = max(2, round(FILL_SECONDS * fps))
        cuts = shot_cuts(changes)
        people = link_people(detections, descriptors, max_gap=max(1, math.ceil(REJOIN_SECONDS * fps)), max_fill=max_fill,
                             cuts=cuts)
        person = choose_person(people, face=face, looks_like=looks_like)
        boxes = boxes_through(person, len(detections), max_fill=max_fill, smoothing=smoothing, cuts=cuts)
        track = VideoTrack(info=replace(info, frame_count=len(detections)), face_boxes=boxes, times=times,
                           person=None if person is None else person.descriptor, cuts=tuple(cuts))
        sides = (boxes[track.found, 2] - boxes[track.found, 0]) * min(1.0, max_side / longest)  # as searched
        found_well = len(sides) > 0 and (track.found.mean() >= 0.5 or np.median(sides) >= COMFORTABLE_FACE)
        if found_well or max_side >= longest:
            break
        # Below COMFORTABLE_FACE here (or none found): search where they are that large.
        max_side = min(longest, math.ceil(max_side * COMFORTABLE_FACE / float(np.median(sides))) if len(sides) else longest)
    if track.found.any():
        return track
    which = "no face" if face == 0 else f"no face number {face} (counting from 0)"
    raise X2FaceError(f"{which} found in {path} (searched at full resolution; dlib misses faces smaller than about "
                      f"{SMALLEST_FACE} pixels across)")


def save_track(track: VideoTrack, path: str | Path, *, face: int = 0, looks_like: np.ndarray | None = None,
               sources: DecodedFrames | None = None, force: bool = False) -> Path:
    """Write ``track`` (of ``track.info.path``, following the face chosen by ``face`` and
    ``looks_like``, as ``track_video`` was asked) to ``path`` (.npz), for renders on other
    machines to read instead of analysing the video again (``load_track``); with
    ``sources``, the decoded source frames of the embedded face they render, which every
    render would otherwise decode again (``load_sources``)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise X2FaceError(f"{path.name}: write the analysis as .npz")
    info = track.info
    facts = {"video": input_fingerprint(info.path), "code": ANALYSIS_CODE, "face": face,
             "info": {"width": info.width, "height": info.height, "fps": str(info.fps), "frame_count": info.frame_count,
                      "duration": info.duration, "audio_rate": info.audio_rate, "rotation": info.rotation,
                      "bit_depth": info.bit_depth, "first_number": info.first_number}}
    pixels = {}
    if sources is not None:
        facts["sources"] = {"video": input_fingerprint(sources.video), "frames": list(sources.frames)}
        pixels = {"source_pixels": np.stack(list(sources.frames.values()))}
    with atomic_output(path, force=force) as partial, open(partial, "wb") as file:
        np.savez_compressed(file, facts=np.array(json.dumps(facts)), face_boxes=track.face_boxes, times=track.times,
                            cuts=np.array(track.cuts, dtype=np.int64), person=np.zeros(0) if track.person is None else track.person,
                            looks_like=np.zeros(0) if looks_like is None else looks_like, **pixels)
    return path


@dataclass(frozen=True)
class DecodedFrames:
    """Frames of ``video`` decoded once, by index (8-bit RGB)."""

    video: Path
    frames: dict[int, np.ndarray]


def load_sources(path: str | Path, video: str | Path, frames: list[int]) -> DecodedFrames | None:
    """The source frames ``frames`` of ``video`` that ``save_track`` stored in the analysis at
    ``path``; None where it holds none, or others (another video, another embedded face)."""
    with np.load(path) as stored:
        facts = json.loads(str(stored["facts"]))
        held = facts.get("sources")
        if held is None or held["frames"] != list(frames) or held["video"] != input_fingerprint(video):
            return None
        return DecodedFrames(Path(video), dict(zip(frames, stored["source_pixels"])))


def load_track(path: str | Path, video: str | Path, *, face: int = 0, looks_like: np.ndarray | None = None) -> VideoTrack:
    """The track ``save_track`` wrote to ``path``, refused unless it was made of ``video``
    as it is now, by this version's analysis, following the face ``face`` and ``looks_like`` choose."""
    path = Path(path)
    try:
        with np.load(path) as stored:
            # Not the source frames it may hold: only load_sources decompresses those.
            arrays = {name: stored[name] for name in stored.files if name != "source_pixels"}
        facts = json.loads(str(arrays["facts"]))
    except (OSError, ValueError, KeyError):
        raise X2FaceError(f"not an analysis file: {path}") from None
    if facts["video"] != input_fingerprint(video):
        raise X2FaceError(f"{path.name} was made for another video (or {Path(video).name} changed since): run 'analyse' again")
    if facts["code"] != ANALYSIS_CODE:
        raise X2FaceError(f"{path.name} was made by another version of x2face-edit: run 'analyse' again")
    stored_look = arrays["looks_like"] if len(arrays["looks_like"]) else None
    same_look = (stored_look is None) == (looks_like is None) and (looks_like is None or np.allclose(stored_look, looks_like))
    if facts["face"] != face or not same_look:
        raise X2FaceError(f"{path.name} follows another face than this render would: run 'analyse' with the same "
                          "sidecar and --face")
    numbers = facts["info"]
    info = VideoInfo(path=Path(video), **{**numbers, "fps": Fraction(numbers["fps"])})
    return VideoTrack(info=info, face_boxes=arrays["face_boxes"], times=arrays["times"],
                      person=arrays["person"] if len(arrays["person"]) else None, cuts=tuple(int(c) for c in arrays["cuts"]))
