"""The ``x2face-edit`` command line: argument parsing and messages over the Python API.

Heavy modules are imported inside each command so that ``train`` runs where PyAV and
dlib are not installed (a GPU machine that only has the training dependencies).
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from pathlib import Path

import click

from .choices import LOCK_MODES, MODES, OCCLUSION_MODES, POSE_METHODS
from .errors import X2FaceError


class _Group(click.Group):
    """Turns an ``X2FaceError`` into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except X2FaceError as exc:
            raise click.ClickException(str(exc)) from None


def _exit_on_terminate(signum: int, frame: object) -> None:
    # SIGTERM (a job scheduler, `kill`) unwinds like Ctrl-C, so partial outputs are removed.
    raise SystemExit(128 + signum)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="x2face-edit")
def main() -> None:
    """Edit faces in video with X2Face (Wiles, Koepke, Zisserman, ECCV 2018)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_on_terminate)


@main.command()
@click.argument("videos", type=click.Path(path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Folder for the face tracks.")
@click.option("--size", default=256, show_default=True, help="Crop size in pixels (the model's resolution).")
@click.option("--sample-fps", default=5.0, show_default=True, help="Frames per second analysed and kept.")
@click.option("--min-frames", default=4, show_default=True, help="Shortest track kept, in analysed frames.")
@click.option("--identities", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV/TSV of 'video file name,identity'; otherwise each video is its own identity.")
@click.option("--workers", default=1, show_default=True, help="Videos processed in parallel.")
def prepare(videos: Path, out_dir: Path, size: int, sample_fps: float, min_frames: int, identities: Path | None, workers: int) -> None:
    """Find and track faces in VIDEOS (a folder or one video) and write VoxCeleb-style crops.

    Re-running the same command skips videos already done.
    """
    from rich.progress import Progress

    from . import prepare as preparing

    video_list = [videos] if videos.is_file() else preparing.find_videos(videos)
    if not video_list:
        raise X2FaceError(f"no videos in {videos}")
    failures = []
    with Progress(transient=False) as progress:
        task = progress.add_task("preparing", total=len(video_list))

        def done(video: Path, record: dict | None, error: str | None) -> None:
            if error:
                failures.append(error)
                progress.console.print(f"[red]skipped[/red] {video.name}: {error}")
            progress.advance(task)

        manifest = preparing.prepare(
            video_list,
            out_dir,
            options=preparing.PrepareOptions(size=size, sample_fps=sample_fps, min_frames=min_frames),
            identities=preparing.read_identity_map(identities) if identities else None,
            workers=workers,
            on_video_done=done,
        )
    frames = sum(t["frames"] for t in manifest["tracks"])
    identities_found = len({t["identity"] for t in manifest["tracks"]})
    click.echo(f"{len(manifest['tracks'])} tracks, {frames} frames, {identities_found} identities in {out_dir}")
    if failures and len(failures) == len(video_list):
        raise X2FaceError("no video could be prepared")


@main.command()
@click.argument("tracks", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--out", "out_dir", default="runs/x2face", show_default=True, type=click.Path(path_type=Path),
              help="Folder for checkpoint.pt and log.jsonl.")
@click.option("--resolution", default=256, show_default=True, help="Model input size (power of two).")
@click.option("--width", default=64, show_default=True, help="Channels of the first layer (64 in the paper).")
@click.option("--sources", default=1, show_default=True, help="Source frames averaged per training pair.")
@click.option("--far-pose", default=0.0, show_default=True, type=click.FloatRange(0, 1),
              help="Fraction of pairs whose sources are the frames farthest in head pose from the driving frame "
                   "(the head poses 'prepare' records).")
@click.option("--batch-size", default=16, show_default=True, help="Pairs per step and per process.")
@click.option("--steps", "max_steps", default=100_000, show_default=True, help="Train until this step.")
@click.option("--seconds", "max_seconds", type=float, help="Also stop after this much training time.")
@click.option("--until-loss", "target_loss", type=float, help="Also stop once the training loss (mean of --log-every steps) is this low.")
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]), default="sgd", show_default=True)
@click.option("--lr", type=float, default=None, help="Learning rate (default 1e-3 for stage I, 1e-4 for stage II); divided by 10 when validation stalls.")
@click.option("--stage", type=click.Choice(["1", "2"]), default="1", show_default=True, callback=lambda c, p, v: int(v),
              help="2 adds the identity losses; start it from a stage-I model with --init.")
@click.option("--identity-net", type=click.Path(exists=True, path_type=str),
              help="Stage II: dlib's face descriptor weights (face-api's manifest JSON or its folder).")
@click.option("--identity-weight", default=1.0, show_default=True, help="Stage II content-loss weight (the other identity loss gets a tenth).")
@click.option("--landmark-weight", default=1.0, show_default=True,
              help="Weight of the landmark correspondence losses (0: photometric only), against the photometric L1.")
@click.option("--cycle-weight", default=1.0, show_default=True, help="Weight of the round-trip loss E(D(p)) = p.")
@click.option("--mirror", default=0.5, show_default=True, type=click.FloatRange(0, 1), help="Fraction of pairs flipped left-right.")
@click.option("--occlude", default=0.0, show_default=True, type=click.FloatRange(0, 1),
              help="Fraction of driving frames shown with a random occluder pasted over the face, the loss taken against "
                   "the clean frame: a driving network that reads the face behind a hand or a phone.")
@click.option("--driving-only", is_flag=True,
              help="Train the driving network alone: the embedding network, and so every embedded face (and paint on "
                   "one), stays as it is.")
@click.option("--anchor", type=click.Path(exists=True, dir_okay=False),
              help="Hold the driving grids to this checkpoint's grids of the clean frames (with --occlude: learn to read "
                   "the face behind an occluder while clean frames are held to that model's grids).")
@click.option("--anchor-weight", default=10.0, show_default=True, help="Weight of --anchor's term against the photometric L1.")
@click.option("--val-every", default=500, show_default=True, help="Validate (and maybe lower lr) every N steps.")
@click.option("--plateau-patience", default=3, show_default=True, help="Validations without improvement before lr / 10.")
@click.option("--checkpoint-every", default=500, show_default=True)
@click.option("--log-every", default=10, show_default=True, help="Average and log the loss every N steps.")
@click.option("--init", type=click.Path(exists=True, dir_okay=False), help="Start from this checkpoint's weights.")
@click.option("--resume", is_flag=True, help="Continue the checkpoint in --out (weights, optimizer, step).")
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--workers", "num_workers", default=2, show_default=True, help="Data-loading processes per training process.")
@click.option("--progress/--no-progress", default=True)
@click.option("--tensorboard", is_flag=True,
              help="Also write TensorBoard scalars and, at each validation, a picture grid to OUT/tensorboard "
                   "(pip install 'x2face-edit[monitor]').")
def train(tracks: Path, out_dir: Path, **options) -> None:
    """Train X2Face on face tracks from 'prepare': stage I (photometric L1) or stage II (identity losses).

    For several GPUs: torchrun --nproc_per_node=N -m x2face_edit train TRACKS
    """
    from .model.train import TrainConfig, launched_by_torchrun
    from .model.train import train as run_training

    checkpoint = run_training(TrainConfig(tracks=str(tracks), out_dir=str(out_dir), **options))
    click.echo(f"checkpoint: {checkpoint}")
    if launched_by_torchrun():
        # DistributedDataParallel keeps gloo's process group and its threads alive past
        # destroy_process_group, and their teardown with the interpreter aborted a finished
        # worker (SIGABRT, no Python frame) about once in a hundred runs
        # (pytorch/pytorch#190489). The run is complete and written: leave without it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _load(model_path: Path | None, device: str):
    """The model and its ``ModelInfo`` (the default model where ``model_path`` is None)."""
    from .model import load_model_with_info

    return load_model_with_info(model_path, device=device)


def _frame_progress(description: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True)


model_option = click.option("--model", "model_path", type=click.Path(path_type=Path),
                            help="Checkpoint to use (default: the shipped model, or $X2FACE_MODEL).")
def _resolve_device(context: click.Context, parameter: click.Parameter, name: str) -> str:
    from .model.inference import resolve_device

    return str(resolve_device(name))


device_option = click.option("--device", default="auto", show_default=True, callback=_resolve_device,
                             help="auto (a GPU if there is one), cpu, cuda or cuda:N.")
face_option = click.option("--face", default=0, show_default=True, help="Which face: 0 is the most prominent, 1 the next...")
force_option = click.option("--force", is_flag=True, help="Overwrite existing outputs.")


def inference_options(command):
    """--precision, --compile and --batch, handed to ``command`` as one InferenceOptions ``options``."""

    @click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
                  help="Network arithmetic; auto: bf16 where the hardware computes it natively, else fp32.")
    @click.option("--compile", "compiled", is_flag=True,
                  help="torch.compile the driving network: a slow start, then 5-15 % faster on a CPU.")
    @click.option("--batch", default=8, show_default=True, type=click.IntRange(min=1), help="Frames per network call.")
    @functools.wraps(command)
    def with_options(*args, precision: str, compiled: bool, batch: int, **kwargs):
        from .model.inference import InferenceOptions

        return command(*args, options=InferenceOptions(precision=precision, compile=compiled, batch=batch), **kwargs)

    return with_options


sequence_fps_option = click.option("--sequence-fps", type=click.FloatRange(min=0, min_open=True),
                                   help="Frame rate of an image-sequence input (NAME_%05d.png or a folder of frames; default 25).")
out_fps_option = click.option("--out-fps", default=25.0, show_default=True, help="Frame rate of the video written.")
source_count_option = click.option("--sources", "count", default=3, show_default=True,
                                   help="Source frames averaged when the source is a video, chosen to cover different poses.")


def _fit(video: Path, out: Path, model_path: Path | None, seconds: float, *, seed: int, device: str, force: bool,
         driving_only: bool = False) -> Path:
    """``--fit``: the model adapted to ``video`` for ``seconds``, written to ``out``."""
    from .fit import FitOptions
    from .fit import fit as run_fit
    from .model import default_model_path

    return run_fit(video, out, model_path or default_model_path(),
                   FitOptions(max_seconds=seconds, seed=seed, device=device, driving_only=driving_only, force=force))


@main.command()
@click.argument("video", type=click.Path(path_type=Path))
@click.option("-o", "--out", "out", type=click.Path(path_type=Path), required=True,
              help="The embedded face PNG; FACE.edit.png (a layer to paint on), FACE.guide.png (the face's features, "
                   "to paint by) and FACE.json are written beside it.")
@click.option("--sources", default=3, show_default=True, help="Source frames averaged, chosen to cover different poses.")
@click.option("--frames", help="Comma-separated frame numbers to use as sources instead.")
@click.option("--size", default=512, show_default=True, type=click.IntRange(min=32), help="Side of the embedded face in pixels.")
@click.option("--fit", "fit_seconds", type=float, default=None,
              help="First adapt the model to VIDEO for this many seconds (see 'fit'); saved as FACE.model.pt.")
@click.option("--seed", default=0, show_default=True, help="Seed for --fit.")
@sequence_fps_option
@model_option
@device_option
@face_option
@force_option
def extract(video: Path, out: Path, sources: int, frames: str | None, size: int, fit_seconds: float | None, seed: int,
            sequence_fps: float | None, model_path: Path | None, device: str, face: int, force: bool) -> None:
    """Write the embedded face of VIDEO, ready to paint on.

    'render' later uses the same model (recorded in FACE.json) unless told otherwise.
    """
    from . import extract as extracting
    from .outputs import check_output
    from .sidecar import output_paths
    from .tracking import track_video

    outputs = output_paths(out)
    fitted = out.with_suffix(".model.pt")
    for path in (*outputs, fitted) if fit_seconds else outputs:
        check_output(path, force=force)
    try:
        chosen = [int(f) for f in frames.split(",")] if frames else None
    except ValueError:
        raise X2FaceError(f"--frames takes comma-separated frame numbers, got {frames!r}") from None
    if fit_seconds:
        model_path = _fit(video, fitted, model_path, fit_seconds, seed=seed, device=device, force=force)
    model, model_info = _load(model_path, device)
    with _frame_progress("tracking") as progress:
        task = progress.add_task("tracking", total=None)
        track = track_video(video, face=face, fps=sequence_fps, on_frame=lambda i: progress.update(task, completed=i + 1))
    embedded = extracting.extract(model, model_info, video, track, sources=sources, frames=chosen, size=size, face=face)
    written = extracting.save(embedded, out, force=force)
    click.echo(f"frames {', '.join(map(str, embedded.sidecar.frames))} -> {', '.join(str(p) for p in written)}")


def paint_options(command):
    """--edited, --frame, --sidecar, --mode, --lock and --face, handed to ``command`` as the
    ``Paint`` ``paint``, the ``PaintOptions`` ``paint_options`` and the ``FrameEdit``s
    ``painted_frames`` (each --edited with its --frame, in order)."""

    @click.option("--edited", type=click.Path(path_type=Path), required=True, multiple=True,
                  help="The painted face: a painted copy of FACE.png, or the painted FACE.edit.png layer; or, with --frame, "
                       "paint made on a frame of --drive (given again with another --frame for each painted frame).")
    @click.option("--frame", "frames", type=click.IntRange(min=0), multiple=True,
                  help="The paint was made on this frame of --drive (the picture 'frame' wrote; pass --sidecar FACE.json): "
                       "it is carried into the embedded face through that frame's own warp, and lands there as painted. "
                       "Several (one per --edited) are merged by how well each frame shows each part of the face.")
    @click.option("--sidecar", type=click.Path(path_type=Path), help="FACE.json from 'extract' (found beside --edited by default).")
    @click.option("--mode", type=click.Choice(MODES), default=MODES[0], show_default=True,
                  help="edit: warp only the paint onto the footage; generate: paste the whole X2Face-generated face.")
    @click.option("--lock", type=click.Choice(LOCK_MODES), default=LOCK_MODES[0], show_default=True,
                  help="landmarks: correct each frame's warp so the face's landmarks land where they lie on the embedded "
                       "face, smoothed over time; none: the pure X2Face warp of the paper.")
    @click.option("--face", type=int, default=None,
                  help="Which face of --drive: 0 is the most prominent (default: the person extract's face is, found by "
                       "their looks; else the face number extract used).")
    @click.option("--occlusion", type=click.Choice(OCCLUSION_MODES), default=OCCLUSION_MODES[0], show_default=True,
                  help="auto: hide the paint where something passes in front of the face (a hand, a phone, hair); "
                       "off: draw it over whatever covers the face.")
    @functools.wraps(command)
    def with_options(*args, edited: tuple[Path, ...], frames: tuple[int, ...], sidecar: Path | None, mode: str, lock: str,
                     face: int | None, occlusion: str, **kwargs):
        from .frame_paint import FrameEdit
        from .paint import Paint, PaintOptions

        if len(edited) > 1 and len(frames) != len(edited):
            raise X2FaceError(f"{len(edited)} --edited with {len(frames)} --frame: several pieces of paint are each made on a "
                              "frame of --drive, given as --edited PAINT --frame N for each")
        if len(frames) > len(edited):
            raise X2FaceError(f"{len(frames)} --frame with {len(edited)} --edited: give the paint made on each frame")
        options = PaintOptions(mode=mode, lock=lock, face=face, occlusion=occlusion)
        painted_frames = tuple(FrameEdit(path, index) for path, index in zip(edited, frames))
        return command(*args, paint=Paint.read(edited[0], sidecar), paint_options=options, painted_frames=painted_frames, **kwargs)

    return with_options


def _frame_range(value: str | None) -> tuple[int, int] | None:
    """``--frames A-B`` (or one frame, ``N``: what a farm's chunk of one frame expands to) as (A, B)."""
    if value is None:
        return None
    first, dash, last = value.partition("-")
    last = last if dash else first
    if not first.strip().isdigit() or not last.strip().isdigit() or int(first) > int(last):
        raise X2FaceError(f"--frames takes a range of frame numbers A-B (e.g. 0-49), got {value!r}")
    return int(first), int(last)


def _model_of(paint, model_path: Path | None) -> Path:
    """--model, else the model the face was extracted with (its sidecar says)."""
    return model_path or Path(paint.sidecar.model.info.path)


@main.command()
@paint_options
@click.option("--drive", type=click.Path(path_type=Path), required=True, help="The video the paint follows.")
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True)
@click.option("--model", "model_path", type=click.Path(path_type=Path),
              help="Checkpoint to use (default: the one the face was extracted with, recorded in FACE.json).")
@click.option("--fit", "fit_seconds", type=float, default=None,
              help="First adapt the driving network to the --drive video for this many seconds (the embedded face, "
                   "and so the paint, stays as it is); the adapted model is saved as OUT.model.pt.")
@click.option("--seed", default=0, show_default=True, help="Seed for --fit.")
@device_option
@click.option("--layer-only", is_flag=True,
              help="Write only the warped paint with its alpha, to lay over the footage in an editor "
                   "(OUT.mov: ProRes 4444; OUT.webm: VP9; OUT_%05d.png: a PNG sequence).")
@click.option("--codec", help="h264, h265, prores, vp9, png or tiff (default: what OUT's suffix implies: "
              "h264 for .mp4/.mov/.mkv, vp9 for .webm, png/tiff for image sequences).")
@click.option("--crf", type=click.IntRange(0, 63), help="Constant quality of h264/h265/vp9, lower is better "
              "(default 16, 20, 30).")
@sequence_fps_option
@click.option("--preview", type=click.IntRange(min=1),
              help="The same as the 'preview' command with --frames (kept for a release): a before/after contact sheet "
                   "of this many frames to OUT (.png or .jpg) instead of rendering.")
@click.option("--analysis", type=click.Path(path_type=Path),
              help="The face analysis of --drive that 'analyse' wrote (shared by every chunk of a farm render), read "
                   "instead of analysing the video again.")
@click.option("--frames", "chunk", callback=lambda _, __, value: _frame_range(value),
              help="Render only frames A-B (inclusive, counted from 0; N alone is one frame), each exactly as the whole render writes it: a "
                   "chunk for a render farm (an image sequence keeps their numbers; a video holds just them, silent).")
@click.option("--matte", type=click.Path(path_type=Path),
              help="Also write the occlusion matte, frame for frame (white where the face shows, black where something "
                   "covers it; MATTE.mov: grey ProRes, MATTE_%05d.png: a PNG sequence), to refine in a compositor.")
@force_option
@inference_options
def render(paint, paint_options, painted_frames, drive: Path, out: Path, model_path: Path | None, fit_seconds: float | None, seed: int,
           device: str, layer_only: bool, codec: str | None, crf: int | None, sequence_fps: float | None, preview: int | None,
           analysis: Path | None, chunk: tuple[int, int] | None, matte: Path | None, force: bool,
           options) -> None:
    """Make the paint on an embedded face follow the face through a video (or image sequence)."""
    from .frame_paint import read_frame_paints
    from .outputs import check_output
    from .paint import require_paint_before
    from .render import RenderOptions, check_matte_output
    from .render import render as run_render
    from .video import check_video_output, probe

    if preview:
        if matte:
            raise X2FaceError("--matte goes with a render, not --preview (a contact sheet has no frames to match)")
        from .preview import PreviewOptions

        _preview(paint, drive, out, model_path, device, PreviewOptions(count=preview, paint=paint_options, painted_frames=painted_frames,
                                                                       sequence_fps=sequence_fps, force=force))
        return
    if chunk and fit_seconds:
        raise X2FaceError("--fit makes a model per run, so chunks would differ: fit once ('fit'), then render each chunk "
                          "with --model")
    if not chunk:  # a chunk's frames are checked by render, which knows their numbers
        check_video_output(out, force=force, codec=codec,
                           inputs=(drive, paint.edited, *(edit.edited for edit in painted_frames), paint.sidecar.path, paint.sidecar.video),
                           crf=crf, alpha=layer_only)
    render_options = RenderOptions(paint=paint_options, layer_only=layer_only, codec=codec, crf=crf, sequence_fps=sequence_fps,
                                   inference=options, matte=matte, painted_frames=painted_frames, frames=chunk, force=force)
    if matte and not chunk:
        check_matte_output(matte, out, render_options)
    model_path = _model_of(paint, model_path)
    if fit_seconds:
        if painted_frames:  # not after minutes of fitting
            read_frame_paints(painted_frames, drive, probe(drive, fps=sequence_fps).frame_count, sequence_fps=sequence_fps)
        else:
            require_paint_before(_load(model_path, device)[0], paint, paint_options)
        fitted = out.with_suffix(".model.pt")
        check_output(fitted, force=force)
        model_path = _fit(drive, fitted, model_path, fit_seconds, seed=seed, device=device, force=force, driving_only=True)
    model, model_info = _load(model_path, device)
    track = None
    if analysis:
        from dataclasses import replace

        from .tracking import load_sources, load_track

        number, looks_like = paint.sidecar.followed_face(paint_options.face)
        track = load_track(analysis, drive, face=number, looks_like=looks_like)
        if (sources := load_sources(analysis, paint.sidecar.video, paint.sidecar.frames)) is not None:
            paint = replace(paint, sidecar=replace(paint.sidecar, decoded=sources.frames))
    with _frame_progress("rendering") as progress:
        task = progress.add_task("rendering", total=None)
        report = run_render(model, model_info, paint, drive, out, render_options, track=track,
                            on_frame=lambda done, total: progress.update(task, completed=done, total=total))
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    lost = sum(last - first + 1 for first, last in report.lost)
    ranges = ", ".join(f"{first}-{last}" if last > first else f"{first}" for first, last in report.lost)
    click.echo(f"{report.frames} frames -> {out}"
               + (f" (face not tracked in {lost} frames, left as they were: {ranges}; the paint fades out and in around them)" if lost else ""))


@main.command("analyse")
@click.argument("video", type=click.Path(path_type=Path))
@click.option("--sidecar", type=click.Path(path_type=Path), required=True,
              help="FACE.json of the paint to render: the analysis follows the person the render will.")
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True,
              help="The analysis (.npz): give it to every chunk's 'render --analysis' (one shared folder, many machines).")
@click.option("--face", type=int, default=None, help="As render's --face (default: the person FACE.json is).")
@sequence_fps_option
@force_option
def analyse(video: Path, sidecar: Path, out: Path, face: int | None, sequence_fps: float | None, force: bool) -> None:
    """Track the face in VIDEO once for a render split into chunks ('render --frames A-B'),
    and keep FACE.json's source frames decoded beside the track, so no chunk decodes them."""
    from .embedding import source_frames
    from .outputs import check_output
    from .sidecar import read_sidecar
    from .tracking import DecodedFrames, save_track, track_video

    if out.suffix != ".npz":
        raise X2FaceError(f"{out.name}: write the analysis as .npz")
    check_output(out, force=force, inputs=(video, sidecar))
    embedded_face = read_sidecar(sidecar)
    number, looks_like = embedded_face.followed_face(face)
    sources = DecodedFrames(embedded_face.video, dict(zip(embedded_face.frames, source_frames(embedded_face)[0])))
    with _frame_progress("analysing") as progress:
        task = progress.add_task("analysing", total=None)
        track = track_video(video, face=number, looks_like=looks_like, fps=sequence_fps,
                            on_frame=lambda i: progress.update(task, completed=i + 1))
    save_track(track, out, face=number, looks_like=looks_like, sources=sources, force=force)
    click.echo(f"{track.info.frame_count} frames, face followed in {int(track.found.sum())} -> {out}")


@main.command("frame")
@click.argument("video", type=click.Path(path_type=Path))
@click.argument("index", type=click.IntRange(min=0))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True,
              help="The frame as a PNG; FRAME.edit.png, a transparent layer of its size to paint on, is written beside it.")
@sequence_fps_option
@force_option
def frame(video: Path, index: int, out: Path, sequence_fps: float | None, force: bool) -> None:
    """Write frame INDEX of VIDEO (counted as 'render' counts them), to paint on; then
    'render --edited FRAME.edit.png --frame INDEX --sidecar FACE.json --drive VIDEO'."""
    from .frame import export_frame

    written = export_frame(video, index, out, sequence_fps=sequence_fps, force=force)
    click.echo(f"frame {index} -> {', '.join(map(str, written))}")


@main.command("preview")
@paint_options
@click.option("--drive", type=click.Path(path_type=Path), required=True, help="The video the paint follows.")
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True, help="The contact sheet (.png or .jpg).")
@click.option("--model", "model_path", type=click.Path(path_type=Path),
              help="Checkpoint to use (default: the one the face was extracted with, recorded in FACE.json).")
@device_option
@click.option("--frames", "count", default=6, show_default=True, type=click.IntRange(min=1), help="Frames shown, spread over the video.")
@sequence_fps_option
@force_option
def preview_command(paint, paint_options, painted_frames, drive: Path, out: Path, model_path: Path | None, device: str,
                    count: int, sequence_fps: float | None, force: bool) -> None:
    """Write a before/after contact sheet of a few frames of a video with the paint on, in seconds.

    Only those frames are searched for the face and each is locked to its own landmarks
    (a render also smooths over time).
    """
    from .preview import PreviewOptions

    _preview(paint, drive, out, model_path, device, PreviewOptions(count=count, paint=paint_options, painted_frames=painted_frames,
                                                                   sequence_fps=sequence_fps, force=force))


def _preview(paint, drive: Path, out: Path, model_path: Path | None, device: str, options) -> None:
    from .preview import preview as run_preview

    model, model_info = _load(_model_of(paint, model_path), device)
    with _frame_progress("previewing") as progress:
        task = progress.add_task("previewing", total=options.count)
        shown = run_preview(model, model_info, paint, drive, out, options, on_frame=lambda done, total: progress.update(task, completed=done))
    click.echo(f"frames {', '.join(map(str, shown))}, before and after -> {out}")


def studio_work():
    """The jobs the studio page runs (``studio.StudioWork``): this package's extract, frame,
    preview and render, which the studio, itself a job, may not import."""
    from .extract import extract, save
    from .frame import export_frame
    from .frame_paint import FrameEdit
    from .paint import PaintOptions
    from .preview import PreviewOptions, preview_frames
    from .render import RenderOptions, render
    from .studio import StudioWork
    from .tracking import track_video

    def extract_face(model, info, video, face_png, sequence_fps, on_frame) -> None:
        save(extract(model, info, video, track_video(video, fps=sequence_fps, on_frame=on_frame)), face_png)

    def frame(video, index, picture, sequence_fps) -> None:
        export_frame(video, index, picture, sequence_fps=sequence_fps)

    def on_frame_of(paint, painted_frame) -> tuple:
        return () if painted_frame is None else (FrameEdit(paint.edited, painted_frame),)

    def preview(model, info, paint, video, painted_frame, paint_options, count, sequence_fps) -> list:
        options = PreviewOptions(count=count, paint=paint_options, painted_frames=on_frame_of(paint, painted_frame),
                                 sequence_fps=sequence_fps)
        return [shown.after for shown in preview_frames(model, info, paint, video, options)]

    def render_page(model, info, paint, video, out, painted_frame, settings, sequence_fps, on_frame) -> None:
        options = RenderOptions(PaintOptions(lock=settings.lock, occlusion=settings.occlusion), layer_only=settings.layer_only,
                                codec=settings.codec, sequence_fps=sequence_fps, painted_frames=on_frame_of(paint, painted_frame))
        render(model, info, paint, video, out, options, on_frame=on_frame)

    return StudioWork(extract_face, frame, preview, render_page)


@main.command()
@click.argument("video", type=click.Path(path_type=Path))
@click.option("--embedded", "face_png", type=click.Path(path_type=Path),
              help="The embedded face to paint on (default: VIDEO.face.png beside the video; made by 'extract' if missing).")
@click.option("--renders", type=click.Path(path_type=Path, file_okay=False), help="Folder of the page's renders (default: renders/ beside the video).")
@click.option("--model", "model_path", type=click.Path(path_type=Path),
              help="Checkpoint to use (default: the one the face was extracted with, else the shipped model).")
@click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535), help="Port on 127.0.0.1 (0: a free one).")
@click.option("--browser/--no-browser", default=True, show_default=True, help="Open the page in a browser.")
@sequence_fps_option
def studio(video: Path, face_png: Path | None, renders: Path | None, model_path: Path | None, port: int, browser: bool,
           sequence_fps: float | None) -> None:
    """Paint on VIDEO's embedded face or on its frames, preview and render, in a page served on this machine."""
    import webbrowser

    from .studio import Studio, StudioOptions, address, serve

    page = Studio(video, studio_work(), StudioOptions(face_png=face_png, renders=renders, model=model_path, port=port,
                                                      sequence_fps=sequence_fps))
    try:
        server = serve(page)
    except OSError as error:
        raise X2FaceError(f"cannot serve on port {port}: {error.strerror}") from None
    page.start_extract()
    click.echo(f"studio for {page.video.name}: {address(server)}  (Ctrl+C stops it)")
    if browser:
        webbrowser.open(address(server))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@main.command()
@click.argument("video", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), help="The adapted checkpoint (default: VIDEO.fit.pt beside the video).")
@click.option("--seconds", "max_seconds", default=180.0, show_default=True, help="Training time budget.")
@click.option("--steps", "max_steps", default=10_000, show_default=True, help="Step budget (whichever ends first).")
@click.option("--until-loss", "target_loss", type=float, help="Also stop once the training L1 (mean of 10 steps) is this low.")
@click.option("--seed", default=0, show_default=True)
@model_option
@device_option
@force_option
def fit(video: Path, out: Path | None, max_seconds: float, max_steps: int, target_loss: float | None, seed: int,
        model_path: Path | None, device: str, force: bool) -> None:
    """Adapt the model to the face in VIDEO (the paper's stage-I objective, on this video alone)."""
    from .fit import FitOptions
    from .fit import fit as run_fit
    from .model import default_model_path

    options = FitOptions(max_seconds=max_seconds, max_steps=max_steps, target_loss=target_loss, seed=seed, device=device, force=force)
    written = run_fit(video, out or video.with_suffix(".fit.pt"), model_path or default_model_path(), options)
    click.echo(f"adapted model: {written}  (use it with --model)")


def _counts(context: click.Context, parameter: click.Parameter, text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(","))
    except ValueError:
        raise click.BadParameter(f"comma-separated numbers, got {text!r}") from None


@main.command("eval")
@click.argument("tracks", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--model", "model_paths", multiple=True, type=click.Path(path_type=Path),
              help="Checkpoint to score (repeat to compare, e.g. stage I and stage II); default: the shipped model.")
@click.option("--split", type=click.Choice(["train", "val", "test", "all"]), default="test", show_default=True,
              help="Which identities (the same split as training); all: every track (tracks of people kept for evaluation only).")
@click.option("--split-seed", default=0, show_default=True)
@click.option("--source-counts", default="1,3", show_default=True, callback=_counts, help="Numbers of source frames to compare.")
@click.option("--max-batches", type=int, default=None, help="Score only this many batches of 16 pairs.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Also write the table here.")
@device_option
def evaluate(tracks: Path, model_paths: tuple[Path, ...], split: str, split_seed: int, source_counts: tuple[int, ...],
             max_batches: int | None, json_path: Path | None, device: str) -> None:
    """The paper's Table 1 on held-out face tracks: L1 of generated vs driving frames; the
    round trip |E(D(p)) - p| in % of the eye distance; and Table 2 (head-pose error of
    f_v->p) for models with pose maps beside them."""
    import json

    from rich.console import Console
    from rich.table import Table

    from .evaluate import evaluate_models
    from .model import default_model_path

    report = evaluate_models(tracks, list(model_paths or (default_model_path(),)), split=split, split_seed=split_seed,
                             source_counts=source_counts, max_batches=max_batches, device=device)
    table = Table(title=f"L1 on {split} identities ({report['identities']} identities, {report['tracks']} tracks)")
    for column in ("method", "sources", "L1", "pairs"):
        table.add_column(column)
    for row in report["rows"]:
        table.add_row(row["method"], str(row["sources"]), f"{row['l1']:.4f}", str(row["pairs"]))
    Console().print(table)
    for name, trip in report["round_trip_iod_pct"].items():
        click.echo(f"{name}: round trip {trip:.2f} % of the eye distance (mean |E(D(p)) - p| over the central half of the crop)")
    for name, errors in report["pose_mae_degrees"].items():
        if errors:
            click.echo(f"{name}: f_v->p pose MAE " + ", ".join(f"{k} {v:.2f}" for k, v in errors.items()) + " degrees")
    if json_path:
        json_path.write_text(json.dumps(report, indent=1))


def _source(model, sources: tuple[Path, ...], count: int, size: int, face: int):
    from .source import source_face

    return source_face(model, list(sources), count=count, size=size, face=face)


@main.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.argument("drive", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True)
@source_count_option
@click.option("--size", default=256, show_default=True, help="Side of the generated face in pixels.")
@click.option("--side-by-side", is_flag=True, help="Show the driving face left of the result.")
@click.option("--paste-back", is_flag=True, help="Paste the result into the source frame instead of writing the face alone.")
@click.option("--lock", type=click.Choice(LOCK_MODES), default=LOCK_MODES[0], show_default=True,
              help="With --paste-back: make the pasted face's features follow the driving face's landmarks (none: the pure warp).")
@model_option
@device_option
@face_option
@force_option
@inference_options
def reenact(sources: tuple[Path, ...], drive: Path, out: Path, count: int, size: int, side_by_side: bool,
            paste_back: bool, lock: str, model_path: Path | None, device: str, face: int, force: bool, options) -> None:
    """Give the face in SOURCES (a video, or one or more images) the pose and expression
    of the face in DRIVE, frame by frame."""
    from .reenact import ReenactOptions
    from .reenact import reenact as run_reenact
    from .video import check_video_output

    reenact_options = ReenactOptions(size=size, side_by_side=side_by_side, paste_back=paste_back, lock=lock, face=face,
                                     inference=options, force=force)
    check_video_output(out, force=force, inputs=(drive, *sources))
    model, _ = _load(model_path, device)
    source = _source(model, sources, count, size, face)
    with _frame_progress("reenacting") as progress:
        task = progress.add_task("reenacting", total=None)
        report = run_reenact(model, source, drive, out, reenact_options,
                             on_frame=lambda done, total: progress.update(task, completed=done, total=total))
    lost = sum(last - first + 1 for first, last in report.lost)
    click.echo(f"{report.frames} frames -> {out}" + (f" (driving face lost in {lost} frames: last result held)" if lost else ""))


def fit_maps_command(kind: str, help_text: str):
    """'fit-pose' and 'fit-audio': fit a model's maps of ``kind`` on face tracks, stored
    beside the model (``modalities.maps_path``) unless -o says where."""

    @main.command(f"fit-{kind}", help=help_text)
    @click.argument("tracks", type=click.Path(exists=True, file_okay=False, path_type=Path))
    @click.option("-o", "--out", type=click.Path(path_type=Path), help=f"Default: MODEL.{kind}.pt beside the model.")
    @click.option("--split-seed", default=0, show_default=True)
    @model_option
    @device_option
    @force_option
    def command(tracks: Path, out: Path | None, split_seed: int, model_path: Path | None, device: str, force: bool) -> None:
        from .model import modalities
        from .outputs import check_output

        model, info = _load(model_path, device)
        out = out or modalities.maps_path(info.path, kind)
        check_output(out, force=force)
        fitting = modalities.fit_and_save_pose_maps if kind == "pose" else modalities.fit_and_save_audio_map
        result = fitting(model, info.fingerprint, tracks, out, split_seed=split_seed, device=device)
        if kind == "pose" and result:
            click.echo("f_v->p MAE on test identities: " + ", ".join(f"{k} {v:.2f}" for k, v in result.items()) + " degrees")
        if kind == "audio" and "test_explained_variance" in result:
            click.echo(f"f_a->v explains {result['test_explained_variance']:.1%} of the driving vectors' variance on test identities")
        click.echo(f"{kind} maps: {out}" if kind == "pose" else f"{kind} map: {out}")

    return command


fit_pose = fit_maps_command("pose", "Fit the pose maps f_v->p and f_p->v (paper section 4.1) on TRACKS' training identities "
                                    "and report f_v->p's error on the test identities.")
fit_audio = fit_maps_command("audio", "Fit f_a->v (least squares from audio features to driving vectors) on TRACKS with sound.")


def _maps(info, kind: str, path: Path | None):
    """The ``kind`` maps at ``path``, else those beside the model, checked to be the model's."""
    from .model import modalities

    format_name = modalities.POSE_FORMAT if kind == "pose" else modalities.AUDIO_FORMAT
    return modalities.load_map(path or modalities.maps_path(info.path, kind), kind=format_name, model_fingerprint=info.fingerprint)[0]


@main.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True)
@click.option("--yaw", help="START:END in degrees (or one value); default: the source's own.")
@click.option("--pitch", help="START:END in degrees (or one value).")
@click.option("--roll", help="START:END in degrees (or one value).")
@click.option("--frames", default=50, show_default=True)
@out_fps_option
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), help="Per-frame angles (default: OUT with .csv).")
@source_count_option
@click.option("--size", default=256, show_default=True, help="Side of the generated face in pixels.")
@click.option("--method", type=click.Choice(POSE_METHODS), default=POSE_METHODS[0], show_default=True,
              help="landmarks: move the face's landmarks as a head turns and steer the warp to put its features there; "
                   "paper: equation (1), the pose map's vector change (turns heads by a fraction of the command).")
@click.option("--pose-maps", type=click.Path(path_type=Path), help="Default: MODEL.pose.pt beside the model.")
@model_option
@device_option
@face_option
@force_option
def pose(sources, out, yaw, pitch, roll, frames, out_fps, csv_path, count, size, method, pose_maps, model_path, device, face,
         force) -> None:
    """Turn the face in SOURCES to commanded head poses (paper section 4.1)."""
    from .outputs import check_output
    from .pose import PoseOptions, drive_by_pose, parse_angle_range, write_pose_table
    from .video import check_video_output

    ranges = {name: parse_angle_range(text, name) if text else None for name, text in (("yaw", yaw), ("pitch", pitch), ("roll", roll))}
    options = PoseOptions(frames=frames, fps=out_fps, size=size, method=method, force=force)
    csv_path = csv_path or out.with_suffix(".csv")
    check_video_output(out, force=force, inputs=sources)
    check_output(csv_path, force=force)
    model, info = _load(model_path, device)
    table = drive_by_pose(model, _maps(info, "pose", pose_maps), _source(model, sources, count, size, face), ranges, out, options)
    write_pose_table(table, csv_path, force=force)
    click.echo(f"{frames} frames -> {out}, angles -> {csv_path}")


@main.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.argument("speech", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True)
@out_fps_option
@source_count_option
@click.option("--size", default=256, show_default=True, help="Side of the generated face in pixels.")
@click.option("--audio-map", type=click.Path(path_type=Path),
              help="A map from 'fit-audio' (MODEL.audio.pt beside the model is the global one), instead of the speech model.")
@click.option("--speech-model", type=click.Path(path_type=Path),
              help="A pooled speech model from 'fit-speech' (default: MODEL.speech.pt beside the model; without one, the "
                   "speaker's own mouth when SOURCES is a talking video, else the global audio map).")
@click.option("--transcript", help="The words SPEECH says (English): their phones are aligned to it instead of decoded; "
                                   "read by the pooled speech model, whatever the source.")
@click.option("--pose-maps", type=click.Path(path_type=Path), help="Default: MODEL.pose.pt beside the model.")
@model_option
@device_option
@face_option
@force_option
def audio(sources, speech, out, out_fps, count, size, audio_map, speech_model, transcript, pose_maps, model_path, device, face,
          force) -> None:
    """Make the face in SOURCES speak SPEECH (a sound file or a video with sound; paper section 4.2)."""
    from .audio import SpeechOptions, drive_by_audio, source_audio_map
    from .audio_features import load_audio
    from .speech import SpeechModel, aligned_segments, default_speech_path
    from .video import check_video_output

    check_video_output(out, force=force, inputs=(speech, *sources))
    samples = load_audio(speech)  # a speech file without a readable sound track fails here, before any work
    if transcript is not None:
        if audio_map is not None:
            raise click.UsageError("--transcript is read by the pooled speech model, not by --audio-map")
        aligned_segments(samples, transcript)  # words it cannot read fail here, before any work
    model, info = _load(model_path, device)
    pose_map = _maps(info, "pose", pose_maps)
    pooled = None
    if audio_map is None and (speech_model or default_speech_path(info.path).is_file()):
        pooled = SpeechModel.load(speech_model or default_speech_path(info.path))
        if (why := pooled.decoded_otherwise()) is not None:
            click.echo(f"warning: {why}", err=True)
    source = _source(model, sources, count, size, face)
    if audio_map is None:
        speech_map, which = source_audio_map(model, source, lambda: _maps(info, "audio", None), face=face, speech_model=pooled,
                                             transcript=transcript)
    else:
        speech_map, which = _maps(info, "audio", audio_map), f"audio map: {audio_map}"
    click.echo(which)
    spoken = drive_by_audio(model, speech_map, pose_map, source, speech, out,
                            SpeechOptions(fps=out_fps, size=size, force=force, transcript=transcript))
    if not spoken.speech_heard:
        click.echo(f"no speech heard in {speech.name} (silence, noise or a tone): the mouth stays closed")
    click.echo(f"{spoken.frames} frames -> {out}")


@main.command("fit-speech")
@click.argument("videos", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True, help="The speech model (MODEL.speech.pt beside a model is its default).")
@click.option("--held-out", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A file of clip names (one per line, # comments) never fitted on: the people a benchmark scores.")
@force_option
def fit_speech_command(videos: tuple[Path, ...], out: Path, held_out: Path | None, force: bool) -> None:
    """Fit the pooled speech model (phones, loudness, spectrum -> mouth opening and width) on talking VIDEOS (files or folders) of many people."""
    from .audio import fit_speech
    from .prepare import find_videos

    names = set()
    if held_out:
        names = {line.split("#")[0].strip() for line in held_out.read_text().splitlines()} - {""}
    found = [p for v in videos for p in (find_videos(v) if v.is_dir() else [v])]
    chosen = [p for p in found if p.stem not in names]
    with _frame_progress("clips") as progress:
        task = progress.add_task("clips", total=len(chosen))
        model = fit_speech(chosen, out, force=force, on_clip=lambda video, why: progress.update(task, advance=1))
    click.echo(f"{len(model.meta['clips'])} talking clips of {len(chosen)} ({len(found) - len(chosen)} held out), lag "
               f"{model.lag:+.2f} s, smoothing {model.smoothing:.2f} s, cross-validated training correlation "
               f"{model.meta['cross_validated_score']:.2f} -> {out}")


@main.command("import-official")
@click.argument("release", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True, help="Where to write our checkpoint.")
@force_option
def import_official(release: Path, out: Path, force: bool) -> None:
    """Convert the released X2Face weights (x2face_model_forpython3.pth) into a checkpoint."""
    from .model import count_parameters, save_checkpoint
    from .model.official import import_official as convert
    from .outputs import check_output

    check_output(out, force=force)
    model = convert(release)
    save_checkpoint(out, model, meta={"imported_from": str(release.resolve()), "stage": "released"})
    click.echo(f"{count_parameters(model) / 1e6:.1f} M parameters, {model.config.resolution}x{model.config.resolution} -> {out}")


@main.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), help="The PNG (default: RUN/curves.png).")
@force_option
def curves(run: Path, out: Path | None, force: bool) -> None:
    """Plot a training run's log.jsonl (RUN: its folder or the file) as curves in a PNG."""
    from .model.monitor import plot_log, read_log
    from .outputs import atomic_output

    records = read_log(run)
    out = out or (run if run.is_dir() else run.parent) / "curves.png"
    with atomic_output(out, force=force) as partial:
        plot_log(records, partial)
    click.echo(f"{len(records)} records -> {out}")
