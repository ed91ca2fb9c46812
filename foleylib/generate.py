"""Generation as in the paper (Sec. III-D, Fig. 4): one step at a time, re-running the network on its context.

Sample-level models emit the next sample each step, with the video context frozen for the samples of a frame;
deep fusion emits a whole frame's samples per step. The audio context is zero-padded at the start, or primed
with real audio before the first generated sample. Output is float [N, C] in [-1, 1].
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import AVSpec
from .dataset import audio_context, causal_window, video_context, window_frame_count
from .losses import mulaw_decode
from .models.wavenet import WaveNetStepper


def pick_sample(output: torch.Tensor, temperature: float, generator: torch.Generator,
                top_p: float = 1.0) -> torch.Tensor:
    """One value per channel from a model output: tanh values as they are; mu-law logits [..., 256] sampled
    at `temperature` (0 = argmax) from the smallest set of classes holding `top_p` of the probability
    (nucleus sampling; 1 = all classes), and decoded to [-1, 1]."""
    if output.shape[-1] != 256:
        return output
    if temperature == 0:
        return mulaw_decode(output.argmax(dim=-1))
    probs = torch.softmax(output.double() / temperature, dim=-1)
    if top_p < 1:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        outside = sorted_p.cumsum(-1) - sorted_p >= top_p  # classes after the nucleus is full
        probs = probs.scatter(-1, order, sorted_p.masked_fill(outside, 0))
    flat = probs.reshape(-1, 256)
    classes = torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])
    return mulaw_decode(classes)


class Sampler:
    """pick_sample with fixed settings and its own seeded random stream."""

    def __init__(self, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0):
        self.temperature, self.top_p = temperature, top_p
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        return pick_sample(output, self.temperature, self.generator, self.top_p)


def model_inputs(model: torch.nn.Module, spec: AVSpec, audio: np.ndarray, frames: np.ndarray,
                 i: int) -> dict[str, torch.Tensor]:
    """The batch (of one) that predicts sample i (sample models) or frame i (fusion) from `audio` so far."""
    cfg = model.cfg
    if cfg.arch == "fusion":
        start = spec.frame_start(i)
        batch = {"audio": torch.from_numpy(audio_context(audio, start, cfg.context_samples)),
                 "video": torch.from_numpy(video_context(frames, i, cfg.context_frames))}
    elif cfg.mode == "paper":
        batch = {"audio": torch.from_numpy(audio_context(audio, i, cfg.context_samples)),
                 "video": torch.from_numpy(video_context(frames, spec.frame_of_sample(i), cfg.context_frames))}
    else:
        length = model.receptive_field  # what the last position can see: all it needs
        batch = causal_window(audio, frames, spec, i - length + 1, length, window_frame_count(spec, length))
    return {k: v.unsqueeze(0) for k, v in batch.items()}


@contextmanager
def single_thread() -> Iterator[None]:
    """Per-sample steps are latency-bound: one intra-op thread avoids OpenMP hand-off (and contention)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def supports_cached(model: torch.nn.Module) -> bool:
    return model.cfg.arch == "wavenet" and model.cfg.mode == "causal"


@torch.no_grad()
def generate(model: torch.nn.Module, spec: AVSpec, frames: np.ndarray, start_frame: int, n_frames: int,
             prime: np.ndarray | None = None, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
             method: Literal["auto", "naive", "cached"] = "auto", progress: bool = False,
             on_step: Callable[[int], None] | None = None) -> np.ndarray:
    """Generate the audio of frames start_frame .. start_frame + n_frames - 1.

    frames: the clip's aligned frames [T, S, S, 3]; prime: real audio just before the first generated sample
    (zero padding where it is shorter than the context). method "naive" re-runs the network on the whole
    context every step (the paper); "cached" uses WaveNet queues (causal WaveNet); "auto" picks cached where
    supported. Returns float32 [N, C].
    """
    model.eval()
    spec = spec.with_(context_frames=model.cfg.context_frames, context_samples=model.cfg.context_samples)
    first, stop = spec.frame_start(start_frame), spec.frame_start(start_frame + n_frames)
    audio = np.zeros((stop, model.cfg.channels), np.float32)  # global sample indices; zeros = padding
    if prime is not None and len(prime):
        prime = np.asarray(prime, np.float32)[-first:] if first else prime[:0]
        audio[first - len(prime):first] = prime
    if method == "auto":
        method = "cached" if supports_cached(model) else "naive"
    if method == "cached" and not supports_cached(model):
        raise ValueError(f"cached generation needs a causal WaveNet, not {model.cfg.arch}/{model.cfg.mode}")
    loop = generate_cached if method == "cached" else generate_naive
    with single_thread():
        loop(model, spec, audio, frames, start_frame, first, Sampler(temperature, top_p, seed), progress, on_step)
    return audio[first:]


def generate_cached(model: torch.nn.Module, spec: AVSpec, audio: np.ndarray, frames: np.ndarray, start_frame: int,
                    first: int, sampler: Sampler, progress: bool, on_step: Callable[[int], None] | None) -> None:
    """Fill audio[first:] sample by sample with a WaveNetStepper (the queues are warmed on the prime)."""
    device = next(model.parameters()).device
    stepper = WaveNetStepper(model)
    on_screen = None
    for i in tqdm(range(max(0, first - model.receptive_field), len(audio)), disable=not progress, unit="sample",
                  mininterval=0.5):
        k = spec.frame_of_sample(i)
        if k != on_screen:  # a new frame: its embedding conditions the next samples
            window = torch.from_numpy(video_context(frames, k, spec.context_frames))[None].to(device)
            stepper.set_frame(model.frames(window)[:, 0])  # [1, cond]
            on_screen = k
        previous = torch.from_numpy(audio[i - 1] if i > 0 else np.zeros_like(audio[0]))[None].to(device)
        output = stepper.step(previous)[0].float().cpu()
        if i >= first:
            audio[i] = sampler(output).numpy()
            if on_step:
                on_step(i)


def generate_naive(model: torch.nn.Module, spec: AVSpec, audio: np.ndarray, frames: np.ndarray, start_frame: int,
                   first: int, sampler: Sampler, progress: bool, on_step: Callable[[int], None] | None) -> None:
    """Fill audio[first:] by re-running the model on its whole context for every sample (or frame)."""
    device = next(model.parameters()).device
    n_frames = spec.frame_of_sample(len(audio) - 1) + 1 - start_frame
    fusion = model.cfg.arch == "fusion"
    steps = range(start_frame, start_frame + n_frames) if fusion else range(first, len(audio))
    for i in tqdm(steps, disable=not progress, unit="frame" if fusion else "sample", mininterval=0.5):
        batch = {k: v.to(device) for k, v in model_inputs(model, spec, audio, frames, i).items()}
        output = model(batch)[0].float().cpu()
        if fusion:
            lo, hi = spec.frame_start(i), spec.frame_start(i + 1)
            audio[lo:hi] = sampler(output[:hi - lo]).numpy()
        else:
            audio[i] = sampler(output[-1] if model.cfg.mode == "causal" else output).numpy()
        if on_step:
            on_step(i)
