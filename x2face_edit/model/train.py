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
from .losses import IdentityLosses, anchor_loss, correspondence_losses, cycle_loss
from .metrics import model_l1, round_trip_error
from .monitor import PICTURE_PAIRS, TrainingLog
from .networks import ModelConfig, X2Face
from .occluders import occluded

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
    occlude: float = 0.0  # fraction of driving frames shown with a random occluder (the loss still sees them clean)
    driving_only: bool = False  # keep the embedding network (and so embedded faces) as it is
    anchor: str | None = None  # a checkpoint whose grids of the clean frames the driving grids are held to
    anchor_weight: float = 10.0
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


def launched_by_torchrun() -> bool:
    """Whether this process is a worker that ``torchrun`` started (it sets ``RANK``)."""
    return "RANK" in os.environ


def _setup_distributed(device_name: str) -> tuple[_Dist, torch.device]:
    if not launched_by_torchrun():
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
    """Train (or resume) and return the path of the final checkpoint.

    Started by ``torchrun``, the process group is destroyed before it returns, but
    DistributedDataParallel keeps gloo's threads alive to the interpreter's exit, whose
    teardown of them can abort a finished worker: the ``train`` command leaves with
    ``os._exit`` once this returns, and a program calling this under ``torchrun`` may too."""
    ddp, device = _setup_distributed(config.device)
    try:
        return _train(config, ddp, device)
    finally:
        if ddp.enabled:
            dist.destroy_process_group()


@dataclass
class _Objective:
    """What a step's loss weighs: the photometric L1, the identity losses (stage II), the
    landmark correspondence through the ``template`` and the round trip."""

    identity: IdentityLosses | None
    identity_weight: float
    landmark_weight: float
    cycle_weight: float
    template: torch.Tensor | None
    occluders: torch.Generator | None = None  # draws train --occlude's occluders, seeded per rank
    anchor: X2Face | None = None  # train --anchor's model, frozen

    @property
    def uses_warps(self) -> bool:
        return self.landmark_weight > 0 or self.cycle_weight > 0 or self.anchor is not None


@dataclass
class _Data:
    train_set: TrackPairs
    val_set: TrackPairs | None
    loader: DataLoader
    sampler: DistributedSampler | None
    picture_pairs: list[torch.Tensor] | None  # the same validation pairs, pictured at every validation (TensorBoard)


@dataclass
class _Run:
    """One training run's model, optimiser and counters, and what it writes."""

    config: TrainConfig
    ddp: _Dist
    device: torch.device
    model: X2Face
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    checkpoint_path: Path
    train_tracks: int
    step: int = 0
    elapsed: float = 0.0
    frames_seen: int = 0
    last_val: float | None = None
    last_loss: float | None = None

    def resume(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.elapsed, self.frames_seen = state["step"], state["elapsed_s"], state["frames_seen"]

    def save(self, final: bool) -> None:
        if not self.ddp.main:
            return
        meta = {
            "stage": self.config.stage, "step": self.step, "frames_seen": self.frames_seen, "elapsed_s": round(self.elapsed, 1),
            "world_size": self.ddp.world_size, "device": self.device.type, "final": final, "train_config": asdict(self.config),
            "train_tracks": self.train_tracks, "val_l1": self.last_val, "train_loss": self.last_loss,
        }
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(), "step": self.step,
                 "elapsed_s": self.elapsed, "frames_seen": self.frames_seen}
        save_checkpoint(self.checkpoint_path, self.model, meta=meta, training_state=state)

    def validate(self, record: dict, data: _Data, log: TrainingLog | None) -> None:
        """Score the validation pairs (rank 0) into ``record`` and step the plateau schedule."""
        config, val = self.config, math.nan
        if data.val_set is not None and self.ddp.main:
            val = model_l1(self.model, data.val_set, batches=config.val_batches, batch_size=config.batch_size, device=self.device)
            record["val_round_trip_iod_pct"] = round_trip_error(
                self.model, data.val_set, batches=config.val_batches, batch_size=config.batch_size, device=self.device)
            if data.picture_pairs is not None:
                log.pictures(self.step, self.model, *(t.to(self.device) for t in data.picture_pairs))
        val = _from_rank0(val, self.ddp, self.device)
        self.last_val = None if math.isnan(val) else val
        record["val_l1"] = self.last_val
        # Without held-out identities the plateau is judged on the training loss.
        self.scheduler.step(record["loss"] if self.last_val is None else self.last_val)


def _train(config: TrainConfig, ddp: _Dist, device: torch.device) -> Path:
    checkpoint_path = Path(config.out_dir) / CHECKPOINT_NAME
    torch.manual_seed(config.seed + ddp.rank)
    model, resume_state = _starting_model(config, checkpoint_path)
    model = model.to(device, memory_format=torch.channels_last).train()
    identity = _identity_losses(config, device)
    data, objective = _data_and_objective(config, model, identity, ddp, device)
    optimizer, scheduler = _optimizer(config, model)
    run = _Run(config, ddp, device, model, optimizer, scheduler, checkpoint_path, len(data.train_set.tracks))
    if resume_state is not None:
        run.resume(resume_state)
    trained = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) if ddp.enabled else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if config.amp and device.type == "cuda" else nullcontext()
    if ddp.main:
        checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
    log = TrainingLog(checkpoint_path.parent, tensorboard=config.tensorboard) if ddp.main else None
    progress = _progress(config.progress and ddp.main)
    task = progress.add_task("training", total=config.max_steps, completed=run.step)
    batches = _batches(data.loader, data.sampler, start_epoch=run.step // max(len(data.loader), 1))
    window: dict[str, float] = {}
    window_steps, window_frames, window_start = 0, 0, time.perf_counter()
    deadline = None if config.max_seconds is None else time.perf_counter() + config.max_seconds

    with progress:
        while run.step < config.max_steps:
            with autocast:
                terms, frames = _losses(trained, model, next(batches), objective, config, device)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            optimizer.step()
            run.step += 1
            for name, value in terms.items():
                window[name] = window.get(name, 0.0) + value.item()
            window_steps += 1
            window_frames += frames * ddp.world_size
            last = run.step == config.max_steps or (deadline is not None and _from_rank0(float(time.perf_counter() > deadline), ddp, device) > 0)
            if run.step % config.log_every == 0 or last:
                now = time.perf_counter()
                run.elapsed += now - window_start
                run.frames_seen += window_frames
                record = {"step": run.step, **{name: _mean_over_ranks(total / window_steps, ddp, device) for name, total in window.items()},
                          "lr": optimizer.param_groups[0]["lr"], "frames_per_s": window_frames / (now - window_start),
                          "elapsed_s": round(run.elapsed, 2)}
                progress.update(task, completed=run.step, description=f"loss {record['loss']:.4f}  {record['frames_per_s']:.1f} frames/s")
                run.last_loss = record["loss"]
                last = last or (config.target_loss is not None and run.last_loss <= config.target_loss)
                window, window_steps, window_frames, window_start = {}, 0, 0, now
                if run.step % config.val_every == 0 or last:
                    run.validate(record, data, log)
                    window_start = time.perf_counter()
                if log is not None:
                    log.write(record)
            if run.step % config.checkpoint_every == 0 or last:
                run.save(final=last)
            if last:
                break
    if log is not None:
        log.close()
    return checkpoint_path


def _starting_model(config: TrainConfig, checkpoint_path: Path) -> tuple[X2Face, dict | None]:
    """The model to train and, with ``resume``, the training state to continue."""
    if config.resume:
        resume_state = read_checkpoint(checkpoint_path).get("training_state")
        if resume_state is None:
            raise X2FaceError(f"{checkpoint_path} holds no training state to resume from")
        return load_checkpoint(checkpoint_path)[0], resume_state
    if config.init:
        return load_checkpoint(config.init)[0], None
    if checkpoint_path.exists():
        raise X2FaceError(f"{checkpoint_path} exists: pass --resume to continue it, or choose another --out")
    return X2Face(ModelConfig(config.resolution, config.width)), None


def _anchor(config: TrainConfig, model: X2Face, device: torch.device) -> X2Face | None:
    if config.anchor is None:
        return None
    anchor = load_checkpoint(config.anchor, device=device)[0].eval().requires_grad_(False)
    if anchor.config.resolution != model.config.resolution:
        raise X2FaceError(f"--anchor {config.anchor} is a {anchor.config.resolution}-pixel model; "
                          f"this run trains a {model.config.resolution}-pixel one")
    return anchor


def _identity_losses(config: TrainConfig, device: torch.device) -> IdentityLosses | None:
    if config.stage not in (1, 2):
        raise X2FaceError(f"stage must be 1 or 2, got {config.stage}")
    if config.stage == 1:
        return None
    if not config.identity_net:
        raise X2FaceError("stage II needs the identity network: pass --identity-net (face-api's weights manifest)")
    return IdentityLosses(load_identity_net(config.identity_net)).to(device)


def _data_and_objective(config: TrainConfig, model: X2Face, identity: IdentityLosses | None, ddp: _Dist,
                        device: torch.device) -> tuple[_Data, _Objective]:
    """The training and validation pairs and their loader; the model gains a landmark
    template where the landmark losses need one and it has none."""
    tracks = load_tracks(config.tracks)
    train_tracks = tracks_in_split(tracks, "train", config.split_seed)
    landmark_weight = config.landmark_weight
    if landmark_weight > 0 and model.config.landmark_template is None:
        model.config = replace(model.config, landmark_template=_template_of(train_tracks))
    resolution = model.config.resolution
    train_set = TrackPairs(train_tracks, num_sources=config.sources, size=resolution, other_identity=config.stage == 2,
                           far_pose=config.far_pose, landmarks=True, mirror=config.mirror)
    if landmark_weight > 0 and train_set.landmarked_fraction == 0:
        _warn(ddp, f"{config.tracks} has no landmarks (prepared before they were kept): training without the "
                   "landmark losses; re-run 'x2face-edit prepare' on the same folder to add them")
        landmark_weight = 0.0
    objective = _Objective(identity, config.identity_weight, landmark_weight, config.cycle_weight, model.template(),
                           torch.Generator().manual_seed(config.seed + ddp.rank), _anchor(config, model, device))
    val_tracks = tracks_in_split(tracks, "val", config.split_seed)
    val_set = TrackPairs(val_tracks, num_sources=config.sources, size=resolution, landmarks=True) if val_tracks else None
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
    return _Data(train_set, val_set, loader, sampler, picture_pairs), objective


def _optimizer(config: TrainConfig, model: X2Face) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.ReduceLROnPlateau]:
    if config.driving_only:
        model.embedding_encoder.requires_grad_(False)
        model.embedding_decoder.requires_grad_(False)
    lr = config.lr if config.lr is not None else (1e-3 if config.stage == 1 else 1e-4)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(trainable, lr=lr, momentum=config.momentum)
    elif config.optimizer == "adam":
        optimizer = torch.optim.Adam(trainable, lr=lr)
    else:
        raise X2FaceError(f"unknown optimizer {config.optimizer!r}: choose sgd or adam")
    return optimizer, torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=config.plateau_patience)


def _losses(trained: torch.nn.Module, model: X2Face, batch: tuple, objective: _Objective, config: TrainConfig,
            device: torch.device) -> tuple[dict[str, torch.Tensor], int]:
    """One batch's loss (``"loss"``) and its terms, and the batch's number of pairs."""
    sources, driving, *rest = (t.to(device, non_blocking=True) for t in batch)
    source_landmarks, driving_landmarks = rest[-2:]
    if config.driving_only:  # BatchNorm statistics are weights too: keep them
        model.embedding_encoder.eval()
        model.embedding_decoder.eval()
    if objective.anchor is not None:
        # The anchor is held in eval mode, so the trained network is too: what it is held
        # to in training is then what it gives in use (batch statistics drift the grids).
        model.driving_encoder.eval()
        model.driving_decoder.eval()
    count = driving.shape[0]
    # The network reads the occluded frame and is judged against the clean one, landmarks
    # included: it learns to drive the face it cannot see from the face it can.
    shown = occluded(driving, config.occlude, objective.occluders) if config.occlude > 0 else driving
    # Stage II drives the same sources by another identity too, in the same forward pass.
    pair_sources = sources if objective.identity is None else torch.cat([sources, sources])
    pair_driving = shown if objective.identity is None else torch.cat([shown, rest[0]])
    outputs = trained(pair_sources, pair_driving.contiguous(memory_format=torch.channels_last), grids=objective.uses_warps)
    generated_all = outputs[0] if objective.uses_warps else outputs
    generated = generated_all[:count]
    terms = {"photometric": F.l1_loss(generated.float(), driving)}
    if objective.identity is not None:
        terms["content"], terms["identity"] = objective.identity(generated, driving, generated_all[count:], sources[:, 0])
    if objective.uses_warps:
        _, embedding_grids, driving_grid, source_driving_grid = (o[:count] for o in outputs)
    if objective.landmark_weight > 0:
        terms["landmarks_driving"], terms["landmarks_embedding"] = correspondence_losses(
            embedding_grids, driving_grid, source_landmarks, driving_landmarks, objective.template.to(device))
    if objective.cycle_weight > 0:
        terms["cycle"] = cycle_loss(embedding_grids[:, 0], source_driving_grid)
    if objective.anchor is not None:
        # What the anchor reads on the clean frame is what the trained network must read on
        # the frame it is shown: clean frames keep their grids, occluded ones gain them.
        with torch.no_grad():
            anchor_grid = objective.anchor.decode(objective.anchor.driving_vector(driving))
        terms["anchor"] = anchor_loss(driving_grid, anchor_grid)
    loss = (terms["photometric"]
            + objective.identity_weight * (terms.get("content", 0) + terms.get("identity", 0) / 10)
            + objective.landmark_weight * (terms.get("landmarks_driving", 0) + terms.get("landmarks_embedding", 0))
            + objective.cycle_weight * terms.get("cycle", 0)
            + config.anchor_weight * terms.get("anchor", 0))
    return {"loss": loss, **terms}, count


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
