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
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = frame_count / float(fps)
        audio = container.streams.audio
        return VideoInfo(
            path=Path(path),
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=Fraction(fps),
            frame_count=frame_count,
            duration=duration,
            audio_rate=audio[0].codec_context.sample_rate if audio else None,
        )


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
                yield Frame(index=index, time=time, rgb=frame.to_ndarray(format="rgb24"))
        except av.FFmpegError as exc:
            raise X2FaceError(f"could not decode {path}: {exc}") from None
        if not decoded_any:
            raise X2FaceError(f"no frames in {path}")


class VideoWriter:
    """Encode RGB frames to H.264 (yuv420p) at a fixed frame rate.

    Frame sizes are rounded down to even numbers, which yuv420p requires.
    """

    def __init__(self, path: str | Path, *, fps: Fraction | float, width: int, height: int, crf: int = 18) -> None:
        self.width, self.height = width - width % 2, height - height % 2
        self._container = av.open(str(path), mode="w")
        self._stream = self._container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(crf)}

    def write(self, rgb: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[: self.height, : self.width]), format="rgb24")
        self._container.mux(self._stream.encode(frame))

    def close(self) -> None:
        self._container.mux(self._stream.encode())
        self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
