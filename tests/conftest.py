from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_CLIPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips"
EVAL_CLIPS = SHARED_CLIPS.parent / "clips-eval"


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory) -> Path:
    """A cache folder of this session's own (x2face_edit.cache), never the user's, also
    for the commands tests run in subprocesses."""
    folder = tmp_path_factory.mktemp("cache")
    os.environ["X2FACE_EDIT_CACHE"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def shared_clips() -> Path:
    """The real clips beside the project; tests that need them skip in a user's clone."""
    if not SHARED_CLIPS.is_dir():
        pytest.skip("../shared/data/clips is absent")
    return SHARED_CLIPS


@pytest.fixture(scope="session")
def eval_clips() -> Path:
    """Clips of people no shipped model is trained on (evaluation only)."""
    if not EVAL_CLIPS.is_dir():
        pytest.skip("../shared/data/clips-eval is absent")
    return EVAL_CLIPS


@pytest.fixture(scope="session")
def synthetic_video(tmp_path_factory) -> Path:
    from x2face_edit.synthetic import write_moving_face_video

    return write_moving_face_video(tmp_path_factory.mktemp("video") / "moving_face.mp4", count=40)


@pytest.fixture(scope="session")
def synthetic_tracks(tmp_path_factory) -> Path:
    """Face tracks (64x64 crops) of four synthetic videos labelled as four identities,
    so the 75/15/10 split holds one of them out for validation."""
    from x2face_edit.prepare import PrepareOptions, prepare
    from x2face_edit.synthetic import write_moving_face_video

    videos_dir = tmp_path_factory.mktemp("videos")
    videos = [write_moving_face_video(videos_dir / f"person{seed}.mp4", count=30, seed=seed) for seed in range(4)]
    out = tmp_path_factory.mktemp("tracks")
    prepare(videos, out, options=PrepareOptions(size=64, sample_fps=25))
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """An untrained small model: enough for everything but where the paint lands."""
    import torch

    from x2face_edit.model import ModelConfig, X2Face, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_checkpoint(path, X2Face(ModelConfig(64, 8)).eval())
    return path


@pytest.fixture(scope="session")
def talking_video(tmp_path_factory) -> Path:
    """40 frames of a moving face at 25 fps with a 330 Hz tone."""
    from x2face_edit.synthetic import write_moving_face_video

    return write_moving_face_video(tmp_path_factory.mktemp("talk") / "talk.mp4", count=40, fps=25, tone_hz=330)


@pytest.fixture(scope="session")
def extracted(tmp_path_factory, talking_video, tiny_model) -> Path:
    """face.png (128 px) extracted from ``talking_video`` with the tiny model."""
    from helpers import run

    out = tmp_path_factory.mktemp("face") / "face.png"
    result = run("extract", talking_video, "-o", out, "--model", tiny_model, "--size", "128")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def painted_layer(tmp_path_factory, extracted) -> Path:
    """The paint layer with a small dot in the middle of the face."""
    import numpy as np
    from PIL import Image

    layer = np.zeros((128, 128, 4), np.uint8)
    layer[60:68, 60:68] = (0, 255, 255, 255)
    path = tmp_path_factory.mktemp("paint") / "face.edit.png"
    Image.fromarray(layer).save(path)
    return path


SPOKEN_WORDS = "bob met pam at the park"
SPOKEN_PAUSE = 0.8  # seconds of digital silence before and after the words


@pytest.fixture(scope="session")
def spoken_words(tmp_path_factory) -> Path:
    """``SPOKEN_WORDS`` said by Debian's espeak-ng, exactly ``SPOKEN_PAUSE`` s of silence on each
    side, as a 16 kHz WAV (the CI machine installs espeak-ng: its absence fails there)."""
    import shutil
    import subprocess

    import numpy as np
    from helpers import write_wav

    from x2face_edit.audio_features import SAMPLE_RATE, load_audio

    if shutil.which("espeak-ng") is None:
        if os.environ.get("X2FACE_EDIT_CI"):
            pytest.fail("no espeak-ng on PATH (apt-get install -y espeak-ng)")
        pytest.skip("no espeak-ng on PATH (apt-get install -y espeak-ng)")
    folder = tmp_path_factory.mktemp("spoken")
    said = folder / "said.wav"
    subprocess.run(["espeak-ng", "-w", str(said), SPOKEN_WORDS], check=True)
    voice = load_audio(said)
    sounding = np.flatnonzero(np.abs(voice) > 1e-3)
    pause = np.zeros(int(SPOKEN_PAUSE * SAMPLE_RATE), np.float32)
    samples = np.concatenate([pause, voice[sounding[0]:sounding[-1] + 1], pause])  # espeak-ng's own silences cut
    return write_wav(folder / "spoken.wav", samples, SAMPLE_RATE)
