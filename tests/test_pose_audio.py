"""Head pose labels, the pose and audio maps, and the pose and audio commands."""

import json

import av
import cv2
import numpy as np
import pytest
import torch
from helpers import one_line_error, run, write_wav
from test_speech import synthetic_talking_clip

from x2face_edit.audio_features import FEATURE_SIZE, frame_features, load_audio
from x2face_edit.errors import X2FaceError
from x2face_edit.head_pose import PoseEstimator
from x2face_edit.model import ModelConfig, X2Face, save_checkpoint
from x2face_edit.model.checkpoint import file_fingerprint
from x2face_edit.model.landmarks import mirror_landmarks
from x2face_edit.model.modalities import (
    AUDIO_FORMAT,
    POSE_FORMAT,
    fit_audio_map,
    fit_landmark_motion,
    fit_pose_maps,
    pose_errors,
    save_map,
)
from x2face_edit.pose import parse_angle_range
from x2face_edit.prepare import PrepareOptions, prepare
from x2face_edit.speech import fit_speech_model
from x2face_edit.synthetic import astronaut_face, write_moving_face_video
from x2face_edit.video import iter_frames, probe


def test_frontal_face_has_small_yaw_and_mirroring_flips_it():
    estimate = PoseEstimator()
    face = astronaut_face(320)
    yaw, pitch, roll = estimate(face)
    mirrored = estimate(np.ascontiguousarray(face[:, ::-1]))
    assert abs(yaw) < 10 and abs(roll) < 10
    assert np.sign(mirrored[0]) == -np.sign(yaw) and np.sign(mirrored[2]) == -np.sign(roll)
    assert mirrored[1] == pytest.approx(pitch, abs=4)


def test_rotating_the_image_clockwise_raises_roll():
    estimate = PoseEstimator()
    face = astronaut_face(320)
    rotated = cv2.warpAffine(face, cv2.getRotationMatrix2D((160, 160), -15, 1.0), (320, 320), borderMode=cv2.BORDER_REFLECT)
    assert estimate(rotated)[2] - estimate(face)[2] == pytest.approx(15, abs=5)


def test_angle_ranges():
    assert parse_angle_range("-30:30", "yaw") == (-30, 30)
    assert parse_angle_range("12", "roll") == (12, 12)
    with pytest.raises(X2FaceError, match="within -90 and 90"):
        parse_angle_range("0:120", "yaw")
    with pytest.raises(X2FaceError, match="START:END"):
        parse_angle_range("left", "yaw")


def _linear_pose_data(count, seed):
    generator = torch.Generator().manual_seed(seed)
    poses = torch.rand(count, 3, generator=generator) * 60 - 30
    mixing = torch.randn(3, 128, generator=torch.Generator().manual_seed(99)) / 10
    vectors = poses @ mixing + 0.05 * torch.randn(count, 128, generator=generator)
    return vectors, poses


def test_pose_maps_read_and_set_pose():
    maps = fit_pose_maps(*_linear_pose_data(800, seed=0), steps=1500)
    vectors, poses = _linear_pose_data(200, seed=1)
    assert pose_errors(maps, vectors, poses)["mean"] < 2.0
    # Equation (1): moving a vector to a target pose yields a vector f_v->p reads as that pose.
    targets = torch.tensor([[20.0, -10.0, 5.0]]).expand(200, 3)
    with torch.no_grad():
        moved = maps.repose(vectors, targets)
        assert (maps.vector_to_pose(moved) - targets).abs().mean() < 3.0
        assert torch.allclose(maps.repose(vectors, maps.vector_to_pose(vectors)), vectors, atol=1e-4)


def test_landmark_motion_is_recovered_from_landmarks_and_poses():
    generator = np.random.default_rng(0)
    motion = generator.normal(0, 0.002, (3, 68, 2)).astype(np.float32)
    motion = (motion + np.asarray(mirror_landmarks(motion.copy())) * np.array([-1, 1, -1])[:, None, None]) / 2  # symmetric
    motion -= motion.mean(axis=1, keepdims=True)
    base = generator.normal(0, 0.3, (68, 2)).astype(np.float32)
    base = (base + np.asarray(mirror_landmarks(base.copy()))) / 2
    poses = generator.uniform(-30, 30, (400, 3)).astype(np.float32)
    landmarks = base + np.tensordot(poses, motion, axes=1) + generator.normal(0.05, 0.001, (400, 1, 2)).astype(np.float32)
    assert np.abs(fit_landmark_motion(landmarks, poses).numpy() - motion).max() < 1e-4


def test_audio_map_is_least_squares():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(500, 20, generator=generator) * 3 + 1
    truth = torch.randn(20, 128, generator=generator)
    vectors = features @ truth + 0.5
    audio_map = fit_audio_map(features, vectors)
    with torch.no_grad():
        assert torch.allclose(audio_map(features), vectors, atol=1e-3)
        # Ridge shrinks the weights and keeps the mean.
        shrunk = fit_audio_map(features, vectors, ridge=1.0)
        assert shrunk.linear.weight.norm() < 0.7 * audio_map.linear.weight.norm()
        assert torch.allclose(shrunk(features).mean(0), vectors.mean(0), atol=1e-3)


def test_audio_features_follow_the_sound_in_time():
    rate = 16000
    samples = np.zeros(3 * rate, np.float32)
    samples[rate : rate + rate // 10] = np.sin(2 * np.pi * 700 * np.arange(rate // 10) / rate)  # a 0.1 s beep at 1.0 s
    features = frame_features(samples, np.array([0.5, 1.05, 2.0]))
    assert features.shape == (3, FEATURE_SIZE)
    loudness = features.mean(axis=1)
    assert loudness[1] > loudness[0] + 3 and loudness[1] > loudness[2] + 3


def test_audio_from_files(tmp_path):
    video = write_moving_face_video(tmp_path / "tone.mp4", count=25, tone_hz=440)
    samples = load_audio(video)
    assert len(samples) / 16000 == pytest.approx(1.0, abs=0.05)
    silent = write_moving_face_video(tmp_path / "silent.mp4", count=10)
    with pytest.raises(X2FaceError, match="no sound track"):
        load_audio(silent)
    broken = tmp_path / "speech.wav"
    broken.write_bytes(b"RIFF....WAVEfmt garbage")
    with pytest.raises(X2FaceError):
        load_audio(broken)


def test_prepare_records_pose_and_audio(tmp_path):
    video = write_moving_face_video(tmp_path / "talk.mp4", count=30, tone_hz=300)
    manifest = prepare([video], tmp_path / "tracks", options=PrepareOptions(size=64, sample_fps=10))
    track_dir = tmp_path / "tracks" / manifest["tracks"][0]["path"]
    frames = json.loads((track_dir / "track.json").read_text())["frames"]
    poses = np.array([f["pose"] for f in frames if f["pose"] is not None])
    assert len(poses) >= len(frames) - 1 and np.abs(poses).max() < 45
    assert np.load(track_dir / "audio.npy").shape == (len(frames), FEATURE_SIZE)


@pytest.fixture(scope="module")
def tiny_model_with_maps(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    model = folder / "tiny.pt"
    save_checkpoint(model, X2Face(ModelConfig(64, 8)).eval())
    fingerprint = file_fingerprint(model)
    save_map(folder / "tiny.pose.pt", fit_pose_maps(*_linear_pose_data(200, 0), steps=50), kind=POSE_FORMAT,
             model_fingerprint=fingerprint, meta={})
    generator = torch.Generator().manual_seed(0)
    save_map(folder / "tiny.audio.pt", fit_audio_map(torch.randn(300, FEATURE_SIZE, generator=generator),
                                                     torch.randn(300, 128, generator=generator)),
             kind=AUDIO_FORMAT, model_fingerprint=fingerprint, meta={})
    return model


def test_pose_command_writes_frames_and_angles(tmp_path, tiny_model_with_maps):
    source = write_moving_face_video(tmp_path / "source.mp4", count=20)
    out = tmp_path / "turn.mp4"
    result = run("pose", source, "--yaw", "-30:30", "--frames", "12", "-o", out, "--model", tiny_model_with_maps, "--size", "64")
    assert result.exit_code == 0, result.output
    assert probe(out).frame_count == 12
    rows = (tmp_path / "turn.csv").read_text().splitlines()
    assert rows[0].startswith("frame,yaw") and len(rows) == 13
    assert [float(r.split(",")[1]) for r in (rows[1], rows[-1])] == [-30.0, 30.0]
    result = run("pose", source, "--yaw", "-100:0", "-o", tmp_path / "x.mp4", "--model", tiny_model_with_maps)
    assert result.exit_code == 1 and "within -90 and 90" in result.output


def test_audio_command_matches_the_speech(tmp_path, tiny_model_with_maps):
    source = write_moving_face_video(tmp_path / "source.mp4", count=20)
    speech = write_moving_face_video(tmp_path / "speech.mp4", count=45, fps=30, tone_hz=250)  # 1.5 s of sound
    out = tmp_path / "talk.mp4"
    result = run("audio", source, speech, "-o", out, "--model", tiny_model_with_maps, "--size", "64")
    assert result.exit_code == 0, result.output
    info = probe(out)
    speech_seconds = len(load_audio(speech)) / 16000  # 1.5 s and the AAC encoder's padding
    assert info.frame_count == int(np.ceil(speech_seconds * 25)) and float(info.fps) == 25
    with av.open(str(out)) as container:
        stream = container.streams.audio[0]
        assert float(stream.duration * stream.time_base) == pytest.approx(1.5, abs=0.07)


def _tone(path, seconds, rate=16000, bursts=None):
    """A WAV of a 300 Hz tone (silence with ``bursts`` = 0; on and off every ``bursts`` s)."""
    time = np.arange(int(seconds * rate)) / rate
    samples = 0.5 * np.sin(2 * np.pi * 300 * time)
    if bursts is not None:
        samples = samples * (np.floor(time / bursts) % 2 == 1) if bursts else samples * 0
    return write_wav(path, samples, rate)


def test_audio_picks_the_speakers_own_map_and_keeps_silence_still(tmp_path, tiny_model_with_maps):
    silent_source = write_moving_face_video(tmp_path / "silent_source.mp4", count=20)
    talking_source = write_moving_face_video(tmp_path / "talking_source.mp4", count=40, tone_hz=220)
    silence = _tone(tmp_path / "silence.wav", 1.0, bursts=0)
    result = run("audio", silent_source, silence, "-o", tmp_path / "still.mp4", "--model", tiny_model_with_maps, "--size", "64")
    assert result.exit_code == 0, result.output
    assert "the global one (silent_source.mp4 has no sound" in result.output
    assert "no speech heard in silence.wav (silence, noise or a tone): the mouth stays closed" in result.output
    frames = [f.rgb.astype(int) for f in iter_frames(tmp_path / "still.mp4")]
    assert len(frames) == 25 and max(np.abs(f - frames[0]).mean() for f in frames) < 0.5  # silence: a still face (codec noise aside)
    result = run("audio", talking_source, _tone(tmp_path / "bursts.wav", 1.0, bursts=0.2), "-o", tmp_path / "talk.mp4",
                 "--model", tiny_model_with_maps, "--size", "64")
    assert result.exit_code == 0, result.output
    assert "the mouth of talking_source.mp4, learnt from its own 40 frames and sound" in result.output


def test_audio_and_pose_bad_inputs(tmp_path, tiny_model_with_maps):
    source = write_moving_face_video(tmp_path / "source.mp4", count=20)
    silent = write_moving_face_video(tmp_path / "silent.mp4", count=20)
    result = run("audio", source, silent, "-o", tmp_path / "o.mp4", "--model", tiny_model_with_maps)
    assert result.exit_code == 1 and "has no sound track" in result.output
    result = run("audio", source, _tone(tmp_path / "blip.wav", 0.1), "-o", tmp_path / "o.mp4", "--model", tiny_model_with_maps)
    assert result.exit_code == 1 and "at least 0.2 s" in result.output
    other = tmp_path / "other.pt"
    save_checkpoint(other, X2Face(ModelConfig(64, 8)))
    result = run("pose", source, "--yaw", "10", "-o", tmp_path / "o.mp4", "--model", other,
                  "--pose-maps", tiny_model_with_maps.with_suffix(".pose.pt"))
    assert result.exit_code == 1 and "fitted for another model" in result.output
    result = run("pose", source, "--yaw", "10", "-o", tmp_path / "o.mp4", "--model", other)
    assert result.exit_code == 1 and "fit-pose" in result.output


def test_fit_pose_and_fit_audio_store_maps_beside_the_model(tmp_path, tiny_model_with_maps):
    videos = [write_moving_face_video(tmp_path / f"person{seed}.mp4", count=25, seed=seed, tone_hz=200 + 100 * seed)
              for seed in range(10)]
    prepare(videos, tmp_path / "tracks", options=PrepareOptions(size=64, sample_fps=10))
    model = tmp_path / "model.pt"
    model.write_bytes(tiny_model_with_maps.read_bytes())
    result = run("fit-pose", tmp_path / "tracks", "--model", model)
    assert result.exit_code == 0, result.output
    assert "MAE on test identities: yaw" in result.output and model.with_suffix(".pose.pt").is_file()
    result = run("fit-audio", tmp_path / "tracks", "--model", model)
    assert result.exit_code == 0, result.output
    assert "variance on test identities" in result.output and model.with_suffix(".audio.pt").is_file()
    # Fitting again would replace the maps: only with --force.
    for command in ("fit-pose", "fit-audio"):
        result = run(command, tmp_path / "tracks", "--model", model)
        assert result.exit_code == 1 and "--force" in result.output, result.output
    assert run("fit-pose", tmp_path / "tracks", "--model", model, "--force").exit_code == 0
    # The maps are tied to this model: the pose command accepts them.
    result = run("pose", videos[0], "--roll", "0:10", "--frames", "3", "-o", tmp_path / "roll.mp4", "--model", model, "--size", "64")
    assert result.exit_code == 0, result.output
    # eval adds Table 2 (f_v->p's pose error) for a model with pose maps.
    table = tmp_path / "table.json"
    result = run("eval", tmp_path / "tracks", "--model", model, "--json", table)
    assert result.exit_code == 0, result.output
    assert "f_v->p pose MAE yaw" in result.output
    assert set(json.loads(table.read_text())["pose_mae_degrees"]["model.pt"]) == {"yaw", "pitch", "roll", "mean"}


def test_audio_drives_a_silent_source_with_the_pooled_model(tmp_path, tiny_model_with_maps):
    model = fit_speech_model([synthetic_talking_clip(seed, f"s{seed}") for seed in range(4)])
    model.save(tmp_path / "speech.pt")
    source = write_moving_face_video(tmp_path / "source.mp4", count=20)
    speech = write_moving_face_video(tmp_path / "speech.mp4", count=30, tone_hz=250)
    result = run("audio", source, speech, "-o", tmp_path / "talk.mp4", "--model", tiny_model_with_maps, "--size", "64",
                 "--speech-model", tmp_path / "speech.pt")
    assert result.exit_code == 0, result.output
    assert "the pooled speech model (phones, loudness, spectrum), with the speakers' pooled range" in result.output
    assert probe(tmp_path / "talk.mp4").frame_count >= 30
    talking = write_moving_face_video(tmp_path / "talking.mp4", count=60, tone_hz=220)
    result = run("audio", talking, speech, "-o", tmp_path / "talk2.mp4", "--model", tiny_model_with_maps, "--size", "64",
                 "--speech-model", tmp_path / "speech.pt")
    assert result.exit_code == 0, result.output
    assert "the mouth of talking.mp4, learnt from its own 60 frames and sound, blended with the pooled speech model" in result.output
    (tmp_path / "bad.pt").write_bytes(b"x")
    one_line_error(run("audio", source, speech, "-o", tmp_path / "o.mp4", "--model", tiny_model_with_maps,
                       "--speech-model", tmp_path / "bad.pt"), "not a speech model")


def test_audio_reads_a_transcript_with_the_pooled_model(tmp_path, tiny_model_with_maps, spoken_words):
    model = fit_speech_model([synthetic_talking_clip(seed, f"s{seed}") for seed in range(4)])
    model.save(tmp_path / "speech.pt")
    source = write_moving_face_video(tmp_path / "source.mp4", count=20)
    common = ("--model", tiny_model_with_maps, "--size", "64")
    result = run("audio", source, spoken_words, "-o", tmp_path / "said.mp4", *common, "--speech-model", tmp_path / "speech.pt",
                 "--transcript", "Bob met Pam at the park.")
    assert result.exit_code == 0, result.output
    assert "the pooled speech model (phones, loudness, spectrum), reading the transcript's phones aligned to the speech" in result.output
    assert "no speech heard" not in result.output
    assert probe(tmp_path / "said.mp4").frame_count == int(np.ceil(len(load_audio(spoken_words)) / 16000 * 25))
    talking = write_moving_face_video(tmp_path / "talking.mp4", count=60, tone_hz=220)
    result = run("audio", talking, spoken_words, "-o", tmp_path / "said2.mp4", *common, "--speech-model", tmp_path / "speech.pt",
                 "--transcript", "Bob met Pam at the park.")
    assert result.exit_code == 0, result.output
    assert "learnt from its own 60 frames and sound, blended with the pooled speech model, reading the transcript's phones" in result.output
    one_line_error(run("audio", source, spoken_words, "-o", tmp_path / "o.mp4", *common, "--speech-model", tmp_path / "speech.pt",
                       "--transcript", "Bob met Pam at the parkq"), "not in the pronouncing dictionary: parkq")
    one_line_error(run("audio", source, spoken_words, "-o", tmp_path / "o.mp4", *common, "--speech-model", tmp_path / "speech.pt",
                       "--transcript", "bob met pam"), "the transcript (3 words) could not be aligned")  # words missing
    one_line_error(run("audio", source, spoken_words, "-o", tmp_path / "o.mp4", *common, "--transcript", "bob met pam at the park"),
                   "a transcript is read by the pooled speech model")
    result = run("audio", source, spoken_words, "-o", tmp_path / "o.mp4", *common, "--transcript", "bob",
                 "--audio-map", tiny_model_with_maps.with_suffix(".audio.pt"))
    assert result.exit_code == 2 and "not by --audio-map" in result.output
    assert not (tmp_path / "o.mp4").exists()


def test_a_talking_sources_own_mouth_and_the_pooled_model_are_blended(spoken_words):
    """A speaker whose mouth opens with the loudness of their words: the blend of their own
    map and the shipped pooled model keeps the speaker's own mean and spread of opening over
    their frames, follows their mouth at least as well as the weaker of the two, and takes
    the pooled model's width."""
    from x2face_edit.audio import SpeakerFrames, blended_mouth, pooled_mouth, speaker_mouth_map
    from x2face_edit.model import default_model_path
    from x2face_edit.speech import SpeechModel, correlation, default_speech_path, loudness_envelope

    samples = load_audio(spoken_words)
    times = np.arange(int(len(samples) / 16000 * 25)) / 25
    envelope = loudness_envelope(samples, int(np.ceil(len(samples) / 160)))[np.round(times * 100).astype(int)]
    landmarks = np.zeros((len(times), 68, 2))
    landmarks[:, 36, 0], landmarks[:, 45, 0] = -1.0, 1.0  # eye corners two units apart
    landmarks[:, [48, 54], 0] = [-0.4, 0.4]
    landmarks[:, 65:68, 1] = 0.05 + 0.03 * np.clip(envelope, -1, 2)[:, None]  # the lower lip drops as the voice is loud
    speaker = SpeakerFrames(times, torch.zeros(len(times), 128), landmarks, samples)
    speech_model = SpeechModel.load(default_speech_path(default_model_path()))
    mouth, own, pooled = blended_mouth(speech_model, speaker), speaker_mouth_map(speaker), pooled_mouth(speech_model, speaker)
    blended, real = mouth(samples, times), speaker.openings
    assert blended.mean() == pytest.approx(real.mean(), abs=1e-6) and blended.std() == pytest.approx(real.std(), rel=1e-6)
    assert correlation(blended, real) >= min(correlation(own(samples, times), real), correlation(pooled(samples, times), real)) - 1e-9
    assert np.allclose(mouth.shapes(samples, times)[:, 1], pooled.shapes(samples, times)[:, 1])
