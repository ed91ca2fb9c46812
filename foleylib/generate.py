"""Generation as in the paper (Sec. III-D, Fig. 4): one step at a time, re-running the network on its context.

Sample-level models emit the next sample each step, with the video context frozen for the samples of a frame;
deep fusion emits a whole frame's samples per step. The audio context is zero-padded at the start, or primed
with real audio before the first generated sample. Output is float [N, C] in [-1, 1].
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import AVSpec
from .dataset import audio_context, causal_window, video_context, window_frame_count
from .losses import mulaw_decode


def pick_sample(output: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """One value per channel from a model output: tanh values as they are; mu-law logits [..., 256] sampled
    at `temperature` (0 = argmax) and decoded to [-1, 1]."""
    if output.shape[-1] != 256:
        return output
    if temperature == 0:
        return mulaw_decode(output.argmax(dim=-1))
    probs = torch.softmax(output.double() / temperature, dim=-1)
    flat = probs.reshape(-1, 256)
    classes = torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])
    return mulaw_decode(classes)


def context_length(model: torch.nn.Module) -> int:
    """Positions a causal model needs to predict the last one exactly (its receptive field / attention span)."""
    return int(getattr(model, "max_context", None) or model.receptive_field)


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
        length = context_length(model)
        batch = causal_window(audio, frames, spec, i - length + 1, length, window_frame_count(spec, length))
    return {k: v.unsqueeze(0) for k, v in batch.items()}


@torch.no_grad()
def generate(model: torch.nn.Module, spec: AVSpec, frames: np.ndarray, start_frame: int, n_frames: int,
             prime: np.ndarray | None = None, temperature: float = 1.0, seed: int = 0, progress: bool = False,
             on_step: Callable[[int], None] | None = None) -> np.ndarray:
    """Generate the audio of frames start_frame .. start_frame + n_frames - 1 by the naive loop.

    frames: the clip's aligned frames [T, S, S, 3]; prime: real audio just before the first generated sample
    (zero padding where it is shorter than the context). Returns float32 [N, C].
    """
    model.eval()
    device = next(model.parameters()).device
    spec = spec.with_(context_frames=model.cfg.context_frames, context_samples=model.cfg.context_samples)
    first, stop = spec.frame_start(start_frame), spec.frame_start(start_frame + n_frames)
    audio = np.zeros((stop, model.cfg.channels), np.float32)  # global sample indices; zeros = padding
    if prime is not None and len(prime):
        prime = np.asarray(prime, np.float32)[-first:] if first else prime[:0]
        audio[first - len(prime):first] = prime
    generator = torch.Generator().manual_seed(seed)
    fusion = model.cfg.arch == "fusion"
    steps = range(start_frame, start_frame + n_frames) if fusion else range(first, stop)
    for i in tqdm(steps, disable=not progress, unit="frame" if fusion else "sample", mininterval=0.5):
        batch = {k: v.to(device) for k, v in model_inputs(model, spec, audio, frames, i).items()}
        output = model(batch)[0].float().cpu()
        if fusion:
            lo, hi = spec.frame_start(i), spec.frame_start(i + 1)
            audio[lo:hi] = pick_sample(output[:hi - lo], temperature, generator).numpy()
        else:
            audio[i] = pick_sample(output[-1] if model.cfg.mode == "causal" else output, temperature,
                                   generator).numpy()
        if on_step:
            on_step(i)
    return audio[first:]
