"""From aligned clips to training examples and batches: which dataset an architecture reads, the split into train
and validation examples, which positions of a batch are scored and how much each weighs.

A collated batch holds `video` [B, n or F, S, S, V] uint8 and `target`, plus per layout: `audio` [B, n_aud, C]
(paper mode), `audio_in` [B, L, C], `frame_index` [B, L] and `warmup` [B] (causal windows: the first warmup
positions are history, not scored), `length` [B] (fusion: the real samples of a zero-padded target frame).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, Dataset, Subset

from foleylib.core.config import AVSpec
from foleylib.data.dataset import AlignedClip, FrameDataset, SampleDataset, WindowDataset, split_by_time
from foleylib.data.motion import model_clip


def warmup_positions(model: torch.nn.Module, window: int) -> int:
    """Causal windows start with this many unscored positions so that scored ones see full context."""
    return min(model.receptive_field - 1, window)


def make_dataset(clip: AlignedClip, spec: AVSpec, arch: str, mode: str, frames: range, window: int,
                 warmup: int) -> Dataset:
    """The examples of one clip's frame range for the model's arch and mode."""
    if arch == "fusion":
        return FrameDataset(clip, spec, frames)
    if mode == "paper":
        return SampleDataset(clip, spec, frames)
    return WindowDataset(clip, spec, frames, window=window, warmup=warmup, stride=window // 2)


def split_datasets(clips: list[AlignedClip], spec: AVSpec, model: torch.nn.Module, window: int, val_fraction: float,
                   val_clips: list[AlignedClip] | None = None, val_end: float = 1.0) -> tuple[Dataset, Dataset]:
    """(train, validation) examples. By time: the span of each clip that split_by_time(val_fraction, val_end)
    holds out validates (default: its tail), the frames before and after it train; examples after the span start
    where their history (audio context, warm-up, earlier frames) no longer reaches into it, and a part too short
    for one example is left out. By clip (`val_clips`, videos the model never sees in training): the clips train
    whole and the val clips validate whole. Training draws examples uniformly, so each clip is sampled in
    proportion to its duration."""
    cfg = model.cfg
    windows = cfg.mode == "causal" and cfg.arch != "fusion"
    warmup = warmup_positions(model, window) if windows else 0
    clips, val_clips = ([model_clip(c, cfg.video_input, cfg.video_lookahead) for c in group]
                        for group in (clips, val_clips or []))

    def examples(parts: list[tuple[AlignedClip, range]]) -> Dataset:
        return ConcatDataset([make_dataset(c, spec, cfg.arch, cfg.mode, frames, window, warmup) for c, frames in parts])

    if val_clips:
        return tuple(examples([(c, range(c.meta["frames"])) for c in group]) for group in (clips, val_clips))
    history = warmup + 1 if windows else spec.context_samples  # samples an example reads before its first target
    train, val = [], []
    for clip in clips:
        parts, held_out = split_by_time(clip, val_fraction, val_end)
        parts = [clear_of(part, spec, history) if part.start else part for part in parts]
        least = window if windows else 1  # samples of one example
        usable = [p for p in parts if spec.frame_start(p.stop) - spec.frame_start(p.start) >= least]
        train += [(clip, part) for part in usable or parts[:1]]  # none usable: the dataset names the problem
        val.append((clip, held_out))
    return examples(train), examples(val)


def clear_of(frames: range, spec: AVSpec, history: int) -> range:
    """`frames` less its first frames, so that examples whose `history` samples and n - 1 earlier frames precede
    their first target read nothing before frames.start."""
    start = frames.start
    while spec.frame_start(start) - history < spec.frame_start(frames.start):
        start += 1
    return range(min(start + spec.context_frames - 1, frames.stop), frames.stop)


def evenly_spaced(ds: Dataset, count: int) -> Dataset:
    """A fixed, deterministic subset: `count` examples spread over the whole dataset."""
    if len(ds) <= count:
        return ds
    return Subset(ds, np.linspace(0, len(ds) - 1, count).round().astype(int).tolist())


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


ONSET_RATIO, ONSET_FLOOR = 2.0, 0.01  # an onset: the peak envelope above twice its last 50 ms and above -40 dBFS


def onset_weights(audio: torch.Tensor, sr: int, weight: float) -> torch.Tensor:
    """Loss weights [B, L] for audio [B, L, C]: 1 + weight where a sound starts (sound_starts), 1 elsewhere."""
    return 1.0 + weight * sound_starts(audio, sr).to(audio.dtype)


def sound_starts(audio: torch.Tensor, sr: int) -> torch.Tensor:
    """bool [B, L] for audio [B, L, C]: where a sound starts.

    "Starts" = the peak envelope (max |sample| over 5 ms around the position, over channels) exceeds
    ONSET_RATIO times its own mean over the 50 ms before, and ONSET_FLOOR: the attack of an impact and the
    first tens of milliseconds after it, until the running mean catches up."""
    short, long = max(1, round(0.005 * sr)) | 1, max(1, round(0.05 * sr))
    env = F.max_pool1d(audio.abs().amax(-1)[:, None], short, stride=1, padding=short // 2)  # [B, 1, L]
    before = F.avg_pool1d(F.pad(env, (long, 0), mode="replicate"), long, stride=1)[..., :-1]  # mean of [j-long, j)
    return ((env > ONSET_RATIO * before) & (env > ONSET_FLOOR))[:, 0]
