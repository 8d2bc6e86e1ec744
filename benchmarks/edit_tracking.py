"""How far painted dots land from the landmarks they were painted on, per clip.

    python benchmarks/edit_tracking.py [--model PATH] [--fit SECONDS] CLIP [CLIP ...]

For each clip: extract the embedded face, paint dots on the nose tip, an eye corner and a
mouth corner, render, and compare each dot with dlib's landmark in every frame. With
--fit, also adapt the model to the clip first and measure again (and time the fit).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from x2face_edit.evaluate import edit_tracking_error
from x2face_edit.fit import fit
from x2face_edit.model import default_model_path, load_model
from x2face_edit.model.checkpoint import file_fingerprint
from x2face_edit.tracking import track_video


def measure(model_path: Path, clip: Path, track, work: Path):
    info = {"path": str(model_path), "fingerprint": file_fingerprint(model_path)}
    return edit_tracking_error(load_model(model_path), info, clip, track, work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--fit", type=float, default=None, help="also fit for this many seconds and measure again")
    args = parser.parse_args()
    print(f"{'clip':<34}{'model':<10}{'mean px':>9}{'max px':>8}{'mean/face':>10}{'found':>7}{'fit s':>7}")
    for clip in args.clips:
        track = track_video(clip)
        with tempfile.TemporaryDirectory() as scratch:
            work = Path(scratch)
            rows = [("default", measure(args.model, clip, track, work), None)]
            if args.fit:
                start = time.perf_counter()
                fitted = fit(clip, work / "fitted.pt", model_path=args.model, max_seconds=args.fit, progress=False)
                seconds = time.perf_counter() - start
                rows.append(("fitted", measure(fitted, clip, track, work), seconds))
        for name, error, seconds in rows:
            fit_time = f"{seconds:7.0f}" if seconds else f"{'':>7}"
            print(f"{clip.name:<34}{name:<10}{error.mean:9.2f}{error.max:8.1f}{error.mean_relative:10.3f}{error.found:7.2f}{fit_time}")


if __name__ == "__main__":
    main()
