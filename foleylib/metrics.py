"""Measures of generated audio against the truth: onsets (timing) and per-sample likelihood (teacher forced).

Onsets are what tells whether a model uses the video: a model that hears nothing from the frames can still
reach a good likelihood on unpredictable bursts, but it cannot place them at the right times.
"""
from __future__ import annotations

import librosa
import numpy as np
import torch
from torch.utils.data import DataLoader

from .config import AVSpec
from .dataset import AlignedClip, WindowDataset
from .losses import ce_per_position


def detect_onsets(audio: np.ndarray, sr: int, hop: int = 128, min_gap: float = 0.05) -> np.ndarray:
    """Onset times in seconds of float audio [N, C] (channel mean), by librosa's spectral-flux detector.

    A fine hop (8 ms at 16 kHz) for timing; peaks closer than `min_gap` s merge (one burst, one onset).
    """
    mono = np.asarray(audio, np.float32).mean(axis=1) if np.ndim(audio) == 2 else np.asarray(audio, np.float32)
    if not np.any(mono):
        return np.zeros(0)
    envelope = librosa.onset.onset_strength(y=mono, sr=sr, hop_length=hop)
    frames = sr / hop  # envelope frames per second
    return librosa.onset.onset_detect(onset_envelope=envelope, sr=sr, hop_length=hop, units="time",
                                      pre_max=round(0.03 * frames), post_max=round(0.03 * frames) + 1,
                                      pre_avg=round(0.1 * frames), post_avg=round(0.1 * frames) + 1,
                                      wait=round(min_gap * frames), delta=0.07)


def match_onsets(detected: np.ndarray, truth: np.ndarray, tolerance: float) -> int:
    """Hits: pairs (detected, true) within `tolerance` s, each onset used once, closest pairs first."""
    if len(detected) == 0 or len(truth) == 0:
        return 0
    distance = np.abs(np.asarray(detected)[:, None] - np.asarray(truth)[None, :])
    hits, used_d, used_t = 0, set(), set()
    for flat in np.argsort(distance, axis=None):
        d, t = np.unravel_index(flat, distance.shape)
        if distance[d, t] > tolerance:
            break
        if d not in used_d and t not in used_t:
            used_d.add(d), used_t.add(t)
            hits += 1
    return hits


def onset_scores(detected: np.ndarray, truth: np.ndarray, tolerance: float = 0.04) -> dict[str, float]:
    """Precision, recall and F1 of detected onset times against true ones (seconds)."""
    hits = match_onsets(detected, truth, tolerance)
    precision = hits / len(detected) if len(detected) else 0.0
    recall = hits / len(truth) if len(truth) else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "detected": len(detected), "true": len(truth)}


@torch.no_grad()
def per_sample_nll(model: torch.nn.Module, clip: AlignedClip, spec: AVSpec, frames: range, window: int = 4096,
                   zero_video: bool = False) -> np.ndarray:
    """Teacher-forced mu-law NLL (nats, channel mean) of every sample of `frames` for a causal `ce` model.

    Windows tile the range; each is preceded by the model's receptive field of real context.
    """
    model.eval()
    device = next(model.parameters()).device
    span = model.receptive_field
    n = spec.frame_start(frames.stop) - spec.frame_start(frames.start)
    window = min(window, n)
    ds = WindowDataset(clip, spec, frames, window=window, warmup=span - 1, stride=window)
    out = np.full(n, np.nan)
    first = spec.frame_start(frames.start)
    for j, batch in enumerate(DataLoader(ds, batch_size=4)):
        batch = {k: v.to(device) for k, v in batch.items()}
        if zero_video:
            batch["video"] = torch.zeros_like(batch["video"])
        nll = ce_per_position(model(batch), batch["target"])[:, span - 1:].cpu().numpy()
        for b, row in enumerate(nll):
            start = int(ds.starts[4 * j + b]) - first
            out[start:start + len(row)] = row
    return out  # the tail past the last whole window stays NaN


def window_mask(n: int, sr: int, times: np.ndarray, before: float, after: float, offset: float = 0.0) -> np.ndarray:
    """bool [n]: samples within [t - before, t + after) of any event time t (seconds; `offset` = time of sample 0)."""
    mask = np.zeros(n, bool)
    for t in np.asarray(times) - offset:
        lo, hi = max(0, int(round((t - before) * sr))), min(n, int(round((t + after) * sr)))
        if hi > lo:  # events wholly before or after the range touch nothing
            mask[lo:hi] = True
    return mask


def boundary_jumps(audio: np.ndarray, boundaries: np.ndarray) -> dict[str, float | int | None]:
    """The paper's Fig. 8 artifact as a number: the mean step |x[b] - x[b - 1]| (channel mean) at the given
    sample positions (where segments meet) against the mean step everywhere else. A ratio well above 1 means
    the waveform jumps where segments meet; None where there is no boundary (or no other step)."""
    steps = np.abs(np.diff(np.asarray(audio, np.float64), axis=0)).reshape(len(audio) - 1, -1).mean(axis=1)
    at = np.zeros(len(steps), bool)
    positions = np.asarray(boundaries, int)
    at[positions[(positions >= 1) & (positions < len(audio))] - 1] = True  # step i goes from sample i to i + 1
    edge = float(steps[at].mean()) if at.any() else None
    inside = float(steps[~at].mean()) if (~at).any() else None
    return {"boundary": edge, "inside": inside, "count": int(at.sum()),
            "ratio": edge / inside if edge is not None and inside else None}
