"""Judging a trained run on its clip's held-out tail (the paper's protocol, Sec. IV), next to baselines.

Teacher-forced: Table I's number (the run's own validation loss), NLL in nats and bits for mu-law models, and
MSE/MAE/paper_ce of the point prediction (the tanh output, or the mean of the mu-law distribution) for all; the
mu-law histogram NLL is the floor without any context. Free-running: the model generates the first `seconds` of
the tail from its frames (primed with the real audio before it), and so does every baseline; all are scored by
`metrics.audio_metrics` against the true audio, with the scene's own truth (onsets, pan, f0) when the clip was
rendered by `foley synth`. A model uses the video when it beats itself on shuffled video on the sync metrics
(at least as good on each, better on one).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from foleylib.core.config import AVSpec
from foleylib.core.errors import InputError
from foleylib.data.batches import evenly_spaced, score_mask, split_datasets
from foleylib.data.dataset import AlignedClip, load_clip, split_by_time
from foleylib.evaluation.metrics import audio_metrics
from foleylib.generation.generate import generate, guidance_refusal
from foleylib.models.losses import compute_loss, mulaw_decode, mulaw_encode, nats_to_bits
from foleylib.training.checkpoint import load_model
from foleylib.training.config import TrainConfig

BASELINES = ("video_zeroed", "video_shuffled", "silence", "histogram", "shifted_1s", "motion_bursts")
SYNC_METRICS = ("onset_f1", "envelope_corr")  # higher is better; compared against the shuffled-video run


def point_prediction(output: torch.Tensor, mulaw: bool) -> torch.Tensor:
    """A model output as sample values: mu-law logits [..., 256] as their mean (`mulaw`: the model's
    `cfg.output == "mulaw"`), tanh outputs as they are."""
    if not mulaw:
        return output
    return torch.softmax(output.double(), dim=-1) @ mulaw_decode(torch.arange(256, device=output.device)).double()


@torch.no_grad()
def teacher_forced(model: torch.nn.Module, clips: list[AlignedClip], spec: AVSpec, tc: TrainConfig) -> dict:
    """Validation losses on the held-out tails, the same examples as training validated on."""
    model.eval()
    device = next(model.parameters()).device
    val_ds = split_datasets(clips, spec, model, tc.window, tc.val_fraction, val_end=tc.val_end)[1]
    names = [model.cfg.loss] + [n for n in ("mse", "mae", "paper_ce") if n != model.cfg.loss]
    totals, count = dict.fromkeys(names, 0.0), 0
    for batch in DataLoader(evenly_spaced(val_ds, tc.val_examples), batch_size=tc.batch_size):
        batch = {k: v.to(device) for k, v in batch.items()}
        output, target = model(batch), batch["target"]
        mask = score_mask(batch, target.shape[1], device)
        point = point_prediction(output, model.cfg.output == "mulaw").float()
        for name in names:
            totals[name] += float(compute_loss(name, output if name == model.cfg.loss else point, target, mask)) \
                * len(target)
        count += len(target)
    result = {f"val_{name}": total / max(count, 1) for name, total in totals.items()}
    result["val_loss"] = result[f"val_{model.cfg.loss}"]
    if model.cfg.loss == "ce":
        result["val_nll_bits"] = nats_to_bits(result["val_ce"])
    return result


def histogram_nll(clip: AlignedClip, train: list[range], val: range, spec: AVSpec) -> float:
    """NLL (nats per sample per channel) of the held-out frames `val` under the mu-law class histogram of the
    training frames (add-one smoothed): what a model scores that ignores every context."""
    counts = class_histogram(np.concatenate([frames_audio(clip, part, spec) for part in train]))
    log_p = np.log(counts / counts.sum())
    return float(-log_p[_classes(frames_audio(clip, val, spec))].mean())


def class_histogram(audio: np.ndarray) -> np.ndarray:
    """Add-one smoothed counts of the mu-law classes of the samples of audio [N, C] (all channels). [256]"""
    return np.bincount(_classes(audio), minlength=256) + 1.0


def _classes(audio: np.ndarray) -> np.ndarray:
    return mulaw_encode(torch.from_numpy(np.array(audio))).numpy().ravel()


def frames_audio(clip: AlignedClip, frames: range, spec: AVSpec) -> np.ndarray:
    """The clip's audio of a range of frames. [N, C]"""
    return clip.audio[spec.frame_start(frames.start):spec.frame_start(frames.stop)]


def motion_energy(frames: np.ndarray) -> np.ndarray:
    """Mean absolute difference of each frame from the one before (0 for the first). [T]"""
    diff = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    return np.concatenate([[0.0], diff])


def motion_bursts(frames: np.ndarray, spec: AVSpec, n: int, level: float, rng: np.random.Generator) -> np.ndarray:
    """The non-learned visual baseline: a 30 ms decaying noise burst at the start of every frame whose motion
    energy is a local peak above its median + 2 MAD. [n, C]"""
    energy = motion_energy(frames)
    threshold = np.median(energy) + 2 * np.median(np.abs(energy - np.median(energy)))
    inner = energy[1:-1]
    peaks = 1 + np.flatnonzero((inner > energy[:-2]) & (inner >= energy[2:]) & (inner > threshold))
    audio = np.zeros((n, spec.channels), np.float32)
    length = round(0.03 * spec.sr)
    decay = np.exp(-np.arange(length) / (0.006 * spec.sr))[:, None]
    for k in peaks:
        s = spec.frame_start(int(k))
        if s < n:
            burst = level * decay * rng.uniform(-1, 1, (length, spec.channels))
            audio[s:s + length] = burst[:n - s]
    return audio


def scene_truth(clip: AlignedClip, t0: float, seconds: float) -> dict:
    """The synthetic scene's truth over [t0, t0 + seconds), relative to t0: onset times and pans (clap), the f0
    track from the first scene frame at or after t0 (car). Empty for clips not rendered by foley synth."""
    source = Path(clip.meta["source"])
    path = source.with_name(f"{source.stem}.events.json")
    if not path.exists():
        return {}
    events = json.loads(path.read_text())
    if "onsets" in events:
        inside = [o for o in events["onsets"] if t0 <= o["time"] < t0 + seconds]
        return {"onsets": np.array([o["time"] - t0 for o in inside]), "pan": np.array([o["pan"] for o in inside])}
    if "f0" in events.get("per_frame", {}):
        fps = events["fps"]
        first = math.ceil(t0 * fps)
        f0 = np.asarray(events["per_frame"]["f0"][first:math.floor((t0 + seconds) * fps)], float)
        return {"f0": f0, "f0_fps": fps}
    return {}


def shuffled_video(frames: np.ndarray) -> np.ndarray:
    """The shuffled-video twin's frames: the clip's frames rolled by half its length, so every moment shows an
    unrelated one of the same clip (the picture's statistics unchanged, its timing broken)."""
    return np.roll(frames, len(frames) // 2, axis=0)


def free_running(model: torch.nn.Module, clip: AlignedClip, spec: AVSpec, tail: range, n_frames: int,
                 seed: int, progress: bool = False, prior: np.ndarray | None = None,
                 **sampling: float) -> tuple[dict[str, np.ndarray], float]:
    """Generated audio of the tail's first n_frames by the model, by the model on zeroed and on shuffled video
    (shuffled_video), all drawn with the same `sampling` (generate's temperature, top_p and classifier-free
    guidance; guidance changes nothing on zeroed video), and by the baselines that need no model; and the model's
    real-time factor. The histogram baseline draws from the mu-law histogram of `prior` [N, C], audio the model
    trained on (default: the clip's audio before the tail), and the motion bursts take its 99.9th percentile
    level."""
    first = spec.frame_start(tail.start)
    n = spec.frame_start(tail.start + n_frames) - first
    frames = np.asarray(clip.frames)
    prime = clip.audio[:first]
    videos = {"model": frames, "video_zeroed": np.zeros_like(frames),
              "video_shuffled": shuffled_video(frames)}
    audio, rtf = {}, 0.0
    for name, video in videos.items():
        t = time.perf_counter()
        audio[name] = generate(model, spec, video, tail.start, n_frames, prime=prime, seed=seed, progress=progress,
                               **sampling)
        if name == "model":
            rtf = n / spec.sr / (time.perf_counter() - t)
    rng = np.random.default_rng([seed, 1])  # not the sampler's stream: a model of the histogram would copy it
    head = clip.audio[:first] if prior is None else prior
    level = float(np.percentile(np.abs(head), 99.9)) if len(head) else 0.5
    histogram = class_histogram(head)
    drawn = rng.choice(256, size=n * spec.channels, p=histogram / histogram.sum())
    shift = spec.sr if first >= spec.sr else -spec.sr  # one second earlier (later when the tail starts early)
    shifted = np.zeros((n, spec.channels), np.float32)
    real = clip.audio[max(0, first - shift):first - shift + n]
    shifted[:len(real)] = real
    audio |= {
        "silence": np.zeros((n, spec.channels), np.float32),
        "histogram": mulaw_decode(torch.from_numpy(drawn)).numpy().reshape(n, spec.channels).astype(np.float32),
        "shifted_1s": shifted,
        "motion_bursts": motion_bursts(frames[tail.start:tail.start + n_frames], spec, n, level, rng),
    }
    return audio, rtf


def uses_video(scores: dict[str, dict]) -> bool | None:
    """True when the model does at least as well as itself on shuffled video on every sync metric that is defined
    and better on one; None when none is defined."""
    pairs = [(scores["model"][m], scores["video_shuffled"][m]) for m in SYNC_METRICS]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    return all(a >= b for a, b in pairs) and any(a > b for a, b in pairs) if pairs else None


def score_generated(audio: dict[str, np.ndarray], clip: AlignedClip, spec: AVSpec, start_frame: int,
                    onset_metric: str = "strict") -> tuple[dict[str, dict], dict]:
    """`audio_metrics` of each generated audio [n, C] (same n) against the clip's true audio from start_frame on,
    with the scene's own truth where the clip was rendered by foley synth; returns (scores by name, that truth)."""
    reference = np.asarray(clip.audio[spec.frame_start(start_frame):][:len(next(iter(audio.values())))])
    fps = float(spec.fps_exact)
    truth = scene_truth(clip, start_frame / fps, len(reference) / spec.sr)
    scores = {name: audio_metrics(a, reference, spec.sr, fps, onsets=truth.get("onsets"), pan=truth.get("pan"),
                                  f0=truth.get("f0"), f0_fps=truth.get("f0_fps"), onset_metric=onset_metric)
              for name, a in audio.items()}
    return scores, truth


def evaluate_run(run: str | Path, clip_dir: str | Path | None = None, seconds: float = 4.0, seed: int = 0,
                 device: str = "auto", progress: bool = False, onset_metric: str = "strict",
                 guidance: float = 1.0, temperature: float = 1.0,
                 top_p: float = 1.0) -> tuple[dict, dict[str, np.ndarray]]:
    """Evaluate a run folder on a clip's held-out tail (default: the first clip it trained on); `onset_metric`
    as `metrics.audio_metrics` takes it; the model and its twins are drawn at `temperature` from the nucleus
    `top_p` with classifier-free `guidance` (free_running).

    Returns the report (JSON-ready) and the free-running audio of the model and of each baseline [n, C]."""
    run = Path(run)
    model, spec = load_model(run, device)
    if refusal := guidance_refusal(model.cfg, guidance):
        raise InputError(refusal, run)
    try:
        config = json.loads((run / "config.json").read_text())
        tc = TrainConfig.from_dict(config["train"])
        data = clip_dir or config["data"][0]
    except (OSError, KeyError, TypeError, ValueError, AttributeError) as err:
        raise InputError(f"not a run's config.json: {type(err).__name__}: {err}", run / "config.json") from None
    clip = load_clip(data)
    if clip.spec != spec.with_(context_frames=clip.spec.context_frames, context_samples=clip.spec.context_samples):
        raise InputError(f"clip has {clip.spec}, the run was trained on {spec}", clip.path)
    train, tail = split_by_time(clip, tc.val_fraction, tc.val_end)
    n_frames = max(1, min(len(tail), math.floor(seconds * spec.fps_exact)))
    t0 = float(tail.start / spec.fps_exact)
    audio, rtf = free_running(model, clip, spec, tail, n_frames, seed, progress, guidance=guidance,
                              temperature=temperature, top_p=top_p)
    scores, truth = score_generated(audio, clip, spec, tail.start, onset_metric)
    cfg = model.cfg
    return {
        "run": str(run), "clip": str(clip.path), "arch": cfg.arch, "mode": cfg.mode, "loss": cfg.loss,
        "tail_start_s": t0, "generated_seconds": len(audio["model"]) / spec.sr, "rtf": rtf, "seed": seed,
        "guidance": guidance, "temperature": temperature, "top_p": top_p,
        "truth": "scene events" if truth else "onsets detected in the true audio", "onset_metric": onset_metric,
        "teacher_forced": teacher_forced(model, [clip], spec, tc) | {
            "histogram_nll_nats": histogram_nll(clip, train, tail, spec)},
        "metrics": scores, "uses_video": uses_video(scores),
    }, audio
