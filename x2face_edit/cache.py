"""Results worth keeping between commands, in a cache folder: a video's face analysis,
which `extract` computes and `render` (and every later `render` of new paint on the same
footage) would otherwise compute again, at about the cost of a re-encode.

The folder is ``$X2FACE_EDIT_CACHE``, else ``$XDG_CACHE_HOME/x2face-edit``, else
``~/.cache/x2face-edit``; deleting it only costs the time to compute its contents again.
Entries are named by everything their content depends on (the input's fingerprint, the
settings, the code that computed them), so an entry is never stale: a changed input or
program names another entry.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from .sequences import existing_frames, find_sequence, is_sequence

# Bytes read from each end of a file for its fingerprint (with its size and modification time).
FINGERPRINT_BYTES = 1 << 20


def cache_folder() -> Path | None:
    """Where cached results live (see the module's notes); None where there is no home
    folder to put them in (then nothing is kept)."""
    if folder := os.environ.get("X2FACE_EDIT_CACHE"):
        return Path(folder)
    try:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    except RuntimeError:  # no $HOME and no user entry (a bare container)
        return None
    return Path(base) / "x2face-edit"


def input_fingerprint(path: str | Path) -> str:
    """What tells a video file apart from any other and from its own earlier versions:
    size, modification time and the bytes at both ends, without reading a long video
    whole; for an image sequence, each frame file's name, size and modification time
    (reading a thousand frames' ends would cost as much as decoding them)."""
    digest = hashlib.sha256()
    if is_sequence(path):
        for file in existing_frames(find_sequence(path).pattern):
            status = file.stat()
            digest.update(f"{file.name}:{status.st_size}:{status.st_mtime_ns};".encode())
        return digest.hexdigest()
    status = Path(path).stat()
    digest.update(f"{status.st_size}:{status.st_mtime_ns};".encode())
    with open(path, "rb") as opened:
        digest.update(opened.read(FINGERPRINT_BYTES))
        if status.st_size > 2 * FINGERPRINT_BYTES:
            opened.seek(-FINGERPRINT_BYTES, os.SEEK_END)
            digest.update(opened.read())
    return digest.hexdigest()


def source_fingerprint(files: Iterable[str | Path], *extra: str) -> str:
    """A fingerprint of the code in ``files`` (and ``extra`` strings, e.g. a library's
    version): results computed by other code are other entries."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(Path(file).read_bytes())
    for text in extra:
        digest.update(text.encode())
    return digest.hexdigest()


def remembered(kind: str, key: Iterable[str], compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays ``compute`` returns, kept in the cache under ``kind`` and ``key`` (the
    parts its result depends on) and read back when asked again. A cache that cannot be
    read or written is no error: the result is then computed (and not kept)."""
    folder = cache_folder()
    if folder is None:
        return compute()
    entry = folder / kind / f"{hashlib.sha256(chr(0).join(key).encode()).hexdigest()[:32]}.npz"
    try:
        with np.load(entry, allow_pickle=False) as stored:
            return {field: stored[field] for field in stored.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        pass  # absent, unreadable or half-written by a process that died: compute it
    arrays = compute()
    partial = None
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=entry.parent, suffix=".partial", delete=False) as partial:
            np.savez(partial, **arrays)
        os.replace(partial.name, entry)  # whole or not at all, even with two commands at once
    except OSError:
        if partial is not None:
            Path(partial.name).unlink(missing_ok=True)
    return arrays
