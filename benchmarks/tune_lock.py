"""Choose the landmark lock's constants by where paint lands, judged by MediaPipe's face mesh.

    pip install -e ".[bench]"
    python benchmarks/tune_lock.py [--model PATH] CLIP [CLIP ...]

Tune on training clips (../shared/data/clips), never on clips-eval, which judges the result
(`edit_tracking.py`). For each clip the driving grids and dlib's landmarks of every tracked
frame are computed once; each setting of the thin-plate regularisation, how far the
correction reaches from the landmarks (inf: no fading), the temporal smoothing, how often
a correction is made and the trust bound then only re-runs the lock
(`lock.locked_grids`) and follows the judge's 9 points as `edit_tracking.py` does. Prints
the settings by mean error over the clips, in percent of the eye distance.
"""

from __future__ import annotations

import argparse
import itertools
import math

import numpy as np
import torch
from edit_tracking import dots_on_embedded_face, judge_pass, scores

from x2face_edit.extract import embedded_landmarks, extract, to_tensor
from x2face_edit.faces import LandmarkDetector, crop, to_crop_grid
from x2face_edit.lock import LandmarkLock, locked_grids
from x2face_edit.model import default_model_path, load_model
from x2face_edit.model.inference import GridPredictor
from x2face_edit.model.landmarks import invert_grid
from x2face_edit.tracking import track_video
from x2face_edit.video import iter_frames

REGULARISATIONS = (1e-3, 1e-2, 3e-2, 0.1, 1.0)
REACHES = (0.1, 0.2, 0.4, math.inf)
SIGMAS = (1.5, 3.0)
EVERY = (1, 2)
TRUSTS = (0.2,)


@torch.inference_mode()
def clip_scores(model, clip) -> dict[tuple, dict]:
    """Scores of every setting (regularisation, reach, sigma, every, trust) and of no lock (None) on one clip."""
    track = track_video(clip)
    judge = judge_pass(clip, track)
    face = extract(model, {"path": "tuning", "fingerprint": ""}, clip, track)
    frames, boxes, dots = dots_on_embedded_face(model, face.sidecar, judge["judged"], clip)
    targets = embedded_landmarks(model, frames, boxes)
    predictor, detector = GridPredictor(model), LandmarkDetector()
    grids, landmarks = {}, {}
    for frame in iter_frames(clip):
        if track.found[frame.index]:
            box = track.crop_box(frame.index)
            grids[frame.index] = predictor(to_tensor([crop(frame.rgb, box, model.config.resolution)]))[0]
            landmarks[frame.index] = to_crop_grid(detector(frame.rgb, track.face_boxes[frame.index]), box)
    items = [(index, None, grids.get(index)) for index in range(track.info.frame_count)]

    def landed(grids_out) -> np.ndarray:
        out = np.full((len(items), len(dots), 2), np.nan)
        for index, _, grid in grids_out:
            if grid is not None:
                x0, y0, x1, y1 = track.crop_box(index)
                out[index] = (invert_grid(grid, dots).numpy() + 1) / 2 * [x1 - x0, y1 - y0] + [x0, y0]
        return out

    results = {None: scores(landed(items), judge["judged"], judge["iod"])}
    for setting in itertools.product(REGULARISATIONS, REACHES, SIGMAS, EVERY, TRUSTS):
        regularisation, reach, sigma, every, trust = setting
        lock = LandmarkLock(targets, regularisation=regularisation, reach=reach, trust_iod=trust)
        locked = locked_grids(items, lock, lambda index, _: landmarks.get(index), sigma=sigma, every=every)
        results[setting] = scores(landed(locked), judge["judged"], judge["iod"])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+")
    parser.add_argument("--model", help="checkpoint; default: the shipped model")
    args = parser.parse_args()
    model = load_model(args.model or default_model_path())
    per_clip = []
    for clip in args.clips:
        per_clip.append(clip_scores(model, clip))
        print(f"{clip}: done", flush=True)
    print(f"{'regularisation':>15}{'reach':>7}{'sigma':>7}{'every':>7}{'trust':>7}{'mean':>8}{'jitter':>8}{'cheeks+forehead':>17}{'offset':>8}")
    mean = {s: {k: float(np.mean([c[s][k] for c in per_clip])) for k in ("mean", "jitter", "off_landmark", "offset")}
            for s in per_clip[0]}
    for setting in sorted(mean, key=lambda s: mean[s]["mean"]):
        m = mean[setting]
        name = "".join(f"{v:>{w}g}" for v, w in zip(setting, (15, 7, 7, 7, 7))) if setting else f"{'no lock':>43}"
        print(f"{name}{m['mean']:8.2f}{m['jitter']:8.2f}{m['off_landmark']:17.2f}{m['offset']:8.2f}")


if __name__ == "__main__":
    main()
