"""Measuring a model: the paper's tables on held-out face tracks (``evaluate_models``),
and how well paint follows a face: ``landing_positions`` follows points of the
embedded face through the exact warp ``render`` composites with, without encoding
(sub-pixel, any number of points; what benchmarks/edit_tracking.py judges). The same
measured end to end, through ``extract``, ``render`` and the encoder, is
``tests/paint_dots.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .driving import DrivingOptions, driven, seeing
from .errors import X2FaceError
from .lock import LandmarkLock
from .model import X2Face, load_model, modalities
from .model.data import TrackPairs, load_tracks, tracks_in_split
from .model.inference import GridPredictor
from .model.landmarks import invert_grid
from .model.metrics import photometric_table, round_trip_error
from .occlusion import Occlusion
from .tracking import VideoTrack
from .video import iter_frames


@torch.inference_mode()
def landing_positions(model: X2Face, video: Path, track: VideoTrack, dots: torch.Tensor,
                      lock: LandmarkLock | None, occlusion: Occlusion | None = None) -> np.ndarray:
    """Where paint at embedded-face positions ``dots`` (N, 2, grid coordinates) lands in
    every frame of ``video``: (frames, N, 2) continuous pixel coordinates (a pixel's
    centre at +0.5), NaN where the face is lost. Each frame's driving grid (corrected by
    ``lock``; with ``occlusion``, a partly covered frame driven again as ``render`` drives
    it, ``driving.seeing``) is inverted at the dots: the position whose warp samples the dot."""
    landed = np.full((track.info.frame_count, len(dots), 2), np.nan)
    options = DrivingOptions(lock) if occlusion is None else seeing(occlusion, track, DrivingOptions(lock))
    for index, _, grid, *_ in driven(GridPredictor(model), track, iter_frames(video), options):
        if grid is not None:
            x0, y0, x1, y1 = track.crop_box(index)
            landed[index] = (invert_grid(grid, dots).numpy() + 1) / 2 * [x1 - x0, y1 - y0] + [x0, y0]
    return landed


def evaluate_models(tracks: Path, model_paths: list[Path], *, split: str = "test", split_seed: int = 0,
                    source_counts: tuple[int, ...] = (1, 3), max_batches: int | None = None, device: str = "cpu") -> dict:
    """The paper's Table 1 (L1 of generated vs driving frames with each number of sources,
    and a copy-the-source baseline), the round trip |E(D(p)) - p| in % of the eye distance,
    and Table 2 (head-pose error of f_v->p, for models with pose maps beside them) on the
    ``split`` identities of ``tracks`` ("all": every track). Models are named by their file
    name, or path where two share one."""
    held_out = load_tracks(tracks) if split == "all" else tracks_in_split(load_tracks(tracks), split, split_seed)
    if not held_out:
        raise X2FaceError(f"no {split} identities in {tracks} (too few identities to hold any out)")
    names = [p.name for p in model_paths]
    models = {(p.name if names.count(p.name) == 1 else str(p)): load_model(p, device=device) for p in model_paths}
    rows = photometric_table(models, held_out, source_counts=source_counts, batches=max_batches, device=device)
    trips = {name: round_trip_error(model, TrackPairs(held_out, size=model.config.resolution, landmarks=True), batches=max_batches,
                                    device=device) for name, model in models.items()}
    poses = {name: modalities.pose_table(model, path, held_out, device=device) for (name, model), path in zip(models.items(), model_paths)}
    return {"split": split, "identities": len({t.identity for t in held_out}), "tracks": len(held_out), "rows": rows,
            "round_trip_iod_pct": trips, "pose_mae_degrees": poses}
