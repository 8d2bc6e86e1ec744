"""The sidecar ``face.json``: what ``extract`` records of an embedded face, read, written
and checked here only.

It names the video (relative to the sidecar, so a project folder can move as a whole, and
absolute), the face followed and who that is, the source frames (numbers, times, crop
boxes), the embedded face's size, the model it was made with, and where dlib's landmarks
lie on the embedded face. From it ``render`` rebuilds the unpainted embedded face.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import X2FaceError
from .model import ModelInfo, X2Face
from .sequences import media_exists

SIDECAR_FORMAT = "x2face-edit embedded face"


@dataclass(frozen=True)
class SidecarModel:
    """The model an embedded face was made with: its file, config and embedding network."""

    info: ModelInfo
    config: dict[str, Any]
    embedding: str | None  # ``X2Face.embedding_fingerprint``; None in sidecars older than it

    def to_dict(self) -> dict[str, Any]:
        return {**self.info.to_dict(), "config": self.config, "embedding": self.embedding}


@dataclass
class Sidecar:
    video: Path  # absolute
    frames: list[int]
    crop_boxes: list[list[float]]
    size: int
    model: SidecarModel
    landmarks: list[list[float]]  # (68, 2) embedded-face pixels
    face: int = 0
    person: list[float] | None = None  # dlib's descriptor of the face followed
    times: list[float] | None = None  # the source frames' times, so that render seeks to them (video.frames_at)
    path: Path | None = None  # the file it was read from, if read
    # Its source frames decoded already (an analysis file holds them), by frame number.
    decoded: dict[int, np.ndarray] | None = field(default=None, repr=False, compare=False)

    @property
    def boxes(self) -> list[np.ndarray]:
        return [np.array(b) for b in self.crop_boxes]

    def followed_face(self, face: int | None) -> tuple[int, np.ndarray | None]:
        """Which face of a driving video the paint follows: (face number, descriptor to look
        for). ``face`` where given; else the person this face is, where known, and its face
        number for footage where nobody looks like them."""
        if face is not None:
            return face, None
        return self.face, None if self.person is None else np.array(self.person)

    def check_model(self, model: X2Face, info: ModelInfo) -> None:
        """Refuse a model whose embedding network is not the one this face was made with."""
        if self.model.embedding != model.embedding_fingerprint():
            raise X2FaceError(
                f"the face was extracted with another model ({self.model.info.path}) than this one "
                f"({info.path}): their embedding networks differ, so the paint would land elsewhere; "
                "pass that --model, or extract again"
            )

    def to_json(self, folder: Path) -> str:
        """The file's text, the video recorded relative to ``folder`` (where the file goes) and absolute."""
        record = {
            "format": SIDECAR_FORMAT,
            "video": os.path.relpath(self.video, folder.resolve()),
            "face": self.face,
            **({"person": self.person} if self.person is not None else {}),
            "frames": self.frames,
            **({"times": self.times} if self.times is not None else {}),
            "crop_boxes": self.crop_boxes,
            "size": self.size,
            "model": self.model.to_dict(),
            "landmarks": self.landmarks,
            "video_absolute": str(self.video),
        }
        return json.dumps(record, indent=1)


def output_paths(face_png: str | Path) -> tuple[Path, Path, Path, Path]:
    """``face.png`` -> (face.png, face.edit.png, face.guide.png, face.json)."""
    face_png = Path(face_png)
    if face_png.suffix.lower() != ".png":
        # A lossy copy would not do: render finds the paint where a painted copy differs from it.
        raise X2FaceError(f"{face_png.name}: write the embedded face as .png (lossless; render finds the paint "
                          "where the painted copy differs from it)")
    return face_png, face_png.with_suffix(".edit.png"), face_png.with_suffix(".guide.png"), face_png.with_suffix(".json")


def sidecar_beside(image: str | Path) -> Path:
    """The sidecar of an image ``extract`` wrote: face.png, face.edit.png and face.guide.png -> face.json."""
    image = Path(image)
    return image.with_name(image.name.removesuffix(".png").removesuffix(".edit").removesuffix(".guide") + ".json")


def read_sidecar(path: str | Path) -> Sidecar:
    path = Path(path)
    if not path.is_file():
        raise X2FaceError(f"sidecar not found: {path} (written by 'extract' beside the face image; pass --sidecar)")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise X2FaceError(f"{path} is not a sidecar written by 'extract' (not JSON)") from None
    if not isinstance(record, dict) or record.get("format") != SIDECAR_FORMAT:
        raise X2FaceError(f"{path} is not a sidecar written by 'extract'")
    beside = path.resolve().parent / record["video"]
    video = beside if media_exists(beside) or "video_absolute" not in record else Path(record["video_absolute"])
    try:
        model = record["model"]
        return Sidecar(
            video=video, frames=list(record["frames"]), crop_boxes=record["crop_boxes"], size=int(record["size"]),
            model=SidecarModel(ModelInfo(model["path"], model.get("fingerprint", "")), model.get("config", {}), model.get("embedding")),
            landmarks=record.get("landmarks", []), face=record.get("face", 0), person=record.get("person"), times=record.get("times"),
            path=path,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise X2FaceError(f"{path} is a damaged sidecar (missing or wrong {exc})") from None
