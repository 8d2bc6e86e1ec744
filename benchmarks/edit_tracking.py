"""Where painted dots land, judged by an independent face mesh, beside three baselines.

    pip install -e ".[bench]"     # mediapipe==0.10.14, the judge (never a runtime dependency)
    python benchmarks/edit_tracking.py [--model PATH ...] [--lock landmarks --lock none] [--placed inverse|picture|frame]
                                       [--picture-margin 0.5] [--occlusion auto|off] [CLIP ...]
    python benchmarks/edit_tracking.py --apply-to A.mp4=B.mp4,C.mp4=D.mp4 [--placed picture]

For each clip (default: every clip of ../shared/data/clips-eval, people no shipped model
was trained on): extract the embedded face as a user would (3 source frames); put 9 dots
on it where the face's nose tip, chin, forehead, outer eye corners, mouth corners and
cheeks appear (each source frame's MediaPipe point carried into the embedded face through
the inverse of that frame's embedding grid, averaged over the source frames); follow each
dot through every frame with the exact warp `render` composites with (its driving grid,
landmark-locked or not, inverted at the dot); and compare with MediaPipe's 468-point face
mesh in that frame. dlib, which the product tracks with, is not the judge. ``--placed picture``
puts the dots where the judge finds the features on the embedded face's picture itself
(what the user paints on; the judge looks at it centred on a black canvas,
``--picture-margin``), ``--placed frame`` on the clip's middle frame, carried in as
``render --frame`` carries paint (the baselines then start from that frame). ``--apply-to
A=B`` paints the dots on A's embedded face and renders them onto B's video through B's
own sidecar (an edit applied across people, ``render --edited A.edit.png --sidecar B.json``).
``--occlusion off`` follows them as ``render --occlusion off`` does: without a second drive
of the frames whose face the matte finds partly covered (``driving.seeing``).

Errors are in percent of the eye distance (MediaPipe's outer eye corners) in each frame:
mean error, jitter (the frame-to-frame change of a dot's error vector), cheeks and forehead
(no dlib landmark lies there) apart, and the constant offset (the length of each dot's
mean error vector: where the paint lands beside its spot for the whole clip). The model's
round trip |E(D(p)) - p| (``x2face_edit.model.metrics.frame_round_trip``) is printed per
clip too. Baselines start on the judge's own points in the first source frame:
similarity transform from dlib's 5 landmarks, piecewise-affine warp of dlib's 68
landmarks, Lucas-Kanade optical flow chained from that frame.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy.spatial import Delaunay

from x2face_edit.driving import locked_grid_of
from x2face_edit.embedding import embed, embedded_landmarks, locate_in_embedded_face, source_frames
from x2face_edit.evaluate import landing_positions
from x2face_edit.extract import extract
from x2face_edit.faces import FaceDetector, LandmarkDetector, crop, to_crop_grid
from x2face_edit.lock import LandmarkLock, thin_plate_field
from x2face_edit.model import ModelInfo, default_model_path, load_model
from x2face_edit.model.checkpoint import file_fingerprint
from x2face_edit.model.images import to_tensor
from x2face_edit.model.inference import GridPredictor
from x2face_edit.model.landmarks import inter_ocular, invert_grid, sample_at
from x2face_edit.model.metrics import frame_round_trip
from x2face_edit.model.networks import identity_grid
from x2face_edit.paint import occlusion_of
from x2face_edit.sidecar import Sidecar
from x2face_edit.synthetic import OCCLUDERS, occluded_frames, write_occluded_copy
from x2face_edit.tracking import track_video
from x2face_edit.video import iter_frames

EVAL_CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "clips-eval"
# MediaPipe face-mesh indices of the 9 painted points.
POINTS = {"nose tip": 1, "chin": 152, "forehead": 151, "eye corner L": 33, "eye corner R": 263,
          "mouth corner L": 61, "mouth corner R": 291, "cheek L": 50, "cheek R": 280}
OFF_LANDMARK = ["forehead", "cheek L", "cheek R"]
MESH_EYE_CORNERS = (33, 263)
# The judge finds features on a picture the face fills (a VoxCeleb crop, the embedded face)
# away from where it finds them on the frame the picture was cut from; centred in a black
# canvas this share of its side wider on each side, it agrees with itself far better
# (benchmarks/README.md). --picture-margin 0 judges the bare picture.
PICTURE_MARGIN = 0.5
DLIB_FIVE = LandmarkDetector(points=5)
DLIB_68 = LandmarkDetector()


class JudgeBlind(RuntimeError):
    """MediaPipe finds no face where the dots are placed (the source frames)."""


def judge_pass(clip: Path, track, judged_on: Path | None = None) -> dict:
    """Per frame: the judge's 9 points and eye distance (NaN where it finds no face), dlib's
    5 and 68 landmarks in the tracked box, and the grey frame for optical flow. The judge
    looks at ``judged_on`` (a clean copy of an occluded ``clip``, frame for frame) if given."""
    import mediapipe as mp

    frames = track.info.frame_count
    judged = np.full((frames, len(POINTS), 2), np.nan)
    iod = np.full(frames, np.nan)
    five = np.full((frames, 5, 2), np.nan)
    sixty_eight = np.full((frames, 68, 2), np.nan)
    greys = []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1) as mesh:
        for frame, clean in zip(iter_frames(clip), iter_frames(judged_on or clip)):
            greys.append(cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2GRAY))
            height, width = frame.rgb.shape[:2]
            found = mesh.process(clean.rgb).multi_face_landmarks
            if found:
                points = np.array([[p.x * width, p.y * height] for p in found[0].landmark])
                judged[frame.index] = points[list(POINTS.values())]
                iod[frame.index] = np.linalg.norm(points[MESH_EYE_CORNERS[0]] - points[MESH_EYE_CORNERS[1]])
            if track.found[frame.index]:
                box = track.face_boxes[frame.index]
                # dlib's integer pixel positions; +0.5 puts them in the judge's continuous coordinates.
                five[frame.index] = DLIB_FIVE(frame.rgb, box) + 0.5
                sixty_eight[frame.index] = DLIB_68(frame.rgb, box) + 0.5
    return {"judged": judged, "iod": iod, "five": five, "sixty_eight": sixty_eight, "greys": greys}


def similarity_baseline(five: np.ndarray, reference: int, points: np.ndarray) -> np.ndarray:
    """The points carried from the reference frame by the least-squares similarity between
    its 5 dlib landmarks and each frame's."""
    out = np.full((len(five), *points.shape), np.nan)
    for index, now in enumerate(five):
        if not np.isnan(now).any():
            matrix, _ = cv2.estimateAffinePartial2D(five[reference], now, method=cv2.LMEDS)
            if matrix is not None:
                out[index] = points @ matrix[:, :2].T + matrix[:, 2]
    return out


def piecewise_affine_baseline(sixty_eight: np.ndarray, reference: int, points: np.ndarray) -> np.ndarray:
    """The points carried by the affine map of the Delaunay triangle of the reference
    frame's 68 landmarks that holds them (the nearest triangle's, extended, outside)."""
    triangles = Delaunay(sixty_eight[reference])
    simplex = triangles.find_simplex(points)
    centroids = sixty_eight[reference][triangles.simplices].mean(axis=1)
    for i in np.flatnonzero(simplex < 0):
        simplex[i] = np.argmin(np.linalg.norm(centroids - points[i], axis=1))
    corners = triangles.simplices[simplex]  # (P, 3)
    before = sixty_eight[reference][corners]  # (P, 3, 2)
    # Barycentric coordinates (extrapolated outside the triangle).
    basis = np.stack([before[:, 1] - before[:, 0], before[:, 2] - before[:, 0]], axis=2)
    weights = np.linalg.solve(basis, (points - before[:, 0])[..., None])[..., 0]
    after = sixty_eight[:, corners]  # (T, P, 3, 2)
    return after[:, :, 0] + weights[None, :, 0, None] * (after[:, :, 1] - after[:, :, 0]) \
        + weights[None, :, 1, None] * (after[:, :, 2] - after[:, :, 0])


def optical_flow_baseline(greys: list[np.ndarray], reference: int, points: np.ndarray) -> np.ndarray:
    """The points followed by pyramidal Lucas-Kanade flow, frame to frame, forwards and
    backwards from the reference frame."""
    out = np.full((len(greys), *points.shape), np.nan)
    out[reference] = points
    for step in (1, -1):
        now = points.astype(np.float32).reshape(-1, 1, 2)
        for index in range(reference + step, len(greys) if step > 0 else -1, step):
            moved, status, _ = cv2.calcOpticalFlowPyrLK(greys[index - step], greys[index], now, None,
                                                        winSize=(21, 21), maxLevel=3)
            now = np.where(status[..., None].astype(bool), moved, now)
            out[index] = now.reshape(-1, 2)
    return out


# Where the dots are put (--placed): carried from the source frames' judge points through
# the inverse embedding grid; where the judge finds the features on the embedded face's
# picture itself (face.png, what the user paints on); or on a frame of the clip (the judge's
# points there, carried in through that frame's locked grid, as render --frame carries paint).
PLACEMENTS = ("inverse", "picture", "frame")


def paint_paths(model, clip: Path, track, judged: np.ndarray, lock_modes: list[str],
                placed: str = "inverse", occlusion: str = "auto", margin: float = PICTURE_MARGIN) -> tuple[dict, int, float, bool]:
    """Per lock mode, where each dot lands in every frame (frame pixels, NaN where the face
    is not tracked; with ``occlusion`` "auto" its partly covered frames driven again, as
    render drives them); the reference frame (the first source, or the frame painted on);
    the model's mean round trip over the tracked frames in percent of dlib's eye distance;
    and whether dlib finds a face in the embedded face (it does not in a ghosted one)."""
    face, frames, boxes, dots = placed_dots(model, clip, track, judged, placed, margin)
    face_found = len(FaceDetector().detect(face.image)) > 0
    reference = face.sidecar.frames[0] if placed != "frame" else painted_frame(track, judged)
    embedding = embed(model, frames, boxes, face.sidecar.size)
    paths = {}
    for mode in lock_modes:
        lock = LandmarkLock(embedding.landmarks) if mode == "landmarks" else None
        if placed == "frame":
            dots = dots_from_frame(model, clip, track, judged, reference, lock)
        seen = occlusion_of(model, embedding, frames, boxes, lock) if occlusion == "auto" else None
        paths[mode] = landing_positions(model, clip, track, dots, lock, seen)
    return paths, reference, round_trip_percent(model, clip, track), face_found


def placed_dots(model, clip: Path, track, judged: np.ndarray, placed: str, margin: float = PICTURE_MARGIN):
    """The clip's extracted face, its source frames and boxes, and the 9 dots on it, placed
    through the inverse embedding grid or (``placed`` "picture") on its picture (judged with
    ``margin``, ``dots_on_picture``)."""
    face = extract(model, ModelInfo("benchmark", ""), clip, track)
    frames, boxes, dots = dots_on_embedded_face(model, face.sidecar, judged, clip)
    if placed == "picture":
        dots = dots_on_picture(face.image, clip, margin)
    return face, frames, boxes, dots


def embedded_landmarks_of(sidecar: Sidecar) -> torch.Tensor:
    """The sidecar's (68, 2) embedded-face landmarks (pixels) in grid coordinates."""
    return torch.tensor(sidecar.landmarks, dtype=torch.float32) / sidecar.size * 2 - 1


def across_by_landmarks(onto: Sidecar, painted_on: Sidecar, size: int = 128) -> torch.Tensor:
    """(size, size, 2): for each place of ``onto``'s embedded face, where the same place lies
    on ``painted_on``'s by a thin-plate spline through the two faces' dlib landmarks (tried
    for edits across people, not shipped: benchmarks/README.md)."""
    target, source = embedded_landmarks_of(onto), embedded_landmarks_of(painted_on)
    return identity_grid(size, size)[0] + thin_plate_field(target, source - target, size)


def across_rows(model, painted: Path, onto: Path, lock_modes: list[str], placed: str, margin: float = PICTURE_MARGIN) -> list[dict]:
    """Dots placed on ``painted``'s embedded face, rendered onto ``onto``'s video through its
    own sidecar as render does (the layer as painted: embedded faces share one layout), and
    carried by the two faces' landmarks (``across_by_landmarks``); beside ``onto``'s own paint
    and the baselines from its first source."""
    painted_track = track_video(painted)
    painted_face, _, _, dots = placed_dots(model, painted, painted_track, judge_pass(painted, painted_track)["judged"], placed, margin)
    track = track_video(onto)
    judge = judge_pass(onto, track)
    face, frames, boxes, own = placed_dots(model, onto, track, judge["judged"], placed, margin)
    carried = invert_grid(across_by_landmarks(face.sidecar, painted_face.sidecar), dots)
    rows = []
    for mode in lock_modes:
        lock = LandmarkLock(embedded_landmarks(model, frames, boxes)) if mode == "landmarks" else None
        for name, at in ((f"own paint lock={mode}", own), (f"A's, as render applies it lock={mode}", dots),
                         (f"A's, carried by landmarks lock={mode}", carried)):
            rows.append({"method": name, **scores(landing_positions(model, onto, track, at, lock), judge["judged"], judge["iod"])})
    start = judge["judged"][face.sidecar.frames[0]]
    rows.append({"method": "similarity, dlib 5", **scores(similarity_baseline(judge["five"], face.sidecar.frames[0], start),
                                                          judge["judged"], judge["iod"])})
    rows.append({"method": "piecewise affine, dlib 68",
                 **scores(piecewise_affine_baseline(judge["sixty_eight"], face.sidecar.frames[0], start), judge["judged"], judge["iod"])})
    rows.append({"method": "optical flow (LK)", **scores(optical_flow_baseline(judge["greys"], face.sidecar.frames[0], start),
                                                         judge["judged"], judge["iod"])})
    return rows


def dots_on_picture(image: np.ndarray, clip: Path, margin: float = PICTURE_MARGIN) -> torch.Tensor:
    """The judge's 9 points found on the embedded face's picture, in its grid coordinates,
    the picture centred on a black canvas ``margin`` of its side wider on each side."""
    import mediapipe as mp

    pad = round(margin * image.shape[1])
    canvas = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1) as mesh:
        found = mesh.process(canvas).multi_face_landmarks
    if not found:
        raise JudgeBlind(f"the judge finds no face on the embedded face of {clip.name}")
    points = np.array([[p.x, p.y] for p in found[0].landmark])[list(POINTS.values())]
    side = image.shape[1] + 2 * pad
    return torch.from_numpy((points * side - pad) / image.shape[1] * 2 - 1).float()


def painted_frame(track, judged: np.ndarray) -> int:
    """The frame painted on with --placed frame: the middle one of those where the face is
    followed and the judge sees it."""
    usable = np.flatnonzero(track.found & ~np.isnan(judged).any(axis=(1, 2)))
    return int(usable[len(usable) // 2])


def dots_from_frame(model, clip: Path, track, judged: np.ndarray, index: int, lock) -> torch.Tensor:
    """The judge's points in frame ``index`` carried into the embedded face through that
    frame's driving grid as ``render --frame`` uses it (``driving.locked_grid_of``)."""
    _, grid = locked_grid_of(GridPredictor(model), track, clip, index, lock)
    points = torch.from_numpy(to_crop_grid(judged[index] - 0.5, track.crop_box(index)))
    return sample_at(grid[None].float(), points[None])[0]


def dots_on_embedded_face(model, sidecar: Sidecar, judged: np.ndarray, clip: Path) -> tuple[list, list, torch.Tensor]:
    """The sidecar's source frames and crop boxes, and the judge's points in them carried
    into the embedded face (averaged over the sources where the judge sees the face)."""
    frames, boxes = source_frames(sidecar)
    seen = [i for i, index in enumerate(sidecar.frames) if not np.isnan(judged[index]).any()]
    if not seen:
        raise JudgeBlind(f"the judge finds no face in the source frames of {clip.name}")
    # The judge's points are continuous coordinates; to_crop_grid takes dlib's integer ones.
    points = [to_crop_grid(judged[sidecar.frames[i]] - 0.5, boxes[i]) for i in seen]
    return frames, boxes, locate_in_embedded_face(model, [frames[i] for i in seen], [boxes[i] for i in seen], points)


def round_trip_percent(model, clip: Path, track, every: int = 3) -> float:
    errors = []
    for frame in iter_frames(clip):
        if frame.index % every or not track.found[frame.index]:
            continue
        box = track.crop_box(frame.index)
        iod = float(inter_ocular(to_crop_grid(DLIB_68(frame.rgb, track.face_boxes[frame.index]), box)))
        trip = frame_round_trip(model, to_tensor([crop(frame.rgb, box, model.config.resolution)]))
        errors.append(float(trip[0]) / iod * 100)
    return float(np.mean(errors))


def scores(predicted: np.ndarray, judged: np.ndarray, iod: np.ndarray, covered: np.ndarray | None = None) -> dict:
    """Mean error, jitter, off-landmark error and constant offset, in % of the eye distance;
    with ``covered`` (the occluded frames), also the mean error over those frames and the
    share of them (where the judge sees the face) that get paint at all."""
    error = (predicted - judged) / iod[:, None, None] * 100  # (T, P, 2)
    valid = ~np.isnan(error).any(axis=(1, 2))
    occluded = {}
    if covered is not None:
        judged_there = covered & ~np.isnan(judged).any(axis=(1, 2)) & ~np.isnan(iod)
        occluded = {"occluded_mean": float(np.linalg.norm(error[covered & valid], axis=2).mean()) if (covered & valid).any() else math.nan,
                    "occluded_painted": float((valid & judged_there).sum() / max(1, judged_there.sum()))}
    steps = np.flatnonzero(valid[1:] & valid[:-1])  # consecutive measured frames
    jitter = np.linalg.norm(error[steps + 1] - error[steps], axis=2)
    error = error[valid]
    distance = np.linalg.norm(error, axis=2)
    off = [list(POINTS).index(name) for name in OFF_LANDMARK]
    return {
        "mean": float(distance.mean()),
        "jitter": float(jitter.mean()) if len(jitter) else math.nan,
        "off_landmark": float(distance[:, off].mean()),
        "offset": float(np.linalg.norm(error.mean(axis=0), axis=1).mean()),
        "frames": int(valid.sum()),
        **occluded,
    }


# The figures a row prints, in order, with their format.
FIGURES = {"mean": "7.2f", "jitter": "8.2f", "off_landmark": "17.2f", "offset": "8.2f", "round_trip": "11.2f",
           "occluded_mean": "17.2f", "occluded_painted": "9.0%"}


def _figures(row: dict) -> str:
    """A row's figures as the header lays them out (blank where not measured)."""
    return "".join("" if key not in row else " " * int(form.split(".")[0]) if math.isnan(row[key]) else f"{row[key]:{form}}"
                   for key, form in FIGURES.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", type=Path)
    parser.add_argument("--model", action="append", type=Path, help="checkpoint(s); default: the shipped model")
    parser.add_argument("--lock", action="append", choices=["landmarks", "none"], help="default: both")
    parser.add_argument("--json", type=Path, help="also write every row here")
    parser.add_argument("--placed", choices=PLACEMENTS, default="inverse",
                        help="where the dots are put: through the inverse embedding grid (default), where the judge "
                             "finds the features on face.png itself, or on the clip's middle frame (render --frame)")
    parser.add_argument("--picture-margin", type=float, default=PICTURE_MARGIN,
                        help="with --placed picture: the judge looks at face.png centred on a black canvas this share "
                             "of its side wider on each side (0: the bare picture)")
    parser.add_argument("--occlude", choices=OCCLUDERS,
                        help="track and paint on a copy with a hand or phone over the face in the middle of each "
                             "clip (x2face_edit.synthetic.write_occluded_copy); the judge keeps looking at the clean clip")
    parser.add_argument("--occlusion", choices=["auto", "off"], default="auto",
                        help="as render's: with auto (the default) a frame whose face is partly covered is driven again")
    parser.add_argument("--apply-to", type=lambda pairs: [tuple(pair.split("=")) for pair in pairs.split(",")],
                        help="A=B,...: paint placed on clip A's embedded face, rendered onto clip B through B's sidecar "
                             "(file names in the clips folder)")
    args = parser.parse_args()
    if args.apply_to:
        if args.placed == "frame":
            parser.error("--apply-to paints on the embedded face: --placed inverse or picture")
        model = load_model((args.model or [default_model_path()])[0])
        rows = []
        print(f"{'painted on -> rendered onto':<44}{'method':<34}{'mean':>7}{'jitter':>8}{'cheeks+forehead':>17}{'offset':>8}")
        for painted, onto in args.apply_to:
            for row in across_rows(model, EVAL_CLIPS / painted, EVAL_CLIPS / onto, args.lock or ["landmarks"], args.placed,
                                   args.picture_margin):
                row["clip"] = f"{Path(painted).stem} -> {Path(onto).stem}"
                print(f"{row['clip'][:43]:<44}{row['method']:<34}{_figures(row)}", flush=True)
                rows.append(row)
        if args.json:
            args.json.write_text(json.dumps({"rows": rows}, indent=1))
        return
    clips = args.clips or sorted(p for p in EVAL_CLIPS.iterdir() if p.suffix in {".mp4", ".mov"})
    models = args.model or [default_model_path()]
    # Models are named by their file's stem, or by their path where two stems are the same.
    stems = [path.stem for path in models]
    names = {path: path.stem if stems.count(path.stem) == 1 else str(path.with_suffix("")) for path in models}
    locks = args.lock or ["landmarks", "none"]
    rows = []
    header = f"{'clip':<44}{'method':<34}{'mean':>7}{'jitter':>8}{'cheeks+forehead':>17}{'offset':>8}{'round trip':>11}"
    if args.occlude:
        header += f"{'occluded frames':>17}{'painted':>9}"
    print(header)
    scratch = tempfile.TemporaryDirectory()
    for clean in clips:
        clip = clean
        if args.occlude:
            clip = write_occluded_copy(clean, track_video(clean).face_boxes, args.occlude, Path(scratch.name) / f"{clean.stem}.mp4")
        track = track_video(clip)
        judge = judge_pass(clip, track, judged_on=clean)
        covered = occluded_frames(track.info.frame_count) if args.occlude else None
        clip_rows = []
        blind = None
        for model_path in models:
            model = load_model(model_path)
            try:
                paths, reference, trip, face_found = paint_paths(model, clip, track, judge["judged"], locks, args.placed, args.occlusion,
                                                                 args.picture_margin)
            except JudgeBlind as error:  # a face too small for MediaPipe: nothing to judge against
                blind = error
                break
            print(f"{clean.name:<44}{names[model_path]}: dlib finds {'a' if face_found else 'NO'} face in the embedded face", flush=True)
            for mode, path in paths.items():
                clip_rows.append({"method": f"{names[model_path]} lock={mode}", "placed": args.placed, "occlusion": args.occlusion,
                                  "round_trip": trip,
                                  "embedded_face_found": face_found,
                                  **scores(path, judge["judged"], judge["iod"], covered)})
        if blind:
            print(f"{clean.name:<44}skipped: {blind}", flush=True)
            continue
        start = judge["judged"][reference]
        baselines = {
            "similarity, dlib 5": similarity_baseline(judge["five"], reference, start),
            "piecewise affine, dlib 68": piecewise_affine_baseline(judge["sixty_eight"], reference, start),
            "optical flow (LK)": optical_flow_baseline(judge["greys"], reference, start),
        }
        for name, path in baselines.items():
            clip_rows.append({"method": name, "round_trip": math.nan, **scores(path, judge["judged"], judge["iod"], covered)})
        for row in clip_rows:
            row["clip"] = clean.name
            print(f"{clean.name:<44}{row['method']:<34}{_figures(row)}", flush=True)
        rows += clip_rows
    print("\nmean over clips")
    for method in dict.fromkeys(r["method"] for r in rows):
        chosen = [r for r in rows if r["method"] == method]
        measured = {key: [r[key] for r in chosen if not math.isnan(r[key])] for key in FIGURES if key in chosen[0]}
        print(f"{'':<44}{method:<34}{_figures({key: float(np.mean(v)) if v else math.nan for key, v in measured.items()})}")
    if args.json:
        args.json.write_text(json.dumps({"model_fingerprints": {str(m): file_fingerprint(m) for m in models}, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
