"""Adapting a model to one video: the paper's stage-I objective on that video's own face.

The video's face track becomes a one-track training set (the same crops and landmarks
``prepare`` writes), and the trainer fine-tunes the starting model on (source, driving)
pairs from it for a step or time budget, with the round-trip loss and, for a model with a
landmark template, the landmark correspondence losses. A model that has seen this face
places paint more precisely.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import X2FaceError
from .face_tracks import PrepareOptions, prepare_video, write_manifest
from .model import load_checkpoint, save_checkpoint
from .model.train import TrainConfig, train
from .outputs import check_output


@dataclass(frozen=True)
class FitOptions:
    """The budget (``max_steps``, ``max_seconds``, or a training L1 of ``target_loss``,
    averaged over 10 steps, whichever comes first), the frames taken (``sample_fps``), the
    optimiser (``batch_size``, ``lr``), ``seed`` and ``device``; ``driving_only`` keeps the
    embedding network; ``force`` overwrites an existing output; ``progress`` shows a bar."""

    max_steps: int = 10_000
    max_seconds: float | None = 180.0
    target_loss: float | None = None
    sample_fps: float = 10.0
    batch_size: int = 8
    lr: float = 1e-4
    seed: int = 0
    device: str = "cpu"
    driving_only: bool = False
    force: bool = False
    progress: bool = True


def fit(video: str | Path, out: str | Path, model_path: str | Path, options: FitOptions = FitOptions()) -> Path:
    """Fine-tune the model at ``model_path`` on ``video`` and write the result to ``out``.

    ``options.driving_only`` keeps the embedding network: embedded faces, and paint on
    them, stay valid, so an existing edit can be rendered with the fitted model."""
    video, out = Path(video), Path(out)
    check_output(out, force=options.force)
    model, _ = load_checkpoint(model_path)
    with tempfile.TemporaryDirectory(prefix="x2face-fit-") as scratch:
        tracks = Path(scratch) / "tracks"
        tracks.mkdir()
        frames = PrepareOptions(size=model.config.resolution, sample_fps=options.sample_fps, min_frames=2)
        record = prepare_video(video, tracks, video.stem, frames)
        if not record["tracks"]:
            raise X2FaceError(f"no face found in {video}")
        write_manifest(tracks)
        checkpoint = train(TrainConfig(
            tracks=str(tracks), out_dir=str(Path(scratch) / "run"), init=str(model_path), max_steps=options.max_steps,
            max_seconds=options.max_seconds, target_loss=options.target_loss, batch_size=options.batch_size, optimizer="adam",
            lr=options.lr, seed=options.seed, device=options.device, val_every=options.max_steps,
            checkpoint_every=options.max_steps, num_workers=0, progress=options.progress, driving_only=options.driving_only,
            # One video's mean landmarks would be a poor template: only a model that has one uses the landmarks.
            landmark_weight=1.0 if model.config.landmark_template is not None else 0.0,
        ))
        fitted, payload = load_checkpoint(checkpoint)
    # Without the optimizer's state: the result is for extract and render, not for resuming.
    save_checkpoint(out, fitted, meta={**payload["meta"], "fitted_to": str(video.resolve()), "fitted_from": str(model_path)})
    return out
