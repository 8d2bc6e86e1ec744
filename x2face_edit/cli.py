"""The ``x2face-edit`` command line: argument parsing and messages over the Python API.

Heavy modules are imported inside each command so that ``train`` runs where PyAV and
dlib are not installed (a GPU machine that only has the training dependencies).
"""

from __future__ import annotations

import functools
import signal
import threading
from pathlib import Path

import click

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
@click.option("--fps", "sample_fps", default=5.0, show_default=True, help="Frames per second analysed and kept.")
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
    from .model.train import TrainConfig
    from .model.train import train as run_training

    checkpoint = run_training(TrainConfig(tracks=str(tracks), out_dir=str(out_dir), **options))
    click.echo(f"checkpoint: {checkpoint}")


def _load(model_path: Path | None, device: str):
    """The model and what sidecars record of it."""
    from .model import default_model_path, load_model
    from .model.checkpoint import file_fingerprint

    path = Path(model_path or default_model_path())
    model = load_model(path, device=device)
    return model, {"path": str(path.resolve()), "fingerprint": file_fingerprint(path)}


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
@click.option("--fps", type=click.FloatRange(min=0, min_open=True),
              help="Frame rate of an image sequence VIDEO (NAME_%05d.png or a folder of frames; default 25).")
@model_option
@device_option
@face_option
@force_option
def extract(video: Path, out: Path, sources: int, frames: str | None, size: int, fit_seconds: float | None, seed: int,
            fps: float | None, model_path: Path | None, device: str, face: int, force: bool) -> None:
    """Write the embedded face of VIDEO, ready to paint on.

    'render' later uses the same model (recorded in FACE.json) unless told otherwise.
    """
    from . import extract as extracting
    from .outputs import check_output
    from .tracking import track_video

    outputs = extracting.output_paths(out)
    fitted = out.with_suffix(".model.pt")
    for path in (*outputs, fitted) if fit_seconds else outputs:
        check_output(path, force=force)
    try:
        chosen = [int(f) for f in frames.split(",")] if frames else None
    except ValueError:
        raise X2FaceError(f"--frames takes comma-separated frame numbers, got {frames!r}") from None
    if fit_seconds:
        from .fit import fit as run_fit
        from .model import default_model_path

        model_path = run_fit(video, fitted, model_path=model_path or default_model_path(), max_seconds=fit_seconds,
                             seed=seed, device=device, force=force)
    model, model_info = _load(model_path, device)
    with _frame_progress("tracking") as progress:
        task = progress.add_task("tracking", total=None)
        track = track_video(video, face=face, fps=fps, on_frame=lambda i: progress.update(task, completed=i + 1))
    embedded = extracting.extract(model, model_info, video, track, sources=sources, frames=chosen, size=size, face=face)
    written = extracting.save(embedded, out, force=force)
    click.echo(f"frames {', '.join(map(str, embedded.sidecar['frames']))} -> {', '.join(str(p) for p in written)}")


@main.command()
@click.option("--edited", type=click.Path(path_type=Path), required=True,
              help="The painted face: a painted copy of FACE.png, or the painted FACE.edit.png layer.")
@click.option("--drive", type=click.Path(path_type=Path), required=True, help="The video the paint follows.")
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True)
@click.option("--sidecar", type=click.Path(path_type=Path), help="FACE.json from 'extract' (found beside --edited by default).")
@click.option("--model", "model_path", type=click.Path(path_type=Path),
              help="Checkpoint to use (default: the one the face was extracted with, recorded in FACE.json).")
@click.option("--mode", type=click.Choice(["edit", "generate"]), default="edit", show_default=True,
              help="edit: warp only the paint onto the footage; generate: paste the whole X2Face-generated face.")
@click.option("--lock", type=click.Choice(["landmarks", "none"]), default="landmarks", show_default=True,
              help="landmarks: correct each frame's warp so the face's landmarks land where they lie on the embedded "
                   "face, smoothed over time; none: the pure X2Face warp of the paper.")
@click.option("--fit", "fit_seconds", type=float, default=None,
              help="First adapt the driving network to the --drive video for this many seconds (the embedded face, "
                   "and so the paint, stays as it is); the adapted model is saved as OUT.model.pt.")
@click.option("--seed", default=0, show_default=True, help="Seed for --fit.")
@device_option
@click.option("--face", type=int, default=None,
              help="Which face of --drive: 0 is the most prominent (default: the person extract's face is, found by "
                   "their looks; else the face number extract used).")
@click.option("--layer-only", is_flag=True,
              help="Write only the warped paint with its alpha, to lay over the footage in an editor "
                   "(OUT.mov: ProRes 4444; OUT.webm: VP9; OUT_%05d.png: a PNG sequence).")
@click.option("--codec", help="h264, h265, prores, vp9, png or tiff (default: what OUT's suffix implies: "
              "h264 for .mp4/.mov/.mkv, vp9 for .webm, png/tiff for image sequences).")
@click.option("--crf", type=click.IntRange(0, 63), help="Constant quality of h264/h265/vp9, lower is better "
              "(default 16, 20, 30).")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True),
              help="Frame rate of a --drive image sequence (NAME_%05d.png or a folder of frames; default 25).")
@click.option("--preview", type=click.IntRange(min=1),
              help="Instead of rendering, write a before/after contact sheet of this many frames spread over the "
                   "video to OUT (.png or .jpg), in seconds.")
@force_option
@inference_options
def render(edited: Path, drive: Path, out: Path, sidecar: Path | None, mode: str, lock: str, fit_seconds: float | None,
           seed: int, model_path: Path | None, device: str, face: int | None, layer_only: bool, codec: str | None,
           crf: int | None, fps: float | None, preview: int | None, force: bool, options) -> None:
    """Make the paint on an embedded face follow the face through a video (or image sequence)."""
    from .extract import read_sidecar
    from .outputs import check_output, check_video_output
    from .render import render as run_render

    if not edited.is_file():
        raise X2FaceError(f"no such file: {edited}")
    if sidecar is None:
        # face.edit.png and face.png (and face.guide.png, refused later as paint) belong to face.json.
        sidecar = edited.with_name(edited.name.removesuffix(".png").removesuffix(".edit").removesuffix(".guide") + ".json")
    face_sidecar = read_sidecar(sidecar)
    model_path = model_path or Path(face_sidecar["model"]["path"])
    if preview:
        from .preview import preview as run_preview

        model, model_info = _load(model_path, device)
        with _frame_progress("previewing") as progress:
            task = progress.add_task("previewing", total=preview)
            shown = run_preview(model, model_info, face_sidecar, edited, drive, out, count=preview, mode=mode, lock=lock,
                                face=face, fps=fps, force=force, on_frame=lambda done, total: progress.update(task, completed=done))
        click.echo(f"frames {', '.join(map(str, shown))}, before and after -> {out}")
        return
    check_video_output(out, force=force, inputs=(drive, edited, sidecar, Path(face_sidecar["video"])), codec=codec, crf=crf,
                       alpha=layer_only)
    if fit_seconds:
        from .extract import rebuild
        from .fit import fit as run_fit
        from .render import paint_layer, require_paint

        if mode == "edit":  # a layer without paint is refused before minutes of fitting, not after
            require_paint(paint_layer(edited, rebuild(_load(model_path, device)[0], face_sidecar)), edited)

        fitted = out.with_suffix(".model.pt")
        check_output(fitted, force=force)
        model_path = run_fit(drive, fitted, model_path=model_path, max_seconds=fit_seconds, seed=seed, device=device,
                             driving_only=True, force=force)
    model, model_info = _load(model_path, device)
    with _frame_progress("rendering") as progress:
        task = progress.add_task("rendering", total=None)
        report = run_render(model, model_info, face_sidecar, edited, drive, out, mode=mode, lock=lock, face=face, force=force,
                            options=options, on_frame=lambda done, total: progress.update(task, completed=done, total=total),
                            layer_only=layer_only, codec=codec, crf=crf, fps=fps)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    lost = sum(last - first + 1 for first, last in report.lost)
    ranges = ", ".join(f"{first}-{last}" if last > first else f"{first}" for first, last in report.lost)
    click.echo(f"{report.frames} frames -> {out}"
               + (f" (face not tracked in {lost} frames, left as they were: {ranges}; the paint fades out and in around them)" if lost else ""))


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
    from .fit import fit as run_fit
    from .model import default_model_path

    out = out or video.with_suffix(".fit.pt")
    written = run_fit(video, out, model_path=model_path or default_model_path(), max_seconds=max_seconds,
                      max_steps=max_steps, target_loss=target_loss, seed=seed, device=device, force=force)
    click.echo(f"adapted model: {written}  (use it with --model)")


@main.command("eval")
@click.argument("tracks", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--model", "model_paths", multiple=True, type=click.Path(path_type=Path),
              help="Checkpoint to score (repeat to compare, e.g. stage I and stage II); default: the shipped model.")
@click.option("--split", type=click.Choice(["train", "val", "test", "all"]), default="test", show_default=True,
              help="Which identities (the same split as training); all: every track (tracks of people kept for evaluation only).")
@click.option("--split-seed", default=0, show_default=True)
@click.option("--sources", default="1,3", show_default=True, help="Numbers of source frames to compare.")
@click.option("--max-batches", type=int, default=None, help="Score only this many batches of 16 pairs.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Also write the table here.")
@device_option
def evaluate(tracks: Path, model_paths: tuple[Path, ...], split: str, split_seed: int, sources: str,
             max_batches: int | None, json_path: Path | None, device: str) -> None:
    """The paper's Table 1 on held-out face tracks: L1 of generated vs driving frames; the
    round trip |E(D(p)) - p| in % of the eye distance; and Table 2 (head-pose error of
    f_v->p) for models with pose maps beside them."""
    import json

    from rich.console import Console
    from rich.table import Table

    from .model import default_model_path, load_model, modalities
    from .model.data import TrackPairs, load_tracks, tracks_in_split
    from .model.metrics import photometric_table, round_trip_error

    held_out = load_tracks(tracks) if split == "all" else tracks_in_split(load_tracks(tracks), split, split_seed)
    if not held_out:
        raise X2FaceError(f"no {split} identities in {tracks} (too few identities to hold any out)")
    paths = model_paths or (default_model_path(),)
    names = [p.name for p in paths]
    models = {(p.name if names.count(p.name) == 1 else str(p)): load_model(p, device=device) for p in paths}
    rows = photometric_table(models, held_out, source_counts=tuple(int(s) for s in sources.split(",")),
                             batches=max_batches, device=device)
    table = Table(title=f"L1 on {split} identities ({len({t.identity for t in held_out})} identities, {len(held_out)} tracks)")
    for column in ("method", "sources", "L1", "pairs"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["method"], str(row["sources"]), f"{row['l1']:.4f}", str(row["pairs"]))
    Console().print(table)
    trips = {name: round_trip_error(model, TrackPairs(held_out, size=model.config.resolution, landmarks=True), batches=max_batches,
                                    device=device) for name, model in models.items()}
    for name, trip in trips.items():
        click.echo(f"{name}: round trip {trip:.2f} % of the eye distance (mean |E(D(p)) - p| over the central half of the crop)")
    poses = {name: modalities.pose_table(model, path, held_out, device=device) for (name, model), path in zip(models.items(), paths)}
    for name, errors in poses.items():
        if errors:
            click.echo(f"{name}: f_v->p pose MAE " + ", ".join(f"{k} {v:.2f}" for k, v in errors.items()) + " degrees")
    if json_path:
        json_path.write_text(json.dumps({"split": split, "rows": rows, "round_trip_iod_pct": trips, "pose_mae_degrees": poses}, indent=1))


@main.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.argument("drive", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True)
@click.option("--sources", "count", default=3, show_default=True, help="Source frames averaged when the source is a video.")
@click.option("--size", default=256, show_default=True, help="Side of the generated face in pixels.")
@click.option("--side-by-side", is_flag=True, help="Show the driving face left of the result.")
@click.option("--paste-back", is_flag=True, help="Paste the result into the source frame instead of writing the face alone.")
@click.option("--lock", type=click.Choice(["landmarks", "none"]), default="landmarks", show_default=True,
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
    from .outputs import check_video_output
    from .reenact import reenact as run_reenact
    from .reenact import source_face

    if side_by_side and paste_back:
        raise X2FaceError("choose one of --side-by-side and --paste-back")
    check_video_output(out, force=force, inputs=(drive, *sources))
    model, _ = _load(model_path, device)
    source = source_face(model, list(sources), count=count, size=size, face=face)
    with _frame_progress("reenacting") as progress:
        task = progress.add_task("reenacting", total=None)
        report = run_reenact(model, source, drive, out, size=size, side_by_side=side_by_side, paste_back=paste_back, lock=lock,
                             face=face, force=force, options=options, on_frame=lambda done, total: progress.update(task, completed=done, total=total))
    lost = sum(last - first + 1 for first, last in report.lost)
    click.echo(f"{report.frames} frames -> {out}" + (f" (driving face lost in {lost} frames: last result held)" if lost else ""))


@main.command("fit-pose")
@click.argument("tracks", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), help="Default: MODEL.pose.pt beside the model.")
@click.option("--split-seed", default=0, show_default=True)
@model_option
@device_option
@force_option
def fit_pose(tracks: Path, out: Path | None, split_seed: int, model_path: Path | None, device: str, force: bool) -> None:
    """Fit the pose maps f_v->p and f_p->v (paper section 4.1) on TRACKS' training identities
    and report f_v->p's error on the test identities."""
    from .model import modalities
    from .outputs import check_output

    model, info = _load(model_path, device)
    out = out or modalities.maps_path(info["path"], "pose")
    check_output(out, force=force)
    errors = modalities.fit_and_save_pose_maps(model, info["fingerprint"], tracks, out, split_seed=split_seed, device=device)
    if errors:
        click.echo("f_v->p MAE on test identities: " + ", ".join(f"{k} {v:.2f}" for k, v in errors.items()) + " degrees")
    click.echo(f"pose maps: {out}")


@main.command("fit-audio")
@click.argument("tracks", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), help="Default: MODEL.audio.pt beside the model.")
@click.option("--split-seed", default=0, show_default=True)
@model_option
@device_option
@force_option
def fit_audio(tracks: Path, out: Path | None, split_seed: int, model_path: Path | None, device: str, force: bool) -> None:
    """Fit f_a->v (least squares from audio features to driving vectors) on TRACKS with sound."""
    from .model import modalities
    from .outputs import check_output

    model, info = _load(model_path, device)
    out = out or modalities.maps_path(info["path"], "audio")
    check_output(out, force=force)
    meta = modalities.fit_and_save_audio_map(model, info["fingerprint"], tracks, out, split_seed=split_seed, device=device)
    if "test_explained_variance" in meta:
        click.echo(f"f_a->v explains {meta['test_explained_variance']:.1%} of the driving vectors' variance on test identities")
    click.echo(f"audio map: {out}")


def _source(model, sources: tuple[Path, ...], count: int, size: int, face: int):
    from .reenact import source_face

    return source_face(model, list(sources), count=count, size=size, face=face)


@main.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True)
@click.option("--yaw", help="START:END in degrees (or one value); default: the source's own.")
@click.option("--pitch", help="START:END in degrees (or one value).")
@click.option("--roll", help="START:END in degrees (or one value).")
@click.option("--frames", default=50, show_default=True)
@click.option("--fps", default=25.0, show_default=True)
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), help="Per-frame angles (default: OUT with .csv).")
@click.option("--sources", "count", default=3, show_default=True)
@click.option("--size", default=256, show_default=True)
@click.option("--method", type=click.Choice(["landmarks", "paper"]), default="landmarks", show_default=True,
              help="landmarks: move the face's landmarks as a head turns and steer the warp to put its features there; "
                   "paper: equation (1), the pose map's vector change (turns heads by a fraction of the command).")
@click.option("--pose-maps", type=click.Path(path_type=Path), help="Default: MODEL.pose.pt beside the model.")
@model_option
@device_option
@face_option
@force_option
def pose(sources, out, yaw, pitch, roll, frames, fps, csv_path, count, size, method, pose_maps, model_path, device, face,
         force) -> None:
    """Turn the face in SOURCES to commanded head poses (paper section 4.1)."""
    from .model import modalities
    from .outputs import atomic_output, check_output, check_video_output
    from .pose import drive_by_pose, parse_angle_range

    ranges = {name: parse_angle_range(text, name) if text else None for name, text in (("yaw", yaw), ("pitch", pitch), ("roll", roll))}
    csv_path = csv_path or out.with_suffix(".csv")
    check_video_output(out, force=force, inputs=sources)
    check_output(csv_path, force=force)
    model, info = _load(model_path, device)
    maps, _ = modalities.load_map(pose_maps or modalities.maps_path(info["path"], "pose"), kind=modalities.POSE_FORMAT,
                                  model_fingerprint=info["fingerprint"])
    table = drive_by_pose(model, maps, _source(model, sources, count, size, face), ranges, out, frames=frames, fps=fps,
                          size=size, method=method, force=force)
    with atomic_output(csv_path, force=force) as partial:
        lines = ["frame,yaw,pitch,roll,read_yaw,read_pitch,read_roll"]
        lines += [",".join([str(i), *(f"{v:.2f}" for v in row)]) for i, row in enumerate(table)]
        partial.write_text("\n".join(lines) + "\n")
    click.echo(f"{frames} frames -> {out}, angles -> {csv_path}")


@main.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.argument("speech", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True)
@click.option("--fps", default=25.0, show_default=True)
@click.option("--sources", "count", default=3, show_default=True)
@click.option("--size", default=256, show_default=True)
@click.option("--audio-map", type=click.Path(path_type=Path),
              help="A map from 'fit-audio' (MODEL.audio.pt beside the model is the global one). Default: the speaker's "
                   "mouth learnt from SOURCES' own frames and sound when SOURCES is a talking video, else the global map.")
@click.option("--pose-maps", type=click.Path(path_type=Path), help="Default: MODEL.pose.pt beside the model.")
@model_option
@device_option
@face_option
@force_option
def audio(sources, speech, out, fps, count, size, audio_map, pose_maps, model_path, device, face, force) -> None:
    """Make the face in SOURCES speak SPEECH (a sound file or a video with sound; paper section 4.2)."""
    from .audio import drive_by_audio, load_audio, source_audio_map
    from .model import modalities
    from .outputs import check_video_output

    check_video_output(out, force=force, inputs=(speech, *sources))
    load_audio(speech)  # a speech file without a readable sound track fails here, before any work
    model, info = _load(model_path, device)

    def load(kind: str, path: Path | None, name: str):
        return modalities.load_map(path or modalities.maps_path(info["path"], name), kind=kind, model_fingerprint=info["fingerprint"])[0]

    pose = load(modalities.POSE_FORMAT, pose_maps, "pose")
    source = _source(model, sources, count, size, face)
    if audio_map is None:
        speech_map, which = source_audio_map(model, source, lambda: load(modalities.AUDIO_FORMAT, None, "audio"), face=face)
    else:
        speech_map, which = load(modalities.AUDIO_FORMAT, audio_map, "audio"), f"audio map: {audio_map}"
    click.echo(which)
    frames = drive_by_audio(model, speech_map, pose, source, speech, out, fps=fps, size=size, force=force)
    click.echo(f"{frames} frames -> {out}")


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
