"""Drawing samples from a model's output: the sampling settings and seeded random stream (`Sampler`), and the
mu-law draw, compiled (numba) so that the naive loop and the fused cached loops draw with the very same
arithmetic: same seed, same uniforms, same classes."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from numba import njit

from foleylib.generation import kernels
from foleylib.generation.kernels import FAST, exp_into
from foleylib.models.losses import mulaw_decode

MULAW_VALUES = mulaw_decode(torch.arange(256)).numpy()  # class -> sample value, float32 [256]


@njit(**FAST)
def sample_classes(logits, temperature, top_p, uniforms):  # pragma: no cover - compiled
    """Classes int64 [R] from logits float32 [R, K] at `temperature` > 0, restricted to the nucleus holding
    `top_p` of the probability (the likeliest classes, ties broken by index), one uniform in [0, 1) per row:
    the first class whose cumulative probability passes the uniform."""
    rows, K = logits.shape
    classes = np.empty(rows, np.int64)
    scaled = np.empty(K, np.float32)
    p = np.empty(K, np.float32)
    for row in range(rows):
        for k in range(K):
            scaled[k] = logits[row, k] / np.float32(temperature)
        scaled -= scaled.max()
        exp_into(scaled, p)
        if top_p < 1.0:
            total = p.sum()
            before = 0.0  # probability of the likelier classes
            for k in np.argsort(-p, kind="mergesort"):
                if before >= top_p * total:
                    p[k] = 0.0
                else:
                    before += p[k]
        total = 0.0
        for k in range(K):
            total += p[k]
        target, below, pick = uniforms[row] * total, 0.0, 0
        for k in range(K):  # ends on the last possible class should rounding leave `below` short of target
            if p[k] > 0:
                pick = k
                below += p[k]
                if below > target:
                    break
        classes[row] = pick
    return classes


def pick_sample(logits: np.ndarray, temperature: float, rng: np.random.Generator, top_p: float = 1.0) -> np.ndarray:
    """Sample values from mu-law logits [..., C, 256]: drawn at `temperature` (0 = argmax) from the smallest set
    of classes holding `top_p` of the probability (nucleus sampling; 1 = all classes), one uniform draw of `rng`
    per value, and decoded to [-1, 1]."""
    if temperature == 0:
        return MULAW_VALUES[logits.argmax(axis=-1)]
    flat = np.ascontiguousarray(logits.reshape(-1, 256), np.float32)
    return MULAW_VALUES[sample_classes(flat, temperature, top_p, rng.random(len(flat)))].reshape(logits.shape[:-1])


class DrawParameters(NamedTuple):
    """What a compiled loop needs to draw n steps of C values as pick_sample does."""

    temperature: float
    top_p: float
    uniforms: np.ndarray  # float64 [n, C]: one per value; zeros where nothing is drawn


class Sampler:
    """pick_sample with fixed settings and its own seeded random stream (numpy PCG64)."""

    def __init__(self, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0):
        if temperature < 0 or not 0 < top_p <= 1:
            raise ValueError(f"temperature must be >= 0 and top_p in (0, 1], got {temperature} and {top_p}")
        self.temperature, self.top_p = temperature, top_p
        self.rng = np.random.default_rng(seed)

    def __call__(self, output: torch.Tensor | np.ndarray, mulaw: bool) -> np.ndarray:
        """Sample values from a model output: mu-law logits [..., C, 256] drawn by pick_sample, tanh values
        [..., C] as they are (`mulaw`: the model's `cfg.output == "mulaw"`)."""
        output = output.numpy() if isinstance(output, torch.Tensor) else output
        return pick_sample(output, self.temperature, self.rng, self.top_p) if mulaw else output

    def draw_parameters(self, n: int, channels: int, mulaw: bool) -> DrawParameters:
        """The settings and uniforms for n steps of `channels` values, taken from the stream as n calls on
        [channels, 256] logits would take them: only where values are drawn (mu-law output, temperature > 0)."""
        drawn = mulaw and self.temperature > 0
        uniforms = self.rng.random((n, channels)) if drawn else np.zeros((n, channels))
        return DrawParameters(float(self.temperature), float(self.top_p), uniforms)


def takes_draw(samplers: list[Sampler], n: int, channels: int, mulaw: bool) -> DrawParameters:
    """The DrawParameters of n steps of several takes side by side (take after take, `channels` values each): each
    take's uniforms come from its own sampler as draw_parameters gives them to a single take. The takes share
    temperature and top_p."""
    parts = [sampler.draw_parameters(n, channels, mulaw) for sampler in samplers]
    if len({(p.temperature, p.top_p) for p in parts}) > 1:
        raise ValueError("takes drawn together share temperature and top_p")
    return DrawParameters(parts[0].temperature, parts[0].top_p, np.concatenate([p.uniforms for p in parts], axis=1))


kernels.drop_stale_cache(globals())
