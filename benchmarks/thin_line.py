"""Does a one-pixel line painted on a 1080p frame stay one to two pixels wide elsewhere?

    python benchmarks/thin_line.py [--frames 40] [--face-size 640]

The synthetic face (the astronaut, moved by known affine maps: drifting, turning 8 degrees
and zooming 8 % over the clip) in a 1920x1080 video; `extract`, then a one-pixel line,
fully opaque, painted across the face on the middle frame's layer (`frame`), rendered with
`render --frame N --layer-only` to a PNG sequence. In every frame the line's alpha is read
across the line where the face's known motion puts it (every pixel along its middle 80 %,
sampled every 0.1 pixel across): its full width at half its peak, its peak, its integral
across (pixels; a sharp one-pixel line keeps 1) and how far its centre lies off the line. Frames where the head turns
less than 3 degrees from the painted one ("still") are reported apart.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from x2face_edit.synthetic import moving_face_motion, write_moving_face_video
from x2face_edit.tracking import track_video

WIDTH, HEIGHT = 1920, 1080
ACROSS = np.arange(-6, 6.001, 0.1)  # pixels across the line where its alpha is read


def cli(*args) -> None:
    subprocess.run([sys.executable, "-m", "x2face_edit", *map(str, args)], check=True, stdout=subprocess.DEVNULL)


def profile_figures(alpha: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[float, float, float, float]:
    """Median over the line's middle 80 % of (width at half peak, peak, integral across,
    distance of the alpha's centre across from where the line belongs), in pixels."""
    along = (end - start) / np.linalg.norm(end - start)
    normal = np.array([-along[1], along[0]])
    widths, peaks, integrals, offsets = [], [], [], []
    for step in np.arange(0.1, 0.9, 1 / np.linalg.norm(end - start)):
        points = start + step * (end - start) + ACROSS[:, None] * normal
        values = cv2.remap(alpha, points[:, 0].astype(np.float32)[None], points[:, 1].astype(np.float32)[None],
                           cv2.INTER_LINEAR)[0]
        peak = float(values.max())
        if peak <= 0.05:
            continue
        above = np.flatnonzero(values >= peak / 2)
        widths.append((above[-1] - above[0] + 1) * 0.1)
        peaks.append(peak)
        integrals.append(float(values.sum() * 0.1))
        offsets.append(abs(float((ACROSS * values).sum() / values.sum())))
    if not widths:
        return float("nan"), 0.0, 0.0, float("nan")
    return float(np.median(widths)), float(np.median(peaks)), float(np.median(integrals)), float(np.median(offsets))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--face-size", type=int, default=640)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    video = write_moving_face_video(work / "face.mp4", count=args.frames, width=WIDTH, height=HEIGHT, face_size=args.face_size)
    painted = args.frames // 2
    cli("extract", video, "-o", work / "face.png")
    cli("frame", video, painted, "-o", work / "frame.png")
    x0, y0, x1, y1 = track_video(video).face_boxes[painted]
    start = np.array([x0 + 0.3 * (x1 - x0), y0 + 0.62 * (y1 - y0)]).round()
    end = np.array([x0 + 0.7 * (x1 - x0), y0 + 0.62 * (y1 - y0)]).round()
    layer = np.array(Image.open(work / "frame.edit.png"))
    cv2.line(layer, tuple(int(v) for v in start), tuple(int(v) for v in end), (255, 40, 200, 255), 1, cv2.LINE_8)
    Image.fromarray(layer).save(work / "frame.edit.png")  # OpenCV's coordinates (pixel centres at integers) from here on
    cli("render", "--edited", work / "frame.edit.png", "--frame", painted, "--sidecar", work / "face.json", "--drive", video,
        "-o", work / "paint_%04d.png", "--layer-only", "--occlusion", "off")
    motion = moving_face_motion(args.frames, width=WIDTH, height=HEIGHT, face_size=args.face_size)
    to_face = cv2.invertAffineTransform(motion[painted])
    angles = [np.degrees(np.arctan2(m[1, 0], m[0, 0])) for m in motion]
    rows = []
    for index in range(args.frames):
        alpha = np.asarray(Image.open(work / f"paint_{index:04d}.png"))[..., 3].astype(np.float32) / 255
        carry = motion[index][:, :2] @ to_face[:, :2]
        shift = motion[index][:, :2] @ to_face[:, 2] + motion[index][:, 2]
        rows.append((index, abs(angles[index] - angles[painted]), *profile_figures(alpha, carry @ start + shift, carry @ end + shift)))
    print(f"{WIDTH}x{HEIGHT}, face {args.face_size} px, line painted on frame {painted}")
    print(f"{'frame':>6}{'turn (deg)':>12}{'width':>8}{'peak':>7}{'integral':>10}{'off line':>10}")
    for index, turn, width, peak, integral, offset in rows:
        print(f"{index:>6}{turn:>12.1f}{width:>8.1f}{peak:>7.2f}{integral:>10.2f}{offset:>10.2f}")
    for name, chosen in (("painted frame", [r for r in rows if r[0] == painted]),
                         ("still (< 3 deg from it)", [r for r in rows if r[0] != painted and r[1] < 3]),
                         ("all other frames", [r for r in rows if r[0] != painted])):
        figures = np.array([r[2:] for r in chosen])
        print(f"{name}: {len(chosen)} frames, width median {np.nanmedian(figures[:, 0]):.1f} px "
              f"(90th percentile {np.nanpercentile(figures[:, 0], 90):.1f}), peak {np.median(figures[:, 1]):.2f}, "
              f"integral {np.median(figures[:, 2]):.2f}, off the line {np.nanmedian(figures[:, 3]):.2f} px")


if __name__ == "__main__":
    main()
