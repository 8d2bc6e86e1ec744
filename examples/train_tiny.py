"""Prepare face tracks from videos this script makes itself, then train a tiny X2Face.

    python examples/train_tiny.py [--out runs/example]

Writes four synthetic moving-face videos, tracks and crops their faces with the same code
as `x2face-edit prepare`, trains a 64x64 model for a few hundred steps on the CPU (about a
minute) and reports how far the photometric L1 loss fell.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from x2face_edit.model import load_checkpoint
from x2face_edit.model.train import TrainConfig, train
from x2face_edit.prepare import PrepareOptions, prepare
from x2face_edit.synthetic import write_moving_face_video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/example"))
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)  # the example starts afresh each time
    videos_dir = args.out / "videos"
    videos_dir.mkdir(parents=True)

    videos = [write_moving_face_video(videos_dir / f"person{seed}.mp4", count=50, seed=seed) for seed in range(4)]
    manifest = prepare(videos, args.out / "tracks", options=PrepareOptions(size=64, sample_fps=25))
    print(f"prepared {len(manifest['tracks'])} face tracks, {sum(t['frames'] for t in manifest['tracks'])} crops")

    checkpoint = train(TrainConfig(
        tracks=str(args.out / "tracks"), out_dir=str(args.out / "run"), resolution=64, width=8,
        batch_size=8, max_steps=args.steps, optimizer="adam", val_every=100, checkpoint_every=100, num_workers=0,
    ))
    log = [json.loads(line) for line in (args.out / "run" / "log.jsonl").read_text().splitlines()]
    _, payload = load_checkpoint(checkpoint)
    print(f"L1 loss {log[0]['loss']:.4f} at step {log[0]['step']} -> {log[-1]['loss']:.4f} at step {log[-1]['step']}; "
          f"held-out L1 {payload['meta']['val_l1']:.4f}")
    print(f"checkpoint: {checkpoint}")


if __name__ == "__main__":
    main()
