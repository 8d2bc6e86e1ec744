"""Paint in front of and behind occluders: copies of held-out clips with synthetic
occluders of known masks (``synthetic.OCCLUDERS``: a skin-toned hand over mouth and chin,
a dark phone at a cheek, a photo of a cup across a cheek, a dark strand of hair across
the forehead and an eye, a meshed microphone rising over the chin) entering and leaving; discs of
paint on the cheeks, forehead and chin of the embedded face; rendered with
``--occlusion off`` and ``auto``.

Reported per clip and occluder: the paint on the occluder (painted pixels on it over what
the clean clip's render paints there), the paint kept where the face shows (against the
clean clip's render), the same in the covered frames alone, the same again forgiving paint
that moved by up to ``NEAR`` pixels (what the matte hid, apart from where the warp moved
the paint), and the frames where the face went unpainted; and what ``auto`` keeps of the
paint on the clean clip.

    python benchmarks/occlusion.py [--clips a.mp4 b.mp4] [--kinds hand phone object] [--paint discs|features] [--model CKPT]
    python benchmarks/occlusion.py --cost [--size 1280x720] [--frames 150] [--repeat 3] [--occluder strand] [--clip CLIP]

``--paint features`` paints the face's moving parts instead of the discs: lipstick over the
lips and shadow over the eyes and their lids (placed by the embedded face's landmarks, the
outlines widened), to judge what talking and blinking do to paint there.

``--cost``: what the matte costs a render, in one process with the shipped model: the
fastest of ``--repeat`` renders of a synthetic moving face with ``--occlusion off`` and
``auto`` (the face's analysis read back from the cache after the first), and the
throughput lost; with ``--occluder``, of a copy with that occluder in front of the face
for the middle 40 % of it (where frames partly covered are driven twice); with ``--clip``,
of that real clip instead of the synthetic face, scaled to the size's height and centred
(as ``render_throughput.py --real`` does).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from render_throughput import real_footage

from x2face_edit.extract import extract, save
from x2face_edit.model import load_model_with_info
from x2face_edit.paint import Paint, PaintOptions
from x2face_edit.render import RenderOptions, render
from x2face_edit.synthetic import OCCLUDERS, write_moving_face_video, write_occluded_copy
from x2face_edit.tracking import track_video
from x2face_edit.video import iter_frames

EVAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "clips-eval"
# Where paint goes on the embedded face: cheeks, forehead, chin (fractions of its side).
DISCS = ((0.33, 0.62), (0.67, 0.62), (0.5, 0.2), (0.5, 0.88))
DISC_RADIUS = 0.07
# Paint on the moving parts (``--paint features``): the outlines of the lips and of each eye
# (dlib's 68-point numbering) widened about their centres (across, down): the eye's to its lid.
FEATURES = ((slice(48, 60), (1.1, 1.2)), (slice(36, 42), (1.3, 2.2)), (slice(42, 48), (1.3, 2.2)))
# A pixel counts as painted where the render differs from its input by more than this (0-255).
PAINTED = 24
NEAR = 2  # pixels: paint this close to where the clean render put it counts as kept in "kept near"


def painted_masks(model, info, paint: Paint, video: Path, out: Path, occlusion: str) -> list[np.ndarray]:
    render(model, info, paint, video, out, RenderOptions(PaintOptions(occlusion=occlusion), force=True))
    return [np.abs(a.rgb.astype(int) - b.rgb).max(axis=2) > PAINTED for a, b in zip(iter_frames(out), iter_frames(video))]


def shares(got: list[np.ndarray], clean: list[np.ndarray], masks: list[np.ndarray]) -> dict[str, float]:
    """Paint on the occluder, kept elsewhere, kept in the covered frames (exactly, and within
    ``NEAR`` pixels), frames unpainted."""
    def total(values) -> int:
        return int(sum(v.sum() for v in values))

    covered = [i for i, m in enumerate(masks) if m.any()]
    near = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * NEAR + 1, 2 * NEAR + 1))
    got_near = {i: cv2.dilate(got[i].astype(np.uint8), near).astype(bool) for i in covered}
    return {
        "on occluder": total(g & m for g, m in zip(got, masks)) / max(1, total(c & m for c, m in zip(clean, masks))),
        "kept": total(g & c & ~m for g, c, m in zip(got, clean, masks)) / max(1, total(c & ~m for c, m in zip(clean, masks))),
        "kept, covered frames": total(got[i] & clean[i] & ~masks[i] for i in covered) / max(1, total(clean[i] & ~masks[i] for i in covered)),
        "kept near, covered frames": total(got_near[i] & clean[i] & ~masks[i] for i in covered) / max(1, total(clean[i] & ~masks[i] for i in covered)),
        "frames unpainted": sum(1 for g, c in zip(got, clean) if c.any() and not g.any()),
    }


def painted_layer(layer_path: Path, features: np.ndarray | None = None) -> Paint:
    """The benchmark's discs of paint, or with ``features`` (the embedded face's 68 landmarks,
    its pixels) paint on its lips and eyes, written over the transparent layer at ``layer_path``."""
    size = Image.open(layer_path).size[0]
    layer = np.zeros((size, size, 4), np.uint8)
    if features is None:
        for x, y in DISCS:
            cv2.circle(layer, (int(x * size), int(y * size)), int(DISC_RADIUS * size), (20, 230, 40, 255), -1)
    for part, scale in () if features is None else FEATURES:
        outline = features[part]
        centre = outline.mean(axis=0)
        cv2.fillPoly(layer, [np.round(centre + (outline - centre) * np.array(scale)).astype(np.int32)], (20, 230, 40, 255))
    Image.fromarray(layer).save(layer_path)
    return Paint.read(layer_path)


def cost(size: str, frames: int, repeat: int, occluder: str | None, clip: Path | None) -> None:
    width, height = (int(v) for v in size.split("x"))
    model, info = load_model_with_info()
    with tempfile.TemporaryDirectory() as scratch:
        if clip is None:
            video = write_moving_face_video(Path(scratch) / "face.mp4", frames, width=width, height=height, face_size=height // 2)
        else:
            video = real_footage(clip, width, height, frames, Path(scratch) / "face.mp4")
        track = track_video(video)
        _, layer_path, _, _ = save(extract(model, info, video, track), Path(scratch) / "face.png", force=True)
        if occluder is not None:
            video = write_occluded_copy(video, track.face_boxes, occluder, Path(scratch) / "occluded.mp4")
        paint = painted_layer(layer_path)
        seconds = {}
        for occlusion in ("off", "auto") * repeat:
            start = time.perf_counter()
            render(model, info, paint, video, Path(scratch) / "out.mp4", RenderOptions(PaintOptions(occlusion=occlusion), force=True))
            seconds[occlusion] = min(seconds.get(occlusion, np.inf), time.perf_counter() - start)
    off, auto = (frames / seconds[mode] for mode in ("off", "auto"))
    shown = f"{size}, {frames} frames" + (f" of {clip.name}" if clip else "") + (f", {occluder} in front" if occluder else "")
    print(f"{shown}: --occlusion off {off:.1f} frames/s, auto {auto:.1f} frames/s, {1 - auto / off:.1%} of throughput")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="*", type=Path, default=sorted(EVAL.glob("*.mp4")) + sorted(EVAL.glob("*.mov")))
    parser.add_argument("--kinds", nargs="*", choices=OCCLUDERS, default=list(OCCLUDERS))
    parser.add_argument("--paint", choices=("discs", "features"), default="discs", help="discs on cheeks, forehead and chin, or paint on the lips and eyes")
    parser.add_argument("--cost", action="store_true", help="time renders with the matte off and on instead")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--occluder", choices=OCCLUDERS, help="with --cost: the synthetic face with this occluder in front (as --kinds)")
    parser.add_argument("--clip", type=Path, help="with --cost: this real clip instead of the synthetic face")
    parser.add_argument("--model", type=Path, help="checkpoint to judge (default: the shipped model)")
    args = parser.parse_args()
    if args.cost:
        cost(args.size, args.frames, args.repeat, args.occluder, args.clip)
        return
    model, info = load_model_with_info(args.model)
    print(f"{'clip':<44}{'occluder':<11}{'mode':<6}{'on occluder':>12}{'kept':>7}{'kept cov.':>10}{'near cov.':>10}{'unpainted':>10}")
    with tempfile.TemporaryDirectory() as scratch:
        for clip in args.clips:
            work = Path(scratch) / clip.stem
            work.mkdir()
            clean_track = track_video(clip)
            face = extract(model, info, clip, clean_track)
            _, layer_path, _, _ = save(face, work / "face.png", force=True)
            paint = painted_layer(layer_path, np.array(face.sidecar.landmarks) if args.paint == "features" else None)
            clean = painted_masks(model, info, paint, clip, work / "clean.mkv", "off")
            kept = painted_masks(model, info, paint, clip, work / "clean_auto.mkv", "auto")
            share = sum((a & c).sum() for a, c in zip(kept, clean)) / max(1, sum(c.sum() for c in clean))
            print(f"{clip.name:<44}{'none':<11}{'auto':<6}{'':>12}{share:>7.1%}", flush=True)
            for kind in args.kinds:
                masks: list[np.ndarray] = []
                occluded = write_occluded_copy(clip, clean_track.face_boxes, kind, work / f"{kind}.mp4", masks=masks)
                for mode in ("off", "auto"):
                    row = shares(painted_masks(model, info, paint, occluded, work / f"{kind}_{mode}.mkv", mode), clean, masks)
                    print(f"{clip.name:<44}{kind:<11}{mode:<6}{row['on occluder']:>12.1%}{row['kept']:>7.1%}"
                          f"{row['kept, covered frames']:>10.1%}{row['kept near, covered frames']:>10.1%}{row['frames unpainted']:>10d}", flush=True)


if __name__ == "__main__":
    main()
