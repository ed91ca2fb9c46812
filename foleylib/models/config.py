"""A model's shape: `ModelConfig`, its allowed choices (the architecture registry `ARCHS` among them) and
`model_config()`, which sizes one from a preset of `foleylib.core.config.PRESETS` and an AVSpec."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Literal, get_args

from foleylib.core.config import MODEL_PRESETS, PRESETS, AVSpec
from foleylib.data.motion import VIDEO_INPUTS

Arch = Literal["fusion", "wavenet", "transformer"]
Mode = Literal["paper", "causal"]
Variant = Literal["strided", "raw"]
Norm = Literal["batch", "group"]
Loss = Literal["mse", "mae", "ce", "paper_ce"]  # ce: mu-law 256-way logits; the others: tanh output
Positions = Literal["absolute", "alibi"]  # transformer: learned window positions (the paper) or ALiBi's distances
OutputKind = Literal["mulaw", "continuous"]
ARCHS: tuple[str, ...] = get_args(Arch)  # the architecture registry (build_model maps each to its class)
MODES: tuple[str, ...] = get_args(Mode)
VARIANTS: tuple[str, ...] = get_args(Variant)
NORMS: tuple[str, ...] = get_args(Norm)
LOSSES: tuple[str, ...] = get_args(Loss)  # the loss registry (foleylib.models.losses maps each to its function)
POSITIONS: tuple[str, ...] = get_args(Positions)
# the most a config may ask for (a damaged or hostile model.pt must not build a model that never fits in memory)
MAX_SIZE, MAX_LAYERS, MAX_DILATION_CYCLE = 1 << 20, 1024, 24
LAYER_COUNTS = ("video_blocks", "fusion_blocks", "stacks", "n_layers")


@dataclass(frozen=True)
class ModelConfig:
    """The shape of a model. Data-side sizes come from an AVSpec (`spec_fields`; back with `spec_for`)."""

    arch: Arch  # which generator of the paper
    mode: Mode = "causal"  # paper: one prediction per window; causal: every position
    variant: Variant = "raw"  # transformer audio context (causal mode: raw only)
    loss: Loss = "ce"  # "ce": mu-law 256-way logits; others: tanh output
    # data-side sizes (copied from an AVSpec by `spec_fields`)
    channels: int = 2  # C: audio channels
    size: int = 64  # S: frames are S x S RGB
    context_frames: int = 4  # n: video frames a prediction sees (the current one included)
    context_samples: int = 1024  # n_aud: audio context length (paper mode, fusion)
    samples_per_frame: int = 640  # fusion output length = AVSpec.max_samples_per_frame
    # video context embedding (all architectures)
    norm: Norm = "batch"  # ResNet normalization: "batch" = paper Fig. 3; "group" = per example
    video_input: str = "rgb"  # one of VIDEO_INPUTS: frames as the paper, + or only motion (motion.py)
    video_lookahead: int = 0  # frames past the one on screen that the context reaches (0: the paper; dataset.py)
    video_channels: int = 16  # c_vid: channels of the 3D ResNet
    video_blocks: int = 2  # ResBlock3d after the stem (wavenet/transformer), each halves x and y
    # deep fusion
    fusion_channels: int = 32  # c_aud of the audio stream
    fusion_blocks: int = 3  # sub-blocks: one ResBlock1d + one ResBlock3d + cross projections each
    fusion_stride: int = 4  # temporal downsampling of each audio sub-block
    # wavenet
    residual_channels: int = 32  # channels of the residual stream
    skip_channels: int = 64  # channels of the skip sum and the dense head
    kernel_size: int = 2  # kernel of the causal input conv and of every dilated conv
    dilation_cycle: int = 8  # layers per stack: dilations 1, 2, 4, ..., 2^(cycle-1)
    stacks: int = 2  # how many times the dilation cycle repeats
    cond_channels: int = 32  # causal mode: size of the per-frame video embedding e_p
    sync_head: bool = False  # causal: a read-out of e_p trained to tell where sounds start (foley train --sync-weight)
    # transformer
    d_model: int = 64  # token width
    n_heads: int = 4  # attention heads
    n_layers: int = 2  # encoder layers
    d_ff: int = 128  # feed-forward width
    dropout: float = 0.0  # dropout inside the encoder layers
    strides: tuple[int, ...] = (4, 4)  # `strided`: one Conv1d (kernel = stride) per entry; tokens = n_aud / prod
    raw_context: int = 128  # `raw`: samples (= tokens) attended; causal mode: the attention window
    positions: Positions = "absolute"  # causal transformer: "alibi" slides (relative positions, a rolling cache)

    def __post_init__(self) -> None:
        object.__setattr__(self, "strides", tuple(int(s) for s in self.strides))  # JSON gives lists

    @property
    def output(self) -> OutputKind:
        """"mulaw": logits over 256 mu-law classes per channel; "continuous": tanh values in [-1, 1]."""
        return "mulaw" if self.loss == "ce" else "continuous"

    @staticmethod
    def spec_fields(spec: AVSpec) -> dict:
        """The data-side sizes a ModelConfig takes from an AVSpec (the one way from a spec to a config)."""
        return dict(channels=spec.channels, size=spec.size, context_frames=spec.context_frames,
                    context_samples=spec.context_samples, samples_per_frame=spec.max_samples_per_frame)

    def spec_for(self, data: AVSpec) -> AVSpec:
        """`data`'s rates and sizes with this model's context lengths: the spec its inputs are cut with (the one
        way from a config back to a spec)."""
        return data.with_(context_frames=self.context_frames, context_samples=self.context_samples)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["strides"] = list(self.strides)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**d)

    def check(self) -> None:
        """Raise ValueError naming the allowed values when a field or a combination is invalid."""
        for name, allowed in (("arch", ARCHS), ("mode", MODES), ("variant", VARIANTS), ("loss", LOSSES),
                              ("norm", NORMS), ("video_input", VIDEO_INPUTS), ("positions", POSITIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose one of {', '.join(allowed)}")
        if self.arch == "fusion" and self.mode != "paper":
            raise ValueError("fusion predicts whole frames: mode must be 'paper' (causal is for wavenet, transformer)")
        if self.arch == "transformer" and self.mode == "causal" and self.variant != "raw":
            raise ValueError("the causal transformer has one token per sample: variant must be 'raw' "
                             "('strided' is paper mode only)")
        positive = ("channels", "size", "context_frames", "context_samples", "samples_per_frame", "video_channels",
                    "fusion_channels", "fusion_blocks", "fusion_stride", "residual_channels", "skip_channels",
                    "kernel_size", "dilation_cycle", "stacks", "cond_channels", "d_model", "n_heads", "n_layers",
                    "d_ff", "raw_context")
        bad = [n for n in positive if getattr(self, n) < 1]
        if bad or self.video_blocks < 0 or not self.strides or min(self.strides) < 1:
            raise ValueError(f"ModelConfig sizes must be positive: {', '.join(bad) or 'video_blocks/strides'}")
        huge = [n for n in positive if getattr(self, n) > MAX_SIZE] + \
            [n for n in LAYER_COUNTS if getattr(self, n) > MAX_LAYERS] + \
            (["dilation_cycle"] if self.dilation_cycle > MAX_DILATION_CYCLE else []) + \
            (["strides"] if len(self.strides) > MAX_LAYERS or max(self.strides) > MAX_SIZE else [])
        if huge:
            raise ValueError(f"ModelConfig sizes past any model that fits in memory: {', '.join(dict.fromkeys(huge))}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.positions == "alibi" and not (self.arch == "transformer" and self.mode == "causal"):
            raise ValueError("alibi positions are for the causal transformer (--arch transformer --mode causal)")
        if self.sync_head and not (self.arch in ("wavenet", "transformer") and self.mode == "causal"):
            raise ValueError("the sync loss reads the per-frame video embedding of the causal wavenet and "
                             "transformer (--mode causal)")
        if self.video_lookahead < 0 or self.video_lookahead > MAX_LAYERS:
            raise ValueError(f"video_lookahead must be in [0, {MAX_LAYERS}] frames, got {self.video_lookahead}")
        if self.video_lookahead and self.video_input != "rgb":
            raise ValueError("looking ahead needs --video-input rgb (motion is computed causally, frame by frame)")
        if self.arch == "transformer" and self.mode == "causal" and self.raw_context < 2:
            raise ValueError("the causal transformer needs raw_context >= 2")


def model_config(arch: str, preset: str, spec: AVSpec, **overrides) -> ModelConfig:
    """A ModelConfig of a named size (one of MODEL_PRESETS), with channels/size/context lengths/samples_per_frame
    from `spec`.

    Fusion defaults to mode "paper" (its only mode); `overrides` set any field (unknown names are refused).
    """
    if preset not in MODEL_PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; choose one of {', '.join(MODEL_PRESETS)}")
    known = {f.name for f in fields(ModelConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown ModelConfig fields: {', '.join(unknown)}")
    cfg = ModelConfig(arch=arch, mode="paper" if arch == "fusion" else "causal", **ModelConfig.spec_fields(spec),
                      **PRESETS[preset].model)
    return replace(cfg, **overrides)
