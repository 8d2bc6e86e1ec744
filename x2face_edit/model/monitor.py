"""What training leaves to look at: ``log.jsonl`` (one JSON record per logged step) and,
optionally, TensorBoard event files with the same scalars and, at each validation, a
picture grid of sources, driving frames, generated frames and embedded faces."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import X2FaceError
from .networks import X2Face

LOG_NAME = "log.jsonl"
# Validation pairs shown in the picture grid.
PICTURE_PAIRS = 4


class TrainingLog:
    """Appends records to ``out_dir/log.jsonl``; with ``tensorboard``, also writes them
    as TensorBoard scalars (and ``pictures``) under ``out_dir/tensorboard``."""

    def __init__(self, out_dir: str | Path, *, tensorboard: bool = False) -> None:
        self._file = (Path(out_dir) / LOG_NAME).open("a")
        self._board = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self._file.close()
                raise X2FaceError("--tensorboard needs the tensorboard package: pip install 'x2face-edit[monitor]'") from None
            self._board = SummaryWriter(str(Path(out_dir) / "tensorboard"))

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._board is not None:
            for name, value in record.items():
                if name != "step" and isinstance(value, (int, float)):
                    self._board.add_scalar(name, value, record["step"])
            self._board.flush()

    @torch.inference_mode()
    def pictures(self, step: int, model: X2Face, sources: torch.Tensor, driving: torch.Tensor) -> None:
        """A grid (TensorBoard only): a row per pair of the first source, the driving
        frame, the generated frame and the embedded face."""
        if self._board is None:
            return
        sources, driving = sources[:PICTURE_PAIRS], driving[:PICTURE_PAIRS]
        was_training = model.training
        model.eval()
        generated = model(sources, driving)
        embedded = model.embed(sources)
        model.train(was_training)
        rows = torch.cat([sources[:, 0], driving, generated, embedded], dim=3)  # (N, 3, H, 4W)
        self._board.add_image("validation: source | driving | generated | embedded face",
                              torch.cat(list(rows.float().clamp(0, 1).cpu()), dim=1), step)
        self._board.flush()

    def close(self) -> None:
        self._file.close()
        if self._board is not None:
            self._board.close()


def read_log(path: str | Path) -> list[dict]:
    """The records of a ``log.jsonl`` (or of the one in a run folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / LOG_NAME
    if not path.is_file():
        raise X2FaceError(f"no training log: {path}")
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError:
        raise X2FaceError(f"{path} is not a training log (not JSON lines)") from None


def plot_log(records: list[dict], out: str | Path) -> None:
    """Curves of a training log as a PNG: the training loss and its terms, the validation
    L1 and round trip, and the learning rate, against the step."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise X2FaceError("plotting needs matplotlib: pip install 'x2face-edit[monitor]'") from None
    if not records:
        raise X2FaceError("the training log is empty")
    skip = {"step", "lr", "frames_per_s", "elapsed_s", "frames_seen"}
    terms = sorted({k for r in records for k, v in r.items() if k not in skip and not k.startswith("val_") and isinstance(v, (int, float))})
    validations = [r for r in records if r.get("val_l1") is not None]
    figure, (losses, validation, rate) = plt.subplots(3, 1, figsize=(9, 10), sharex=True)
    for term in terms:
        points = [(r["step"], r[term]) for r in records if isinstance(r.get(term), (int, float))]
        losses.plot(*zip(*points), label=term, linewidth=1)
    losses.set_yscale("log")
    losses.set_ylabel("training (mean over the log window)")
    losses.legend(fontsize=8)
    if validations:
        steps = [r["step"] for r in validations]
        validation.plot(steps, [r["val_l1"] for r in validations], "o-", label="validation L1")
        validation.set_ylabel("validation L1")
        trips = [(r["step"], r["val_round_trip_iod_pct"]) for r in validations if r.get("val_round_trip_iod_pct") is not None]
        if trips:
            twin = validation.twinx()
            twin.plot(*zip(*trips), "s--", color="tab:red", label="round trip")
            twin.set_ylabel("round trip (% of eye distance)", color="tab:red")
    rate.plot([r["step"] for r in records if "lr" in r], [r["lr"] for r in records if "lr" in r])
    rate.set_yscale("log")
    rate.set_ylabel("learning rate")
    rate.set_xlabel("step")
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)
