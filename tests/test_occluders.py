import torch

from x2face_edit.model.occluders import occluded


def _faces(count: int = 8, size: int = 64) -> torch.Tensor:
    """Smooth, distinct pictures: each a different colour ramp."""
    ramp = torch.linspace(0, 1, size)
    pictures = [torch.stack([ramp[None, :].expand(size, size) * (i + 1) / count,
                             ramp[:, None].expand(size, size),
                             torch.full((size, size), i / count)]) for i in range(count)]
    return torch.stack(pictures)


def test_occluders_cover_part_of_each_picture_and_leave_the_input_alone():
    faces = _faces()
    before = faces.clone()
    shown = occluded(faces, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(faces, before)
    assert shown.shape == faces.shape and shown.dtype == faces.dtype
    covered = ((shown - faces).abs().amax(dim=1) > 0.02).float().mean(dim=(1, 2))
    assert (covered > 0.005).all() and (covered < 0.7).all(), covered
    assert shown.min() >= 0 and shown.max() <= 1


def test_occluder_share_and_seed():
    faces = _faces(16)
    assert torch.equal(occluded(faces, 0.0, torch.Generator().manual_seed(0)), faces)
    half = occluded(faces, 0.5, torch.Generator().manual_seed(1))
    changed = int(((half - faces).abs().amax(dim=(1, 2, 3)) > 0).sum())
    assert 3 <= changed <= 13, changed
    assert torch.equal(half, occluded(faces, 0.5, torch.Generator().manual_seed(1)))
    assert not torch.equal(half, occluded(faces, 0.5, torch.Generator().manual_seed(2)))
