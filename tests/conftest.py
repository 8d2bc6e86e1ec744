from __future__ import annotations

from pathlib import Path

import pytest

SHARED_CLIPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips"
EVAL_CLIPS = SHARED_CLIPS.parent / "clips-eval"


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
