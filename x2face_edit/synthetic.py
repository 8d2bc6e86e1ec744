"""A synthetic talking-head stand-in: the astronaut's face moving over a plain background;
and copies of any video with a hand, a phone, a photo object, a strand of hair or a
microphone passing in front of the face.

For examples, tests and benchmarks that must make their own inputs. The astronaut needs
scikit-image (the ``dev`` extra), which ships the picture.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from .video import VideoWriter, iter_frames, probe


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


def iter_moving_face_frames(count: int, *, width: int = 320, height: int = 240, face_size: int = 160,
                            seed: int = 0) -> Iterator[np.ndarray]:
    """``count`` frames of the face moving by ``moving_face_motion``, over a plain
    background, made one at a time (a minute of 1080p would not fit in memory at once)."""
    face = astronaut_face(face_size)
    background = np.full((height, width, 3), (90, 110, 130), np.uint8)
    for matrix in moving_face_motion(count, width=width, height=height, face_size=face_size, seed=seed):
        frame = background.copy()
        cv2.warpAffine(face, matrix, (width, height), dst=frame, borderMode=cv2.BORDER_TRANSPARENT)
        yield frame


def moving_face_frames(count: int, **frame_options) -> list[np.ndarray]:
    """``iter_moving_face_frames`` as a list."""
    return list(iter_moving_face_frames(count, **frame_options))


def write_moving_face_video(path: str | Path, count: int = 50, *, fps: float = 25, seed: int = 0,
                            tone_hz: float | None = None, width: int = 320, height: int = 240, face_size: int = 160) -> Path:
    """Write ``iter_moving_face_frames`` to an H.264 video and return its path.

    With ``tone_hz`` the video gets an AAC sound track of that sine tone, as long as the video.
    """
    frames = iter_moving_face_frames(count, width=width, height=height, face_size=face_size, seed=seed)
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


# Hands and phones over the face: the tracker must keep following a face it partly cannot see.
OCCLUDERS = ("hand", "phone", "object", "strand", "microphone")
# The share of the clip (its middle) during which the occluder covers the face, and the
# frames it takes to slide in or out.
COVERED = (0.3, 0.7)
SLIDE_FRAMES = 8


def occluded_frames(frames: int) -> np.ndarray:
    """(frames,) bool: the frames in which the occluder covers part of the face."""
    first, last = (int(round(share * frames)) for share in COVERED)
    return (np.arange(frames) >= first) & (np.arange(frames) < last)


def _entry(frames: int) -> np.ndarray:
    """How far in the occluder is per frame: 0 (outside the face) to 1 (in place)."""
    covered = occluded_frames(frames)
    index = np.arange(frames)
    first, last = np.flatnonzero(covered)[[0, -1]]
    rising = np.clip((index - (first - SLIDE_FRAMES)) / SLIDE_FRAMES, 0, 1)
    falling = np.clip(((last + SLIDE_FRAMES) - index) / SLIDE_FRAMES, 0, 1)
    return np.minimum(rising, falling)


def _filled_boxes(face_boxes: np.ndarray) -> np.ndarray:
    """``face_boxes`` with unknown (NaN) frames taken from the nearest known one."""
    known = np.flatnonzero(~np.isnan(face_boxes[:, 0]))
    nearest = known[np.abs(np.arange(len(face_boxes))[:, None] - known[None, :]).argmin(axis=1)]
    return face_boxes[nearest]


def _occluder(shape: tuple[int, ...], kind: str, box: np.ndarray, entry: float, skin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The occluder's (H, W, 3) colour and (H, W) alpha in [0, 1] over a frame of ``shape``."""
    x0, y0, x1, y1 = box
    width, height = x1 - x0, y1 - y0
    # Off the face by its width when entry is 0, in place when 1.
    slide = (1 - entry) * 1.2 * width
    mask = np.zeros(shape[:2], np.uint8)
    if kind == "hand":
        # A skin-coloured palm over the mouth and chin from the viewer's left, fingers up the cheek.
        centre = (x0 + 0.25 * width - slide, y0 + 0.85 * height)
        shapes = [(centre, (0.32 * width, 0.24 * height), 15)]
        shapes += [((centre[0] + (0.05 + 0.1 * f) * width, centre[1] - 0.3 * height), (0.05 * width, 0.2 * height), -10)
                   for f in range(4)]
        for (cx, cy), (ax, ay), angle in shapes:
            cv2.ellipse(mask, (int(cx), int(cy)), (int(ax), int(ay)), angle, 0, 360, 255, -1, cv2.LINE_AA)
        shade = cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.03 * width)).astype(np.float32)[..., None] / 255
        colour = np.broadcast_to(skin * (0.8 + 0.25 * shade), (*shape[:2], 3))
    elif kind == "object":
        # A photo of a cup on a rounded card about an eye distance wide, slid across the
        # viewer's left cheek from the left.
        from skimage import data

        side = max(8, int(0.42 * width))
        left, top = int(x0 + 0.12 * width - slide), int(y0 + 0.45 * height)
        radius = max(2, side // 6)
        cv2.rectangle(mask, (left + radius, top), (left + side - radius, top + side), 255, -1)
        cv2.rectangle(mask, (left, top + radius), (left + side, top + side - radius), 255, -1)
        for cx, cy in ((left + radius, top + radius), (left + side - radius, top + radius), (left + radius, top + side - radius),
                       (left + side - radius, top + side - radius)):
            cv2.circle(mask, (cx, cy), radius, 255, -1, cv2.LINE_AA)
        photo = cv2.resize(data.coffee()[60:340, 160:440], (side + 1, side + 1), interpolation=cv2.INTER_AREA).astype(np.float32)
        colour = np.zeros((*shape[:2], 3), np.float32)
        rows, columns = slice(max(top, 0), min(top + side + 1, shape[0])), slice(max(left, 0), min(left + side + 1, shape[1]))
        if rows.start < rows.stop and columns.start < columns.stop:
            colour[rows, columns] = photo[rows.start - top : rows.stop - top, columns.start - left : columns.stop - left]
    elif kind == "strand":
        # A dark wavy strand of hair, 3 % of the face's width, falling from above the
        # forehead across the viewer's left eye to the cheek, swept in from the right.
        t = np.linspace(0, 1, 48)
        xs = x0 + (0.62 - 0.42 * t + 0.04 * np.sin(7 * t)) * width + slide
        ys = y0 + (-0.25 + 0.9 * t) * height
        points = np.round(np.stack([xs, ys], axis=1) * 4).astype(np.int32)  # 2 fractional bits
        cv2.polylines(mask, [points], False, 255, max(1, int(round(0.03 * width))), cv2.LINE_AA, shift=2)
        tone = np.array([52, 38, 30], np.float32) * (0.85 + 0.3 * np.sin(np.linspace(0, 40, shape[1], dtype=np.float32)))[:, None]
        colour = np.broadcast_to(tone[None], (*shape[:2], 3))
    elif kind == "microphone":
        # A microphone rising from below over the chin: a dark meshed ball on a handle.
        cx, cy = x0 + 0.5 * width, y0 + 1.12 * height + (1 - entry) * 1.2 * height
        radius = 0.2 * width
        cv2.rectangle(mask, (int(cx - 0.06 * width), int(cy)), (int(cx + 0.06 * width), shape[0]), 255, -1)
        cv2.circle(mask, (int(cx), int(cy)), int(radius), 255, -1, cv2.LINE_AA)
        rows, columns = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
        pitch = max(2.0, 0.04 * width)
        meshed = (np.abs(np.sin(np.pi * (columns + rows) / pitch)) < 0.35) | (np.abs(np.sin(np.pi * (columns - rows) / pitch)) < 0.35)
        colour = np.where(meshed[..., None], np.float32(110), np.float32(45)) * np.ones(3, np.float32)
        colour[rows > cy] = (25, 25, 28)
    else:
        # A dark phone held at the ear on the viewer's right, over the side of the cheek.
        left = int(x1 - 0.2 * width + slide)
        top, right, bottom = int(y0 + 0.15 * height), int(x1 + 0.2 * width + slide), int(y0 + 1.0 * height)
        colour = np.zeros((*shape[:2], 3), np.float32)
        border = max(1, int(0.02 * width))
        cv2.rectangle(colour, (left, top), (right, bottom), (28, 28, 32), -1)
        cv2.rectangle(colour, (left, top), (right, bottom), (90, 90, 96), border)
        cv2.rectangle(mask, (left, top), (right, bottom), 255, -1, cv2.LINE_AA)
        cv2.rectangle(mask, (left, top), (right, bottom), 255, border, cv2.LINE_AA)
    return colour, mask.astype(np.float32) / 255


def write_occluded_copy(video: str | Path, face_boxes: np.ndarray, kind: str, out: str | Path,
                        masks: list[np.ndarray] | None = None) -> Path:
    """Write ``video`` to ``out`` (frame for frame, same rate) with a ``kind`` occluder
    (``OCCLUDERS``) over the face in ``face_boxes`` (frames, 4; NaN where unknown, e.g. a
    track's), in the frames ``occluded_frames`` says and sliding in and out around them.
    Each frame's occluder mask (H, W bool: alpha over a half) is appended to ``masks``."""
    boxes = _filled_boxes(face_boxes)
    entry = _entry(len(face_boxes))
    info = probe(video)
    skin = None
    with VideoWriter(out, fps=info.fps, width=info.width, height=info.height) as writer:
        for frame in iter_frames(video):
            rgb = frame.rgb.copy()
            if skin is None:  # the face's own tone: the hardest hand to tell from the face
                x0, y0, x1, y1 = boxes[frame.index].astype(int)
                skin = np.median(rgb[max(y0, 0):y1, max(x0, 0):x1].reshape(-1, 3), axis=0).astype(np.float32)
            alpha = np.zeros(rgb.shape[:2], np.float32)
            if entry[frame.index] > 0:
                rgb, alpha = occluded_picture(rgb, kind, boxes[frame.index], skin, float(entry[frame.index]))
            if masks is not None:
                masks.append(alpha > 0.5)
            writer.write(rgb)
    return Path(out)


def occluded_picture(rgb: np.ndarray, kind: str, face_box: np.ndarray, skin: np.ndarray,
                     entry: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``rgb`` (H, W, 3 uint8) with a ``kind`` occluder over the face in ``face_box``
    (x0, y0, x1, y1), ``entry`` of the way in (1: in place), a hand of colour ``skin``;
    and the occluder's (H, W) alpha in [0, 1]."""
    colour, alpha = _occluder(rgb.shape, kind, face_box, entry, skin)
    return np.clip(rgb * (1 - alpha[..., None]) + colour * alpha[..., None], 0, 255).astype(np.uint8), alpha


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
