"""The audio/video arithmetic in one place: rates, samples per frame, context lengths, clipping rules.

Every notebook, dataset and CLI command builds from an `AVSpec`. Sample rate and frame rate need not divide:
`samples_per_frame` is an exact fraction and the frame-of-sample rule is

    frame_of_sample(i) = floor(i * fps / sr)        frame_start(k) = ceil(k * sr / fps)

so frame k owns the samples [frame_start(k), frame_start(k + 1)). When sr/fps is an integer this is the
paper's rule (frame k owns samples k*spf .. (k+1)*spf - 1).

`PRESETS` is the one table of named sizes: each preset's AVSpec and, for the model presets, the model's sizes.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction

import numpy as np


def as_fraction(rate: float | int | str | Fraction) -> Fraction:
    """An exact rate: 25 -> 25, 29.97 -> 30000/1001 (NTSC), '30000/1001' -> 30000/1001, 21.5 -> 43/2."""
    if isinstance(rate, Fraction):
        return rate
    if isinstance(rate, str) and "/" in rate:
        return Fraction(rate)
    value = float(rate)
    ntsc = Fraction(round(value * 1.001) * 1000, 1001)
    if value != int(value) and abs(ntsc - Fraction(value)) < Fraction(3, 2000):
        return ntsc
    return Fraction(value).limit_denominator(1001)


@dataclass(frozen=True)
class AVSpec:
    """Rates and sizes of an aligned clip, and the context a model sees."""

    sr: int = 16000  # audio sample rate (Hz)
    fps: float = 25.0  # video frame rate after resampling (frames/s)
    size: int = 64  # frames are resized to size x size RGB
    channels: int = 2  # audio channels (mono is duplicated, more are downmixed)
    context_frames: int = 4  # n: the last n video frames, the current one included
    context_samples: int = 1024  # audio context length in samples before the predicted position

    def __post_init__(self) -> None:
        for name in ("sr", "size", "channels", "context_frames", "context_samples"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"AVSpec.{name} must be positive, got {getattr(self, name)}")
        if self.fps <= 0:
            raise ValueError(f"AVSpec.fps must be positive, got {self.fps}")

    @property
    def fps_exact(self) -> Fraction:
        return as_fraction(self.fps)

    @property
    def samples_per_frame(self) -> Fraction:
        """sr / fps, exactly (e.g. 640 at 16 kHz / 25 fps; 1600/3 at 16 kHz / 30 fps)."""
        return Fraction(self.sr) / self.fps_exact

    @property
    def max_samples_per_frame(self) -> int:
        """The most samples any frame owns (the deep-fusion output length)."""
        return math.ceil(self.samples_per_frame)

    def frame_of_sample(self, i: int) -> int:
        """Index of the video frame that is on screen while audio sample i plays."""
        return math.floor(Fraction(i) / self.samples_per_frame)

    def frames_of_samples(self, positions: np.ndarray) -> np.ndarray:
        """frame_of_sample for an int array of sample indices (negative ones give negative frames), exactly."""
        fps = self.fps_exact
        return np.asarray(positions, np.int64) * fps.numerator // (self.sr * fps.denominator)

    def frame_start(self, k: int) -> int:
        """First audio sample of video frame k."""
        return math.ceil(k * self.samples_per_frame)

    def clip_lengths(self, n_samples: int, n_frames: int) -> tuple[int, int]:
        """(frames, samples) kept by the paper's clipping rules.

        Audio is clipped to whole frames (len % samples_per_frame dropped), frames are clipped to
        len(audio) / samples_per_frame; if the video is the shorter one, audio is clipped to it.
        """
        frames = min(n_frames, math.floor(Fraction(n_samples) / self.samples_per_frame))
        return frames, self.frame_start(frames)

    def with_(self, **changes) -> AVSpec:
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Preset:
    """A named size: the AVSpec of its data and, for a model preset, the model's sizes (ModelConfig fields)."""

    spec: AVSpec
    model: dict = field(default_factory=dict)  # empty: a data-only preset


# tiny: unit tests (a step in milliseconds); small: a minute of CPU training shows learning;
# default: what a CPU user trains for ~30 minutes.
PRESETS: dict[str, Preset] = {
    "tiny": Preset(AVSpec(sr=8000, fps=25, size=32, context_frames=2, context_samples=256), dict(
        video_channels=4, video_blocks=1, fusion_channels=8, fusion_blocks=2, fusion_stride=4, residual_channels=8,
        skip_channels=16, kernel_size=2, dilation_cycle=5, stacks=1, cond_channels=8, d_model=16, n_heads=2,
        n_layers=1, d_ff=32, strides=(4, 4), raw_context=32)),
    "small": Preset(AVSpec(sr=16000, fps=25, size=48, context_frames=3, context_samples=512), dict(
        video_channels=8, video_blocks=2, fusion_channels=32, fusion_blocks=3, fusion_stride=4, residual_channels=32,
        skip_channels=64, kernel_size=2, dilation_cycle=9, stacks=1, cond_channels=32, d_model=64, n_heads=4,
        n_layers=2, d_ff=128, strides=(4, 4), raw_context=64)),
    "default": Preset(AVSpec(), dict(
        video_channels=16, video_blocks=2, fusion_channels=64, fusion_blocks=3, fusion_stride=4,
        residual_channels=64, skip_channels=128, kernel_size=2, dilation_cycle=10, stacks=1, cond_channels=64,
        d_model=128, n_heads=4, n_layers=3, d_ff=256, strides=(4, 4), raw_context=128)),
    # the paper's data: YouTube audio is 44.1 kHz stereo; the paper downsamples (rate not given).
    "paper": Preset(AVSpec(sr=22050, fps=30, size=64, context_frames=8, context_samples=4096)),
}
MODEL_PRESETS = tuple(name for name, p in PRESETS.items() if p.model)  # the names `model_config` takes
# cached generation's product weights: float32 (exact), or int8 with per-row scales (generation.kernels)
GENERATION_PRECISIONS = ("fp32", "int8")


def preset(name: str) -> AVSpec:
    """The named preset's AVSpec; unknown names are refused with the list of known ones."""
    try:
        return PRESETS[name].spec
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
