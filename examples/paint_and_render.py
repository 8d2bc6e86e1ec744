"""Paint a mark on a face once and watch it follow the face through a video.

    python examples/paint_and_render.py [--out runs/paint] [--model PATH]

Makes its own input (the astronaut's face moving, with a tone as sound track), extracts
the embedded face, paints a red star on the left cheek of the paint layer, and renders
the video with the star following the face. Uses the shipped model unless --model is
given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from x2face_edit import extract as extracting
from x2face_edit.model import default_model_path, load_model_with_info
from x2face_edit.paint import Paint
from x2face_edit.render import RenderOptions, render
from x2face_edit.synthetic import write_moving_face_video
from x2face_edit.tracking import track_video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/paint"))
    parser.add_argument("--model", type=Path, default=default_model_path())
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    video = write_moving_face_video(args.out / "input.mp4", count=75, fps=25, tone_hz=440)
    model, model_info = load_model_with_info(args.model)

    track = track_video(video)
    face = extracting.extract(model, model_info, video, track, size=512)
    face_png, layer_png, _, sidecar = extracting.save(face, args.out / "face.png", force=True)
    print(f"embedded face from frames {face.sidecar.frames}: {face_png}")

    layer = Image.open(layer_png)
    centre = np.array([0.36, 0.60]) * layer.size  # the left cheek of the embedded face
    angles = np.linspace(0, 4 * np.pi, 11)[:-1] + np.pi / 2
    radii = np.where(np.arange(10) % 2 == 0, 22, 9)
    star = [tuple(centre + r * np.array([np.cos(a), -np.sin(a)])) for r, a in zip(radii, angles)]
    ImageDraw.Draw(layer).polygon(star, fill=(230, 20, 20, 255))
    painted = args.out / "face.painted.png"
    layer.save(painted)

    out = args.out / "painted.mp4"
    report = render(model, model_info, Paint.read(painted, sidecar), video, out, RenderOptions(force=True), track=track)
    print(f"rendered {report.frames} frames with the star: {out}")


if __name__ == "__main__":
    main()
