"""The shipped model (models/), its pose and audio maps, and what they do on real input."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from paint_dots import edit_tracking_error

from x2face_edit.cli import main
from x2face_edit.embedding import embedded_landmarks, locate_in_embedded_face, source_frames
from x2face_edit.evaluate import landing_positions
from x2face_edit.extract import extract
from x2face_edit.faces import FaceDetector, LandmarkDetector, to_crop_grid, voxceleb_box
from x2face_edit.head_pose import PoseEstimator
from x2face_edit.lock import LandmarkLock
from x2face_edit.model import ModelInfo, default_model_path, load_model
from x2face_edit.model.checkpoint import DEFAULT_MODEL, file_fingerprint
from x2face_edit.model.data import TrackPairs, load_tracks
from x2face_edit.model.metrics import copy_source_l1, model_l1
from x2face_edit.prepare import PrepareOptions, prepare
from x2face_edit.synthetic import astronaut_face, moving_face_motion, write_moving_face_video
from x2face_edit.tracking import track_video
from x2face_edit.video import iter_frames

# Clips of people the default model never trained on (../shared/data/clips-eval).
HELD_OUT_CLIP = "dreamtalk_W009_front_neutral_level1_001.mp4"
HELD_OUT_CLIPS = ["dagan_driving.mp4", "dreamtalk_M030_front_neutral_level1_001.mp4", "dreamtalk_W009_front_neutral_level1_001.mp4",
                  "eamm_happy.mp4", "headgan_driving.mp4"]


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture(scope="module")
def model_info():
    return ModelInfo(str(DEFAULT_MODEL), file_fingerprint(DEFAULT_MODEL))


def test_default_model_ships_small_and_loads_safely():
    path = default_model_path()
    assert path == DEFAULT_MODEL and path.stat().st_size < 50e6
    payload = torch.load(path, weights_only=True)
    assert payload["config"]["resolution"] == 128 and payload["meta"]["stage"] in (1, 2)
    for kind in ("pose", "audio"):
        assert path.with_suffix(f".{kind}.pt").is_file()


def test_paint_follows_the_synthetic_face(tmp_path, model, model_info):
    video = write_moving_face_video(tmp_path / "face.mp4", count=50)
    error = edit_tracking_error(model, model_info, video, track_video(video), tmp_path)
    assert error.found > 0.8
    assert error.mean_relative < 0.10  # within a tenth of the face's size on average


def test_locked_paint_lands_on_known_points_of_a_moving_face(tmp_path, model, model_info):
    """The synthetic face moves by known affine maps, so every point's true position is
    known: the landmark lock must put paint within a pixel of it, closer than the pure warp."""
    count = 50
    video = write_moving_face_video(tmp_path / "face.mp4", count=count)
    track = track_video(video)
    picture = astronaut_face()
    found = LandmarkDetector()(picture, FaceDetector().detect(picture)[0])
    # Nose tip, eye and mouth corners, and a cheek point between jaw and nose that no landmark marks.
    points = np.vstack([found[[30, 36, 45, 48, 54]], (found[2] + found[31]) / 2])
    truth = np.stack([points @ m[:, :2].T + m[:, 2] for m in moving_face_motion(count)]) + 0.5
    face = extract(model, model_info, video, track)
    frames, boxes = source_frames(face.sidecar)
    seen = [to_crop_grid(truth[index] - 0.5, box) for index, box in zip(face.sidecar.frames, boxes)]
    dots = locate_in_embedded_face(model, frames, boxes, seen)
    errors = {}
    for name, lock in (("locked", LandmarkLock(embedded_landmarks(model, frames, boxes))), ("pure", None)):
        landed = landing_positions(model, video, track, dots, lock)
        errors[name] = float(np.nanmean(np.linalg.norm(landed - truth, axis=2)))
    assert errors["locked"] < 1.0 and errors["locked"] < errors["pure"], errors


def test_paint_follows_a_real_face(tmp_path, eval_clips, model, model_info):
    video = eval_clips / HELD_OUT_CLIP
    error = edit_tracking_error(model, model_info, video, track_video(video), tmp_path)
    assert error.found > 0.95
    assert error.mean_relative < 0.08


def test_the_painting_guide_marks_where_dlib_sees_the_features(eval_clips, model, model_info):
    """The guide's landmarks (recorded in the sidecar) lie where dlib finds the features
    on the embedded face image itself, on a face the model never saw."""
    video = eval_clips / "dagan_driving.mp4"
    face = extract(model, model_info, video, track_video(video))
    guide = np.array(face.sidecar.landmarks)
    seen = LandmarkDetector()(face.image, FaceDetector().detect(face.image)[0])
    distance = np.linalg.norm(seen - guide, axis=1) / np.linalg.norm(guide[45] - guide[36])
    assert np.median(distance) < 0.04 and distance.mean() < 0.05, (np.median(distance), distance.mean())


def test_self_reenactment_beats_copying_the_source(tmp_path, eval_clips, model):
    # A clip whose head turns and nods: where the face barely moves (a newsreader's), its
    # landmark-aligned crops differ so little that a copy of the source frame is the
    # better guess (dreamtalk_W009: L1 0.022 for the copy, 0.038 for the model).
    prepare([eval_clips / "headgan_driving.mp4"], tmp_path, options=PrepareOptions(size=128, sample_fps=10))
    pairs = TrackPairs(load_tracks(tmp_path), num_sources=3, size=128)
    assert model_l1(model, pairs) < copy_source_l1(pairs)


def test_commanded_yaw_turns_held_out_faces_by_most_of_the_command(tmp_path, eval_clips):
    """``pose --yaw -30:30`` on each held-out identity: the yaw that dlib's landmarks read
    from the generated frames follows the command (correlation >= 0.8) by at least half
    of it (slope >= 0.5) on every clip; equation (1) turned them by 0.13-0.44."""
    estimate = PoseEstimator()
    commanded = np.linspace(-30, 30, 9)
    for clip in HELD_OUT_CLIPS:
        out = tmp_path / f"{clip}.mp4"
        result = CliRunner().invoke(main, ["pose", str(eval_clips / clip), "--yaw", "-30:30", "--frames", "9", "-o", str(out)])
        assert result.exit_code == 0, result.output
        yaws = np.array([estimate(frame.rgb)[0] for frame in iter_frames(out)])
        found = ~np.isnan(yaws)
        assert found.sum() >= 7, clip
        slope = np.polyfit(commanded[found], yaws[found], 1)[0]
        assert np.corrcoef(commanded[found], yaws[found])[0, 1] >= 0.8 and slope >= 0.5, (clip, yaws)


def test_moved_landmarks_read_as_the_commanded_pose():
    """The landmark targets of ``pose``: the astronaut's landmarks moved by the shipped
    maps' per-degree motion read (solvePnP) as the commanded yaw and pitch."""
    from x2face_edit.head_pose import head_pose
    from x2face_edit.model.modalities import POSE_FORMAT, load_map, maps_path
    from x2face_edit.pose import landmark_targets

    maps, _ = load_map(maps_path(DEFAULT_MODEL, "pose"), kind=POSE_FORMAT, model_fingerprint=file_fingerprint(DEFAULT_MODEL))
    picture = astronaut_face()
    box = FaceDetector().detect(picture)[0]
    landmarks = to_crop_grid(LandmarkDetector()(picture, box), voxceleb_box(box))
    start = head_pose((landmarks + 1) * 128, 256, 256)
    targets = np.array([[yaw, pitch, start[2]] for yaw in (-25, 0, 25) for pitch in (-10, 10)])
    moved = landmark_targets(landmarks, targets, maps.landmark_motion.numpy(), 256)
    read = np.array([head_pose((points + 1) * 128, 256, 256) for points in moved])
    assert np.abs(read[:, :2] - targets[:, :2]).max() < 1.5, read


def test_locked_paste_back_follows_the_driving_faces_landmarks(tmp_path, eval_clips, model):
    """reenact --paste-back of a held-out clip by itself: with the lock, the pasted face's
    features sit (relative to its crop) where the driving face's are in its own crop."""
    from x2face_edit.reenact import ReenactOptions, reenact
    from x2face_edit.source import source_face

    video = eval_clips / HELD_OUT_CLIP
    source = source_face(model, [video])
    driving = track_video(video)
    landmarks = LandmarkDetector()
    detector = FaceDetector()
    errors = {}
    for lock in ("landmarks", "none"):
        out = tmp_path / f"{lock}.mp4"
        reenact(model, source, video, out, ReenactOptions(paste_back=True, lock=lock))
        distances = []
        for original, pasted in zip(iter_frames(video), iter_frames(out)):
            found = detector.detect(pasted.rgb)
            if len(found):
                made = to_crop_grid(landmarks(pasted.rgb, found[0]), source.crop_box)
                wanted = to_crop_grid(landmarks(original.rgb, driving.face_boxes[original.index]), driving.crop_box(original.index))
                distances.append(np.linalg.norm(made - wanted, axis=1).mean())
        assert len(distances) > 90
        errors[lock] = float(np.mean(distances))
    # Measured (grid units, locked against pure warp): 0.0137 / 0.0232 with the model trained
    # on HOG crops, 0.0120 / 0.0151 with its successor, whose own warp comes closer.
    assert errors["landmarks"] < 0.85 * errors["none"] and errors["landmarks"] < 0.015, errors


def _pose_maps():
    from x2face_edit.model.modalities import POSE_FORMAT, load_map, maps_path

    return load_map(maps_path(DEFAULT_MODEL, "pose"), kind=POSE_FORMAT, model_fingerprint=file_fingerprint(DEFAULT_MODEL))[0]


def _openings(frames) -> np.ndarray:
    from x2face_edit.faces import mouth_opening

    detector, landmarks = FaceDetector(), LandmarkDetector()
    found = [(rgb, detector.detect(rgb)) for rgb in frames]
    return np.array([mouth_opening(landmarks(rgb, boxes[0])) if len(boxes) else np.nan for rgb, boxes in found])


def test_tone_bursts_open_and_close_the_mouth(tmp_path, model):
    """A speaker whose mouth opened with every burst of a tone: the astronaut, driven by
    bursts alternating with silence, opens the mouth in the bursts and closes it between."""
    from PIL import Image

    from x2face_edit.audio import SpeakerFrames, speaker_mouth_map, speaking_frames
    from x2face_edit.audio_features import SAMPLE_RATE
    from x2face_edit.source import source_face

    seconds, fps = 4.0, 25
    time = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    on = lambda t: np.floor(np.asarray(t) / 0.4) % 2 == 1  # noqa: E731 - 0.4 s on, 0.4 s off
    samples = (0.5 * np.sin(2 * np.pi * 300 * time) * on(time)).astype(np.float32)
    picture = tmp_path / "astronaut.png"
    Image.fromarray(astronaut_face(256)).save(picture)
    source = source_face(model, [picture])
    closed = source.frame_landmarks()
    times = np.arange(int(seconds * fps)) / fps
    landmarks = np.repeat(closed[None], len(times), axis=0)
    landmarks[on(times), 5:12] += [0, 0.08]  # chin and lower lip down in the bursts
    landmarks[on(times), 55:60] += [0, 0.08]
    landmarks[on(times), 65:68] += [0, 0.08]
    speaker = SpeakerFrames(times, torch.zeros(len(times), 128), landmarks, samples)
    mouth = speaker_mouth_map(speaker)
    test_times = times[8:] + 0.02  # between the fitted frames
    generated = _openings(speaking_frames(model, mouth, _pose_maps(), source, samples, test_times))
    bursts = on(test_times)
    assert np.isnan(generated).mean() < 0.1
    assert np.nanmean(generated[bursts]) > np.nanmean(generated[~bursts]) + 0.03
    assert np.corrcoef(np.nan_to_num(generated, nan=np.nanmean(generated)), bursts)[0, 1] > 0.8


def test_a_speakers_mouth_follows_their_speech_better_than_shifted_speech(eval_clips, model):
    """Learnt on the first 70 % of a held-out speaker's clip, driven by the sound of the
    rest: the generated mouth opening follows the real one, by the speaker's own map (0.50
    here) and by it blended with the shipped pooled speech model (as ``audio`` drives a
    talking source), issue 26 asks > 0.4; the same sound 1 s earlier does not (by > 0.3)."""
    from x2face_edit.audio import SpeakerFrames, blended_mouth, speaker_frames, speaker_mouth_map, speaking_frames
    from x2face_edit.model import default_model_path
    from x2face_edit.source import source_face
    from x2face_edit.speech import SpeechModel, default_speech_path

    clip = eval_clips / "wav2lipgfpgan_kim_7s_raw.mp4"
    frames = speaker_frames(model, clip)
    cut = frames.times[0] + 0.7 * (frames.times[-1] - frames.times[0])
    late = frames.times >= cut
    material = SpeakerFrames(frames.times[~late], frames.vectors[~late], frames.landmarks[~late], frames.samples)
    speech_model = SpeechModel.load(default_speech_path(default_model_path()))
    source = source_face(model, [clip])
    real = frames.openings[late]
    for mouth in (speaker_mouth_map(frames, until=cut), blended_mouth(speech_model, material)):
        follows = [np.corrcoef(*_valid(_openings(speaking_frames(model, mouth, _pose_maps(), source, frames.samples,
                                                                    frames.times[late] - shift)), real))[0, 1]
                   for shift in (0.0, 1.0)]
        assert follows[0] > 0.4 and follows[0] > follows[1] + 0.3, (type(mouth).__name__, follows)


def _valid(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = ~(np.isnan(a) | np.isnan(b))
    return a[keep], b[keep]
