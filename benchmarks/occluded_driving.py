"""How far an occluder moves the driving network's grid over the face beside it, on
held-out crops: the network alone, before any matte or lock.

    x2face-edit prepare ../shared/data/clips-eval -o tracks/eval128c --size 128 --sample-fps 10
    python benchmarks/occluded_driving.py tracks/eval128c [--model A.pt --model B.pt] [--frames 96]

Each of ``--frames`` crops (drawn with a fixed seed) gets each occluder of
``synthetic.OCCLUDERS`` in place over its face (the crop's face box, a hand of the crop's
own skin tone); per model, the driving grid of the occluded crop against the clean crop's,
over the face box outside the occluder (dilated by 4 pixels), in percent of the crop's
eye distance (its landmarks' outer eye corners). The occluders are the ones
``occlusion.py`` and ``edit_tracking.py --occlude`` use; ``train --occlude`` pastes others.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from x2face_edit.faces import VOXCELEB_SCALE
from x2face_edit.model import default_model_path, load_checkpoint
from x2face_edit.model.checkpoint import read_checkpoint
from x2face_edit.model.data import TrackPairs, load_tracks
from x2face_edit.model.landmarks import inter_ocular
from x2face_edit.synthetic import OCCLUDERS, occluded_picture

BESIDE_PIXELS = 4


def face_margin(size: int) -> int:
    """Pixels between a crop of ``size`` and the face box it was enlarged from."""
    return int(size * (1 - 1 / VOXCELEB_SCALE) / 2)


def occluded_crops(driving: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The (N, 3, S, S) crops with a ``kind`` occluder in place, and its (N, S, S) masks."""
    size = driving.shape[-1]
    margin = face_margin(size)
    box = np.array([margin, margin, size - margin, size - margin], np.float64)
    centre = slice(int(size * 0.3), int(size * 0.7))
    crops, masks = [], []
    for picture in driving:
        rgb = (picture.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        skin = np.median(rgb[centre, centre].reshape(-1, 3), axis=0).astype(np.float32)
        occluded, alpha = occluded_picture(rgb, kind, box, skin)
        crops.append(torch.from_numpy(occluded).permute(2, 0, 1).float() / 255)
        masks.append(torch.from_numpy(alpha > 0.05))
    return torch.stack(crops), torch.stack(masks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tracks", type=Path, help="prepared crops of people the models were not trained on")
    parser.add_argument("--model", action="append", type=Path, help="checkpoint(s); default: the shipped model")
    parser.add_argument("--frames", type=int, default=96)
    args = parser.parse_args()
    models = args.model or [default_model_path()]
    resolution = read_checkpoint(models[0])["config"]["resolution"]
    pairs = TrackPairs(load_tracks(args.tracks), size=resolution, landmarks=True)
    torch.manual_seed(0)
    frames, landmarks = [], []
    for index in torch.randperm(len(pairs)).tolist():
        _, picture, _, points = pairs[index]
        if not torch.isnan(points).any():
            frames.append(picture)
            landmarks.append(points)
        if len(frames) == args.frames:
            break
    driving = torch.stack(frames)
    eye_distance = inter_ocular(torch.stack(landmarks))  # grid units
    size = driving.shape[-1]
    margin = face_margin(size)
    face = torch.zeros(size, size, dtype=torch.bool)
    face[margin:size - margin, margin:size - margin] = True
    occluded = {kind: occluded_crops(driving, kind) for kind in OCCLUDERS}
    print(f"{len(driving)} crops of {args.tracks}; driving grid moved beside the occluder, % of the eye distance (mean)")
    print(f"{'model':<40}" + "".join(f"{kind:>12}" for kind in OCCLUDERS))
    for path in models:
        model = load_checkpoint(path)[0].eval()
        row = []
        with torch.inference_mode():
            clean = model.decode(model.driving_vector(driving))
            for crops, masks in occluded.values():
                moved = (model.decode(model.driving_vector(crops)) - clean).norm(dim=-1) / eye_distance[:, None, None]
                grown = F.max_pool2d(masks[:, None].float(), 2 * BESIDE_PIXELS + 1, 1, BESIDE_PIXELS)[:, 0].bool()
                row.append(100 * float(moved[face[None] & ~grown].mean()))
        print(f"{str(path):<40}" + "".join(f"{value:>12.2f}" for value in row), flush=True)


if __name__ == "__main__":
    main()
