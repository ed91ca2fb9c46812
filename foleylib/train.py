"""One training loop for all three architectures (paper mode and causal mode).

`train()` reads aligned clips, holds out the tail of each by time (paper Sec. IV), trains with AdamW, a warm-up +
cosine LR schedule and gradient clipping, validates every `val_every` steps, and writes a run folder:
`config.json`, `model.pt` (state dict + configs, loadable without CLI flags), `metrics.jsonl` and
`checkpoint.pt` (weights, optimizer, step and RNG states: `resume` continues a stopped run exactly).
"""
from __future__ import annotations

import itertools
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, RandomSampler, Sampler, Subset
from tqdm.auto import tqdm

from . import distributed
from .config import AVSpec
from .dataset import AlignedClip, FrameDataset, SampleDataset, WindowDataset, load_clip, split_by_time
from .errors import InputError
from .fsutil import atomic_path, write_json
from .losses import compute_loss
from .models import ModelConfig, build_model


@dataclass(frozen=True)
class TrainConfig:
    """How to train (the model's shape lives in ModelConfig)."""

    steps: int = 200  # optimizer steps
    batch_size: int = 16  # examples per step (windows in causal mode)
    lr: float = 2e-3  # peak learning rate
    weight_decay: float = 0.01  # AdamW weight decay
    warmup_steps: int = 20  # linear LR warm-up, then cosine decay to lr/10
    grad_clip: float = 1.0  # max gradient norm
    window: int = 2048  # causal mode: scored positions per window
    val_fraction: float = 0.2  # tail of each clip held out for validation
    val_every: int = 50  # validate every k steps (and at the end)
    val_examples: int = 64  # validation examples, evenly spaced over the held-out tail
    checkpoint_every: int = 100  # write OUT/checkpoint.pt every k steps (and at the end)
    precision: str = "fp32"  # "bf16": forward passes under bfloat16 autocast (GPU speed; also runs on CPU)
    compile: bool = False  # torch.compile the model (the first steps pay for compiling)
    workers: int = 0  # DataLoader worker processes (pinned memory on CUDA); the data order does not change
    zero_video: bool = False  # train and validate on black frames: the audio-only baseline
    seed: int = 0  # seeds the model init and the data order
    device: str = "auto"  # "auto" = CUDA when present, else CPU

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """A TrainConfig from a run's config.json (unknown keys ignored); ValueError for a value of the wrong type."""
        types = {f.name: type(f.default) for f in fields(cls)}
        for name, value in values.items():
            if name in types and not _fits(value, types[name]):
                raise ValueError(f"train.{name} should be {types[name].__name__}, not {value!r}")
        return cls(**{k: v for k, v in values.items() if k in types})


def _fits(value, kind: type) -> bool:
    """JSON value of a config field's type (ints count as floats; booleans never count as numbers)."""
    if kind in (int, float):
        return isinstance(value, int if kind is int else (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, after the last finished step was checkpointed."""

    def __init__(self, step: int, checkpoint: Path):
        super().__init__(f"interrupted after step {step}")
        self.step, self.checkpoint = step, checkpoint


def pick_device(name: str = "auto") -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else torch.device(name)


def warmup_positions(model: torch.nn.Module, window: int) -> int:
    """Causal windows start with this many unscored positions so that scored ones see full context."""
    return min(model.receptive_field - 1, window)


def make_dataset(clip: AlignedClip, spec: AVSpec, cfg: ModelConfig, frames: range, window: int,
                 warmup: int) -> Dataset:
    """The examples of one clip's frame range for the model's arch and mode."""
    if cfg.arch == "fusion":
        return FrameDataset(clip, spec, frames)
    if cfg.mode == "paper":
        return SampleDataset(clip, spec, frames)
    return WindowDataset(clip, spec, frames, window=window, warmup=warmup, stride=window // 2)


def split_datasets(clips: list[AlignedClip], spec: AVSpec, model: torch.nn.Module, tc: TrainConfig,
                   val_clips: list[AlignedClip] | None = None) -> tuple[Dataset, Dataset]:
    """(train, validation) examples. By time: each clip's head trains, its tail (val_fraction) validates. By clip
    (`val_clips`, videos the model never sees in training): the clips train whole and the val clips validate
    whole. Training draws examples uniformly, so each clip is sampled in proportion to its duration."""
    cfg = model.cfg
    warmup = warmup_positions(model, tc.window) if cfg.mode == "causal" and cfg.arch != "fusion" else 0

    def examples(parts: list[tuple[AlignedClip, range]]) -> Dataset:
        return ConcatDataset([make_dataset(c, spec, cfg, frames, tc.window, warmup) for c, frames in parts])

    if val_clips:
        return tuple(examples([(c, range(c.meta["frames"])) for c in group]) for group in (clips, val_clips))
    splits = [split_by_time(clip, tc.val_fraction) for clip in clips]
    return tuple(examples([(c, split[part]) for c, split in zip(clips, splits)]) for part in (0, 1))


def evenly_spaced(ds: Dataset, count: int) -> Dataset:
    """A fixed, deterministic subset: `count` examples spread over the whole dataset."""
    if len(ds) <= count:
        return ds
    return Subset(ds, np.linspace(0, len(ds) - 1, count).round().astype(int).tolist())


def lr_at(step: int, tc: TrainConfig) -> float:
    if step < tc.warmup_steps:
        return tc.lr * (step + 1) / tc.warmup_steps
    progress = (step - tc.warmup_steps) / max(1, tc.steps - tc.warmup_steps)
    return tc.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def score_mask(batch: dict, positions: int, device: torch.device) -> torch.Tensor | None:
    """bool [B, positions]: the scored positions of a batch (causal windows after their warm-up; the real
    samples of a zero-padded fusion target); None when every position counts."""
    index = torch.arange(positions, device=device)[None, :]
    if "warmup" in batch:
        return index >= batch["warmup"][:, None]
    if "length" in batch:
        return index < batch["length"][:, None]
    return None


def batch_loss(model: torch.nn.Module, batch: dict, loss: str, zero_video: bool = False) -> torch.Tensor:
    """The model's loss on a collated batch (causal windows are scored after their warm-up positions)."""
    if zero_video:
        batch = {**batch, "video": torch.zeros_like(batch["video"])}
    output = model(batch)
    mask = score_mask(batch, batch["target"].shape[1], output.device)
    return compute_loss(loss, output, batch["target"], mask=mask)


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: DataLoader, loss: str, device: torch.device,
             zero_video: bool = False) -> float:
    """Mean loss over a loader, weighted by batch size."""
    model.eval()
    total, count = 0.0, 0
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        n = len(batch["target"])
        total += float(batch_loss(model, batch, loss, zero_video)) * n
        count += n
    model.train()
    return total / max(count, 1)


def find_clips(paths: list[str | Path]) -> list[AlignedClip]:
    """Clip folders from paths that are clip folders or folders of clips (e.g. data/aligned)."""
    clips = []
    for path in map(Path, paths):
        if (path / "meta.json").exists() or not path.is_dir():
            clips.append(load_clip(path))
            continue
        found = sorted(p.parent for p in path.glob("*/meta.json"))
        if not found:
            raise InputError("no aligned clips here (run foley ingest first)", path)
        clips += [load_clip(p) for p in found]
    return clips


def check_compatible(clips: list[AlignedClip]) -> AVSpec:
    """All clips must share rates and sizes; returns their AVSpec."""
    spec = clips[0].spec
    for clip in clips[1:]:
        if clip.spec != spec:
            raise InputError(f"clip has {clip.spec} but {clips[0].name} has {spec}; re-ingest with the same "
                             "--sr/--fps/--size/--channels", clip.path)
    return spec


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


def save_checkpoint(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, step: int, wall_s: float,
                    config: dict) -> None:
    """OUT/checkpoint.pt, atomically: weights, optimizer state, step, RNG states and the run's config."""
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "wall_s": wall_s,
             "config": config, "torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, config: dict) -> dict:
    """A checkpoint to resume from; InputError when it is unreadable or the run's settings differ."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        saved = state["config"]
    except (RuntimeError, KeyError, EOFError, OSError, ValueError) as err:
        raise InputError(f"not a valid checkpoint: {str(err).splitlines()[0]}", path) from None
    changed = sorted(k for k in ("model", "train", "spec", "data", "val_data") if saved.get(k) != config[k])
    if changed:
        raise InputError(f"the run was started with other {'/'.join(changed)} settings; resume with the same "
                         "arguments or train into a new folder", path)
    return state


def _resumed_metrics(path: Path, step: int) -> None:
    """Keep the metrics.jsonl records up to `step` (a killed run may have logged past its last checkpoint)."""
    lines = path.read_text().splitlines() if path.exists() else []
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{ln}\n" for ln in lines if ln.strip() and json.loads(ln)["step"] <= step))


def train(clips: list[AlignedClip], cfg: ModelConfig, tc: TrainConfig, out: str | Path,
          progress: bool = True, log: Callable[[dict], None] | None = None, resume: bool = False,
          val_clips: list[AlignedClip] | None = None) -> dict:
    """Train a model on the clips and write the run folder; returns the final metrics. Validation is on each
    clip's tail, or on `val_clips` (unseen videos) when given.

    Every `checkpoint_every` steps, at the end and on Ctrl-C, OUT/checkpoint.pt holds everything needed to go on;
    with `resume` a run continues from it (when there is one) exactly as if it had never stopped.
    """
    out = Path(out)
    trained = {c.path.resolve() for c in clips}
    for clip in val_clips or []:
        if clip.path.resolve() in trained:
            raise InputError("a validation clip is also a training clip (held-out clips must be unseen)", clip.path)
    spec = check_compatible(clips + (val_clips or [])).with_(context_frames=cfg.context_frames,
                                                             context_samples=cfg.context_samples)
    ranks, device = distributed.start(pick_device(tc.device))
    if tc.batch_size % ranks.world:
        raise InputError(f"batch size {tc.batch_size} does not split over {ranks.world} processes", out)
    torch.manual_seed(tc.seed)
    net = build_model(cfg).to(device)
    model = distributed.wrap(net, ranks, device)
    model = torch.compile(model) if tc.compile else model
    train_ds, val_ds = split_datasets(clips, spec, net, tc, val_clips)
    generator = torch.Generator().manual_seed(tc.seed)
    sampler = RandomSampler(train_ds, replacement=True, num_samples=tc.steps * tc.batch_size, generator=generator)
    val_loader = DataLoader(evenly_spaced(val_ds, tc.val_examples), batch_size=tc.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)

    config = {"model": cfg.to_dict(), "train": asdict(tc), "spec": spec.to_dict(),
              "data": [str(c.path) for c in clips], "val_data": [str(c.path) for c in val_clips or []],
              "device": str(device), "processes": ranks.world,
              "parameters": sum(p.numel() for p in net.parameters())}
    checkpoint, metrics_path = out / "checkpoint.pt", out / "metrics.jsonl"
    done, wall_before = 0, 0.0
    if resume and checkpoint.exists():
        state = load_checkpoint(checkpoint, config)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        done, wall_before = state["step"], state["wall_s"]
        if ranks.main:
            _resumed_metrics(metrics_path, done)
    elif ranks.main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", config)
        metrics_path.write_text("")
    per_rank = tc.batch_size // ranks.world
    order = distributed.RankSlices(ResumedSampler(sampler, done * tc.batch_size), per_rank, ranks)
    loader = DataLoader(train_ds, batch_size=per_rank, sampler=order, drop_last=True, num_workers=tc.workers,
                        pin_memory=device.type == "cuda", persistent_workers=tc.workers > 0)
    if tc.precision not in ("fp32", "bf16"):
        raise InputError(f"precision must be fp32 or bf16, not {tc.precision}", out)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=tc.precision == "bf16")
    t0 = time.perf_counter() - wall_before
    record: dict = {}
    step = done
    bar = tqdm(total=tc.steps, initial=done, desc=f"train {cfg.arch}/{cfg.mode}/{cfg.loss}",
               disable=not (progress and ranks.main), unit="step")
    with stop_on_sigint() as stop_requested:
        for step, batch in enumerate(loader, start=done + 1):
            for group in opt.param_groups:
                group["lr"] = lr_at(step - 1, tc)
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            with autocast:
                loss = batch_loss(model, batch, cfg.loss, tc.zero_video)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            opt.step()
            record = {"step": step, "train_loss": distributed.mean_across(loss, ranks), "lr": opt.param_groups[0]["lr"]}
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
    if not ranks.main:
        return record
    save_model(net, spec, out / "model.pt")
    if "val_loss" not in record:  # resumed a finished run: its last record
        record = json.loads(metrics_path.read_text().splitlines()[-1])
    return record


def save_model(model: torch.nn.Module, spec: AVSpec, path: Path) -> None:
    """model.pt: the state dict with the model config and AVSpec, as plain data (torch.load weights_only)."""
    with atomic_path(path) as tmp:
        torch.save({"state_dict": model.state_dict(), "model_config": model.cfg.to_dict(),
                    "spec": spec.to_dict()}, tmp)


def load_model(run: str | Path, device: str = "auto") -> tuple[torch.nn.Module, AVSpec]:
    """Load a run folder's (or a model.pt file's) model in eval mode, and its AVSpec."""
    run = Path(run)
    path = run / "model.pt" if run.is_dir() else run
    if not path.exists():
        raise InputError("no model.pt (not a run folder?)", run)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        cfg = ModelConfig.from_dict(ckpt["model_config"])
        model = build_model(cfg)
        model.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, KeyError, ValueError, EOFError, OSError) as err:
        raise InputError(f"not a valid checkpoint: {str(err).splitlines()[0]}", path) from None
    return model.to(pick_device(device)).eval(), AVSpec(**ckpt["spec"])


if __name__ == "__main__":  # torchrun --nproc_per_node N -m foleylib.train ARGS (the arguments of foley train)
    from .cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
