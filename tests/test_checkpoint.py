import pytest
import torch
from click.testing import CliRunner

from x2face_edit.cli import main
from x2face_edit.model import CheckpointError, ModelConfig, X2Face, load_checkpoint, save_checkpoint


def test_round_trip_rebuilds_the_same_model(tmp_path):
    model = X2Face(ModelConfig(64, 8)).eval()
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, meta={"step": 7})
    loaded, payload = load_checkpoint(path)
    frames = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(frames, frames.flip(0)), model(frames, frames.flip(0)))
    assert loaded.config == ModelConfig(64, 8)
    assert payload["meta"]["step"] == 7
    # Loadable without unpickling arbitrary objects.
    assert torch.load(path, weights_only=True)["config"] == {"resolution": 64, "width": 8, "original_release": False,
                                                                   "landmark_template": None}


def test_half_precision_storage_is_smaller_and_close(tmp_path):
    model = X2Face(ModelConfig(64, 8)).eval()
    save_checkpoint(tmp_path / "full.pt", model)
    save_checkpoint(tmp_path / "half.pt", model, dtype=torch.float16)
    assert (tmp_path / "half.pt").stat().st_size < 0.6 * (tmp_path / "full.pt").stat().st_size
    loaded, _ = load_checkpoint(tmp_path / "half.pt")
    frames = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(frames, frames), model(frames, frames), rtol=0, atol=2e-2)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x00garbage that is not a checkpoint" * 10, "not a readable checkpoint"),
        (None, "not an x2face-edit checkpoint"),
    ],
)
def test_bad_files_give_a_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    if content is None:
        torch.save({"weights": torch.zeros(3)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_truncated_checkpoint_gives_a_clear_error(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, X2Face(ModelConfig(64, 8)))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nothing.pt")


def test_command_line_reports_a_corrupt_checkpoint_in_one_line(tmp_path, synthetic_tracks):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    result = CliRunner().invoke(main, ["train", str(synthetic_tracks), "--init", str(bad), "-o", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "not a readable checkpoint" in lines[0]
