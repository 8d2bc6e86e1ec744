"""The examples the README tells a new user to run."""

import subprocess
import sys
from pathlib import Path

import numpy as np
from helpers import frames

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run_example(name: str, *args) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_paint_and_render_paints_the_star_in_every_frame(tmp_path):
    _run_example("paint_and_render.py", "--out", tmp_path)
    painted, original = frames(tmp_path / "painted.mp4"), frames(tmp_path / "input.mp4")
    assert len(painted) == len(original) == 75
    for after, before in zip(painted, original):
        changed = np.abs(after.astype(int) - before).max(axis=2) > 40
        assert changed.sum() > 10  # a small red star on a 160-pixel face
        assert (after[changed][:, 0].astype(int) - after[changed][:, 1] > 60).mean() > 0.8


def test_train_tiny_trains_and_reports_the_loss(tmp_path):
    result = _run_example("train_tiny.py", "--out", tmp_path, "--steps", "20")
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    assert "L1 loss" in result.stdout and "held-out L1" in result.stdout, result.stdout
