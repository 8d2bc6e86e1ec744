"""The embedded face of a video: the pose-free texture a user paints on.

``extract`` writes four files: ``face.png`` (the embedded face), ``face.edit.png`` (a
transparent layer of the same size to paint on, or to paint over ``face.png`` in an
editor), ``face.guide.png`` (the painting guide, ``guide.py``) and ``face.json`` (the
sidecar: video, frames, crop boxes and model, from which ``render`` rebuilds the
unpainted face to tell what was painted; and the landmarks the guide draws).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .embedding import choose_source_frames, embed
from .errors import X2FaceError
from .guide import draw_guide, save_guide, to_pixels
from .model import ModelInfo, X2Face
from .outputs import atomic_output, check_output
from .sidecar import Sidecar, SidecarModel, output_paths
from .tracking import VideoTrack
from .video import frames_at


@dataclass
class EmbeddedFace:
    image: np.ndarray  # (S, S, 3) uint8
    sidecar: Sidecar
    coverage: np.ndarray | None = None  # (S, S) uint8 mask: the part of the face the video's frames show


def extract(
    model: X2Face,
    model_info: ModelInfo,
    video: str | Path,
    track: VideoTrack,
    *,
    sources: int = 3,
    frames: list[int] | None = None,
    size: int = 512,
    face: int = 0,
) -> EmbeddedFace:
    """The embedded face of ``video`` from ``sources`` automatically chosen frames, or
    from the given ``frames``. ``model_info`` (path, fingerprint), ``face`` (which face
    ``track`` follows) and who that face is (``track.person``) go into the sidecar."""
    video = Path(video).resolve()
    if frames is None:
        decoded = choose_source_frames(model, video, track, sources)
        frames = sorted(decoded)
    else:
        for index in frames:
            if not 0 <= index < len(track.found):
                raise X2FaceError(f"frame {index} is outside {video.name} (0 to {len(track.found) - 1})")
            if not track.found[index]:
                raise X2FaceError(f"no face tracked in frame {index} of {video.name}")
        decoded = frames_at(video, frames, times=track.times[frames].tolist())
    boxes = [track.crop_box(i) for i in frames]
    sources = [decoded[i] for i in frames]
    embedding = embed(model, sources, boxes, size, coverage=True)
    sidecar = Sidecar(
        video=video, face=face, frames=list(frames), times=track.times[frames].tolist(),
        person=[round(float(v), 5) for v in track.person] if track.person is not None else None,
        crop_boxes=[[round(float(v), 3) for v in b] for b in boxes], size=size,
        model=SidecarModel(model_info, model.config.to_dict(), model.embedding_fingerprint()),
        landmarks=[[round(float(v), 2) for v in point] for point in to_pixels(embedding.landmarks.numpy(), size)],
    )
    return EmbeddedFace(embedding.image, sidecar, embedding.coverage)


def save(face: EmbeddedFace, face_png: str | Path, *, force: bool = False) -> tuple[Path, Path, Path, Path]:
    paths = output_paths(face_png)
    for path in paths:
        check_output(path, force=force)
    image_path, layer_path, guide_path, sidecar_path = paths
    with atomic_output(image_path, force=force) as partial:
        Image.fromarray(face.image).save(partial, format="PNG")
    with atomic_output(layer_path, force=force) as partial:
        Image.new("RGBA", face.image.shape[1::-1], (0, 0, 0, 0)).save(partial, format="PNG")
    with atomic_output(guide_path, force=force) as partial:
        save_guide(draw_guide(face.image.shape[0], np.array(face.sidecar.landmarks) / face.image.shape[0] * 2 - 1,
                              face.coverage), partial)
    with atomic_output(sidecar_path, force=force) as partial:
        partial.write_text(face.sidecar.to_json(sidecar_path.parent))
    return paths
