"""Reading and writing videos (and image sequences) with PyAV: stream facts, RGB frames
with their exact times, and encoders chosen by codec and container.

PyAV bundles FFmpeg's libraries, so no ffmpeg program needs to be installed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .errors import X2FaceError
from .outputs import check_output
from .sequences import DEFAULT_SEQUENCE_FPS, find_sequence, is_sequence, is_sequence_output


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: Fraction
    frame_count: int
    duration: float
    audio_rate: int | None
    # Counter-clockwise degrees the stored pixels turn to play upright (a phone's display
    # matrix); width and height are the upright picture's, as frames are decoded upright.
    rotation: int = 0
    bit_depth: int = 8  # bits per colour sample as stored (10 for 10-bit video, 16 for 16-bit PNG)
    first_number: int = 0  # an image sequence's first frame number

    @property
    def has_audio(self) -> bool:
        return self.audio_rate is not None

    @property
    def deep(self) -> bool:
        """More than 8 bits per sample: frames are worth decoding and writing at 16 bits."""
        return self.bit_depth > 8


class Frame:
    """A decoded frame: its index, its presentation time in seconds, and its pixels,
    converted to RGB (upright; 16-bit when decoded ``deep``) only when asked for: whole
    (``rgb``) or a region (``pixels``). A 1080p frame's RGB conversion costs more than the
    crop and landmarks that render needs from around a face. Pixels changed with
    ``paste`` show in both, and ``VideoWriter.write`` re-encodes only them."""

    def __init__(self, index: int, time: float, decoded: av.VideoFrame, *, deep: bool = False) -> None:
        self.index, self.time = index, time
        self._decoded, self._deep = decoded, deep
        self._rgb: np.ndarray | None = None
        self._region: tuple[int, int, int, int, np.ndarray] | None = None  # top, bottom, left, right, RGB as decoded
        self._changes: list[tuple[slice, slice, np.ndarray, np.ndarray]] = []  # rows, columns, mask, RGB
        # What one stage derives from the pixels as decoded and another reuses (the face's crop,
        # made for the network and read again by the matte), keyed by what it was made of.
        self.derived: dict[tuple, np.ndarray] = {}
        turned = round(decoded.rotation / 90) % 2
        self.height, self.width = (decoded.width, decoded.height) if turned else (decoded.height, decoded.width)

    @property
    def rgb(self) -> np.ndarray:
        """(H, W, 3) uint8 pixels, or uint16 when decoded deep."""
        if self._rgb is None:
            self._rgb = upright(self._decoded, deep=self._deep)
            for rows, columns, mask, pixels in self._changes:
                self._rgb[rows, columns][mask] = pixels[mask]
        return self._rgb

    @property
    def picture(self) -> av.VideoFrame | None:
        """The decoded picture, where an encoder can take it back as it is (8-bit 4:2:0,
        even sides, stored upright), without the ``paste`` changes."""
        decoded = self._decoded
        passes = (not self._deep and decoded.format.name == "yuv420p" and decoded.width % 2 == 0
                  and decoded.height % 2 == 0 and round(decoded.rotation / 90) % 4 == 0)
        return decoded if passes else None

    def pixels(self, rows: slice, columns: slice) -> np.ndarray:
        """A copy of the RGB pixels of a region (slices with start and stop inside the
        frame): only that region is converted unless the whole frame already is, and a
        region inside the one converted last is cut from it."""
        picture = self.picture
        if self._rgb is not None or picture is None:
            return self.rgb[rows, columns].copy()
        if self._region is None or not (self._region[0] <= rows.start and rows.stop <= self._region[1]
                                        and self._region[2] <= columns.start and columns.stop <= self._region[3]):
            # 4:2:0 keeps one colour sample per 2x2 pixels: convert whole ones. The result is
            # the whole frame's conversion exactly (measured: swscale converts 2x2 blocks alone).
            top, bottom, left, right = _whole_blocks(rows, columns)
            planes = [_plane(plane, top // k, bottom // k, left // k, right // k)
                      for plane, k in zip(picture.planes, (1, 2, 2))]
            region = av.VideoFrame.from_ndarray(np.concatenate([p.reshape(-1) for p in planes]).reshape(-1, right - left),
                                                format="yuv420p")
            region.colorspace, region.color_range = picture.colorspace, picture.color_range
            self._region = (top, bottom, left, right, region.to_ndarray(format="rgb24"))
        top, _, left, _, rgb = self._region
        cut = rgb[rows.start - top : rows.stop - top, columns.start - left : columns.stop - left].copy()
        for changed_rows, changed_columns, mask, changed in self._changes:
            # The overlap of the change with the region cut, in each one's coordinates.
            first_row, last_row = max(rows.start, changed_rows.start), min(rows.stop, changed_rows.stop)
            first_column, last_column = max(columns.start, changed_columns.start), min(columns.stop, changed_columns.stop)
            if first_row < last_row and first_column < last_column:
                inside = (slice(first_row - changed_rows.start, last_row - changed_rows.start),
                          slice(first_column - changed_columns.start, last_column - changed_columns.start))
                target = cut[first_row - rows.start : last_row - rows.start, first_column - columns.start : last_column - columns.start]
                target[mask[inside]] = changed[inside][mask[inside]]
        return cut

    def paste(self, rows: slice, columns: slice, pixels: np.ndarray, mask: np.ndarray) -> None:
        """Change the RGB pixels of a region to ``pixels`` where ``mask`` is true."""
        self._changes.append((rows, columns, mask, pixels))
        if self._rgb is not None:
            self._rgb[rows, columns][mask] = pixels[mask]

    def changed_picture(self, canvas: av.VideoFrame | None = None) -> av.VideoFrame:
        """``picture`` with the ``paste`` changes: only their pixels converted back, in the
        picture's own colour space; every other pixel as decoded. Converting a 1080p frame
        to RGB and back cost more than x264's encoding of it here, and turned a BT.709
        video's colours as BT.601 (a mean 1.7 levels, up to 28). Written into ``canvas``
        (a yuv420p picture of the same size, reused from frame to frame: a fresh 1080p
        picture costs 1.5 ms to allocate, copying into one 0.4 ms) where given."""
        picture = self.picture
        if picture is None:
            raise ValueError("a frame without a picture an encoder takes (see picture)")
        if not self._changes:
            return picture
        result = canvas or av.VideoFrame(picture.width, picture.height, "yuv420p")
        result.make_writable()  # an encoder still holding it keeps its own copy
        targets = [_plane(plane, 0, picture.height // k, 0, picture.width // k) for plane, k in zip(result.planes, (1, 2, 2))]
        for source, target, k in zip(picture.planes, targets, (1, 2, 2)):
            target[:] = _plane(source, 0, picture.height // k, 0, picture.width // k)
        luma, *colours = targets
        for rows, columns, changed, _ in self._changes:
            # 4:2:0 keeps one colour sample per 2x2 pixels: convert whole ones.
            top, bottom, left, right = _whole_blocks(rows, columns)
            mask = np.zeros((bottom - top, right - left), bool)
            mask[rows.start - top : rows.stop - top, columns.start - left : columns.stop - left] = changed
            region = av.VideoFrame.from_ndarray(self.pixels(slice(top, bottom), slice(left, right)), format="rgb24")
            converted = _planes(region.reformat(format="yuv420p", dst_colorspace=picture.colorspace).to_ndarray(),
                                bottom - top, right - left)
            luma[top:bottom, left:right][mask] = converted[0][mask]
            colour_mask = mask.reshape(mask.shape[0] // 2, 2, mask.shape[1] // 2, 2).any(axis=(1, 3))
            for plane, new in zip(colours, converted[1:]):
                plane[top // 2 : bottom // 2, left // 2 : right // 2][colour_mask] = new[colour_mask]
        result.colorspace, result.color_range = picture.colorspace, picture.color_range
        result.color_primaries, result.color_trc = picture.color_primaries, picture.color_trc
        return result


def _whole_blocks(rows: slice, columns: slice) -> tuple[int, int, int, int]:
    """The region's top, bottom, left and right, widened to whole 2x2 blocks."""
    return (rows.start - rows.start % 2, rows.stop + rows.stop % 2, columns.start - columns.start % 2,
            columns.stop + columns.stop % 2)


def _plane(plane: av.video.plane.VideoPlane, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """A view of rows top:bottom and columns left:right of one plane of a picture."""
    return np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[top:bottom, left:right]


def _planes(i420: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y, U and V planes of an I420 array (PyAV's yuv420p ``to_ndarray``)."""
    flat = i420.reshape(-1)
    luma, quarter = height * width, height * width // 4
    return (flat[:luma].reshape(height, width), flat[luma : luma + quarter].reshape(height // 2, width // 2),
            flat[luma + quarter :].reshape(height // 2, width // 2))


def eight_bit(rgb: np.ndarray) -> np.ndarray:
    """An 8-bit copy of a frame decoded at 16 bits (detection and the network want 8)."""
    return rgb if rgb.dtype == np.uint8 else (rgb >> 8).astype(np.uint8)


@contextmanager
def open_video(path: str | Path, *, fps: float | None = None, skip: int = 0) -> Iterator[av.container.InputContainer]:
    """Open ``path`` for reading, turning every way it can fail into one clear error.

    ``path`` may be an image sequence (``shot_%05d.png`` or a folder of numbered frames),
    played at ``fps`` (default ``DEFAULT_SEQUENCE_FPS``), entered ``skip`` frames after its
    first (its frames' times then start from 0 there).
    """
    path = Path(path)
    if is_sequence(path):
        sequence = find_sequence(path)
        options = {"framerate": str(fps or DEFAULT_SEQUENCE_FPS), "start_number": str(sequence.start + skip)}
        try:
            container = av.open(sequence.pattern, mode="r", format="image2", options=options)
        except av.FFmpegError as exc:
            raise X2FaceError(f"cannot read the sequence {path} ({exc.__class__.__name__})") from None
        try:
            yield container
        finally:
            container.close()
        return
    if not path.exists():
        raise X2FaceError(f"no such file: {path}")
    if not path.is_file():
        raise X2FaceError(f"not a file: {path}")
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise X2FaceError(f"not a video file: {path} ({exc.__class__.__name__})") from None
    try:
        if not container.streams.video:
            raise X2FaceError(f"no video stream in {path}")
        yield container
    finally:
        container.close()


def probe(path: str | Path, *, fps: float | None = None) -> VideoInfo:
    """Stream facts of a video (or image sequence, at ``fps``); the frame count is counted
    by demuxing when the container omits it."""
    with open_video(path, fps=fps) as container:
        stream = container.streams.video[0]
        fps = stream.average_rate or stream.guessed_rate or Fraction(25)
        frame_count = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
        if frame_count == 0:
            raise X2FaceError(f"no frames in {path}")
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = frame_count / float(fps)
        audio = container.streams.audio
        audio_rate = audio[0].codec_context.sample_rate if audio else None
        width, height = stream.codec_context.width, stream.codec_context.height
        stored = stream.codec_context.format
        bit_depth = max((c.bits for c in stored.components), default=8) if stored is not None else 8
    rotation = 0 if is_sequence(path) else _rotation(path)
    if rotation % 180:
        width, height = height, width
    return VideoInfo(path=Path(path), width=width, height=height, fps=Fraction(fps), frame_count=frame_count,
                     duration=duration, audio_rate=audio_rate, rotation=rotation, bit_depth=bit_depth,
                     first_number=find_sequence(path).start if is_sequence(path) else 0)


def _rotation(path: str | Path) -> int:
    """The display rotation of a video file's first frame, a multiple of 90 degrees."""
    with open_video(path) as container:
        try:
            frame = next(container.decode(container.streams.video[0]), None)
        except av.FFmpegError:
            return 0
        return round((frame.rotation if frame is not None else 0) / 90) * 90 % 360


def upright(frame: av.VideoFrame, *, deep: bool = False) -> np.ndarray:
    """A decoded frame's RGB pixels (16-bit with ``deep``) turned as its display matrix says they play."""
    rgb = frame.to_ndarray(format="rgb48le" if deep else "rgb24")
    turns = round(frame.rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=turns)) if turns else rgb


def iter_frames(path: str | Path, *, sample_fps: float | None = None, fps: float | None = None,
                deep: bool = False, skip: int = 0) -> Iterator[Frame]:
    """Decode RGB frames in order, with their presentation times in seconds.

    With ``sample_fps`` only the first frame of each 1/sample_fps interval is yielded
    (frames are still numbered by their index in the whole video). ``fps`` is an image
    sequence's frame rate; ``deep`` decodes 16 bits per sample instead of 8. ``skip``
    enters an image sequence that many files after its first, reading none before (its
    frames numbered and timed as from the first).
    """
    with open_video(path, fps=fps, skip=skip) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        last_slot = -1
        decoded_any = False
        try:
            for index, frame in enumerate(container.decode(stream), start=skip):
                decoded_any = True
                # The pts counts from the file entered at: skip more from the first.
                time = float((frame.pts + skip) * frame.time_base) if frame.time is not None else index / fps
                if sample_fps is not None:
                    slot = math.floor(time * sample_fps + 1e-6)
                    if slot <= last_slot:
                        continue
                    last_slot = slot
                yield Frame(index, time, frame, deep=deep)
        except av.FFmpegError as exc:
            raise X2FaceError(f"could not decode {path}: {exc}") from None
        if not decoded_any:
            raise X2FaceError(f"no frames in {path}")


def iter_frames_from(path: str | Path, first: int, times: Sequence[float], *, fps: float | None = None,
                     deep: bool = False) -> Iterator[Frame]:
    """``iter_frames`` from frame ``first`` on, ``times`` being every frame's time as
    ``iter_frames`` gives it (a track's): an image sequence is entered at that frame's
    file, a video file at the keyframe before that frame (``REORDER_SLACK`` early) instead
    of being decoded from its start, each frame numbered by its time. Where that cannot be
    done (no times or no index, two frames at one time, a seek past the frame), it is
    decoded from the start."""
    if first > 0 and is_sequence(path):
        yield from iter_frames(path, fps=fps, deep=deep, skip=first)
        return
    numbered = {float(time): index for index, time in enumerate(times)}
    if first > 0 and len(numbered) == len(times):
        with open_video(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if stream.time_base is not None and any(e.is_keyframe for e in stream.index_entries):
                entry = max(0.0, float(times[first]) - REORDER_SLACK)
                container.seek(round(entry / stream.time_base), stream=stream, backward=True, any_frame=False)
                started = False
                try:
                    for frame in container.decode(stream):
                        index = None if frame.time is None else numbered.get(float(frame.time))
                        if index is None or (not started and index > first):
                            if started:
                                raise X2FaceError(f"{path}: frame at {frame.time} s is not in its analysis (the video changed?)")
                            break
                        started = started or index >= first
                        if started:
                            yield Frame(index, float(frame.time), frame, deep=deep)
                    else:
                        return
                except av.FFmpegError as exc:
                    raise X2FaceError(f"could not decode {path}: {exc}") from None
    yield from (frame for frame in iter_frames(path, fps=fps, deep=deep) if frame.index >= first)


def with_rgb(frames: Iterable[Frame]) -> Iterator[Frame]:
    """``frames``, each converted to RGB whole as it passes (in the thread iterating: a
    ``pipeline.read_ahead`` producer converts beside the consumer's work)."""
    for frame in frames:
        frame.rgb  # noqa: B018 - converts and keeps it
        yield frame


def frames_at(path: str | Path, indices: list[int], *, fps: float | None = None,
              times: list[float] | None = None) -> dict[int, np.ndarray]:
    """The RGB frames with the given indices; ``fps`` is an image sequence's frame rate.

    With ``times`` (each frame's presentation time, as ``iter_frames`` gave it: a track's
    ``times``), a video file is entered at the keyframe before each frame rather than
    decoded from its start up to the last one (``_frames_by_time``): render wants three
    frames of a long video, which may lie near its end. A frame is taken only where its
    time is the one given; where that cannot be done (or two frames share a time), the
    video is decoded from its start."""
    by_time = dict(zip(times or [], indices))
    if times is not None and len(by_time) == len(set(indices)) and not is_sequence(path):
        with open_video(path) as container:
            try:
                found = _frames_by_time(container, by_time)
            except av.FFmpegError:
                found = None
        if found is not None:
            return found
    wanted, found = set(indices), {}
    for frame in iter_frames(path, fps=fps):
        if frame.index in wanted:
            found[frame.index] = frame.rgb
            if len(found) == len(wanted):
                break
    missing = sorted(wanted - found.keys())
    if missing:
        raise X2FaceError(f"{path} has no frame {missing[0]}")
    return found


# A container's index holds decoding times, which run ahead of presentation by the frames a
# decoder holds back (x264: up to 17). A keyframe counts as presented before a frame where
# its decoding time is this many seconds earlier, so that a seek does not land a group early.
REORDER_SLACK = 1.0


def _frames_by_time(container: av.container.InputContainer, wanted: dict[float, int]) -> dict[int, np.ndarray] | None:
    """The frames presented at the times ``wanted`` maps to their indices: the decoder
    seeks to the keyframe before each frame, or decodes on from the frame before where the
    container's index has no keyframe between them. None where the index has no keyframes,
    or a frame is not found."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    keyframes = [float(entry.timestamp * stream.time_base) for entry in stream.index_entries
                 if entry.is_keyframe and not entry.is_discard] if stream.time_base is not None else []
    if not keyframes:
        return None
    found: dict[int, np.ndarray] = {}
    decoded, position = None, -math.inf  # the frames being decoded on, and the last one's time
    for time, index in sorted(wanted.items()):
        if index in found:
            continue
        entered = decoded is None or any(position < key <= time - REORDER_SLACK for key in keyframes)
        if entered:
            container.seek(round(time / stream.time_base), stream=stream, backward=True, any_frame=False)
            decoded = container.decode(stream)
        for frame in decoded:
            if frame.time is None or (entered and float(frame.time) > time):
                return None  # no times to go by, or the seek went past it
            position, entered = float(frame.time), False
            if position in wanted and wanted[position] not in found:
                found[wanted[position]] = Frame(wanted[position], position, frame).rgb
            if position >= time:
                break
        if index not in found:
            return None
    return found


# Output frame times are kept to the tick of MPEG's 90 kHz clock.
TIME_BASE = Fraction(1, 90000)
# Audio codecs the MP4/MOV muxers take as they are; others are re-encoded to AAC there.
_MP4_AUDIO = {"aac", "mp3", "mp2", "ac3", "eac3", "alac", "opus", "flac"}
# WebM takes only these; others are re-encoded to Opus.
_WEBM_AUDIO = {"opus", "vorbis"}


@dataclass(frozen=True)
class Codec:
    """An encoder, the output suffixes it may go in, and its pixel format for each
    (alpha, deep) need; a missing key is a need it cannot meet."""

    encoder: str
    suffixes: tuple[str, ...]
    formats: dict[tuple[bool, bool], str]
    crf: int | None = None  # its default constant-quality level; None: no --crf (fixed-quality or lossless)
    options: dict[str, str] | None = None


_FILMS = (".mp4", ".mov", ".mkv", ".m4v")
CODECS = {
    "h264": Codec("libx264", _FILMS, {(False, False): "yuv420p", (False, True): "yuv420p10le"}, crf=16,
                  options={"preset": "veryfast"}),
    # x265's CRF 20 looks like x264's 16 at about two thirds of the size.
    "h265": Codec("libx265", _FILMS, {(False, False): "yuv420p", (False, True): "yuv420p10le"}, crf=20,
                  options={"preset": "veryfast", "x265-params": "log-level=error"}),
    # ProRes is 10-bit in every profile: 422 HQ for pictures, 4444 for pictures with alpha.
    "prores": Codec("prores_ks", (".mov", ".mkv"), {(False, False): "yuv422p10le", (False, True): "yuv422p10le",
                                                    (True, False): "yuva444p10le", (True, True): "yuva444p10le"}),
    "vp9": Codec("libvpx-vp9", (".webm", ".mkv"), {(False, False): "yuv420p", (True, False): "yuva420p"}, crf=30,
                 options={"row-mt": "1", "deadline": "realtime", "cpu-used": "8"}),
    "png": Codec("png", (".png",), {(False, False): "rgb24", (False, True): "rgb48be", (True, False): "rgba", (True, True): "rgba64be"}),
    "tiff": Codec("tiff", (".tif", ".tiff"), {(False, False): "rgb24", (False, True): "rgb48le", (True, False): "rgba", (True, True): "rgba64le"}),
}
# What an output suffix means when no codec is named (with alpha, the first that has it).
_DEFAULT_CODECS = {".webm": ("vp9",), ".png": ("png",), ".tif": ("tiff",), ".tiff": ("tiff",), ".mov": ("h264", "prores")}


@dataclass(frozen=True)
class Encoding:
    """How an output is encoded: the codec, its quality, and whether it keeps an alpha
    channel and more than 8 bits."""

    codec: str = "h264"
    crf: int | None = 16
    alpha: bool = False
    deep: bool = False

    @property
    def pixel_format(self) -> str:
        return CODECS[self.codec].formats[(self.alpha, self.deep)]

    @property
    def input_format(self) -> str:
        """The RGB layout frames are handed over in."""
        return {(False, False): "rgb24", (False, True): "rgb48le", (True, False): "rgba", (True, True): "rgba64le"}[(self.alpha, self.deep)]


def choose_encoding(path: str | Path, *, codec: str | None = None, crf: int | None = None, alpha: bool = False,
                    deep: bool = False) -> tuple[Encoding, str | None]:
    """The encoding of an output at ``path``, checked before any work: the ``codec`` (by
    default what the suffix implies) must fit the suffix, take ``crf`` and, with
    ``alpha``, hold transparency. ``deep`` (a high-bit-depth input) is kept where the codec
    can; otherwise the second value is a one-line warning that it is not."""
    suffix = Path(path).suffix.lower()
    sequence = is_sequence_output(path)
    if sequence and not is_sequence(path):
        raise X2FaceError(f"{Path(path).name}: write an image sequence as a numbered pattern, e.g. "
                          f"{Path(path).stem}_%05d{Path(path).suffix}")
    known = sorted({s for c in CODECS.values() for s in c.suffixes})
    if suffix not in known:
        raise X2FaceError(f"{Path(path).name}: write the output as {', '.join(known)}")
    if codec is None:
        candidates = _DEFAULT_CODECS.get(suffix, ("h264",))
        codec = next((c for c in candidates if not alpha or (True, False) in CODECS[c].formats), candidates[0])
    if codec not in CODECS:
        raise X2FaceError(f"unknown codec {codec}: choose from {', '.join(CODECS)}")
    chosen = CODECS[codec]
    if suffix not in chosen.suffixes:
        raise X2FaceError(f"{codec} does not go in {suffix} files: use {', '.join(chosen.suffixes)}")
    if alpha and (True, False) not in chosen.formats:
        holders = [f"{name} ({', '.join(c.suffixes)})" for name, c in CODECS.items() if (True, False) in c.formats]
        raise X2FaceError(f"{codec} in {suffix} has no alpha channel: a layer needs {', '.join(holders)}")
    if crf is not None and chosen.crf is None:
        raise X2FaceError(f"--crf does not apply to {codec} (fixed quality or lossless)")
    warning = None
    if deep and (alpha, True) not in chosen.formats:
        deep_codecs = [name for name, c in CODECS.items() if (alpha, True) in c.formats]
        warning = f"the input has more than 8 bits per sample; {codec} writes 8 (for more: {', '.join(deep_codecs)})"
        deep = False
    return Encoding(codec=codec, crf=chosen.crf if crf is None else crf, alpha=alpha, deep=deep), warning


def check_video_output(path: str | Path, *, force: bool, inputs: Iterable[str | Path] = (), codec: str | None = None,
                       crf: int | None = None, alpha: bool = False, deep: bool = False,
                       numbers: range | None = None) -> tuple[Encoding, str | None]:
    """``check_output`` for a video or image sequence (of the frames ``numbers``, where
    given), whose suffix, ``codec``, ``crf`` and ``alpha`` must go together
    (``choose_encoding``); the encoding and its warning."""
    chosen = choose_encoding(path, codec=codec, crf=crf, alpha=alpha, deep=deep)
    check_output(path, force=force, inputs=inputs, numbers=numbers)
    return chosen


class VideoWriter:
    """Encode RGB frames (RGBA with an alpha encoding; 16-bit for a deep one) as the
    ``encoding`` says (by default, what the suffix implies), optionally carrying over the audio of another file (usually the
    input video). A path with a %d pattern and an image suffix writes an image sequence,
    numbered from ``first_number`` (sequences carry no sound).

    H.264 is encoded with x264's veryfast preset at CRF 16: as good as its default and much
    faster (benchmarks/README.md, "Where the constants come from").

    Every audio stream is copied packet for packet when the container accepts its codec, else
    re-encoded (AAC in MP4/MOV, Opus in WebM), and interleaved with the frames as they are
    written. Frame sizes are rounded down to even numbers where the pixel format
    subsamples colour.
    """

    def __init__(self, path: str | Path, *, fps: Fraction | float, width: int, height: int,
                 audio_from: str | Path | None = None, encoding: Encoding | None = None, first_number: int = 0) -> None:
        encoding = encoding or choose_encoding(path)[0]
        codec = CODECS[encoding.codec]
        subsampled = av.VideoFormat(encoding.pixel_format).chroma_width(2) < 2
        self.width, self.height = (width - width % 2, height - height % 2) if subsampled else (width, height)
        self.encoding = encoding
        self._fps = Fraction(fps).limit_denominator(1001)
        self._frames_written = 0
        self._first_time: float | None = None
        self._canvas: av.VideoFrame | None = None  # what changed pictures are written into
        sequence = is_sequence_output(path)
        self._container = av.open(str(path), mode="w", format="image2" if sequence else None,
                                  options={"start_number": str(first_number)} if sequence else None)
        self._stream = self._container.add_stream(codec.encoder, rate=self._fps)
        # The encoder's clock too: at 1/fps, frames of a variable-rate video closer than the
        # average interval would share a timestamp.
        self._stream.time_base = self._stream.codec_context.time_base = TIME_BASE
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = encoding.pixel_format
        options = dict(codec.options or {})
        if encoding.crf is not None:
            options["crf"] = str(encoding.crf)
        if encoding.codec == "vp9":
            self._stream.bit_rate = 0  # constant quality: CRF alone decides
        if encoding.codec == "prores":
            options["profile"] = "4" if encoding.alpha else "3"  # 4444 with alpha, else 422 HQ
        self._stream.options = options
        self._audio = _audio_carriers(audio_from, self._container) if audio_from is not None and not sequence else []

    def write(self, pixels: np.ndarray | Frame, time: float | None = None) -> None:
        """Encode the next frame: RGB pixels, or a decoded ``Frame`` (with its ``paste``
        changes), whose picture goes to the encoder as it is where it has the encoder's
        pixel format and size. ``time`` is its presentation time in seconds (the input
        frame's, so a variable frame rate stays as it was, in step with the sound);
        without, frames follow each other at the writer's fps."""
        picture = pixels.picture if isinstance(pixels, Frame) else None
        if picture is not None and (picture.format.name, picture.width, picture.height) == (self._stream.pix_fmt, self.width, self.height):
            if self._canvas is None:
                self._canvas = av.VideoFrame(picture.width, picture.height, "yuv420p")
            frame = pixels.changed_picture(self._canvas)
            if not self._frames_written:  # the output is in the input's colour space: say which
                context = self._stream.codec_context
                context.colorspace, context.color_range = picture.colorspace, picture.color_range
                context.color_primaries, context.color_trc = picture.color_primaries, picture.color_trc
        else:
            frame = self._from_rgb(pixels.rgb if isinstance(pixels, Frame) else pixels)
        if time is None:
            time = self._frames_written / self._fps
        if self._first_time is None:
            self._first_time = time
        frame.pts = round((time - self._first_time) / TIME_BASE)
        frame.time_base = TIME_BASE
        self._container.mux(self._stream.encode(frame))
        self._frames_written += 1
        for carrier in self._audio:
            carrier.copy_until(time - self._first_time + 1 / self._fps)

    def _from_rgb(self, rgb: np.ndarray) -> av.VideoFrame:
        pixels = np.ascontiguousarray(rgb[: self.height, : self.width])
        if pixels.dtype == np.uint8 and self.encoding.deep:
            pixels = pixels.astype(np.uint16) * 257  # 255 -> 65535
        elif pixels.dtype != np.uint8 and not self.encoding.deep:
            pixels = eight_bit(pixels)
        frame = av.VideoFrame.from_ndarray(pixels, format=self.encoding.input_format)
        # Converted here, not by the encoder: PyAV's conversion inside encode() gave x264
        # different pictures from the same pixels now and then (2 of 20 encodes on a busy
        # machine); this one is the same every time (benchmarks/README.md, "Repeatable renders").
        return frame if frame.format.name == self._stream.pix_fmt else frame.reformat(format=self._stream.pix_fmt)

    def close(self) -> None:
        self._container.mux(self._stream.encode())
        for carrier in self._audio:
            carrier.copy_until(None)
            carrier.close()
        self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _audio_carriers(source: str | Path, output: av.container.OutputContainer) -> list[_AudioCarrier]:
    """One carrier for each audio stream of ``source`` (a second language, a commentary
    track: none is dropped)."""
    with av.open(str(source), mode="r") as container:
        count = len(container.streams.audio)
    return [_AudioCarrier(source, output, index) for index in range(count)]


class _AudioCarrier:
    """Copies (or re-encodes) one audio stream of a file into an output container, timed
    relative to the file's first video frame."""

    def __init__(self, source: str | Path, output: av.container.OutputContainer, index: int = 0) -> None:
        self._input = av.open(str(source), mode="r")
        self._output = output
        audio = self._input.streams.audio[index]
        video = self._input.streams.video
        self._start = float(video[0].start_time * video[0].time_base) if video and video[0].start_time is not None else 0.0
        self._time_base = audio.time_base
        muxer = output.format.name.split(",")[0]
        accepted = {"mov": _MP4_AUDIO, "mp4": _MP4_AUDIO, "webm": _WEBM_AUDIO}.get(muxer)
        self._copy = accepted is None or audio.codec_context.name in accepted
        if self._copy:
            self._stream = output.add_stream_from_template(audio)
        elif muxer == "webm":  # Opus runs at 48 kHz
            self._stream = output.add_stream("libopus", rate=48000)
            self._resampler = av.AudioResampler(format="s16", layout=audio.layout.name, rate=48000, frame_size=960)
        else:
            self._stream = output.add_stream("aac", rate=audio.codec_context.sample_rate)
            self._resampler = av.AudioResampler(format="fltp", layout=audio.layout.name, rate=audio.codec_context.sample_rate, frame_size=1024)
        self._packets = self._input.demux(audio)
        self._pending: av.Packet | None = None

    def copy_until(self, until: float | None) -> None:
        """Write the audio up to ``until`` seconds of output time (all of it for None)."""
        while self._input is not None:
            packet = self._pending or next(self._packets, None)
            self._pending = None
            if packet is None:
                if not self._copy:
                    self._encode(None)
                self.close()
                return
            if packet.pts is None:
                continue
            time = float(packet.pts * self._time_base) - self._start
            if time < 0:
                continue
            if until is not None and time > until:
                self._pending = packet
                return
            if self._copy:
                shift = round(self._start / self._time_base)
                packet.pts -= shift
                packet.dts = packet.pts if packet.dts is None else packet.dts - shift
                packet.stream = self._stream
                self._output.mux(packet)
            else:
                for frame in packet.decode():
                    self._encode(frame)

    def _encode(self, frame: av.AudioFrame | None) -> None:
        for resampled in self._resampler.resample(frame):
            self._output.mux(self._stream.encode(resampled))
        if frame is None:
            self._output.mux(self._stream.encode(None))

    def close(self) -> None:
        if self._input is not None:
            self._input.close()
            self._input = None
