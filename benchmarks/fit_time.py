"""How long `fit` takes to adapt the shipped model to a 10 s clip, down to a stated loss.

    python benchmarks/fit_time.py [CLIP ...] [--until-loss 0.05] [--seconds 600]

Default clip: liveportrait_s20 from ../shared (9.9 s, an identity held out from the shipped
model's training), or a synthetic 10 s video where ../shared is absent. Prints the clip's
training loss before the fit (the shipped model on the clip's own pairs), the time spent
tracking and cropping, the training time and steps to reach the loss, and the total.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from x2face_edit.fit import FitOptions, fit
from x2face_edit.model import default_model_path, load_checkpoint

DEFAULT_CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "clips" / "liveportrait_s20.mp4"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", type=Path)
    parser.add_argument("--until-loss", type=float, default=0.05, help="the stated training L1 to reach")
    parser.add_argument("--seconds", type=float, default=600.0, help="give up after this much training")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="x2face-fit-bench-") as scratch:
        clips = args.clips
        if not clips:
            if DEFAULT_CLIP.is_file():
                clips = [DEFAULT_CLIP]
            else:
                from x2face_edit.synthetic import write_moving_face_video

                clips = [write_moving_face_video(Path(scratch) / "synthetic_10s.mp4", 250, fps=25)]
        print(f"device {args.device}, threads {torch.get_num_threads()}, target training L1 {args.until_loss}")
        print(f"{'clip':<28}{'loss reached':>14}{'steps':>7}{'train s':>9}{'other s':>9}{'total s':>9}")
        for clip in clips:
            start = time.perf_counter()
            options = FitOptions(max_steps=100_000, max_seconds=args.seconds, target_loss=args.until_loss, device=args.device,
                                 force=True, progress=False)
            fitted = fit(clip, Path(scratch) / f"{clip.stem}.pt", default_model_path(), options)
            total = time.perf_counter() - start
            meta = load_checkpoint(fitted)[1]["meta"]
            print(f"{clip.stem:<28}{meta['train_loss']:>14.4f}{meta['step']:>7}"
                  f"{meta['elapsed_s']:>9.1f}{total - meta['elapsed_s']:>9.1f}{total:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
