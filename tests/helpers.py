"""Helpers shared by the command-line tests."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from click.testing import CliRunner, Result

from x2face_edit.cli import main
from x2face_edit.video import iter_frames


def run(*args) -> Result:
    """``x2face-edit ARGS`` in this process."""
    return CliRunner().invoke(main, [str(a) for a in args])


def frames(path) -> list:
    return [f.rgb for f in iter_frames(path)]


def one_line_error(result: Result, *fragments: str) -> None:
    """The command failed with one line (no traceback) that holds every fragment."""
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """Mono ``samples`` in [-1, 1] written as a 16-bit WAV at ``rate``."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray((samples * 32767).astype(np.int16)[None], format="s16", layout="mono")
        frame.sample_rate = rate
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
