"""One frame of the footage to paint on: ``render --frame N`` carries paint made on it
through the whole video (``render.RenderOptions.painted_frames``)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from .errors import X2FaceError
from .outputs import atomic_output, check_output, frame_paths
from .video import frames_at, probe


def export_frame(video: str | Path, index: int, out: str | Path, *, sequence_fps: float | None = None,
                 force: bool = False) -> tuple[Path, Path]:
    """Write frame ``index`` of ``video`` (upright, at full resolution, counted as ``render``
    counts frames) to ``out`` and a transparent layer of its size beside it (``frame_paths``)."""
    paths = frame_paths(out)
    for path in paths:
        check_output(path, force=force, inputs=(video,))
    total = probe(video, fps=sequence_fps).frame_count
    if not 0 <= index < total:
        raise X2FaceError(f"{Path(video).name} has frames 0-{total - 1}, not {index}")
    rgb = frames_at(video, [index], fps=sequence_fps)[index]
    image_path, layer_path = paths
    with atomic_output(image_path, force=force) as partial:
        Image.fromarray(rgb).save(partial, format="PNG")
    with atomic_output(layer_path, force=force) as partial:
        Image.new("RGBA", rgb.shape[1::-1], (0, 0, 0, 0)).save(partial, format="PNG")
    return paths
