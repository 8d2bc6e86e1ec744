"""Reading videos with PyAV: stream facts and RGB frames with their exact times.

PyAV bundles FFmpeg's libraries, so no ffmpeg program needs to be installed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .errors import X2FaceError


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

    @property
    def has_audio(self) -> bool:
        return self.audio_rate is not None


@dataclass(frozen=True)
class Frame:
    index: int
    time: float
    rgb: np.ndarray  # (H, W, 3) uint8


@contextmanager
def open_video(path: str | Path) -> Iterator[av.container.InputContainer]:
    """Open ``path`` for reading, turning every way it can fail into one clear error."""
    path = Path(path)
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


def probe(path: str | Path) -> VideoInfo:
    """Stream facts of a video; the frame count is counted by demuxing when the container omits it."""
    with open_video(path) as container:
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
    rotation = _rotation(path)
    if rotation % 180:
        width, height = height, width
    return VideoInfo(path=Path(path), width=width, height=height, fps=Fraction(fps), frame_count=frame_count,
                     duration=duration, audio_rate=audio_rate, rotation=rotation)


def _rotation(path: str | Path) -> int:
    """The display rotation of a video's first frame, a multiple of 90 degrees."""
    with open_video(path) as container:
        try:
            frame = next(container.decode(container.streams.video[0]), None)
        except av.FFmpegError:
            return 0
        return round((frame.rotation if frame is not None else 0) / 90) * 90 % 360


def upright(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame's RGB pixels turned as its display matrix says they play."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = round(frame.rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=turns)) if turns else rgb


def iter_frames(path: str | Path, *, sample_fps: float | None = None) -> Iterator[Frame]:
    """Decode RGB frames in order, with their presentation times in seconds.

    With ``sample_fps`` only the first frame of each 1/sample_fps interval is yielded
    (frames are still numbered by their index in the whole video).
    """
    with open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        last_slot = -1
        decoded_any = False
        try:
            for index, frame in enumerate(container.decode(stream)):
                decoded_any = True
                time = float(frame.time) if frame.time is not None else index / fps
                if sample_fps is not None:
                    slot = math.floor(time * sample_fps + 1e-6)
                    if slot <= last_slot:
                        continue
                    last_slot = slot
                yield Frame(index=index, time=time, rgb=upright(frame))
        except av.FFmpegError as exc:
            raise X2FaceError(f"could not decode {path}: {exc}") from None
        if not decoded_any:
            raise X2FaceError(f"no frames in {path}")


def frames_at(path: str | Path, indices: list[int]) -> dict[int, np.ndarray]:
    """The RGB frames with the given indices (decoding up to the last one)."""
    wanted, found = set(indices), {}
    for frame in iter_frames(path):
        if frame.index in wanted:
            found[frame.index] = frame.rgb
            if len(found) == len(wanted):
                break
    missing = sorted(wanted - found.keys())
    if missing:
        raise X2FaceError(f"{path} has no frame {missing[0]}")
    return found


# Output frame times are kept to the tick of MPEG's 90 kHz clock.
TIME_BASE = Fraction(1, 90000)
# Audio codecs the MP4/MOV muxers take as they are; others are re-encoded to AAC there.
_MP4_AUDIO = {"aac", "mp3", "mp2", "ac3", "eac3", "alac", "opus", "flac"}


class VideoWriter:
    """Encode RGB frames to H.264 (yuv420p) at a fixed frame rate, optionally carrying
    over the audio of another file (usually the input video).

    x264's veryfast preset at CRF 16 encodes real 1280x720 footage 2.4x faster here than
    its default (medium, CRF 18) at the same quality (42.8 vs 42.9 dB PSNR, 10 % larger):
    at the default, encoding was the slowest stage of a render.

    The audio is copied packet for packet when the container accepts its codec, else
    re-encoded to AAC, and interleaved with the frames as they are written. Frame sizes
    are rounded down to even numbers, which yuv420p requires.
    """

    def __init__(self, path: str | Path, *, fps: Fraction | float, width: int, height: int,
                 audio_from: str | Path | None = None, crf: int = 16, preset: str = "veryfast") -> None:
        self.width, self.height = width - width % 2, height - height % 2
        self._fps = Fraction(fps).limit_denominator(1001)
        self._frames_written = 0
        self._first_time: float | None = None
        self._container = av.open(str(path), mode="w")
        self._stream = self._container.add_stream("libx264", rate=self._fps)
        # The encoder's clock too: at 1/fps, frames of a variable-rate video closer than the
        # average interval would share a timestamp.
        self._stream.time_base = self._stream.codec_context.time_base = TIME_BASE
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(crf), "preset": preset}
        self._audio = _AudioCarrier(audio_from, self._container) if audio_from is not None else None

    def write(self, rgb: np.ndarray, time: float | None = None) -> None:
        """Encode the next frame. ``time`` is its presentation time in seconds (the input
        frame's, so a variable frame rate stays as it was, in step with the sound);
        without, frames follow each other at the writer's fps."""
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[: self.height, : self.width]), format="rgb24")
        if time is None:
            time = self._frames_written / self._fps
        if self._first_time is None:
            self._first_time = time
        frame.pts = round((time - self._first_time) / TIME_BASE)
        frame.time_base = TIME_BASE
        self._container.mux(self._stream.encode(frame))
        self._frames_written += 1
        if self._audio is not None:
            self._audio.copy_until(time - self._first_time + 1 / self._fps)

    def close(self) -> None:
        self._container.mux(self._stream.encode())
        if self._audio is not None:
            self._audio.copy_until(None)
            self._audio.close()
        self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _AudioCarrier:
    """Copies (or re-encodes) the first audio stream of a file into an output container,
    timed relative to the file's first video frame."""

    def __init__(self, source: str | Path, output: av.container.OutputContainer) -> None:
        self._input = av.open(str(source), mode="r")
        self._output = output
        if not self._input.streams.audio:
            self._input.close()
            self._input = None
            return
        audio = self._input.streams.audio[0]
        video = self._input.streams.video
        self._start = float(video[0].start_time * video[0].time_base) if video and video[0].start_time is not None else 0.0
        self._time_base = audio.time_base
        self._copy = output.format.name.split(",")[0] not in ("mov", "mp4") or audio.codec_context.name in _MP4_AUDIO
        if self._copy:
            self._stream = output.add_stream_from_template(audio)
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
