"""Face tracks for training from a folder of videos (the files are ``face_tracks.py``'s):
each video tracked, in parallel processes where asked, resuming where a run stopped."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from .errors import X2FaceError
from .face_tracks import VIDEO_RECORD, PrepareOptions, add_missing_landmarks, prepare_video, read_json, write_manifest

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".m4v"}


def find_videos(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise X2FaceError(f"not a folder: {folder}")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def read_identity_map(path: str | Path) -> dict[str, str]:
    """A tab- or comma-separated file of ``video file name, identity`` lines."""
    mapping = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.replace("\t", ",").split(",")]
        if len(fields) != 2 or not all(fields):
            raise X2FaceError(f"{path}:{number}: expected 'video,identity', got {line!r}")
        mapping[fields[0]] = fields[1]
    return mapping


def prepare(
    videos: Sequence[Path],
    out_dir: str | Path,
    *,
    options: PrepareOptions = PrepareOptions(),
    identities: dict[str, str] | None = None,
    workers: int = 1,
    on_video_done: Callable[[Path, dict | None, str | None], None] | None = None,
) -> dict:
    """Prepare face tracks for ``videos`` under ``out_dir`` and write its manifest.

    Videos whose ``video.json`` already exists are skipped, so an interrupted run resumes
(their tracks only gain landmarks if they were prepared without).
    Each video is tracked in its own process when ``workers`` > 1. A video that fails
    (unreadable, say) is reported through ``on_video_done`` and the others go on.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    identities = identities or {}
    pending = [v for v in videos if not (out_dir / v.name / VIDEO_RECORD).exists()]
    for video in videos:
        if video not in pending:
            add_missing_landmarks(video, out_dir / video.name)
            if on_video_done:
                on_video_done(video, read_json(out_dir / video.name / VIDEO_RECORD), None)

    def job_args(video: Path) -> tuple:
        return video, out_dir, identities.get(video.name, video.stem), options

    if workers <= 1:
        for video in pending:
            _report(video, functools.partial(prepare_video, *job_args(video)), on_video_done)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(prepare_video, *job_args(v)): v for v in pending}
            for future in as_completed(futures):
                _report(futures[future], future.result, on_video_done)
    return write_manifest(out_dir)


def _report(video: Path, run: Callable[[], dict], on_video_done: Callable | None) -> None:
    try:
        record, error = run(), None
    except X2FaceError as exc:
        record, error = None, str(exc)
    if on_video_done:
        on_video_done(video, record, error)
