"""Writing output files safely: never a half-written file, never an unasked overwrite."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import X2FaceError


def check_output(path: str | Path, *, force: bool, inputs: Iterable[str | Path] = ()) -> Path:
    """Fail early, before any work, if ``path`` cannot or may not be written; never, even
    with ``force``, when it is one of the ``inputs`` the work reads."""
    path = Path(path)
    if not path.parent.is_dir():
        raise X2FaceError(f"output folder does not exist: {path.parent}")
    if not os.access(path.parent, os.W_OK):
        raise X2FaceError(f"output folder is not writable: {path.parent}")
    for source in inputs:
        if Path(source).exists() and path.exists() and os.path.samefile(source, path):
            raise X2FaceError(f"{path} is also an input: write the output elsewhere")
    if path.exists() and not force:
        raise X2FaceError(f"{path} exists (pass --force to overwrite it)")
    return path


# Containers that hold the H.264 video and the audio that VideoWriter writes.
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".m4v")


def check_video_output(path: str | Path, *, force: bool, inputs: Iterable[str | Path] = ()) -> Path:
    """``check_output`` for a video, whose extension must name a container for H.264."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise X2FaceError(f"{path.name}: write the video as {', '.join(VIDEO_SUFFIXES)} (H.264 with the input's sound)")
    return check_output(path, force=force, inputs=inputs)


@contextmanager
def atomic_output(path: str | Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    After an error or Ctrl-C the temporary file is removed and ``path`` is untouched. The
    temporary name keeps the suffix, so writers that pick a format by extension still can.
    """
    path = check_output(path, force=force)
    temporary = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
