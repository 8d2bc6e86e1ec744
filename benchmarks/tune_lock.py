"""Choose the landmark lock's constants by where paint lands, judged by MediaPipe's face mesh.

    pip install -e ".[bench]"
    python benchmarks/tune_lock.py [--model PATH] [--occlude hand|phone] CLIP [CLIP ...]

Tune on training clips (../shared/data/clips), never on clips-eval, which judges the result
(`edit_tracking.py`). For each clip the driving grids and dlib's landmarks of every tracked
frame are computed once; each setting of the thin-plate regularisation, how far the
correction reaches from the landmarks (inf: no fading), the temporal smoothing, how often
a correction is made and the trust bound then only re-runs the lock (`lock.locked_grids`)
and follows the judge's 9 points as `edit_tracking.py` does (``--shipped``: only the
constants as shipped). ``--occlude`` tunes on copies with a hand or a phone over the face,
as `edit_tracking.py --occlude` judges. Prints the settings by mean error over the clips,
in percent of the eye distance.
"""

from __future__ import annotations

import argparse
import itertools
import math
import tempfile
from pathlib import Path

import numpy as np
import torch
from edit_tracking import dots_on_embedded_face, judge_pass, scores

from x2face_edit.embedding import embedded_landmarks
from x2face_edit.extract import extract
from x2face_edit.faces import LandmarkDetector, crop, to_crop_grid
from x2face_edit.lock import CORRECT_EVERY, CORRECTION_REACH, SPLINE_REGULARISATION, TEMPORAL_SIGMA, TRUST_IOD, LandmarkLock, locked_grids
from x2face_edit.model import ModelInfo, default_model_path, load_model
from x2face_edit.model.images import to_tensor
from x2face_edit.model.inference import GridPredictor
from x2face_edit.model.landmarks import invert_grid
from x2face_edit.synthetic import OCCLUDERS, occluded_frames, write_occluded_copy
from x2face_edit.tracking import track_video
from x2face_edit.video import iter_frames

REGULARISATIONS = (1e-3, 1e-2, 3e-2, 0.1, 1.0)
REACHES = (0.1, 0.2, 0.4, math.inf)
SIGMAS = (1.5, 3.0)
EVERY = (1, 2)
TRUSTS = (0.2,)


@torch.inference_mode()
def clip_scores(model, clean, settings: list[tuple], occlude: str | None = None) -> dict[tuple, dict]:
    """Scores of each of the ``settings`` (regularisation, reach, sigma, every, trust) and
    of no lock (None) on one clip, or on its copy with an ``occlude`` occluder."""
    clip = clean
    if occlude:
        clip = write_occluded_copy(clean, track_video(clean).face_boxes, occlude, Path(tempfile.mkdtemp()) / f"{Path(clean).stem}.mp4")
    track = track_video(clip)
    judge = judge_pass(clip, track, judged_on=clean)
    covered = occluded_frames(track.info.frame_count) if occlude else None
    face = extract(model, ModelInfo("tuning", ""), clip, track)
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

    results = {None: scores(landed(items), judge["judged"], judge["iod"], covered)}
    for setting in settings:
        regularisation, reach, sigma, every, trust = setting
        lock = LandmarkLock(targets, regularisation=regularisation, reach=reach, trust_iod=trust)
        locked = locked_grids(items, lock, lambda index, _: landmarks.get(index), sigma=sigma, every=every)
        results[setting] = scores(landed(locked), judge["judged"], judge["iod"], covered)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+")
    parser.add_argument("--model", help="checkpoint; default: the shipped model")
    parser.add_argument("--occlude", choices=OCCLUDERS, help="tune on copies with this occluder over the face")
    parser.add_argument("--shipped", action="store_true", help="only the constants as the lock ships them (but --trusts)")
    parser.add_argument("--trusts", help="comma-separated trust bounds to try (lock.TRUST_IOD)")
    args = parser.parse_args()
    trusts = tuple(float(v) for v in args.trusts.split(",")) if args.trusts else (TRUST_IOD,) if args.shipped else TRUSTS
    grid = [(SPLINE_REGULARISATION,), (CORRECTION_REACH,), (TEMPORAL_SIGMA,), (CORRECT_EVERY,), trusts] if args.shipped \
        else [REGULARISATIONS, REACHES, SIGMAS, EVERY, trusts]
    settings = list(itertools.product(*grid))
    model = load_model(args.model or default_model_path())
    per_clip = []
    for clip in args.clips:
        per_clip.append(clip_scores(model, clip, settings, args.occlude))
        print(f"{clip}: done", flush=True)
    keys = ("mean", "jitter", "off_landmark", "offset") + (("occluded_mean",) if args.occlude else ())
    print(f"{'regularisation':>15}{'reach':>7}{'sigma':>7}{'every':>7}{'trust':>7}{'mean':>8}{'jitter':>8}"
          f"{'cheeks+forehead':>17}{'offset':>8}" + (f"{'occluded frames':>17}" if args.occlude else ""))
    mean = {s: {k: float(np.nanmean([c[s][k] for c in per_clip])) for k in keys} for s in per_clip[0]}
    for setting in sorted(mean, key=lambda s: mean[s]["mean"]):
        m = mean[setting]
        name = "".join(f"{v:>{w}g}" for v, w in zip(setting, (15, 7, 7, 7, 7))) if setting else f"{'no lock':>43}"
        print(f"{name}{m['mean']:8.2f}{m['jitter']:8.2f}{m['off_landmark']:17.2f}{m['offset']:8.2f}"
              + (f"{m['occluded_mean']:17.2f}" if args.occlude else ""))


if __name__ == "__main__":
    main()
