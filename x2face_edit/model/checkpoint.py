"""One-file checkpoints: weights, the config that rebuilds the model, and training state.

Files are plain dicts of tensors and primitives so that they load with
``torch.load(weights_only=True)``: opening a checkpoint never runs pickled code.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import X2FaceError
from ..outputs import atomic_output
from .networks import ModelConfig, X2Face

# The shipped default model; X2FACE_MODEL names another.
DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "x2face-128.pt"
FORMAT = "x2face-edit"
FORMAT_VERSION = 1


class CheckpointError(X2FaceError):
    """A file that is not a usable x2face-edit checkpoint."""


def save_checkpoint(
    path: str | Path,
    model: X2Face,
    *,
    meta: dict[str, Any] | None = None,
    training_state: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> None:
    """Write ``model`` to ``path`` atomically (a half-written file is never left behind).

    ``meta`` records how the weights came to be (step, stage, data, time);
    ``training_state`` (optimizer, scheduler, RNG) lets ``train --resume`` continue.
    ``dtype`` stores floating-point weights in that precision (float16 for shipping).
    """
    state = {
        name: (t.to(dtype) if dtype is not None and t.is_floating_point() else t).detach().cpu().contiguous()
        for name, t in model.state_dict().items()
    }
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "state_dict": state,
        "meta": dict(meta or {}),
    }
    if training_state is not None:
        payload["training_state"] = training_state
    with atomic_output(path, force=True) as partial:
        torch.save(payload, partial)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and validate a checkpoint's dict, without building a model."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged or foreign files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt or not a PyTorch file): {reason}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a PyTorch file but not an x2face-edit checkpoint")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {payload.get('format_version')}, this program reads {FORMAT_VERSION}"
        )
    return payload


def load_checkpoint(path: str | Path, *, device: str | torch.device = "cpu") -> tuple[X2Face, dict[str, Any]]:
    """Rebuild the model stored at ``path`` in float32 and eval mode; return it and the payload."""
    payload = read_checkpoint(path)
    try:
        config = ModelConfig(**payload["config"])
        model = X2Face(config)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()})
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{path} does not match the model it describes: {reason}") from None
    return model.to(device).eval(), payload


def default_model_path() -> Path:
    return Path(os.environ.get("X2FACE_MODEL", DEFAULT_MODEL))


def load_model(path: str | Path | None = None, *, device: str | torch.device = "cpu") -> X2Face:
    """The model at ``path``, or the default one: float32, eval mode, on ``device``."""
    return load_checkpoint(path or default_model_path(), device=device)[0]


@dataclass(frozen=True)
class ModelInfo:
    """Which checkpoint file a model came from: what sidecars and maps record of it."""

    path: str  # absolute
    fingerprint: str  # ``file_fingerprint``

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "fingerprint": self.fingerprint}


def load_model_with_info(path: str | Path | None = None, *, device: str | torch.device = "cpu") -> tuple[X2Face, ModelInfo]:
    """``load_model`` and the ``ModelInfo`` of the file it read (the default model where ``path`` is None)."""
    path = Path(path or default_model_path())
    model = load_model(path, device=device)
    return model, ModelInfo(str(path.resolve()), file_fingerprint(path))


def file_fingerprint(path: str | Path) -> str:
    """A short content hash that tells checkpoints apart (recorded in sidecars)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
