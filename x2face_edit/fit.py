"""Adapting a model to one video: the paper's stage-I objective on that video's own face.

The video's face track becomes a one-track training set (the same crops and landmarks
``prepare`` writes), and the trainer fine-tunes the starting model on (source, driving)
pairs from it for a step or time budget, with the round-trip loss and, for a model with a
landmark template, the landmark correspondence losses. A model that has seen this face
places paint more precisely.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from .errors import X2FaceError
from .model import load_checkpoint, save_checkpoint
from .model.train import TrainConfig, train
from .outputs import check_output
from .prepare import PrepareOptions, prepare_video, write_manifest


def fit(
    video: str | Path,
    out: str | Path,
    *,
    model_path: str | Path,
    max_steps: int = 10_000,
    max_seconds: float | None = 180.0,
    target_loss: float | None = None,
    sample_fps: float = 10.0,
    batch_size: int = 8,
    lr: float = 1e-4,
    seed: int = 0,
    device: str = "cpu",
    driving_only: bool = False,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Fine-tune the model at ``model_path`` on ``video`` and write the result to ``out``.

    Training stops at ``max_steps``, after ``max_seconds``, or once the training loss
    (L1, averaged over 10 steps) is down to ``target_loss``, whichever comes first.

    ``driving_only`` keeps the embedding network: embedded faces, and paint on them, stay
    valid, so an existing edit can be rendered with the fitted model."""
    video, out = Path(video), Path(out)
    check_output(out, force=force)
    model, _ = load_checkpoint(model_path)
    with tempfile.TemporaryDirectory(prefix="x2face-fit-") as scratch:
        tracks = Path(scratch) / "tracks"
        tracks.mkdir()
        options = PrepareOptions(size=model.config.resolution, sample_fps=sample_fps, min_frames=2)
        record = prepare_video(video, tracks, video.stem, options)
        if not record["tracks"]:
            raise X2FaceError(f"no face found in {video}")
        write_manifest(tracks)
        checkpoint = train(TrainConfig(
            tracks=str(tracks), out_dir=str(Path(scratch) / "run"), init=str(model_path), max_steps=max_steps,
            max_seconds=max_seconds, target_loss=target_loss, batch_size=batch_size, optimizer="adam", lr=lr, seed=seed, device=device,
            val_every=max_steps, checkpoint_every=max_steps, num_workers=0, progress=progress, driving_only=driving_only,
            # One video's mean landmarks would be a poor template: only a model that has one uses the landmarks.
            landmark_weight=1.0 if model.config.landmark_template is not None else 0.0,
        ))
        fitted, payload = load_checkpoint(checkpoint)
    # Without the optimizer's state: the result is for extract and render, not for resuming.
    save_checkpoint(out, fitted, meta={**payload["meta"], "fitted_to": str(video.resolve()), "fitted_from": str(model_path)})
    return out
