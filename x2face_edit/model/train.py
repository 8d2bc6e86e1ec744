"""Training: stage I (the photometric L1 loss between generated and driving frames) and
stage II (plus the identity losses, see ``losses.py``).

One process trains on the CPU or one GPU; ``torchrun`` starts one process per GPU (and
per node) and the same code trains with DistributedDataParallel::

    torchrun --standalone --nproc_per_node=8 -m x2face_edit train TRACKS_DIR

Rank 0 validates, logs and writes the checkpoint; every rank follows the same learning
rate schedule.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from ..errors import X2FaceError
from .checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from .data import TrackPairs, load_tracks, track_landmarks, tracks_in_split
from .identity import load_identity_net
from .inference import resolve_device
from .landmarks import symmetric_template
from .losses import IdentityLosses, correspondence_losses, cycle_loss
from .metrics import model_l1, round_trip_error
from .monitor import PICTURE_PAIRS, TrainingLog
from .networks import ModelConfig, X2Face

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class TrainConfig:
    tracks: str
    out_dir: str = "runs/x2face"
    resolution: int = 256
    width: int = 64
    sources: int = 1
    far_pose: float = 0.0  # fraction of pairs whose source is far in head pose (needs prepare's pose labels)
    batch_size: int = 16  # per process
    max_steps: int = 100_000
    max_seconds: float | None = None  # also stop after this much training time
    target_loss: float | None = None  # also stop once a logged (windowed mean) training loss is this low
    stage: int = 1  # 2 adds the identity losses; start it from a stage-I checkpoint (init)
    identity_net: str | None = None  # stage II: face-api weights manifest (or its folder)
    identity_weight: float = 1.0  # content loss weight; the other identity loss gets a tenth
    landmark_weight: float = 1.0  # landmark correspondence through the template (needs prepare's landmarks)
    cycle_weight: float = 1.0  # round trip E(D(p)) = p on each first source's own grids
    mirror: float = 0.5  # fraction of pairs flipped left-right
    driving_only: bool = False  # keep the embedding network (and so embedded faces) as it is
    optimizer: str = "sgd"  # the paper's SGD with momentum, or "adam"
    lr: float | None = None  # default: 1e-3 for stage I, 1e-4 for stage II (the paper's)
    momentum: float = 0.9
    plateau_patience: int = 3  # validations without improvement before lr is divided by 10
    val_every: int = 500
    val_batches: int = 20
    checkpoint_every: int = 500
    log_every: int = 10
    init: str | None = None  # start from this checkpoint's weights
    resume: bool = False  # continue out_dir's checkpoint: weights, optimizer, schedule, step
    seed: int = 0
    split_seed: int = 0
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CUDA
    num_workers: int = 2
    progress: bool = True
    tensorboard: bool = False  # also TensorBoard scalars and, at each validation, a picture grid


@dataclass
class _Dist:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1 or dist.is_initialized()

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device_name: str) -> tuple[_Dist, torch.device]:
    if "RANK" not in os.environ:
        return _Dist(), resolve_device(device_name)
    ddp = _Dist(int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"]))
    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda")
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(ddp.local_rank)
        return ddp, torch.device("cuda", ddp.local_rank)
    return ddp, torch.device("cpu")


def _batches(loader: DataLoader, sampler: DistributedSampler | None, start_epoch: int) -> Iterator[tuple]:
    epoch = start_epoch
    while True:
        if sampler is not None:
            sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def _mean_over_ranks(value: float, ddp: _Dist, device: torch.device) -> float:
    if not ddp.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.item() / ddp.world_size


def _from_rank0(value: float, ddp: _Dist, device: torch.device) -> float:
    if not ddp.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return tensor.item()


def train(config: TrainConfig) -> Path:
    """Train (or resume) and return the path of the final checkpoint."""
    ddp, device = _setup_distributed(config.device)
    try:
        return _train(config, ddp, device)
    finally:
        if ddp.enabled:
            dist.destroy_process_group()


def _train(config: TrainConfig, ddp: _Dist, device: torch.device) -> Path:
    out_dir = Path(config.out_dir)
    checkpoint_path = out_dir / CHECKPOINT_NAME
    torch.manual_seed(config.seed + ddp.rank)

    resume_state = None
    if config.resume:
        payload = read_checkpoint(checkpoint_path)
        resume_state = payload.get("training_state")
        if resume_state is None:
            raise X2FaceError(f"{checkpoint_path} holds no training state to resume from")
        model, _ = load_checkpoint(checkpoint_path)
    elif config.init:
        model, _ = load_checkpoint(config.init)
    else:
        if checkpoint_path.exists():
            raise X2FaceError(f"{checkpoint_path} exists: pass --resume to continue it, or choose another --out")
        model = X2Face(ModelConfig(config.resolution, config.width))
    model = model.to(device, memory_format=torch.channels_last).train()

    if config.stage not in (1, 2):
        raise X2FaceError(f"stage must be 1 or 2, got {config.stage}")
    identity_losses = None
    if config.stage == 2:
        if not config.identity_net:
            raise X2FaceError("stage II needs the identity network: pass --identity-net (face-api's weights manifest)")
        identity_losses = IdentityLosses(load_identity_net(config.identity_net)).to(device)
    tracks = load_tracks(config.tracks)
    train_tracks = tracks_in_split(tracks, "train", config.split_seed)
    landmark_weight = config.landmark_weight
    if landmark_weight > 0 and model.config.landmark_template is None:
        model.config = replace(model.config, landmark_template=_template_of(train_tracks))
    model_config = model.config
    train_set = TrackPairs(train_tracks, num_sources=config.sources, size=model_config.resolution,
                           other_identity=config.stage == 2, far_pose=config.far_pose, landmarks=True, mirror=config.mirror)
    if landmark_weight > 0 and train_set.landmarked_fraction == 0:
        _warn(ddp, f"{config.tracks} has no landmarks (prepared before they were kept): training without the "
                   "landmark losses; re-run 'x2face-edit prepare' on the same folder to add them")
        landmark_weight = 0.0
    use_warps = landmark_weight > 0 or config.cycle_weight > 0
    template = model.template()
    val_tracks = tracks_in_split(tracks, "val", config.split_seed)
    val_set = TrackPairs(val_tracks, num_sources=config.sources, size=model_config.resolution, landmarks=True) if val_tracks else None
    # The same validation pairs are pictured at every validation (TensorBoard).
    picture_pairs = next(iter(DataLoader(val_set, batch_size=PICTURE_PAIRS)))[:2] if val_set is not None and config.tensorboard else None

    sampler = DistributedSampler(train_set, shuffle=True, seed=config.seed) if ddp.enabled else None
    generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(
        train_set,
        batch_size=config.batch_size,
        sampler=sampler or RandomSampler(train_set, generator=generator),
        num_workers=config.num_workers,
        drop_last=len(train_set) >= config.batch_size * ddp.world_size,
        pin_memory=device.type == "cuda",
        persistent_workers=config.num_workers > 0,
        generator=generator,
    )

    if config.driving_only:
        model.embedding_encoder.requires_grad_(False)
        model.embedding_decoder.requires_grad_(False)
    lr = config.lr if config.lr is not None else (1e-3 if config.stage == 1 else 1e-4)
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=config.momentum)
    elif config.optimizer == "adam":
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    else:
        raise X2FaceError(f"unknown optimizer {config.optimizer!r}: choose sgd or adam")
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=config.plateau_patience)
    step, elapsed, frames_seen = 0, 0.0, 0
    if resume_state is not None:
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        step, elapsed, frames_seen = resume_state["step"], resume_state["elapsed_s"], resume_state["frames_seen"]

    trained = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) if ddp.enabled else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if config.amp and device.type == "cuda" else nullcontext()

    def save(final: bool) -> None:
        if not ddp.main:
            return
        save_checkpoint(
            checkpoint_path,
            model,
            meta={
                "stage": config.stage,
                "step": step,
                "frames_seen": frames_seen,
                "elapsed_s": round(elapsed, 1),
                "world_size": ddp.world_size,
                "device": device.type,
                "final": final,
                "train_config": asdict(config),
                "train_tracks": len(train_set.tracks),
                "val_l1": last_val,
                "train_loss": last_loss,
            },
            training_state={
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "step": step,
                "elapsed_s": elapsed,
                "frames_seen": frames_seen,
            },
        )

    if ddp.main:
        out_dir.mkdir(parents=True, exist_ok=True)
    log = TrainingLog(out_dir, tensorboard=config.tensorboard) if ddp.main else None
    progress = _progress(config.progress and ddp.main)
    task = progress.add_task("training", total=config.max_steps, completed=step)
    batches = _batches(loader, sampler, start_epoch=step // max(len(loader), 1))
    last_val: float | None = None
    last_loss: float | None = None
    window: dict[str, float] = {}
    window_steps, window_frames, window_start = 0, 0, time.perf_counter()
    deadline = None if config.max_seconds is None else time.perf_counter() + config.max_seconds

    def out_of_time() -> bool:
        return deadline is not None and _from_rank0(float(time.perf_counter() > deadline), ddp, device) > 0

    with progress:
        while step < config.max_steps:
            sources, driving, *rest = (t.to(device, non_blocking=True) for t in next(batches))
            source_landmarks, driving_landmarks = rest[-2:]
            if config.driving_only:  # BatchNorm statistics are weights too: keep them
                model.embedding_encoder.eval()
                model.embedding_decoder.eval()
            with autocast:
                batch = driving.shape[0]
                # Stage II drives the same sources by another identity too, in the same forward pass.
                pair_sources = sources if identity_losses is None else torch.cat([sources, sources])
                pair_driving = driving if identity_losses is None else torch.cat([driving, rest[0]])
                outputs = trained(pair_sources, pair_driving.contiguous(memory_format=torch.channels_last), grids=use_warps)
                generated_all = outputs[0] if use_warps else outputs
                generated = generated_all[:batch]
                terms = {"photometric": F.l1_loss(generated.float(), driving)}
                if identity_losses is not None:
                    terms["content"], terms["identity"] = identity_losses(generated, driving, generated_all[batch:], sources[:, 0])
                if use_warps:
                    _, embedding_grids, driving_grid, source_driving_grid = (o[:batch] for o in outputs)
                if landmark_weight > 0:
                    terms["landmarks_driving"], terms["landmarks_embedding"] = correspondence_losses(
                        embedding_grids, driving_grid, source_landmarks, driving_landmarks, template.to(device))
                if config.cycle_weight > 0:
                    terms["cycle"] = cycle_loss(embedding_grids[:, 0], source_driving_grid)
                loss = (terms["photometric"]
                        + config.identity_weight * (terms.get("content", 0) + terms.get("identity", 0) / 10)
                        + landmark_weight * (terms.get("landmarks_driving", 0) + terms.get("landmarks_embedding", 0))
                        + config.cycle_weight * terms.get("cycle", 0))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            for name, value in {"loss": loss, **terms}.items():
                window[name] = window.get(name, 0.0) + value.item()
            window_steps += 1
            window_frames += driving.shape[0] * ddp.world_size
            last = step == config.max_steps or out_of_time()

            if step % config.log_every == 0 or last:
                now = time.perf_counter()
                elapsed += now - window_start
                frames_seen += window_frames
                record = {"step": step}
                record.update({name: _mean_over_ranks(total / window_steps, ddp, device) for name, total in window.items()})
                record.update(lr=optimizer.param_groups[0]["lr"], frames_per_s=window_frames / (now - window_start),
                              elapsed_s=round(elapsed, 2))
                progress.update(task, completed=step, description=f"loss {record['loss']:.4f}  {record['frames_per_s']:.1f} frames/s")
                last_loss = record["loss"]
                last = last or (config.target_loss is not None and last_loss <= config.target_loss)
                window, window_steps, window_frames, window_start = {}, 0, 0, now
                if step % config.val_every == 0 or last:
                    val = math.nan
                    if val_set is not None and ddp.main:
                        val = model_l1(model, val_set, batches=config.val_batches, batch_size=config.batch_size, device=device)
                        record["val_round_trip_iod_pct"] = round_trip_error(
                            model, val_set, batches=config.val_batches, batch_size=config.batch_size, device=device)
                        if picture_pairs is not None:
                            log.pictures(step, model, *(t.to(device) for t in picture_pairs))
                    val = _from_rank0(val, ddp, device)
                    last_val = None if math.isnan(val) else val
                    record["val_l1"] = last_val
                    # Without held-out identities the plateau is judged on the training loss.
                    scheduler.step(record["loss"] if last_val is None else last_val)
                    window_start = time.perf_counter()
                if log is not None:
                    log.write(record)
            if step % config.checkpoint_every == 0 or last:
                save(final=last)
            if last:
                break
    if log is not None:
        log.close()
    return checkpoint_path


def _template_of(tracks: list) -> tuple[tuple[float, float], ...] | None:
    """The symmetric mean of the tracks' crop landmarks, or None where they have none."""
    points = [track_landmarks(track) for track in tracks]
    if not any((~np.isnan(p)).any() for p in points):
        return None
    return tuple(map(tuple, symmetric_template(np.concatenate(points)).tolist()))


def _warn(ddp: _Dist, message: str) -> None:
    if ddp.main:
        print(f"warning: {message}", file=sys.stderr)


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        disable=not enabled,
    )
