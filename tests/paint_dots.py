"""Paint dots on an embedded face where landmarks lie, render, and find the dots in the
output: how well paint follows a face, end to end through extract, render and the encoder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from x2face_edit.embedding import locate_in_embedded_face, source_frames
from x2face_edit.extract import extract, save
from x2face_edit.faces import LandmarkDetector, to_crop_grid
from x2face_edit.model import ModelInfo, X2Face
from x2face_edit.paint import Paint, PaintOptions
from x2face_edit.render import RenderOptions, render
from x2face_edit.tracking import VideoTrack
from x2face_edit.video import iter_frames

# dlib 68-point indices: nose tip, outer corner of the eye on the image's left, mouth corner
# on the image's right; each painted in its own pure colour.
LANDMARKS = {"nose tip": 30, "eye corner": 36, "mouth corner": 54}
COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]])


@dataclass(frozen=True)
class TrackingError:
    errors: np.ndarray  # (frames, landmarks) pixel distances, NaN where a dot was not found
    face_sizes: np.ndarray  # (frames,) face box side in pixels

    @property
    def mean(self) -> float:
        return float(np.nanmean(self.errors))

    @property
    def max(self) -> float:
        return float(np.nanmax(self.errors))

    @property
    def mean_relative(self) -> float:
        """Mean error as a fraction of the face box side."""
        return float(np.nanmean(self.errors / self.face_sizes[:, None]))

    @property
    def found(self) -> float:
        return float(np.mean(~np.isnan(self.errors)))


def edit_tracking_error(model: X2Face, model_info: ModelInfo, video: Path, track: VideoTrack, work_dir: Path,
                        *, size: int = 512, dot_radius: float = 0.012, lock: str = "landmarks") -> TrackingError:
    """Paint a dot on each of ``LANDMARKS`` and measure where they land in every tracked frame."""
    face = extract(model, model_info, video, track, size=size)
    _, layer_path, _, _ = save(face, work_dir / "face.png", force=True)
    frames, boxes = source_frames(face.sidecar)
    landmarks = LandmarkDetector()
    source = face.sidecar.frames[0]
    points = to_crop_grid(landmarks(frames[0], track.face_boxes[source])[list(LANDMARKS.values())], boxes[0])
    dots = (locate_in_embedded_face(model, frames[:1], boxes[:1], [points]).numpy() + 1) / 2 * size
    layer = Image.open(layer_path)
    draw = ImageDraw.Draw(layer)
    radius = dot_radius * size
    for colour, (x, y) in zip(COLOURS, dots):
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(*colour.tolist(), 255))
    painted = work_dir / "dots.png"
    layer.save(painted)
    out = work_dir / "dots.mp4"
    render(model, model_info, Paint(painted, face.sidecar), video, out, RenderOptions(PaintOptions(lock=lock), force=True), track=track)

    errors, sizes = [], []
    for original, rendered in zip(iter_frames(video), iter_frames(out)):
        box = track.face_boxes[original.index]
        if np.isnan(box[0]):
            continue
        truth = landmarks(original.rgb, box)[list(LANDMARKS.values())]
        found = _dot_centres(original.rgb, rendered.rgb)
        errors.append(np.linalg.norm(found - truth, axis=1))
        sizes.append(box[2] - box[0])
    return TrackingError(np.array(errors), np.array(sizes))


def _dot_centres(original: np.ndarray, rendered: np.ndarray) -> np.ndarray:
    """(dots, 2) centres of the pure-colour dots painted into ``rendered``; NaN if absent."""
    height, width = original.shape[:2]
    rendered = rendered[:height, :width].astype(np.int32)
    changed = np.abs(rendered - original[: rendered.shape[0], : rendered.shape[1]]).max(axis=2) > 40
    dominant = rendered.argmax(axis=2)
    # A pure colour: its channel well above the other two.
    strength = rendered.max(axis=2) - np.sort(rendered, axis=2)[..., 1]
    centres = np.full((len(COLOURS), 2), np.nan)
    for number, colour in enumerate(COLOURS):
        ys, xs = np.nonzero(changed & (dominant == colour.argmax()) & (strength > 60))
        if len(xs):
            centres[number] = xs.mean() + 0.5, ys.mean() + 0.5
    return centres
