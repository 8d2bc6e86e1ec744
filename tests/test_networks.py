import pytest
import torch

from x2face_edit.model.networks import (
    DRIVING_VECTOR_SIZE,
    ModelConfig,
    X2Face,
    count_parameters,
    identity_grid,
    sample,
)


def test_parameter_count_matches_the_paper_sized_model():
    # DESIGN.md: about 65 M at 256 / width 64, about 13 M for the half-width 128 model.
    assert count_parameters(X2Face(ModelConfig(256, 64))) == pytest.approx(65e6, rel=0.02)
    assert count_parameters(X2Face(ModelConfig(128, 32))) == pytest.approx(13e6, rel=0.03)


@pytest.mark.parametrize("resolution,width", [(64, 8), (128, 16)])
def test_shapes_of_every_part(resolution, width):
    model = X2Face(ModelConfig(resolution, width)).eval()
    frames = torch.rand(2, 3, resolution, resolution)
    with torch.no_grad():
        embedded = model.embed(frames)
        vector = model.driving_vector(frames)
        grid = model.decode(vector)
        generated = model.generate(embedded, grid)
        several = model.embed(torch.rand(2, 3, 3, resolution, resolution))
    assert embedded.shape == (2, 3, resolution, resolution)
    assert several.shape == (2, 3, resolution, resolution)
    assert vector.shape == (2, DRIVING_VECTOR_SIZE)
    assert grid.shape == (2, resolution, resolution, 2)
    assert generated.shape == (2, 3, resolution, resolution)
    assert torch.equal(generated, model(frames, frames))


def test_bad_configs_are_refused():
    with pytest.raises(ValueError):
        ModelConfig(resolution=200)
    with pytest.raises(ValueError):
        ModelConfig(width=0)


def _image_8bit(*shape):
    return torch.randint(0, 256, shape).float() / 255


def _as_8bit(image):
    return (image * 255).round().to(torch.uint8)


def test_identity_grid_reproduces_the_image_exactly():
    # Exact in 8-bit pixel values; float32 grid arithmetic leaves < 1e-5 of rounding.
    image = _image_8bit(1, 3, 32, 48)
    resampled = sample(image, identity_grid(32, 48))
    assert torch.equal(_as_8bit(resampled), _as_8bit(image))
    torch.testing.assert_close(resampled, image, rtol=0, atol=1e-5)


def _zero_last_layer(decoder):
    last_conv = decoder.levels[-1][-1]
    torch.nn.init.zeros_(last_conv.weight)


def test_zero_offsets_make_the_model_copy_its_input():
    model = X2Face(ModelConfig(64, 8)).eval()
    _zero_last_layer(model.embedding_decoder)
    _zero_last_layer(model.driving_decoder)
    source = _image_8bit(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(_as_8bit(model.embed(source)), _as_8bit(source))
        assert torch.equal(_as_8bit(model(source, torch.rand(1, 3, 64, 64))), _as_8bit(source))


def test_averaging_identical_embedded_faces_changes_nothing():
    model = X2Face(ModelConfig(64, 8)).eval()
    source = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        one = model.embed(source)
        two = model.embed(torch.stack([source, source], dim=1))
    torch.testing.assert_close(two, one, rtol=0, atol=1e-6)


def test_confidence_weights_the_average():
    model = X2Face(ModelConfig(64, 8)).eval()
    sources = torch.rand(1, 2, 3, 64, 64)
    with torch.no_grad():
        embedded, confidence = model.embed_each(sources)
        average = model.embed(sources)
    assert (confidence > 0.1 - 1e-6).all()
    expected = (embedded * confidence).sum(1) / confidence.sum(1)
    torch.testing.assert_close(average, expected)
    # The average lies between the two embedded faces, pixel by pixel.
    low, high = embedded.min(dim=1).values, embedded.max(dim=1).values
    assert ((average >= low - 1e-6) & (average <= high + 1e-6)).all()
