"""Training data: (source frames, driving frame) pairs drawn from prepared face tracks.

Reads only the folder that ``x2face-edit prepare`` writes (``manifest.json`` and JPEG
crops), so training needs neither video decoding nor face detection.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import X2FaceError
from .landmarks import LANDMARK_COUNT, crop_pixels_to_grid, mirror_landmarks

SPLITS = ("train", "val", "test")
# The paper splits VoxCeleb identities 75/15/10 into train/val/test.
DEFAULT_FRACTIONS = (0.75, 0.15, 0.10)


@dataclass(frozen=True)
class TrackInfo:
    folder: Path
    identity: str
    frames: tuple[str, ...]


def load_tracks(tracks_dir: str | Path) -> list[TrackInfo]:
    """Every track listed in ``tracks_dir/manifest.json`` with at least two frames."""
    tracks_dir = Path(tracks_dir)
    manifest_path = tracks_dir / "manifest.json"
    if not manifest_path.is_file():
        raise X2FaceError(f"no manifest.json in {tracks_dir}: make the folder with 'x2face-edit prepare'")
    manifest = json.loads(manifest_path.read_text())
    tracks = []
    for entry in manifest["tracks"]:
        folder = tracks_dir / entry["path"]
        record = json.loads((folder / "track.json").read_text())
        frames = tuple(f["file"] for f in record["frames"])
        if len(frames) >= 2:
            tracks.append(TrackInfo(folder, entry["identity"], frames))
    if not tracks:
        raise X2FaceError(f"{tracks_dir} holds no face track with two or more frames")
    return tracks


def track_labels(track: TrackInfo) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-frame labels that prepare recorded: (frames, 3) head poses in degrees (NaN where
    none could be estimated) and (frames, D) audio features, or None for a silent video."""
    record = json.loads((track.folder / "track.json").read_text())
    poses = np.array([f.get("pose") or [np.nan] * 3 for f in record["frames"]], dtype=np.float32)
    audio_path = track.folder / "audio.npy"
    return poses, (np.load(audio_path) if audio_path.exists() else None)


def track_landmarks(track: TrackInfo) -> np.ndarray:
    """(frames, 68, 2) landmarks in grid coordinates that prepare recorded; NaN for frames
    without (tracks prepared before landmarks were kept)."""
    record = json.loads((track.folder / "track.json").read_text())
    points = np.full((len(record["frames"]), LANDMARK_COUNT, 2), np.nan, dtype=np.float32)
    for number, frame in enumerate(record["frames"]):
        if frame.get("landmarks") is not None:
            points[number] = crop_pixels_to_grid(frame["landmarks"], record["size"])
    return points


def split_identities(
    identities: list[str], fractions: tuple[float, float, float] = DEFAULT_FRACTIONS, seed: int = 0
) -> dict[str, str]:
    """Assign each identity to 'train', 'val' or 'test' (shuffled with ``seed``).

    Counts are rounded; training keeps at least one identity, so a set of one or two
    identities is all training data.
    """
    unique = sorted(set(identities))
    random.Random(seed).shuffle(unique)
    count = len(unique)
    n_test = min(round(count * fractions[2]), max(count - 1, 0))
    n_val = min(round(count * fractions[1]), max(count - 1 - n_test, 0))
    split = {}
    for i, identity in enumerate(unique):
        split[identity] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return split


def tracks_in_split(tracks: list[TrackInfo], split: str, seed: int = 0,
                    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> list[TrackInfo]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    assignment = split_identities([t.identity for t in tracks], fractions, seed)
    return [t for t in tracks if assignment[t.identity] == split]


def load_image(path: Path, size: int | None = None) -> torch.Tensor:
    """A (3, H, W) float tensor in [0, 1], resized to ``size`` if given."""
    image = Image.open(path).convert("RGB")
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float().div_(255)


class TrackPairs(Dataset):
    """Every frame of every track once as the driving frame, with ``num_sources``
    other frames of the same track (drawn at random each time) as the sources.

    Items are (sources (K, 3, H, W), driving (3, H, W)); with ``other_identity`` a third,
    a random frame of another identity (for the stage-II identity loss); with
    ``landmarks`` two more, the sources' (K, 68, 2) and the driving frame's (68, 2)
    landmarks in grid coordinates (NaN where prepare found none).

    ``mirror`` is the fraction of items flipped left-right as a whole (images and
    landmarks, whose indices swap sides): every face is seen both ways, so the embedded
    face cannot settle on one side's layout.

    With ``far_pose`` > 0, that fraction of items draws its sources from the quarter of the
    track's frames farthest in head pose (prepare's labels) from the driving frame: with
    few videos, uniform pairs rarely differ much in pose, and the model barely learns to
    turn a head.
    """

    def __init__(self, tracks: list[TrackInfo], *, num_sources: int = 1, size: int | None = None,
                 other_identity: bool = False, far_pose: float = 0.0, landmarks: bool = False,
                 mirror: float = 0.0) -> None:
        if not tracks:
            raise X2FaceError("no tracks for this split")
        self.tracks = tracks
        self.num_sources = num_sources
        self.size = size
        self.other_identity = other_identity
        if other_identity and len({t.identity for t in tracks}) < 2:
            raise X2FaceError("stage II needs at least two identities in the training split")
        self.index = [(t, f) for t, track in enumerate(tracks) for f in range(len(track.frames))]
        self.far_pose = far_pose
        self._poses = [track_labels(track)[0] for track in tracks] if far_pose > 0 else None
        self._landmarks = [track_landmarks(track) for track in tracks] if landmarks else None
        self.mirror = mirror

    @property
    def landmarked_fraction(self) -> float:
        """The fraction of frames with landmarks (0 when landmarks were not asked for)."""
        if self._landmarks is None:
            return 0.0
        return float(np.mean(np.concatenate([~np.isnan(p[:, 0, 0]) for p in self._landmarks])))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, ...]:
        track_number, driving_number = self.index[item]
        track = self.tracks[track_number]
        others = [f for f in range(len(track.frames)) if f != driving_number]
        # torch's generator is seeded per DataLoader worker, so these draws are reproducible.
        if self._poses is not None and float(torch.rand(())) < self.far_pose:
            others = self._farthest_in_pose(track_number, driving_number, others)
        picks = [others[p] for p in torch.randint(len(others), (self.num_sources,)).tolist()]
        item = [torch.stack([self._frame(track, p) for p in picks]), self._frame(track, driving_number)]
        if self.other_identity:
            while True:
                other_track, other_frame = self.index[int(torch.randint(len(self.index), ()))]
                if self.tracks[other_track].identity != track.identity:
                    break
            item.append(self._frame(self.tracks[other_track], other_frame))
        if self._landmarks is not None:
            points = self._landmarks[track_number]
            item += [torch.from_numpy(points[picks]), torch.from_numpy(points[driving_number])]
        if self.mirror > 0 and float(torch.rand(())) < self.mirror:
            images = 2 + self.other_identity
            item = [t.flip(-1) for t in item[:images]] + [mirror_landmarks(t) for t in item[images:]]
        return tuple(item)

    def _farthest_in_pose(self, track_number: int, driving_number: int, others: list[int]) -> list[int]:
        """The quarter of ``others`` farthest in head pose from the driving frame (all of
        them where the driving frame has no pose label)."""
        poses = self._poses[track_number]
        if np.isnan(poses[driving_number]).any():
            return others
        distance = np.linalg.norm(poses[others] - poses[driving_number], axis=1)
        order = np.argsort(-np.nan_to_num(distance, nan=-1.0), kind="stable")
        return [others[i] for i in order[: max(1, len(others) // 4)]]

    def _frame(self, track: TrackInfo, number: int) -> torch.Tensor:
        return load_image(track.folder / track.frames[number], self.size)
