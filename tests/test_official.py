"""import-official on checkpoints laid out as the X2Face release's state_dict."""

import pytest
import torch
from click.testing import CliRunner

from x2face_edit.cli import main
from x2face_edit.errors import X2FaceError
from x2face_edit.model import ModelConfig, X2Face, load_checkpoint
from x2face_edit.model.official import import_official

PREFIX = {"embedding": "pix2pixUnwrapped.netG.model.", "driving": "pix2pixSampler.netG.model."}


def release_state_dict(model: X2Face) -> dict:
    """Our weights under the release's names: nested 'submodule.' blocks, down/up halves."""
    levels = model.config.levels
    state = {}
    for key, tensor in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue  # as in checkpoints saved before PyTorch 0.4.1
        network_half, _, level, index, parameter = key.split(".")
        network, half = network_half.split("_")
        depth = int(level) if half == "encoder" else levels - 1 - int(level)
        name = f"{PREFIX[network]}{'submodule.' * depth}{'down' if half == 'encoder' else 'up'}.{index}.{parameter}"
        state[name] = tensor.clone()
    return state


@pytest.fixture
def release(tmp_path):
    torch.manual_seed(0)
    original = X2Face(ModelConfig(64, 8, original_release=True)).eval()
    for module in original.modules():  # non-trivial BatchNorm statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "x2face_model_forpython3.pth"
    torch.save(release_state_dict(original), path)
    return original, path


def test_the_release_layout_converts_to_the_same_network(release, tmp_path):
    original, path = release
    state = torch.load(path, weights_only=True)
    assert "pix2pixUnwrapped.netG.model.submodule.submodule.down.1.weight" in state
    assert "pix2pixSampler.netG.model.up.2.weight" in state
    converted = import_official(path)
    assert converted.config == ModelConfig(64, 8, original_release=True)
    frames = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(converted(frames, frames.flip(0)), original(frames, frames.flip(0)))

    out = tmp_path / "ours.pt"
    result = CliRunner().invoke(main, ["import-official", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    loaded, payload = load_checkpoint(out)
    assert loaded.config.original_release and payload["meta"]["stage"] == "released"


def test_release_conventions_differ_from_ours_as_documented():
    """align_corners=True grids: offsets shrink by (N-1)/N; the driving tanh is applied twice."""
    torch.manual_seed(0)
    ours = X2Face(ModelConfig(64, 8)).eval()
    release = X2Face(ModelConfig(64, 8, original_release=True)).eval()
    release.load_state_dict(ours.state_dict())
    vector = torch.randn(1, 128)
    with torch.no_grad():
        raw = ours.driving_decoder([vector.reshape(1, -1, 1, 1)])
        identity = ours.decode(vector) - torch.tanh(raw).permute(0, 2, 3, 1)
        expected = identity + torch.tanh(torch.tanh(raw)).permute(0, 2, 3, 1) * 63 / 64
        torch.testing.assert_close(release.decode(vector), expected)


def test_files_that_are_not_the_release_are_explained(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x80\x02 definitely not torch")
    with pytest.raises(X2FaceError, match="not a PyTorch file"):
        import_official(garbage)
    other = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, other)
    with pytest.raises(X2FaceError, match="not an X2Face release checkpoint"):
        import_official(other)
    pickled = tmp_path / "model.pth"
    torch.save(ModelConfig(), pickled)  # a whole pickled object rather than a state_dict
    with pytest.raises(X2FaceError, match="pickled Python objects"):
        import_official(pickled)
    partial = tmp_path / "partial.pth"
    state = release_state_dict(X2Face(ModelConfig(64, 8, original_release=True)))
    del state["pix2pixSampler.netG.model.submodule.down.2.weight"]
    torch.save(state, partial)
    with pytest.raises(X2FaceError, match="1 missing"):
        import_official(partial)
