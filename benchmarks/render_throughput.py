"""Frames per second of each stage of `render`, and of the whole, on synthetic videos;
or, with ``--real CLIP``, the whole of `extract` and `render` against a plain re-encode.

    python benchmarks/render_throughput.py [--sizes 640x360,1280x720] [--models 256:64,128:32]
                                           [--frames 150] [--device cpu|cuda] [--lock landmarks|none]
    python benchmarks/render_throughput.py --real CLIP [--sizes 1280x720,1920x1080] [--frames 200] [--repeat 3]

For each video size and model (random weights: speed does not depend on them) it times,
each alone: decoding, face tracking, the driving network on the face crops (batches of
8: the "network-only" throughput), the landmark lock (dlib's 68 landmarks and the
thin-plate correction of each grid), compositing the warped paint, and encoding; then the
whole `render` (tracking pass included, with ``--lock``; no analysis read back from the
cache) in a fresh process, whose peak resident memory it also reports. ``ratio`` is whole render / network-only.

``--real``: CLIP (a talking-head clip with sound) is scaled to the frame's height and
padded to each size (a face about half the height), the first ``--frames`` frames with the
sound; then, each as a user runs it (a fresh process, start-up included), the fastest of
``--repeat`` runs: ffmpeg's own re-encode at render's settings (H.264 veryfast CRF 16,
sound copied; the program from the ``bench`` extra's imageio-ffmpeg), the same re-encode
through PyAV (decoded pictures handed to the encoder as they are), `extract` with the
default model, `render` of a painted dot with ``--lock`` right after it (the video's face
analysis read back from the cache, as when a user renders what they extracted, or renders
again after repainting), and `render` with an empty cache (a video never analysed).
``ratio`` is render throughput / ffmpeg's re-encode throughput.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw

from x2face_edit import extract as extracting
from x2face_edit.faces import LandmarkDetector, crop, to_crop_grid
from x2face_edit.lock import LandmarkLock, thin_plate_field
from x2face_edit.model import ModelConfig, ModelInfo, X2Face, load_model_with_info, save_checkpoint
from x2face_edit.model.checkpoint import file_fingerprint, load_model
from x2face_edit.model.images import to_tensor
from x2face_edit.model.inference import GridPredictor, InferenceOptions
from x2face_edit.paint import Paint, PaintOptions, composite, paint_layer
from x2face_edit.render import RenderOptions, render
from x2face_edit.synthetic import write_moving_face_video
from x2face_edit.tracking import track_video
from x2face_edit.video import VideoWriter, iter_frames, probe


def timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def make_inputs(scratch: Path, width: int, height: int, frames: int, config: ModelConfig) -> tuple[Path, Path, Path, Path]:
    """A synthetic video, a checkpoint with random weights, a painted layer and its sidecar."""
    video = scratch / f"drive_{width}x{height}.mp4"
    if not video.exists():
        write_moving_face_video(video, frames, width=width, height=height, face_size=round(height * 0.5))
    torch.manual_seed(0)
    checkpoint = scratch / f"model_{config.resolution}_{config.width}.pt"
    save_checkpoint(checkpoint, X2Face(config).eval())
    model = load_model(checkpoint)
    face = extracting.extract(model, ModelInfo(str(checkpoint), file_fingerprint(checkpoint)), video, track_video(video), size=256)
    _, layer_png, _, sidecar_json = extracting.save(face, scratch / f"face_{width}_{config.resolution}.png", force=True)
    layer = Image.open(layer_png)
    ImageDraw.Draw(layer).ellipse((80, 140, 120, 180), fill=(230, 20, 20, 255))
    layer.save(layer_png)
    return video, checkpoint, layer_png, sidecar_json


def whole_render(video: Path, checkpoint: Path, layer_png: Path, sidecar_json: Path, out: Path, options: InferenceOptions,
                 overlap: bool, lock: str, result: multiprocessing.Queue) -> None:
    """In a fresh process: seconds for the whole render and the process's peak memory."""
    model, model_info = load_model_with_info(checkpoint, device=options.device)
    render_options = RenderOptions(PaintOptions(lock=lock), inference=options, overlap=overlap, force=True)
    seconds = timed(lambda: render(model, model_info, Paint.read(layer_png, sidecar_json), video, out, render_options))
    result.put((seconds, peak_memory_mb()))


def peak_memory_mb() -> float:
    """This process's peak resident memory. ru_maxrss would do but for Linux carrying the
    parent's peak over into a spawned child; /proc's VmHWM starts afresh."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(video: Path, checkpoint: Path, layer_png: Path, sidecar_json: Path, options: InferenceOptions, overlap: bool,
            lock: str, scratch: Path) -> dict:
    model = load_model(checkpoint, device=options.device)
    sidecar = extracting.read_sidecar(sidecar_json)
    decoded = [frame.rgb for frame in iter_frames(video)]
    count = len(decoded)
    row = {"decode": count / timed(lambda: sum(1 for _ in iter_frames(video)))}
    os.environ["X2FACE_EDIT_CACHE"] = tempfile.mkdtemp(prefix="x2face-cache-")  # tracked afresh, not read back
    start = time.perf_counter()
    track = track_video(video)
    row["track"] = count / (time.perf_counter() - start)
    crops = to_tensor([crop(f, track.crop_box(i), model.config.resolution) for i, f in enumerate(decoded)])
    predictor = GridPredictor(model, options)
    predictor(crops[: options.batch])  # warm-up (and compilation, with --compile)
    grids: list[torch.Tensor] = []
    row["network"] = count / timed(lambda: grids.extend(
        g for start in range(0, count, options.batch) for g in predictor(crops[start : start + options.batch])))
    detector = LandmarkDetector()

    def lock_stage() -> None:
        # A random model's warp is far from dlib's landmarks, so the lock would reject it: the
        # correction is computed regardless, to time what a real model costs.
        for i, (frame, grid) in enumerate(zip(decoded, grids)):
            points = torch.from_numpy(to_crop_grid(detector(frame, track.face_boxes[i]), track.crop_box(i)))
            LandmarkLock.apply(grid, thin_plate_field(points, torch.zeros_like(points)))

    row["lock"] = count / timed(lock_stage)
    layer = paint_layer(layer_png, extracting.rebuild(model, sidecar))
    copies = [f.copy() for f in decoded]
    row["composite"] = count / timed(lambda: [composite(f, track.crop_box(i), g, layer) for i, (f, g) in enumerate(zip(copies, grids))])
    height, width = decoded[0].shape[:2]

    def encode() -> None:
        with VideoWriter(scratch / "encoded.mp4", fps=25, width=width, height=height) as writer:
            for frame in copies:
                writer.write(frame)

    row["encode"] = count / timed(encode)
    os.environ["X2FACE_EDIT_CACHE"] = tempfile.mkdtemp(prefix="x2face-cache-")  # the render tracks afresh too
    spawn = multiprocessing.get_context("spawn")
    result = spawn.Queue()
    child = spawn.Process(target=whole_render, args=(video, checkpoint, layer_png, sidecar_json, scratch / "rendered.mp4", options, overlap, lock, result))
    child.start()
    seconds, peak_mb = result.get()
    child.join()
    row["render"] = count / seconds
    row["ratio"] = row["render"] / row["network"]
    row["peak MB"] = peak_mb
    return row


def real_footage(clip: Path, width: int, height: int, frames: int, out: Path) -> Path:
    """CLIP's first ``frames`` frames scaled to ``height`` and centred in a ``width`` x
    ``height`` frame, with its sound."""
    source = next(iter_frames(clip)).rgb
    side = height
    scaled_width = round(source.shape[1] * side / source.shape[0])
    with VideoWriter(out, fps=25, width=width, height=height, audio_from=clip) as writer:
        for frame in iter_frames(clip):
            if frame.index == frames:
                break
            canvas = np.zeros((height, width, 3), np.uint8)
            left = (width - scaled_width) // 2
            canvas[:, left : left + scaled_width] = cv2.resize(frame.rgb, (scaled_width, side), interpolation=cv2.INTER_LINEAR)
            writer.write(canvas, frame.time)
    return out


# A plain re-encode through PyAV at render's settings (decode, H.264 veryfast CRF 16, sound
# copied), each decoded picture handed to the encoder as it is, in a fresh process that
# loads only PyAV, as a Python transcoding tool would.
REENCODE = """
import sys
from x2face_edit.video import VideoWriter, iter_frames, probe
info = probe(sys.argv[1])
with VideoWriter(sys.argv[2], fps=info.fps, width=info.width, height=info.height, audio_from=sys.argv[1]) as writer:
    for frame in iter_frames(sys.argv[1]):
        writer.write(frame, frame.time)
"""


def fastest(command: list[str], repeat: int, cache: Path | None = None) -> float:
    """The fastest of ``repeat`` runs of ``command`` in a fresh process (start-up included),
    each with an empty cache folder, or with ``cache`` (kept from run to run)."""
    times = []
    for _ in range(repeat):
        folder = cache or Path(tempfile.mkdtemp(prefix="x2face-cache-"))
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env={**os.environ, "X2FACE_EDIT_CACHE": str(folder)})
        times.append(time.perf_counter() - start)
        if cache is None:
            shutil.rmtree(folder)
    return min(times)


def compare_with_reencode(clip: Path, sizes: list[tuple[int, int]], frames: int, lock: str, repeat: int, scratch: Path) -> None:
    import imageio_ffmpeg  # the bench extra's

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    print(f"{clip.name}, {frames} frames, lock {lock}, fastest of {repeat}; seconds (frames/s)")
    columns = ["ffmpeg re-encode", "PyAV re-encode", "extract", "render", "render, no cache", "ratio", "no cache"]
    print(f"{'video':<11}" + "".join(f"{c:>18}" for c in columns))
    for width, height in sizes:
        video = real_footage(clip, width, height, frames, scratch / f"real_{width}x{height}.mp4")
        count = probe(video).frame_count
        plain = fastest([ffmpeg, "-v", "error", "-y", "-i", str(video), "-c:v", "libx264", "-preset", "veryfast", "-crf", "16",
                         "-c:a", "copy", str(scratch / "plain.mp4")], repeat)
        python_plain = fastest([sys.executable, "-c", REENCODE, str(video), str(scratch / "plain.mp4")], repeat)
        face = scratch / f"face_{width}.png"
        cache = scratch / "cache"
        cache.mkdir(exist_ok=True)
        extract_command = [sys.executable, "-m", "x2face_edit", "extract", str(video), "-o", str(face), "--force"]
        extracting = fastest(extract_command, repeat)
        fastest(extract_command, 1, cache)  # the analysis render reads back
        layer = Image.open(face.with_suffix(".edit.png"))
        ImageDraw.Draw(layer).ellipse((236, 300, 276, 340), fill=(230, 20, 20, 255))
        layer.save(face.with_suffix(".edit.png"))
        render_command = [sys.executable, "-m", "x2face_edit", "render", "--edited", str(face.with_suffix(".edit.png")),
                          "--drive", str(video), "-o", str(scratch / "rendered.mp4"), "--lock", lock, "--force"]
        rendering = fastest(render_command, repeat, cache)
        uncached = fastest(render_command, repeat)
        cells = [f"{plain:.1f} ({count / plain:.1f})", f"{python_plain:.1f} ({count / python_plain:.1f})", f"{extracting:.1f}",
                 f"{rendering:.1f} ({count / rendering:.1f})", f"{uncached:.1f} ({count / uncached:.1f})",
                 f"{plain / rendering:.2f}", f"{plain / uncached:.2f}"]
        print(f"{f'{width}x{height}':<11}" + "".join(f"{c:>18}" for c in cells), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="640x360,1280x720", help="video sizes, WIDTHxHEIGHT")
    parser.add_argument("--models", default="256:64,128:32", help="resolution:width pairs")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the driving network")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lock", default="landmarks", choices=["landmarks", "none"], help="render's --lock")
    parser.add_argument("--no-overlap", dest="overlap", action="store_false",
                        help="render's stages one after another (the simple path)")
    parser.add_argument("--real", type=Path, help="a talking-head clip: compare extract and render with a plain re-encode")
    parser.add_argument("--repeat", type=int, default=3, help="with --real: runs of each command (the fastest counts)")
    args = parser.parse_args()
    if args.real:
        sizes = [tuple(int(v) for v in size.split("x")) for size in
                 (args.sizes if args.sizes != parser.get_default("sizes") else "1280x720,1920x1080").split(",")]
        with tempfile.TemporaryDirectory(prefix="x2face-bench-") as scratch:
            compare_with_reencode(args.real, sizes, args.frames, args.lock, args.repeat, Path(scratch))
        return
    options = InferenceOptions(device=args.device, precision=args.precision, compile=args.compile, batch=args.batch)
    print(f"device {args.device}, precision {options.resolved_precision(torch.device(args.device))}, "
          f"compile {args.compile}, overlap {args.overlap}, lock {args.lock}, threads {torch.get_num_threads()}, "
          f"{args.frames} frames, batch {args.batch}; frames/s")
    columns = ["decode", "track", "network", "lock", "composite", "encode", "render", "ratio", "peak MB"]
    print(f"{'video':<10}{'model':<9}" + "".join(f"{c:>11}" for c in columns))
    with tempfile.TemporaryDirectory(prefix="x2face-bench-") as scratch:
        for size in args.sizes.split(","):
            width, height = (int(v) for v in size.split("x"))
            for pair in args.models.split(","):
                resolution, channels = (int(v) for v in pair.split(":"))
                inputs = make_inputs(Path(scratch), width, height, args.frames, ModelConfig(resolution, channels))
                row = measure(*inputs, options, args.overlap, args.lock, Path(scratch))
                print(f"{size:<10}{f'{resolution}/w{channels}':<9}" + "".join(
                    f"{row[c]:>11.2f}" if c == "ratio" else f"{row[c]:>11.0f}" if c == "peak MB" else f"{row[c]:>11.1f}"
                    for c in columns), flush=True)


if __name__ == "__main__":
    main()
