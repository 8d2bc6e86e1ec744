"""Writing output files safely: never a half-written file, never an unasked overwrite.

Knows files and folders only, not video (``video.check_video_output`` adds the codec's
checks), so the model package can write its checkpoints without PyAV."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import X2FaceError
from .sequences import existing_frames, is_sequence


def check_output(path: str | Path, *, force: bool, inputs: Iterable[str | Path] = (), numbers: range | None = None) -> Path:
    """Fail early, before any work, if ``path`` cannot or may not be written; never, even
    with ``force``, when it is one of the ``inputs`` the work reads. ``numbers`` are the
    frame numbers an image sequence ``path`` will hold (None: any of its frames)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise X2FaceError(f"output folder does not exist: {path.parent}")
    if not os.access(path.parent, os.W_OK):
        raise X2FaceError(f"output folder is not writable: {path.parent}")
    for source in inputs:
        same_pattern = is_sequence(source) and Path(source).resolve() == path.resolve()
        if same_pattern or Path(source).exists() and path.exists() and os.path.samefile(source, path):
            raise X2FaceError(f"{path} is also an input: write the output elsewhere")
    existing = existing_frames(path, numbers) if is_sequence(path) else [path] if path.exists() else []
    if existing and not force:
        what = f"{existing[0]} (and {len(existing) - 1} more frames)" if len(existing) > 1 else str(existing[0])
        raise X2FaceError(f"{what} exists (pass --force to overwrite it)")
    return path


@contextmanager
def atomic_output(path: str | Path, *, force: bool = False, numbers: range | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    After an error or Ctrl-C the temporary file is removed and ``path`` is untouched. The
    temporary name keeps the suffix, so writers that pick a format by extension still can.
    An image sequence replaces its frames; with ``numbers``, only the frames so numbered
    (a chunk of a shot, whose other frames other chunks write).
    """
    path = check_output(path, force=force, numbers=numbers)
    if is_sequence(path):
        # A sequence is written into a hidden folder beside it, and its frames moved out.
        suffix = "" if numbers is None else f".{numbers.start}-{numbers.stop - 1}"
        folder = path.parent / f".{path.name.replace('%', '')}{suffix}.partial"
        folder.mkdir(exist_ok=True)
        try:
            yield folder / path.name
            for frame in existing_frames(path, numbers):
                frame.unlink()
            for frame in sorted(folder.iterdir()):
                os.replace(frame, path.parent / frame.name)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    temporary = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def frame_paths(frame_png: str | Path) -> tuple[Path, Path]:
    """``frame.png`` -> (frame.png, frame.edit.png)."""
    frame_png = Path(frame_png)
    if frame_png.suffix.lower() != ".png":
        raise X2FaceError(f"{frame_png.name}: write the frame as .png (lossless; render finds the paint where a painted "
                          "copy differs from it)")
    return frame_png, frame_png.with_suffix(".edit.png")
