"""One training loop for all three architectures (paper mode and causal mode).

`train()` reads aligned clips, holds out the tail of each by time (paper Sec. IV), trains with AdamW, a warm-up +
cosine LR schedule and gradient clipping, validates every `val_every` steps, and writes a run folder:
`config.json`, `model.pt` (state dict + configs, loadable without CLI flags), `metrics.jsonl` and
`checkpoint.pt` (weights, optimizer, step and RNG states: `resume` continues a stopped run exactly).

For learning from few clips: `init` starts from another run's weights (pretrain, then fine-tune), `freeze` keeps
the video or the audio side of the model as it was (weights and normalization statistics), `augment` transforms
each example's frames and audio alike (foleylib.data.augment) and `onset_weight` weighs the positions where a sound
starts more in the loss.
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

from foleylib.core.config import AVSpec
from foleylib.core.errors import InputError
from foleylib.core.fsutil import atomic_path, sha256_file, write_json
from foleylib.data.augment import augment_step, parse_augment
from foleylib.data.dataset import AlignedClip, FrameDataset, SampleDataset, WindowDataset, load_clip, split_by_time
from foleylib.data.motion import model_clip
from foleylib.models import ModelConfig, build_model
from foleylib.models.losses import compute_loss, onset_weights
from foleylib.models.video import FrameEmbedding, VideoEncoder, VideoToAudio
from foleylib.training import distributed


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
    augment: str = ""  # comma-separated foleylib.data.augment.AUGMENTATIONS (crop, flip, jitter, gain); "" = none
    onset_weight: float = 0.0  # training loss weight 1 + W at positions where a sound starts (0 = off)
    freeze: str = ""  # "video" or "audio": that side of the model keeps its weights and norm statistics
    seed: int = 0  # seeds the model init and the data order
    device: str = "auto"  # "auto" = CUDA when present, else CPU

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """A TrainConfig from a run's config.json (unknown keys ignored); ValueError for a value of the wrong type."""
        types = {f.name: type(f.default) for f in fields(cls)}
        for name, value in values.items():
            if name in types and not _fits(value, types[name]):
                raise ValueError(f"train.{name} should be {types[name].__name__}, not {value!r}")
        config = cls(**{k: v for k, v in values.items() if k in types})
        counts = ("steps", "batch_size", "window", "val_every", "val_examples", "checkpoint_every")
        bad = [n for n in counts if getattr(config, n) < 1] + ([] if config.workers >= 0 else ["workers"]) + \
            ([] if 0 < config.val_fraction < 1 else ["val_fraction"])
        if bad:
            raise ValueError(f"train.{bad[0]} is out of range: {getattr(config, bad[0])!r}")
        return config


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
    clips, val_clips = ([model_clip(c, cfg.video_input) for c in group] for group in (clips, val_clips or []))

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


def position_weights(batch: dict, sr: int, weight: float) -> torch.Tensor | None:
    """Onset loss weights of a batch's target positions ([B, L]; [B] in paper mode), found in the target with
    the audio context before it; None when `weight` is 0."""
    if not weight:
        return None
    target = batch["target"]
    if "audio" not in batch:  # causal windows: the warm-up positions are the history
        return onset_weights(target, sr, weight)
    one_sample = target.dim() == 2  # paper mode: [B, C]
    context = batch["audio"]
    weights = onset_weights(torch.cat([context, target[:, None] if one_sample else target], 1), sr, weight)
    return weights[:, context.shape[1]:][:, 0] if one_sample else weights[:, context.shape[1]:]


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


def init_from(net: torch.nn.Module, run: str | Path, spec: AVSpec) -> dict:
    """Copy another run's weights into `net` (built from this run's config): pretrain, then fine-tune.

    InputError naming the run when it is not a run, when its model has another architecture or other weight
    shapes, or when it was trained at other rates than `spec`. Returns {"run": its model.pt, "sha256"}."""
    source, source_spec = load_model(run, device="cpu")
    path = Path(run) / "model.pt" if Path(run).is_dir() else Path(run)
    theirs, ours = source.state_dict(), net.state_dict()
    if (source.cfg.arch, source.cfg.mode) != (net.cfg.arch, net.cfg.mode) or \
            {k: v.shape for k, v in theirs.items()} != {k: v.shape for k, v in ours.items()}:
        old, new = source.cfg.to_dict(), net.cfg.to_dict()
        differ = [f"{k} {old[k]} (here {new[k]})" for k in new if old.get(k) != new[k]]
        raise InputError(f"cannot start from this run: its model has {', '.join(differ)}; train with the same "
                         "--arch/--mode/--preset/--loss/--norm and context", path)
    if (source_spec.sr, source_spec.fps) != (spec.sr, spec.fps):
        raise InputError(f"cannot start from this run: it was trained at {source_spec.sr} Hz / {source_spec.fps:g} "
                         f"fps, the data is at {spec.sr} Hz / {spec.fps:g} fps (re-ingest with --sr/--fps)", path)
    net.load_state_dict(theirs)
    return {"run": str(path), "sha256": sha256_file(path)}


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


def _damaged(err: Exception, path: Path) -> InputError:
    """The one-line refusal of a checkpoint that fails anywhere in unpickling, its config or its tensors."""
    return InputError(f"not a valid checkpoint: {(str(err).strip().splitlines() or [type(err).__name__])[0]}", path)


def restore_checkpoint(path: Path, config: dict, net: torch.nn.Module, opt: torch.optim.Optimizer) -> tuple[int, float]:
    """Put the weights, optimizer and RNG back as OUT/checkpoint.pt holds them; returns (steps done, wall seconds
    so far). InputError when the file is damaged or the run's settings differ."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        saved = {**state["config"], "train": asdict(TrainConfig.from_dict(state["config"].get("train", {})))}
    except Exception as err:  # noqa: BLE001 - fields added to TrainConfig since it was written get their defaults
        raise _damaged(err, path) from None
    changed = sorted(k for k in ("model", "train", "spec", "data", "val_data", "init") if saved.get(k) != config[k])
    if changed:
        raise InputError(f"the run was started with other {'/'.join(changed)} settings; resume with the same "
                         "arguments or train into a new folder", path)
    try:
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        done, wall = int(state["step"]), float(state["wall_s"])
    except Exception as err:  # noqa: BLE001
        raise _damaged(err, path) from None
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return done, wall


def _resumed_metrics(path: Path, step: int) -> None:
    """Keep the metrics.jsonl records up to `step` (a killed run may have logged past its last checkpoint)."""
    lines = path.read_text().splitlines() if path.exists() else []
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{ln}\n" for ln in lines if ln.strip() and json.loads(ln)["step"] <= step))


def train(clips: list[AlignedClip], cfg: ModelConfig, tc: TrainConfig, out: str | Path,
          progress: bool = True, log: Callable[[dict], None] | None = None, resume: bool = False,
          val_clips: list[AlignedClip] | None = None, init: str | Path | None = None) -> dict:
    """Train a model on the clips and write the run folder; returns the final metrics. Validation is on each
    clip's tail, or on `val_clips` (unseen videos) when given. `init`: start from that run's weights.

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
    try:
        augmentations = parse_augment(tc.augment)
    except ValueError as err:
        raise InputError(str(err), out) from None
    if tc.freeze not in FREEZE_PARTS:
        raise InputError(f"freeze must be video or audio, not {tc.freeze!r}", out)
    ranks, device = distributed.start(pick_device(tc.device))
    if tc.batch_size % ranks.world:
        raise InputError(f"batch size {tc.batch_size} does not split over {ranks.world} processes", out)
    torch.manual_seed(tc.seed)
    net = build_model(cfg)
    initial = init_from(net, init, spec) if init else None
    freeze(net, tc.freeze)
    net = net.to(device)
    model = distributed.wrap(net, ranks, device)
    model = torch.compile(model) if tc.compile else model
    train_ds, val_ds = split_datasets(clips, spec, net, tc, val_clips)
    generator = torch.Generator().manual_seed(tc.seed)
    sampler = RandomSampler(train_ds, replacement=True, num_samples=tc.steps * tc.batch_size, generator=generator)
    val_loader = DataLoader(evenly_spaced(val_ds, tc.val_examples), batch_size=tc.batch_size)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=tc.lr,
                            weight_decay=tc.weight_decay)

    config = {"model": cfg.to_dict(), "train": asdict(tc), "spec": spec.to_dict(),
              "data": [str(c.path) for c in clips], "val_data": [str(c.path) for c in val_clips or []],
              "init": initial, "device": str(device), "processes": ranks.world,
              "parameters": sum(p.numel() for p in net.parameters())}
    checkpoint, metrics_path = out / "checkpoint.pt", out / "metrics.jsonl"
    done, wall_before = 0, 0.0
    if resume and checkpoint.exists():
        done, wall_before = restore_checkpoint(checkpoint, config, net, opt)
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
    train_mode(net)
    with stop_on_sigint() as stop_requested:
        for step, batch in enumerate(loader, start=done + 1):
            for group in opt.param_groups:
                group["lr"] = lr_at(step - 1, tc)
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            batch = augment_step(batch, augmentations, tc.seed, step, tc.batch_size, ranks.rank)
            weights = position_weights(batch, spec.sr, tc.onset_weight)
            with autocast:
                loss = batch_loss(model, batch, cfg.loss, tc.zero_video, weights)
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
        cfg.check()
        spec = AVSpec(**ckpt["spec"])
        if (cfg.channels, cfg.size, cfg.samples_per_frame) != (spec.channels, spec.size, spec.max_samples_per_frame):
            raise ValueError("its model config and AVSpec disagree on channels, frame size or samples per frame")
        with torch.device("meta"):  # the config must describe the weights the file holds before memory is spent
            shapes = {k: v.shape for k, v in build_model(cfg).state_dict().items()}
        if shapes != {k: getattr(v, "shape", None) for k, v in ckpt["state_dict"].items()}:
            raise ValueError("its weights do not fit its model config")
        model = build_model(cfg)
        model.load_state_dict(ckpt["state_dict"])
    except Exception as err:  # noqa: BLE001 - a damaged file fails anywhere in unpickling, configs or weights
        raise _damaged(err, path) from None
    return model.to(pick_device(device)).eval(), spec


if __name__ == "__main__":  # torchrun --nproc_per_node N -m foleylib.training.train ARGS (the arguments of foley train)
    from foleylib.interfaces.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
