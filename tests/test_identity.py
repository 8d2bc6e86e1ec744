"""The PyTorch port of dlib's face descriptor against dlib itself, on real faces."""

from pathlib import Path

import dlib
import numpy as np
import pytest
import torch

from x2face_edit.errors import X2FaceError
from x2face_edit.faces import FaceDetector, dlib_model_file
from x2face_edit.model.identity import face_region, load_identity_net
from x2face_edit.video import frames_at

IDENTITY_NET = Path(__file__).resolve().parents[2] / "shared" / "data" / "identity_net"
CLIPS = ["lipnet_bbaf2n.mpg", "retalking_2.mp4", "liveportrait_s18.mp4", "pcavs_Input_00098.mp4"]


@pytest.fixture(scope="module")
def chips(shared_clips):
    """dlib-aligned 150x150 face chips: two frames of each of four people."""
    shapes = dlib.shape_predictor(str(dlib_model_file("shape_predictor_5_face_landmarks.dat")))
    detector = FaceDetector()
    chips, people = [], []
    for clip in CLIPS:
        for frame in frames_at(shared_clips / clip, [0, 60]).values():
            frame = np.ascontiguousarray(frame)
            box = detector.detect(frame)[0]
            shape = shapes(frame, dlib.rectangle(*(int(v) for v in box)))
            chips.append(dlib.get_face_chip(frame, shape, size=150, padding=0.25))
            people.append(clip)
    return chips, people


def _distances(descriptors, people):
    same, different = [], []
    for i in range(len(people)):
        for j in range(i + 1, len(people)):
            (same if people[i] == people[j] else different).append(np.linalg.norm(descriptors[i] - descriptors[j]))
    return np.array(same), np.array(different)


def test_port_matches_dlib(chips):
    if not IDENTITY_NET.is_dir():
        pytest.skip("../shared/data/identity_net is absent")
    images, people = chips
    net = load_identity_net(IDENTITY_NET)
    reference = dlib.face_recognition_model_v1(str(dlib_model_file("dlib_face_recognition_resnet_model_v1.dat")))
    theirs = np.array([reference.compute_face_descriptor(chip) for chip in images])
    with torch.no_grad():
        ours = net(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255).numpy()
    # Quantised weights: descriptors within a few percent of dlib's (norms are about 1.5).
    assert np.linalg.norm(ours - theirs, axis=1).max() < 0.08
    same, different = _distances(ours, people)
    assert same.max() < 0.6 < different.min()  # dlib's own decision threshold separates them


def test_features_for_the_losses(chips):
    if not IDENTITY_NET.is_dir():
        pytest.skip("../shared/data/identity_net is absent")
    net = load_identity_net(IDENTITY_NET)
    crops = torch.rand(2, 3, 128, 128, requires_grad=True)
    features = net.features(face_region(crops))
    assert features["conv32_3"].shape == (2, 32, 35, 35) and features["descriptor"].shape == (2, 128)
    features["conv256_down_out"].sum().backward()
    assert crops.grad is not None and crops.grad.abs().sum() > 0  # gradients reach the generator
    assert not any(p.requires_grad for p in net.parameters())


def test_a_wrong_path_is_a_clear_error(tmp_path):
    with pytest.raises(X2FaceError, match="no identity-network manifest"):
        load_identity_net(tmp_path)
    (tmp_path / "face_recognition_model-weights_manifest.json").write_text("[]")
    with pytest.raises(X2FaceError, match="does not hold"):
        load_identity_net(tmp_path)
