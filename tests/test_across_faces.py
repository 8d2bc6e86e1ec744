"""An edit painted on one person's embedded face, applied to another person's video."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from x2face_edit.errors import X2FaceError
from x2face_edit.model import ModelInfo
from x2face_edit.paint import Paint
from x2face_edit.sidecar import Sidecar, SidecarModel


def _sidecar(video: str, size: int) -> Sidecar:
    return Sidecar(video=Path(video), frames=[0], crop_boxes=[[0, 0, 100, 100]], size=size,
                   model=SidecarModel(ModelInfo("model.pt", ""), {}, None), landmarks=[])


def _dot_at(point: np.ndarray, size: int) -> np.ndarray:
    layer = np.zeros((size, size, 4), np.uint8)
    rows, columns = np.mgrid[:size, :size]
    layer[(columns + 0.5 - point[0]) ** 2 + (rows + 0.5 - point[1]) ** 2 < (size / 40) ** 2] = (255, 40, 40, 255)
    return layer


def _centre(layer) -> np.ndarray:
    alpha = layer[3].numpy()
    rows, columns = np.mgrid[: alpha.shape[0], : alpha.shape[1]]
    return np.array([(alpha * (columns + 0.5)).sum(), (alpha * (rows + 0.5)).sum()]) / alpha.sum()


def test_a_layer_painted_on_one_persons_face_applies_as_painted_to_anothers(tmp_path):
    """Embedded faces share one layout, so A's layer goes onto B's embedded face where it
    was painted, at B's size (A's is 256 pixels, B's 128)."""
    edited = tmp_path / "a.edit.png"
    Image.fromarray(_dot_at(np.array([100.0, 150.0]), 256)).save(edited)
    carried = Paint(edited, _sidecar("b.mp4", 128), painted_on=_sidecar("a.mp4", 256)).layer_on(np.zeros((128, 128, 3), np.uint8))
    assert carried.shape == (4, 128, 128)
    assert np.linalg.norm(_centre(carried) - [50, 75]) < 0.3
    assert abs(float(carried[3].sum()) - np.pi * (256 / 40) ** 2 / 4) < 0.1 * np.pi * (256 / 40) ** 2 / 4  # its area, a quarter


def test_a_painted_copy_of_another_face_asks_for_the_layer(tmp_path):
    copy = tmp_path / "a.png"
    Image.fromarray(np.full((256, 256, 3), 128, np.uint8)).save(copy)
    with pytest.raises(X2FaceError, match="paint layer"):
        Paint(copy, _sidecar("b.mp4", 256), painted_on=_sidecar("a.mp4", 256)).layer_on(np.zeros((256, 256, 3), np.uint8))


def test_render_applies_a_layer_through_another_persons_sidecar(tmp_path, extracted, painted_layer, tiny_model):
    from helpers import run

    from x2face_edit.synthetic import write_moving_face_video

    other = write_moving_face_video(tmp_path / "other.mp4", count=20, seed=3)
    assert run("extract", other, "-o", tmp_path / "other.png", "--model", tiny_model, "--size", "128").exit_code == 0
    folder = tmp_path / "painted"  # the layer beside the sidecar of the face it was painted on
    folder.mkdir()
    layer = folder / "face.edit.png"
    layer.write_bytes(painted_layer.read_bytes())
    (folder / "face.json").write_text(extracted.with_suffix(".json").read_text())
    paint = Paint.read(layer, tmp_path / "other.json")
    assert paint.painted_on is not None and paint.painted_on.video == paint.painted_on.video.parent / "talk.mp4"
    result = run("render", "--edited", layer, "--sidecar", tmp_path / "other.json", "--drive", other, "-o", tmp_path / "out.mp4",
                 "--model", tiny_model)
    assert result.exit_code == 0, result.output
    assert Paint.read(layer, layer.with_name("face.json")).painted_on is None  # its own sidecar: painted there
