"""The canonical embedded face: landmarks, template, correspondence and round-trip terms."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from x2face_edit.model import ModelConfig, X2Face
from x2face_edit.model.data import TrackPairs, load_tracks, track_landmarks
from x2face_edit.model.landmarks import MIRROR_INDEX, invert_grid, mirror_landmarks, sample_at, symmetric_template
from x2face_edit.model.losses import correspondence_losses, cycle_loss
from x2face_edit.model.metrics import frame_round_trip
from x2face_edit.model.networks import identity_grid
from x2face_edit.prepare import PrepareOptions, prepare

SIZE = 64


def affine_grid(matrix, shift, size=SIZE):
    """The (1, size, size, 2) grid p -> matrix @ p + shift."""
    return identity_grid(size, size) @ torch.tensor(matrix).T + torch.tensor(shift)


def inverse_affine(matrix, shift):
    inverse = np.linalg.inv(np.array(matrix))
    return inverse.tolist(), (-inverse @ np.array(shift)).tolist()


@pytest.fixture
def template():
    # A plausible face layout: 68 points inside the central part of the crop.
    points = torch.rand(68, 2, generator=torch.Generator().manual_seed(0)) * 0.8 - 0.4
    return torch.from_numpy(symmetric_template(points.numpy()))


def test_mirroring_swaps_sides_and_undoes_itself(template):
    assert MIRROR_INDEX[36] == 45 and MIRROR_INDEX[45] == 36 and MIRROR_INDEX[30] == 30
    points = torch.rand(68, 2)
    mirrored = mirror_landmarks(points)
    assert torch.equal(mirrored[36], torch.stack([-points[45, 0], points[45, 1]]))
    assert torch.equal(mirror_landmarks(mirrored), points)
    assert torch.allclose(mirror_landmarks(template), template)  # the template is symmetric


def test_correspondence_losses_vanish_for_the_true_warps_only(template):
    # The source is the embedded face under one affine map, the driving frame under another.
    source_matrix, source_shift = [[0.9, 0.1], [-0.05, 1.0]], [0.05, -0.03]
    driving_matrix, driving_shift = [[1.1, -0.1], [0.0, 0.95]], [-0.04, 0.02]
    embedding_grid = affine_grid(source_matrix, source_shift)  # embedded -> source position
    driving_grid = affine_grid(*inverse_affine(driving_matrix, driving_shift))  # driving -> embedded position
    source_landmarks = template @ torch.tensor(source_matrix).T + torch.tensor(source_shift)
    driving_landmarks = template @ torch.tensor(driving_matrix).T + torch.tensor(driving_shift)
    true = correspondence_losses(embedding_grid.unsqueeze(1), driving_grid, source_landmarks[None, None],
                                 driving_landmarks[None], template)
    identity = identity_grid(SIZE, SIZE)
    wrong = correspondence_losses(identity.unsqueeze(1), identity, source_landmarks[None, None], driving_landmarks[None], template)
    assert max(true) < 1e-6
    assert min(wrong) > 1e-3


def test_frames_without_landmarks_are_skipped(template):
    identity = identity_grid(SIZE, SIZE)
    missing = torch.full((1, 68, 2), float("nan"))
    driving_term, embedding_term = correspondence_losses(identity.unsqueeze(1), identity, missing[:, None], missing, template)
    assert driving_term.item() == 0 and embedding_term.item() == 0


def test_grid_inversion_finds_the_point_a_warp_takes_to_a_target():
    grid = affine_grid([[1.1, 0.1], [0.0, 0.9]], [0.05, -0.02])[0] + 0.02 * torch.sin(3 * identity_grid(SIZE, SIZE)[0].flip(-1))
    targets = torch.tensor([[0.1, 0.2], [-0.3, 0.4], [0.4, -0.3]])
    found = invert_grid(grid, targets)
    assert torch.allclose(sample_at(grid[None], found[None])[0], targets, atol=1e-4)


class FixedWarps(X2Face):
    """A model whose embedding and driving grids are given, whatever the frame."""

    def __init__(self, embedding_grid, driving_grid):
        super().__init__(ModelConfig(SIZE, 4))
        self.fixed_embedding, self.fixed_driving = embedding_grid, driving_grid

    def embedding_grid(self, frames):
        return self.fixed_embedding.expand(len(frames), -1, -1, -1), torch.ones(len(frames), 1, SIZE, SIZE)

    def decode(self, vector):
        return self.fixed_driving.expand(len(vector), -1, -1, -1)


def test_round_trip_is_zero_for_inverse_warps_and_large_for_a_shifted_one():
    matrix, shift = [[1.05, 0.05], [-0.05, 0.95]], [0.03, 0.02]
    embedding = affine_grid(matrix, shift)
    inverse = affine_grid(*inverse_affine(matrix, shift))
    frames = torch.rand(2, 3, SIZE, SIZE)
    assert frame_round_trip(FixedWarps(embedding, inverse), frames).max() < 1e-5
    shifted = frame_round_trip(FixedWarps(embedding, inverse + torch.tensor([0.05, 0.0])), frames)
    assert torch.allclose(shifted, torch.full_like(shifted, 0.05 * np.hypot(1.05, 0.05)), atol=1e-3)


def test_cycle_loss_is_zero_for_inverses_and_its_gradient_undoes_a_shift():
    matrix, shift = [[1.05, 0.0], [0.0, 0.95]], [0.02, 0.0]
    embedding = affine_grid(matrix, shift)
    inverse = affine_grid(*inverse_affine(matrix, shift))
    assert cycle_loss(embedding, inverse).item() < 1e-9
    offset = torch.tensor([0.06, -0.04], requires_grad=True)
    optimizer = torch.optim.SGD([offset], lr=0.02)
    for _ in range(100):
        optimizer.zero_grad()
        cycle_loss(embedding, inverse + offset).backward()
        optimizer.step()
    assert offset.detach().norm() < 0.01


def test_prepare_keeps_landmarks_and_adds_them_to_old_tracks(tmp_path, synthetic_video):
    prepare([synthetic_video], tmp_path, options=PrepareOptions(size=64, sample_fps=5))
    track_path = next(tmp_path.glob("*/track_*/track.json"))
    record = json.loads(track_path.read_text())
    landmarks = np.array(record["frames"][0]["landmarks"])
    assert landmarks.shape == (68, 2)
    # The eyes lie above the mouth, left eye left of the right one, inside the crop.
    assert landmarks[36, 0] < landmarks[45, 0] and landmarks[36:48, 1].mean() < landmarks[48:68, 1].mean()
    assert (landmarks > 0).all() and (landmarks < 64).all()
    # A track prepared before landmarks were kept gains them on a re-run; its crops stay.
    for frame in record["frames"]:
        del frame["landmarks"]
    track_path.write_text(json.dumps(record))
    crop = track_path.parent / record["frames"][0]["file"]
    stamp = crop.stat().st_mtime_ns
    prepare([synthetic_video], tmp_path, options=PrepareOptions(size=64, sample_fps=5))
    again = json.loads(track_path.read_text())
    assert np.allclose(again["frames"][0]["landmarks"], landmarks, atol=0.02)
    assert crop.stat().st_mtime_ns == stamp


def test_pairs_carry_landmarks_and_mirror_them_with_the_images(synthetic_tracks):
    tracks = load_tracks(synthetic_tracks)
    plain = TrackPairs(tracks, landmarks=True)
    flipped = TrackPairs(tracks, landmarks=True, mirror=1.0)
    torch.manual_seed(3)
    sources, driving, source_landmarks, driving_landmarks = plain[5]
    torch.manual_seed(3)
    mirrored_sources, mirrored_driving, mirrored_source_landmarks, mirrored_driving_landmarks = flipped[5]
    assert torch.equal(mirrored_driving, driving.flip(-1)) and torch.equal(mirrored_sources, sources.flip(-1))
    assert torch.allclose(mirrored_driving_landmarks, mirror_landmarks(driving_landmarks))
    assert torch.allclose(driving_landmarks, torch.from_numpy(track_landmarks(tracks[plain.index[5][0]])[plain.index[5][1]]))
    assert source_landmarks.shape == (1, 68, 2)


def _centroid(mask):
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean() + 0.5, ys.mean() + 0.5])


def _changed(a, b):
    """Where two images differ in brightness (not colour, which H.264 subsamples)."""
    luma = np.array([0.299, 0.587, 0.114])
    return np.abs(a.astype(float) @ luma - b.astype(float) @ luma) > 60


def test_extracted_image_and_render_share_one_coordinate_convention(tmp_path):
    """With warps that are exact inverses, a dot painted on the embedded face where a mark
    of the source frame shows lands on that mark in the source frame's own render: the
    512 px embedded face, the grids upsampled for it and for the frame agree to the sub-pixel."""
    import cv2

    from x2face_edit.extract import extract, save
    from x2face_edit.model import ModelInfo
    from x2face_edit.paint import Paint, PaintOptions
    from x2face_edit.render import RenderOptions, render
    from x2face_edit.synthetic import moving_face_frames
    from x2face_edit.tracking import track_video
    from x2face_edit.video import VideoWriter, iter_frames

    plain = moving_face_frames(1)[0]
    marked = cv2.circle(plain.copy(), (131, 147), 4, (255, 255, 255), -1)  # centre (131.5, 147.5) in continuous pixels
    videos = {}
    for name, frame in (("plain", plain), ("marked", marked)):
        videos[name] = tmp_path / f"{name}.mp4"
        with VideoWriter(videos[name], fps=25, width=frame.shape[1], height=frame.shape[0]) as writer:
            for _ in range(3):
                writer.write(frame)
    matrix, shift = [[0.9, 0.05], [-0.05, 1.1]], [0.04, -0.03]
    model = FixedWarps(affine_grid(matrix, shift), affine_grid(*inverse_affine(matrix, shift))).eval()
    info = ModelInfo("fixed", "")
    track = track_video(videos["plain"])
    faces = {name: extract(model, info, video, track, frames=[1], size=512) for name, video in videos.items()}
    mark = _centroid(_changed(faces["marked"].image, faces["plain"].image))
    _, layer_path, _, _ = save(faces["plain"], tmp_path / "face.png")
    layer = np.zeros((512, 512, 4), np.uint8)
    cv2.circle(layer, tuple(int(v) for v in np.round(mark * 16 - 8)), 6 * 16, (255, 255, 255, 255), -1, lineType=cv2.LINE_AA, shift=4)
    Image.fromarray(layer).save(layer_path)
    render(model, info, Paint(layer_path, faces["plain"].sidecar), videos["plain"], tmp_path / "out.mp4", RenderOptions(PaintOptions(lock="none")))
    original = [f.rgb for f in iter_frames(videos["plain"])][1]
    rendered = [f.rgb for f in iter_frames(tmp_path / "out.mp4")][1]
    landed = _centroid(_changed(rendered, original))
    assert np.linalg.norm(landed - [131.5, 147.5]) < 0.5, landed


def test_landmark_losses_lower_the_landmark_transfer_error_on_real_tracks(tmp_path, shared_clips):
    """The same short training with and without the correspondence losses: with them, the
    driving grid carries each frame's landmarks much closer to the template."""
    from x2face_edit.model import load_checkpoint
    from x2face_edit.model.train import TrainConfig, train

    tracks_dir = tmp_path / "tracks"
    prepare([shared_clips / "lipnet_bbaf2n.mpg", shared_clips / "pcavs_Input_00098.mp4"], tracks_dir,
            options=PrepareOptions(size=64, sample_fps=5))
    tracks = load_tracks(tracks_dir)
    landmarks = torch.from_numpy(np.concatenate([track_landmarks(t) for t in tracks]))
    template = torch.from_numpy(symmetric_template(landmarks.numpy()))
    frames = torch.cat([torch.stack([TrackPairs([t], size=SIZE)._frame(t, i) for i in range(len(t.frames))]) for t in tracks])
    errors = {}
    for weight in (0.0, 1.0):
        checkpoint = train(TrainConfig(tracks=str(tracks_dir), out_dir=str(tmp_path / f"run{weight}"), resolution=SIZE, width=8,
                                       batch_size=8, num_workers=0, progress=False, max_steps=60, optimizer="adam", lr=1e-3,
                                       landmark_weight=weight, cycle_weight=0.0, mirror=0.0, val_every=1000))
        model, _ = load_checkpoint(checkpoint)
        with torch.no_grad():
            carried = sample_at(model.decode(model.driving_vector(frames)), landmarks)
        errors[weight] = (carried - template).norm(dim=-1).mean().item()
    assert errors[1.0] < 0.6 * errors[0.0], errors
