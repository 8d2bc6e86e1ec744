"""A synthetic talking-head stand-in: the astronaut's face moving over a plain background.

For examples and tests that must make their own inputs. Needs scikit-image (the
``dev`` extra), which ships the picture.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from .video import VideoWriter


def astronaut_face(size: int = 160) -> np.ndarray:
    """The astronaut's head and shoulders, ``size`` x ``size`` RGB."""
    from skimage import data

    image = data.astronaut()
    return cv2.resize(image[0:240, 120:360], (size, size), interpolation=cv2.INTER_AREA)


def moving_face_motion(count: int, *, width: int = 320, height: int = 240, face_size: int = 160, seed: int = 0) -> list[np.ndarray]:
    """The 2x3 affine maps from the face picture to each of ``count`` frames: the face
    drifting, turning slightly in-plane and zooming. Motion is smooth (sinusoids with
    random phases from ``seed``) so a tracker can follow it; tests know where every point
    of the face is."""
    rng = np.random.default_rng(seed)
    phases = rng.uniform(0, 2 * math.pi, size=4)
    matrices = []
    for i in range(count):
        t = 2 * math.pi * i / max(count, 1)
        dx = 0.12 * width * math.sin(t + phases[0])
        dy = 0.06 * height * math.sin(2 * t + phases[1])
        angle = 8 * math.sin(t + phases[2])
        scale = 1 + 0.08 * math.sin(t + phases[3])
        matrix = cv2.getRotationMatrix2D((face_size / 2, face_size / 2), angle, scale)
        matrix[:, 2] += (width / 2 - face_size / 2 + dx, height / 2 - face_size / 2 + dy)
        matrices.append(matrix)
    return matrices


def moving_face_frames(count: int, *, width: int = 320, height: int = 240, face_size: int = 160, seed: int = 0) -> list[np.ndarray]:
    """``count`` frames of the face moving by ``moving_face_motion``, over a plain background."""
    face = astronaut_face(face_size)
    background = np.full((height, width, 3), (90, 110, 130), np.uint8)
    frames = []
    for matrix in moving_face_motion(count, width=width, height=height, face_size=face_size, seed=seed):
        frame = background.copy()
        cv2.warpAffine(face, matrix, (width, height), dst=frame, borderMode=cv2.BORDER_TRANSPARENT)
        frames.append(frame)
    return frames


def write_moving_face_video(path: str | Path, count: int = 50, *, fps: float = 25, seed: int = 0,
                            tone_hz: float | None = None, **frame_options) -> Path:
    """Write ``moving_face_frames`` to an H.264 video and return its path.

    With ``tone_hz`` the video gets an AAC sound track of that sine tone, as long as the video.
    """
    frames = moving_face_frames(count, seed=seed, **frame_options)
    height, width = frames[0].shape[:2]
    path = Path(path)
    if tone_hz is None:
        silent = path
    else:
        silent = path.with_name(f".{path.stem}.silent{path.suffix}")
        _write_tone(path.with_suffix(".m4a"), tone_hz, count / fps)
    with VideoWriter(silent, fps=fps, width=width, height=height,
                     audio_from=None if tone_hz is None else path.with_suffix(".m4a")) as writer:
        for frame in frames:
            writer.write(frame)
    if tone_hz is not None:
        silent.replace(path)
        path.with_suffix(".m4a").unlink()
    return path


def _write_tone(path: Path, hz: float, seconds: float, rate: int = 16000) -> None:
    import av

    samples = (0.3 * np.sin(2 * np.pi * hz * np.arange(round(seconds * rate)) / rate)).astype(np.float32)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        for start in range(0, len(samples), 1024):
            frame = av.AudioFrame.from_ndarray(samples[None, start : start + 1024], format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
