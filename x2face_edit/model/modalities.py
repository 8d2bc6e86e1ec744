"""Driving X2Face from head pose and from audio (paper section 4).

Both work in driving-vector space: small maps fitted on (driving vector, label) pairs of
face tracks, stored beside the model they were fitted for.

- Pose: f_v->p, a linear layer 128 -> 3 fitted with an L1 loss, reads a vector's pose;
  f_p->v, a linear layer 3 -> 128 then BatchNorm1d, fitted with an L1 loss to regress the
  vector from the pose, turns a pose change into a vector change. Equation (1):
  v = v_src + f_p->v(p_target - f_v->p(v_src)), applied as the map's change from a zero
  pose change so that "no change" leaves the source as it is. The maps also hold how
  dlib's landmarks move per degree (``fit_landmark_motion``), for driving by landmarks.
- Audio: least squares from normalised audio features to driving vectors (ridge-regularised
  for one speaker's own map, ``audio.speaker_audio_map``).
  v = v_src + Δ - f_p->v(f_v->p(Δ)), Δ = f_a->v(a_t) - f_a->v(a_src): the audio's change
  to the vector, less the pose change it implies (audio should move the mouth, not the head).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..errors import X2FaceError
from ..outputs import atomic_output
from .checkpoint import file_fingerprint
from .data import TrackInfo, load_image, load_tracks, track_labels, track_landmarks, tracks_in_split
from .landmarks import LANDMARK_COUNT, mirror_landmarks
from .networks import DRIVING_VECTOR_SIZE, X2Face

POSE_FORMAT = "x2face-edit pose maps"
AUDIO_FORMAT = "x2face-edit audio map"
# Ridge of the landmarks -> vector regression (per frame, on grid-coordinate landmarks).
LANDMARK_RIDGE = 1e-3


class PoseMaps(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.vector_to_pose = nn.Linear(DRIVING_VECTOR_SIZE, 3)
        self.pose_to_vector = nn.Sequential(nn.Linear(3, DRIVING_VECTOR_SIZE), nn.BatchNorm1d(DRIVING_VECTOR_SIZE))
        # How each of dlib's 68 landmarks moves in a face crop (grid units) per degree of
        # yaw, pitch and roll: what turning a head looks like, for pose driving by landmarks.
        self.register_buffer("landmark_motion", torch.zeros(3, LANDMARK_COUNT, 2))
        # The driving-vector change for a change of those landmarks (flattened), by ridge regression.
        self.register_buffer("landmarks_to_vector", torch.zeros(LANDMARK_COUNT * 2, DRIVING_VECTOR_SIZE))

    def vector_change(self, pose_change: torch.Tensor) -> torch.Tensor:
        """f_p->v(Δp) - f_p->v(0): the vector change for a (N, 3) pose change in degrees."""
        return self.pose_to_vector(pose_change) - self.pose_to_vector(torch.zeros_like(pose_change))

    def pose_change(self, vector_change: torch.Tensor) -> torch.Tensor:
        """f_v->p's linear part: the pose change a (N, 128) vector change implies."""
        return vector_change @ self.vector_to_pose.weight.T

    def repose(self, vector: torch.Tensor, target_pose: torch.Tensor) -> torch.Tensor:
        """Equation (1): the (N, 128) vector moved to (N, 3) target poses."""
        return vector + self.vector_change(target_pose - self.vector_to_pose(vector))


class AudioMap(nn.Module):
    """f_a->v: normalised features -> driving vector (or ``outputs`` other numbers, such as
    a mouth opening), by (ridge-regularised) least squares.

    ``offsets`` are the times (seconds, around each frame's time) whose audio features are
    concatenated into the map's input: (0.0,) for the global map, a wider context for a
    speaker's own map.
    """

    def __init__(self, feature_size: int, offsets: tuple[float, ...] = (0.0,), outputs: int = DRIVING_VECTOR_SIZE) -> None:
        super().__init__()
        self.offsets = tuple(offsets)
        self.register_buffer("mean", torch.zeros(feature_size))
        self.register_buffer("std", torch.ones(feature_size))
        self.linear = nn.Linear(feature_size, outputs)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear((features - self.mean) / self.std)


@torch.inference_mode()
def track_vectors(model: X2Face, tracks: list[TrackInfo], *, batch_size: int = 32, device: str = "cpu") -> list[torch.Tensor]:
    """The driving vector of every frame of every track: one (frames, 128) tensor per track."""
    model = model.to(device).eval()
    frames = [(track, name) for track in tracks for name in track.frames]
    loader = DataLoader(frames, batch_size=batch_size, collate_fn=lambda items: torch.stack(
        [load_image(track.folder / name, model.config.resolution) for track, name in items]))
    vectors = torch.cat([model.driving_vector(batch.to(device)).cpu() for batch in loader])
    return list(vectors.split([len(t.frames) for t in tracks]))


def fit_pose_maps(vectors: torch.Tensor, poses: torch.Tensor, *, steps: int = 3000, seed: int = 0) -> PoseMaps:
    """Fit both maps with L1 losses on (N, 128) vectors and (N, 3) poses (full batch, Adam)."""
    torch.manual_seed(seed)
    maps = PoseMaps()
    optimizer = torch.optim.Adam(maps.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    maps.train()
    for _ in range(steps):
        loss = (maps.vector_to_pose(vectors) - poses).abs().mean() + (maps.pose_to_vector(poses) - vectors).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    return maps.eval()


def fit_landmark_motion(landmarks: np.ndarray, poses: np.ndarray) -> torch.Tensor:
    """(3, 68, 2) least-squares landmark displacement per degree of (yaw, pitch, roll),
    from (N, 68, 2) crop landmarks (grid coordinates) and their (N, 3) poses; every face is
    also counted mirrored (yaw and roll change sign), so the motion is symmetric."""
    mirrored = np.asarray(mirror_landmarks(landmarks.copy()))
    points = np.concatenate([landmarks, mirrored])
    angles = np.concatenate([poses, poses * np.array([-1, 1, -1], np.float32)])
    centred = (points - points.mean(axis=1, keepdims=True)).reshape(len(points), -1)
    design = np.concatenate([angles, np.ones((len(angles), 1), np.float32)], axis=1)
    solution, *_ = np.linalg.lstsq(design.astype(np.float64), centred.astype(np.float64), rcond=None)
    return torch.from_numpy(solution[:3].reshape(3, LANDMARK_COUNT, 2)).float()


def ridge_least_squares(inputs: torch.Tensor, targets: torch.Tensor, ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The (D, K) weight and (K,) bias of least squares ``targets ~ inputs @ W + b`` for
    (N, D) inputs and (N, K) targets, adding ridge * N * |W|^2 (the bias is not shrunk);
    computed in float64."""
    inputs, targets = inputs.double(), targets.double()
    input_mean, target_mean = inputs.mean(0), targets.mean(0)
    centred = inputs - input_mean
    gram = centred.T @ centred + ridge * len(inputs) * torch.eye(inputs.shape[1], dtype=torch.float64)
    weight = torch.linalg.lstsq(gram, centred.T @ (targets - target_mean)).solution
    return weight, target_mean - input_mean @ weight


def fit_landmarks_to_vector(landmarks: np.ndarray, vectors: np.ndarray, *, ridge: float = LANDMARK_RIDGE) -> torch.Tensor:
    """(136, 128) ridge regression of driving vectors on (N, 68, 2) crop landmarks: the
    vector change that moves a face's landmarks by a given change."""
    weight, _ = ridge_least_squares(torch.from_numpy(landmarks.reshape(len(landmarks), -1)), torch.from_numpy(vectors), ridge)
    return weight.float()


def landmark_pose_pairs(model: X2Face, tracks: list[TrackInfo], **options) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 68, 2) landmarks, (N, 3) poses and (N, 128) driving vectors of every track
    frame that has landmarks and a pose."""
    landmarks, poses, vectors = [], [], []
    for track, track_vectors_ in zip(tracks, track_vectors(model, tracks, **options)):
        points, labels = track_landmarks(track), track_labels(track)[0]
        both = ~np.isnan(labels).any(axis=1) & ~np.isnan(points).any(axis=(1, 2))
        landmarks.append(points[both])
        poses.append(labels[both])
        vectors.append(track_vectors_.numpy()[both])
    if not tracks or not sum(len(p) for p in poses):
        raise X2FaceError("no track frame has both landmarks and a head pose: run 'prepare' on these videos again")
    return np.concatenate(landmarks), np.concatenate(poses), np.concatenate(vectors)


def fit_audio_map(features: torch.Tensor, vectors: torch.Tensor, *, ridge: float = 0.0,
                  offsets: tuple[float, ...] = (0.0,)) -> AudioMap:
    """Least squares from normalised (N, D) features to (N, K) vectors (driving vectors, or
    any K numbers per frame); ``ridge`` > 0 adds ridge * N * |W|^2 (the bias is not
    shrunk), which a few hundred frames of one speaker need against hundreds of feature
    dimensions."""
    audio_map = AudioMap(features.shape[1], offsets, outputs=vectors.shape[1])
    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    weight, bias = ridge_least_squares((features - mean) / std, vectors, ridge)
    with torch.no_grad():
        audio_map.mean.copy_(mean)
        audio_map.std.copy_(std)
        audio_map.linear.weight.copy_(weight.T.float())
        audio_map.linear.bias.copy_(bias.float())
    return audio_map.eval()


def save_map(path: str | Path, module: nn.Module, *, kind: str, model_fingerprint: str, meta: dict) -> None:
    payload = {"format": kind, "model_fingerprint": model_fingerprint, "state_dict": module.state_dict(), "meta": meta}
    with atomic_output(path, force=True) as partial:
        torch.save(payload, partial)


def load_map(path: str | Path, *, kind: str, model_fingerprint: str) -> tuple[nn.Module, dict]:
    """Load pose maps or an audio map, refusing one fitted for another model."""
    path = Path(path)
    if not path.is_file():
        what = "pose maps" if kind == POSE_FORMAT else "audio map"
        command = "fit-pose" if kind == POSE_FORMAT else "fit-audio"
        raise X2FaceError(f"no {what} at {path}: make them with 'x2face-edit {command}'")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise X2FaceError(f"{path} is not readable (corrupt or not a PyTorch file)") from None
    if not isinstance(payload, dict) or payload.get("format") != kind:
        raise X2FaceError(f"{path} is not a file of {kind}")
    if payload["model_fingerprint"] != model_fingerprint:
        raise X2FaceError(f"{path} was fitted for another model ({payload['model_fingerprint']}, not {model_fingerprint})")
    state = payload["state_dict"]
    if kind == POSE_FORMAT and "landmarks_to_vector" not in state:
        raise X2FaceError(f"{path} predates driving by landmarks: fit it again with 'x2face-edit fit-pose TRACKS'")
    module = PoseMaps() if kind == POSE_FORMAT else AudioMap(state["mean"].shape[0])
    module.load_state_dict(state)
    return module.eval(), payload["meta"]


def pose_pairs(model: X2Face, tracks: list[TrackInfo], **options) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 128) driving vectors and (N, 3) pose labels of every labelled track frame."""
    vectors, poses = [], []
    for track, track_vectors_ in zip(tracks, track_vectors(model, tracks, **options)):
        labels = torch.from_numpy(track_labels(track)[0])
        keep = ~labels.isnan().any(dim=1)
        vectors.append(track_vectors_[keep])
        poses.append(labels[keep])
    return torch.cat(vectors), torch.cat(poses)


def audio_pairs(model: X2Face, tracks: list[TrackInfo], **options) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, D) audio features and (N, 128) driving vectors of every frame of tracks with sound."""
    with_sound = [(t, a) for t in tracks if (a := track_labels(t)[1]) is not None]
    if not with_sound:
        raise X2FaceError("none of these tracks has sound: prepare videos with a sound track")
    vectors = track_vectors(model, [t for t, _ in with_sound], **options)
    return torch.from_numpy(np.concatenate([a for _, a in with_sound])), torch.cat(vectors)


def pose_errors(maps: PoseMaps, vectors: torch.Tensor, poses: torch.Tensor) -> dict[str, float]:
    """Mean absolute error of f_v->p in degrees, per angle and overall (the paper's Table 2)."""
    with torch.no_grad():
        errors = (maps.vector_to_pose(vectors) - poses).abs().mean(0).tolist()
    return {"yaw": errors[0], "pitch": errors[1], "roll": errors[2], "mean": sum(errors) / 3}


def explained_variance(audio_map: AudioMap, features: torch.Tensor, vectors: torch.Tensor) -> float:
    """1 - residual / total variance of the driving vectors that f_a->v predicts."""
    with torch.no_grad():
        residual = (audio_map(features) - vectors).pow(2).mean()
    return float(1 - residual / (vectors - vectors.mean(0)).pow(2).mean())


def maps_path(model_path: str | Path, kind: str) -> Path:
    """Maps live beside their model: x2face-128.pt -> x2face-128.pose.pt / .audio.pt."""
    return Path(model_path).with_suffix(f".{kind}.pt")


def _train_and_test(tracks_dir: str | Path, split_seed: int) -> tuple[list[TrackInfo], list[TrackInfo]]:
    every = load_tracks(tracks_dir)
    return tracks_in_split(every, "train", split_seed), tracks_in_split(every, "test", split_seed)


def fit_and_save_pose_maps(model: X2Face, model_fingerprint: str, tracks_dir: str | Path, out: str | Path, *,
                           split_seed: int = 0, device: str = "cpu") -> dict[str, float] | None:
    """Fit the pose maps on the training identities of ``tracks_dir``, save them, and
    return f_v->p's mean absolute errors on the test identities (None if there are none)."""
    train_tracks, test_tracks = _train_and_test(tracks_dir, split_seed)
    landmarks, poses, vectors = landmark_pose_pairs(model, train_tracks, device=device)
    maps = fit_pose_maps(torch.from_numpy(vectors), torch.from_numpy(poses))
    maps.landmark_motion.copy_(fit_landmark_motion(landmarks, poses))
    maps.landmarks_to_vector.copy_(fit_landmarks_to_vector(landmarks, vectors))
    errors = pose_errors(maps, *pose_pairs(model, test_tracks, device=device)) if test_tracks else None
    save_map(out, maps, kind=POSE_FORMAT, model_fingerprint=model_fingerprint,
             meta={"tracks": str(tracks_dir), "test_mae_degrees": errors})
    return errors


def fit_and_save_audio_map(model: X2Face, model_fingerprint: str, tracks_dir: str | Path, out: str | Path, *,
                           split_seed: int = 0, device: str = "cpu") -> dict:
    """Fit f_a->v on the training identities with sound, save it, and return what was
    measured (frames used; variance explained on the test identities)."""
    train_tracks, test_tracks = _train_and_test(tracks_dir, split_seed)
    features, vectors = audio_pairs(model, train_tracks, device=device)
    audio_map = fit_audio_map(features, vectors)
    meta = {"tracks": str(tracks_dir), "frames": len(features)}
    if test_tracks:
        meta["test_explained_variance"] = explained_variance(audio_map, *audio_pairs(model, test_tracks, device=device))
    save_map(out, audio_map, kind=AUDIO_FORMAT, model_fingerprint=model_fingerprint, meta=meta)
    return meta


def pose_table(model: X2Face, model_path: str | Path, tracks: list[TrackInfo], *, device: str = "cpu") -> dict[str, float] | None:
    """Table 2: f_v->p's pose errors on ``tracks``, if maps fitted for this model lie
    beside it and the tracks carry pose labels; None otherwise."""
    path = maps_path(model_path, "pose")
    if not path.is_file():
        return None
    maps, _ = load_map(path, kind=POSE_FORMAT, model_fingerprint=file_fingerprint(model_path))
    vectors, poses = pose_pairs(model, tracks, device=device)
    return pose_errors(maps, vectors, poses) if len(poses) else None
