"""What a render-farm chunk costs beside its share of a whole render (issue 30's target:
a 50-frame chunk of a 60 s 1080p video at most 1.5x 50 frames' share).

    python benchmarks/farm_chunk.py [--seconds 60] [--size 1920x1080] [--chunk 50] [--starts 0 700 1450] [--decode-sources] [--sequence]

A synthetic video of the moving astronaut (``synthetic.moving_face_motion``, the face a
quarter of the frame's width) is written, its embedded face extracted and painted with a
disc, the face analysed once with the embedded face's source frames (``tracking.save_track``,
what ``analyse`` writes); then, with the analysis read back as every chunk does (``render
--analysis``; ``--decode-sources``: without the source frames, each render decoding them
from the video as before) and the model loaded once, the whole video is rendered, and
chunks at its start, middle and end (or at ``--starts``), to H.264 (``--sequence``: the shot is a PNG sequence,
as farms are given plates, rendered to PNG sequences).
Printed: seconds, and each chunk's time over its share (whole time x chunk / frames).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from x2face_edit.embedding import source_frames
from x2face_edit.extract import extract, save
from x2face_edit.model import load_model_with_info
from x2face_edit.paint import Paint
from x2face_edit.render import RenderOptions, render
from x2face_edit.synthetic import iter_moving_face_frames, write_moving_face_video
from x2face_edit.tracking import DecodedFrames, load_sources, load_track, save_track, track_video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--chunk", type=int, default=50)
    parser.add_argument("--starts", type=int, nargs="*", help="the chunks' first frames (default: the start, middle and end)")
    parser.add_argument("--decode-sources", action="store_true", help="each render decodes the source frames itself")
    parser.add_argument("--sequence", action="store_true", help="the shot as a PNG sequence, rendered to PNG sequences")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    frames = round(args.seconds * 25)
    model, info = load_model_with_info()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        if args.sequence:
            video = folder / "plate" / "shot_%05d.png"
            video.parent.mkdir()
            for index, rgb in enumerate(iter_moving_face_frames(frames, width=width, height=height, face_size=width // 4)):
                Image.fromarray(rgb).save(str(video) % index, compress_level=1)
        else:
            video = write_moving_face_video(folder / "shot.mp4", frames, width=width, height=height, face_size=width // 4)
        suffix = "_%05d.png" if args.sequence else ".mp4"
        track = track_video(video)
        _, layer_path, _, sidecar_path = save(extract(model, info, video, track), folder / "face.png")
        layer = np.zeros((512, 512, 4), np.uint8)
        cv2.circle(layer, (170, 320), 40, (20, 230, 40, 255), -1)
        Image.fromarray(layer).save(layer_path)
        paint = Paint.read(layer_path)
        number, looks_like = paint.sidecar.followed_face(None)
        sources = DecodedFrames(video, dict(zip(paint.sidecar.frames, source_frames(paint.sidecar)[0])))
        save_track(track_video(video, face=number, looks_like=looks_like), folder / "shot.analysis.npz",
                   face=number, looks_like=looks_like, sources=sources)

        def timed(out: str, chunk: tuple[int, int] | None) -> float:
            start = time.perf_counter()
            shared = load_track(folder / "shot.analysis.npz", video, face=number, looks_like=looks_like)
            given = paint
            if not args.decode_sources:
                held = load_sources(folder / "shot.analysis.npz", video, paint.sidecar.frames)
                given = replace(paint, sidecar=replace(paint.sidecar, decoded=held.frames))
            render(model, info, given, video, folder / out, RenderOptions(frames=chunk), track=shared)
            return time.perf_counter() - start

        whole = timed(f"whole{suffix}", None)
        share = whole * args.chunk / frames
        print(f"{width}x{height}, {frames} frames: whole render {whole:.1f} s ({frames / whole:.1f} frames/s), "
              f"a {args.chunk}-frame share {share:.2f} s")
        for first in args.starts or (0, frames // 2 - args.chunk // 2, frames - args.chunk):
            seconds = timed(f"chunk_{first}{suffix}", (first, first + args.chunk - 1))
            print(f"chunk {first}-{first + args.chunk - 1}: {seconds:.2f} s, {seconds / share:.2f}x its share", flush=True)


if __name__ == "__main__":
    main()
