"""One training loop for all three architectures (paper mode and causal mode).

`train()` reads aligned clips, holds out the tail of each by time (paper Sec. IV), trains with AdamW, a warm-up +
cosine LR schedule and gradient clipping, validates every `val_every` steps, and writes a run folder:
`config.json`, `model.pt` (state dict + configs, loadable without CLI flags), `metrics.jsonl` and
`checkpoint.pt` (weights, optimizer, step and RNG states: `resume` continues a stopped run exactly).

For learning from few clips: `init` starts from another run's weights (pretrain, then fine-tune), `freeze` keeps
the video or the audio side of the model as it was (weights and normalization statistics), `augment` transforms
each example's frames and audio alike (foleylib.data.augment), `onset_weight` weighs the positions where a sound
starts more in the loss and `video_dropout` trains a share of the examples on black frames (for guidance at
generation).
"""
from __future__ import annotations

import itertools
import json
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler

from foleylib.core.device import pick_device
from foleylib.core.errors import InputError
from foleylib.core.fsutil import write_json
from foleylib.core.progress import progress_bar
from foleylib.data.augment import augment_step, drop_video, parse_augment
from foleylib.data.batches import evenly_spaced, position_weights, score_mask, split_datasets
from foleylib.data.dataset import AlignedClip, check_compatible
from foleylib.models.config import ModelConfig
from foleylib.models.losses import compute_loss
from foleylib.models.registry import build_model
from foleylib.models.video import FrameEmbedding, VideoEncoder, VideoToAudio
from foleylib.training import distributed
from foleylib.training.checkpoint import _resumed_metrics, init_from, restore_checkpoint, save_checkpoint, save_model
from foleylib.training.config import TrainConfig
from foleylib.training.sync import frame_embeddings, sync_loss


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, after the last finished step was checkpointed."""

    def __init__(self, step: int, checkpoint: Path):
        super().__init__(f"interrupted after step {step}")
        self.step, self.checkpoint = step, checkpoint


def lr_at(step: int, tc: TrainConfig) -> float:
    if step < tc.warmup_steps:
        return tc.lr * (step + 1) / tc.warmup_steps
    progress = (step - tc.warmup_steps) / max(1, tc.steps - tc.warmup_steps)
    return tc.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def batch_loss(model: torch.nn.Module, batch: dict, loss: str, zero_video: bool = False,
               weights: torch.Tensor | None = None) -> torch.Tensor:
    """The model's loss on a collated batch (causal windows are scored after their warm-up positions), each
    position weighted by `weights` when given."""
    if zero_video:
        batch = {**batch, "video": torch.zeros_like(batch["video"])}
    output = model(batch)
    mask = score_mask(batch, batch["target"].shape[1], output.device)
    if weights is not None:
        mask = weights if mask is None else mask * weights
    return compute_loss(loss, output, batch["target"], mask=mask)


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """The model in eval mode inside the block; every module gets its own mode back after it."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.train(training)


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: DataLoader, loss: str, device: torch.device,
             zero_video: bool = False) -> float:
    """Mean loss over a loader, weighted by batch size (in eval mode; the model's modes are left as they were)."""
    total, count = 0.0, 0
    with eval_mode(model):
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            n = len(batch["target"])
            total += float(batch_loss(model, batch, loss, zero_video)) * n
            count += n
    return total / max(count, 1)


VIDEO_PARTS = (FrameEmbedding, VideoEncoder, VideoToAudio)  # the video context embedding, in every architecture


def video_parameter_names(net: torch.nn.Module) -> set[str]:
    """Parameters of the video context embedding: those of every VideoEncoder, VideoToAudio and FrameEmbedding
    in the model. The rest (audio stream and embedding, WaveNet layers, transformer, heads, deep fusion's
    audio-to-video projections and fusion weights) is the audio side."""
    return {f"{name}.{p}" if name else p for name, module in net.named_modules() if isinstance(module, VIDEO_PARTS)
            for p, _ in module.named_parameters()}


FREEZE_PARTS = ("", "video", "audio")


def freeze(net: torch.nn.Module, part: str) -> None:
    """Stop training the "video" or the "audio" side of a model ("" freezes nothing); see `train_mode`."""
    if part not in FREEZE_PARTS:
        raise ValueError(f"freeze must be video or audio, not {part!r}")
    video = video_parameter_names(net)
    for name, param in net.named_parameters():
        if part and (name in video) == (part == "video"):
            param.requires_grad_(False)


def train_mode(net: torch.nn.Module) -> None:
    """Train mode, except the BatchNorm layers whose weights are all frozen: they keep their running statistics
    (and use them), so a frozen part is unchanged by training."""
    net.train()
    for module in net.modules():
        params = list(module.parameters())
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm3d)) and params and \
                not any(p.requires_grad for p in params):
            module.eval()


class ResumedSampler(Sampler):
    """The indices of `sampler` after the first `skip`: a resumed run reads exactly the batches it had left."""

    def __init__(self, sampler: Sampler, skip: int):
        self.sampler, self.skip = sampler, skip

    def __iter__(self):
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.skip)


@contextmanager
def stop_on_sigint() -> Iterator[Callable[[], bool]]:
    """Ctrl-C (SIGINT) asks the training loop to stop after the step it is in; a second one interrupts at once.
    Yields the question "was a stop requested?". Off the main thread signals cannot be caught: never asked."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    requested: list[bool] = []
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame) -> None:
        if requested:
            raise KeyboardInterrupt
        requested.append(True)

    signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(requested)
    finally:
        signal.signal(signal.SIGINT, previous)


def _checked_options(clips: list[AlignedClip], val_clips: list[AlignedClip], tc: TrainConfig,
                     out: Path) -> tuple[str, ...]:
    """Refuse settings that cannot train (InputError naming the run folder or clip); returns the augmentations."""
    trained = {c.path.resolve() for c in clips}
    for clip in val_clips:
        if clip.path.resolve() in trained:
            raise InputError("a validation clip is also a training clip (held-out clips must be unseen)", clip.path)
    if tc.freeze not in FREEZE_PARTS:
        raise InputError(f"freeze must be video or audio, not {tc.freeze!r}", out)
    if tc.precision not in ("fp32", "bf16"):
        raise InputError(f"precision must be fp32 or bf16, not {tc.precision}", out)
    try:
        return parse_augment(tc.augment)
    except ValueError as err:
        raise InputError(str(err), out) from None


def _open_run(out: Path, config: dict, resume: bool, net: torch.nn.Module, opt: torch.optim.Optimizer,
              main: bool) -> tuple[int, float]:
    """A new run folder (config.json, empty metrics.jsonl), or, resuming, the state its checkpoint.pt holds.
    Returns (steps done, wall seconds so far)."""
    checkpoint, metrics = out / "checkpoint.pt", out / "metrics.jsonl"
    if resume and checkpoint.exists():
        done, wall = restore_checkpoint(checkpoint, config, net, opt)
        if main:
            _resumed_metrics(metrics, done)
        return done, wall
    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", config)
        metrics.write_text("")
    return 0, 0.0


def _loaders(train_ds: Dataset, val_ds: Dataset, tc: TrainConfig, ranks: distributed.Ranks, device: torch.device,
             done: int) -> tuple[DataLoader, DataLoader]:
    """Training batches drawn with replacement in a seeded order (a resumed run skips the ones it has seen, each
    process reads its slice of every batch) and a fixed, evenly spaced validation set."""
    generator = torch.Generator().manual_seed(tc.seed)
    sampler = RandomSampler(train_ds, replacement=True, num_samples=tc.steps * tc.batch_size, generator=generator)
    per_rank = tc.batch_size // ranks.world
    order = distributed.RankSlices(ResumedSampler(sampler, done * tc.batch_size), per_rank, ranks)
    loader = DataLoader(train_ds, batch_size=per_rank, sampler=order, drop_last=True, num_workers=tc.workers,
                        pin_memory=device.type == "cuda", persistent_workers=tc.workers > 0)
    return loader, DataLoader(evenly_spaced(val_ds, tc.val_examples), batch_size=tc.batch_size)


def train(clips: list[AlignedClip], cfg: ModelConfig, tc: TrainConfig, out: str | Path,
          progress: bool = True, log: Callable[[dict], None] | None = None, resume: bool = False,
          val_clips: list[AlignedClip] | None = None, init: str | Path | None = None) -> dict:
    """Train a model on the clips and write the run folder; returns the final metrics. Validation is on each
    clip's tail, or on `val_clips` (unseen videos) when given. `init`: start from that run's weights.

    Every `checkpoint_every` steps, at the end and on Ctrl-C, OUT/checkpoint.pt holds everything needed to go on;
    with `resume` a run continues from it (when there is one) exactly as if it had never stopped.
    """
    out, val_clips = Path(out), val_clips or []
    augmentations = _checked_options(clips, val_clips, tc, out)
    if tc.sync_weight and not cfg.sync_head:
        raise InputError("the sync loss trains the model's sync head: build it with sync_head=True", out)
    spec = cfg.spec_for(check_compatible(clips + val_clips))
    ranks, device = distributed.start(pick_device(tc.device))
    if tc.batch_size % ranks.world:
        raise InputError(f"batch size {tc.batch_size} does not split over {ranks.world} processes", out)

    # the model: seeded init or another run's weights, frozen parts, on the device (one DDP replica per process)
    torch.manual_seed(tc.seed)
    net = build_model(cfg)
    initial = init_from(net, init, spec) if init else None
    freeze(net, tc.freeze)
    net = net.to(device)
    model = distributed.wrap(net, ranks, device)
    model = torch.compile(model) if tc.compile else model
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=tc.lr,
                            weight_decay=tc.weight_decay)

    # the run folder: everything needed to reproduce (and resume) the run
    config = {"model": cfg.to_dict(), "train": asdict(tc), "spec": spec.to_dict(),
              "data": [str(c.path) for c in clips], "val_data": [str(c.path) for c in val_clips],
              "init": initial, "device": str(device), "processes": ranks.world,
              "parameters": sum(p.numel() for p in net.parameters())}
    checkpoint, metrics_path = out / "checkpoint.pt", out / "metrics.jsonl"
    done, wall_before = _open_run(out, config, resume, net, opt, ranks.main)

    # the data: each clip's held-out span (its tail by default) validates, the rest trains (or val_clips validate)
    split = split_datasets(clips, spec, net, tc.window, tc.val_fraction, val_clips, tc.val_end)
    loader, val_loader = _loaders(*split, tc, ranks, device, done)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=tc.precision == "bf16")
    t0 = time.perf_counter() - wall_before
    record: dict = {}
    bar = progress_bar(tc.steps, f"train {cfg.arch}/{cfg.mode}/{cfg.loss}", enabled=progress and ranks.main,
                       initial=done, unit="step")
    train_mode(net)
    with stop_on_sigint() as stop_requested:
        for step, batch in enumerate(loader, start=done + 1):
            # one optimizer step: learning rate of the schedule, augmented batch, (onset-weighted) loss, clipping
            for group in opt.param_groups:
                group["lr"] = lr_at(step - 1, tc)
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            batch = augment_step(batch, augmentations, tc.seed, step, tc.batch_size, ranks.rank)
            batch = drop_video(batch, tc.video_dropout, tc.seed, step, tc.batch_size, ranks.rank)
            weights = position_weights(batch, spec.sr, tc.onset_weight)
            with autocast, frame_embeddings(net) if tc.sync_weight else nullcontext() as embedded:
                loss = batch_loss(model, batch, cfg.loss, tc.zero_video, weights)
                sync = sync_loss(net, embedded[-1], batch, spec.sr) if tc.sync_weight else None
                if sync is not None:
                    loss = loss + tc.sync_weight * sync
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            opt.step()
            # log, validate and checkpoint (rank 0); a Ctrl-C on any process stops all after this step
            record = {"step": step, "train_loss": distributed.mean_across(loss, ranks), "lr": opt.param_groups[0]["lr"]}
            if sync is not None:
                record["sync_loss"] = distributed.mean_across(sync, ranks)
            stop = distributed.any_across(stop_requested(), ranks, device)
            if ranks.main:
                if step % tc.val_every == 0 or step == tc.steps:
                    record["val_loss"] = evaluate(net, val_loader, cfg.loss, device, tc.zero_video)
                record["wall_s"] = round(time.perf_counter() - t0, 3)
                with metrics_path.open("a") as f:
                    f.write(json.dumps(record) + "\n")
                if step % tc.checkpoint_every == 0 or step == tc.steps or stop:
                    save_checkpoint(checkpoint, net, opt, step, time.perf_counter() - t0, config)
                if log:
                    log(record)
                bar.set_postfix(loss=f"{record['train_loss']:.4f}", **({"val": f"{record['val_loss']:.4f}"}
                                                                        if "val_loss" in record else {}))
                bar.update()
            if stop:
                bar.close()
                distributed.finish()
                raise TrainingInterrupted(step, checkpoint)
    bar.close()
    distributed.finish()

    # the result: model.pt for generate/evaluate, and the last record
    if not ranks.main:
        return record
    save_model(net, spec, out / "model.pt")
    if "val_loss" not in record:  # resumed a finished run: its last record
        record = json.loads(metrics_path.read_text().splitlines()[-1])
    return record
