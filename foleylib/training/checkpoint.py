"""Run folders on disk: `model.pt` (weights + configs, what generate/evaluate load), `checkpoint.pt` (everything a
resumed run needs), the metrics log, and starting a model from another run's weights.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from foleylib.core.config import AVSpec
from foleylib.core.device import pick_device
from foleylib.core.errors import InputError
from foleylib.core.fsutil import atomic_path, sha256_file
from foleylib.models.config import ModelConfig
from foleylib.models.registry import build_model
from foleylib.training.config import TrainConfig


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
                         "--arch/--mode/--positions/--preset/--loss/--norm and context", path)
    if (source_spec.sr, source_spec.fps) != (spec.sr, spec.fps):
        raise InputError(f"cannot start from this run: it was trained at {source_spec.sr} Hz / {source_spec.fps:g} "
                         f"fps, the data is at {spec.sr} Hz / {spec.fps:g} fps (re-ingest with --sr/--fps)", path)
    net.load_state_dict(theirs)
    return {"run": str(path), "sha256": sha256_file(path)}
