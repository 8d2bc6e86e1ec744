"""The landmark lock, temporal smoothing, fades, and faces that leave and return."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from x2face_edit.faces import FaceDetector, LandmarkDetector, boxes_through, choose_person, link_people, to_crop_grid, voxceleb_box
from x2face_edit.lock import LandmarkLock, locked_grids, thin_plate_field
from x2face_edit.model.landmarks import sample_at, symmetric_template
from x2face_edit.model.networks import identity_grid
from x2face_edit.paint import fade_weights
from x2face_edit.synthetic import astronaut_face

SIZE = 64


@pytest.fixture(scope="module")
def template():
    """A real face's layout: the astronaut's landmarks in her VoxCeleb crop, made symmetric."""
    face = astronaut_face()
    face_box = FaceDetector().detect(face)[0]
    points = to_crop_grid(LandmarkDetector()(face, face_box), voxceleb_box(face_box))
    return torch.from_numpy(symmetric_template(points))


def carried(grid, landmarks):
    return sample_at(grid[None], torch.as_tensor(landmarks)[None])[0]


def test_thin_plate_field_reproduces_a_smooth_correction():
    points = torch.rand(30, 2) * 1.2 - 0.6
    field = thin_plate_field(points, points @ torch.tensor([[0.02, 0.01], [0.0, -0.03]]) + 0.01, size=SIZE)
    expected = identity_grid(SIZE, SIZE)[0] @ torch.tensor([[0.02, 0.01], [0.0, -0.03]]) + 0.01
    assert torch.allclose(field, expected, atol=1e-4)  # an affine correction is reproduced everywhere


def test_lock_puts_landmarks_where_they_lie_on_the_embedded_face(template):
    lock = LandmarkLock(template)
    # The warp is off by a shift; the landmarks are where the true (identity) warp puts the template.
    grid = identity_grid(SIZE, SIZE)[0] + torch.tensor([0.05, -0.03])
    landmarks = template.numpy()
    correction, trust = lock.correction(grid, landmarks)
    assert trust == 1.0
    corrected = lock.apply(grid, correction)
    assert (carried(grid, landmarks) - template).norm(dim=1).mean() > 0.05
    assert (carried(corrected, landmarks) - template).norm(dim=1).max() < 0.003
    # Far from every landmark the correction fades out, leaving X2Face's own warp: there the
    # spline would only extrapolate dlib's errors.
    corner = torch.tensor([[0.95, 0.95]])
    assert (carried(corrected, corner) - carried(grid, corner)).norm() < 0.002
    # Unfaded, it shifts the whole crop, between and beyond the landmarks (cheeks, forehead).
    unfaded = LandmarkLock(template, reach=math.inf)
    everywhere = unfaded.apply(grid, unfaded.correction(grid, landmarks)[0])
    elsewhere = torch.tensor([[0.0, -0.6], [0.35, 0.1], [-0.35, 0.1], [0.95, 0.95]])
    assert (carried(everywhere, elsewhere) - elsewhere).norm(dim=1).max() < 0.003


def test_landmarks_far_from_the_warp_are_rejected(template):
    lock = LandmarkLock(template)
    grid = identity_grid(SIZE, SIZE)[0]
    occluded = template.numpy().copy()
    occluded[:40] += 0.4  # a hand over half the face drags dlib's points away
    assert lock.correction(grid, occluded) == (None, 0.0)
    assert lock.correction(grid, None) == (None, 0.0)
    # Between the bound and twice it, trust falls continuously: no jump at a threshold.
    drift = lock.bound * torch.tensor([1.0, 0.0])
    trusts = [lock.correction(grid + drift * k, template.numpy())[1] for k in (0.9, 1.2, 1.5, 1.8)]
    assert trusts[0] == 1.0 and 1.0 > trusts[1] > trusts[2] > trusts[3] > 0


def run_lock(lock, grids, landmarks):
    items = [(i, None, g) for i, g in enumerate(grids)]
    return [grid for _, _, grid in locked_grids(items, lock, lambda index, frame: landmarks[index])]


def test_smoothing_keeps_a_still_face_still_and_follows_a_step(template):
    lock = LandmarkLock(template)
    grid = identity_grid(SIZE, SIZE)[0]
    rng = np.random.default_rng(0)
    jittered = [template.numpy() + rng.normal(0, 0.01, (68, 2)).astype(np.float32) for _ in range(20)]
    out = run_lock(lock, [grid] * 20, jittered)
    assert len(out) == 20
    raw_motion = np.mean([np.abs(jittered[i + 1] - jittered[i]).mean() for i in range(19)])
    locked_motion = np.mean([(out[i + 1] - out[i]).abs().mean().item() for i in range(19)])
    assert locked_motion < raw_motion / 3
    # The warp misses a jump of the face at frame 10; the lock catches up within 3 frames.
    stepped = [template.numpy() + (0.06 if i >= 10 else 0.0) for i in range(20)]
    out = run_lock(lock, [grid] * 20, stepped)
    # (Within 0.004 of a 0.06 jump: the correction's field has cells up to 0.045 from a
    # landmark, where its fading already leaves out about 5 %.)
    assert (carried(out[5], stepped[5]) - template).norm(dim=1).mean() < 0.002
    assert (carried(out[13], stepped[13]) - template).norm(dim=1).mean() < 0.006
    assert (carried(out[19], stepped[19]) - template).norm(dim=1).mean() < 0.004


def test_the_lock_is_not_smoothed_across_a_shot_cut(template):
    # The face is framed anew at frame 10 (a cut): its correction must not reach back into
    # the frames before, nor the old one forward (they blended over 4 frames each way).
    lock = LandmarkLock(template)
    grid = identity_grid(SIZE, SIZE)[0]
    stepped = [template.numpy() + (0.06 if i >= 10 else 0.0) for i in range(20)]
    items = [(i, None, grid) for i in range(20)]
    out = [g for _, _, g in locked_grids(items, lock, lambda index, frame: stepped[index], cuts=[10])]
    blended = run_lock(lock, [grid] * 20, stepped)
    for i in (8, 9, 10, 11):
        assert (carried(out[i], stepped[i]) - template).norm(dim=1).mean() < 0.004, i
    assert (carried(blended[9], stepped[9]) - template).norm(dim=1).mean() > 0.01


def test_an_outlier_frame_does_not_move_the_paint(template):
    lock = LandmarkLock(template)
    grid = identity_grid(SIZE, SIZE)[0] + torch.tensor([0.03, 0.0])
    landmarks = [template.numpy()] * 15
    clean = run_lock(lock, [grid] * 15, landmarks)
    broken = list(landmarks)
    broken[7] = template.numpy() + np.where(np.arange(68)[:, None] < 40, 0.5, 0.0).astype(np.float32)
    with_outlier = run_lock(lock, [grid] * 15, broken)
    assert max((a - b).abs().max().item() for a, b in zip(clean, with_outlier)) < 2e-3


def test_paint_fades_around_lost_frames():
    found = np.array([True] * 10 + [False] * 5 + [True] * 10)
    weights = fade_weights(found, frames=3)
    assert (weights[10:15] == 0).all()
    assert weights[0] == 1 and weights[-1] == 1
    assert 0 < weights[9] < weights[8] < weights[7] < 1 and 0 < weights[15] < weights[16] < weights[17] < 1


def test_a_face_hidden_for_a_second_is_followed_again_and_not_bridged():
    box = np.array([[100.0, 100.0, 200.0, 200.0]])
    empty = np.zeros((0, 4))
    detections = [box] * 20 + [empty] * 25 + [box + 5] * 20 + [empty] * 2 + [box + 5] * 5
    boxes = boxes_through(choose_person(link_people(detections, max_gap=250, max_fill=5)), len(detections), max_fill=5)
    found = ~np.isnan(boxes[:, 0])
    assert found[:20].all() and not found[20:45].any() and found[45:].all()


def test_render_paints_after_a_gap_and_not_in_it(tmp_path):
    from click.testing import CliRunner

    from x2face_edit.cli import main
    from x2face_edit.synthetic import moving_face_frames
    from x2face_edit.video import VideoWriter, iter_frames

    frames = moving_face_frames(60)
    grey = np.full_like(frames[0], 128)
    video = tmp_path / "hidden.mp4"
    with VideoWriter(video, fps=25, width=grey.shape[1], height=grey.shape[0]) as writer:
        for i, frame in enumerate(frames):
            writer.write(grey if 20 <= i < 35 else frame)
    runner = CliRunner()
    assert runner.invoke(main, ["extract", str(video), "-o", str(tmp_path / "face.png")]).exit_code == 0
    layer = Image.open(tmp_path / "face.edit.png")
    layer.paste((255, 0, 0, 255), (96, 96, 416, 416))
    layer.save(tmp_path / "face.edit.png")
    result = runner.invoke(main, ["render", "--edited", str(tmp_path / "face.edit.png"), "--drive", str(video),
                                  "-o", str(tmp_path / "out.mp4")])
    assert result.exit_code == 0, result.output
    assert "20-34" in result.output
    red = [float((f.rgb[..., 0].astype(int) - f.rgb[..., 1] > 100).mean()) for f in iter_frames(tmp_path / "out.mp4")]
    assert max(red[20:35]) == 0
    assert min(red[5:15]) > 0.02 and min(red[42:60]) > 0.02
