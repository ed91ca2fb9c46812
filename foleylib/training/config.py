"""How to train: `TrainConfig` (the model's shape lives in foleylib.models.config.ModelConfig)."""
from __future__ import annotations

from dataclasses import dataclass, fields


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
    val_fraction: float = 0.2  # part of each clip held out for validation: its tail by default
    val_end: float = 1.0  # where the held-out part ends, as a fraction of the clip (foley train --val-span)
    val_every: int = 50  # validate every k steps (and at the end)
    val_examples: int = 64  # validation examples, evenly spaced over the held-out tail
    checkpoint_every: int = 100  # write OUT/checkpoint.pt every k steps (and at the end)
    precision: str = "fp32"  # "bf16": forward passes under bfloat16 autocast (GPU speed; also runs on CPU)
    compile: bool = False  # torch.compile the model (the first steps pay for compiling)
    workers: int = 0  # DataLoader worker processes (pinned memory on CUDA); the data order does not change
    zero_video: bool = False  # train and validate on black frames: the audio-only baseline
    augment: str = ""  # comma-separated foleylib.data.augment.AUGMENTATIONS (crop, flip, jitter, gain); "" = none
    onset_weight: float = 0.0  # training loss weight 1 + W at positions where a sound starts (0 = off)
    sync_weight: float = 0.0  # weight of the sync loss (training.sync; the model needs cfg.sync_head; 0 = off)
    video_dropout: float = 0.0  # share of examples trained on black frames (for guidance at generation; 0 = off)
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
            ([] if 0 < config.val_fraction < 1 else ["val_fraction"]) + \
            ([] if config.val_fraction <= config.val_end <= 1 else ["val_end"]) + \
            ([] if 0 <= config.video_dropout < 1 else ["video_dropout"])
        if bad:
            raise ValueError(f"train.{bad[0]} is out of range: {getattr(config, bad[0])!r}")
        return config


def _fits(value, kind: type) -> bool:
    """JSON value of a config field's type (ints count as floats; booleans never count as numbers)."""
    if kind in (int, float):
        return isinstance(value, int if kind is int else (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)
