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
BINADES = 256  # float32 exponents: a positive float's bits >> 23
RADIX = 256  # sort_high_halves's digits: a byte


@njit(**FAST)
def sample_classes(logits, temperature, top_p, uniforms):  # pragma: no cover - compiled
    """Classes int64 [R] from logits float32 [R, K] at `temperature` > 0, restricted to the nucleus holding
    `top_p` of the probability (keep_nucleus), one uniform in [0, 1) per row: the first class whose cumulative
    probability passes the uniform."""
    rows, K = logits.shape
    classes = np.empty(rows, np.int64)
    scaled = np.empty(K, np.float32)
    p = np.empty(K, np.float32)
    keys, spare = np.empty(K, np.int64), np.empty(K, np.int64)
    binades, counts = np.empty(BINADES, np.float64), np.empty(RADIX, np.int64)
    for row in range(rows):
        for k in range(K):
            scaled[k] = logits[row, k] / np.float32(temperature)
        scaled -= scaled.max()
        exp_into(scaled, p)
        if top_p < 1.0:
            keep_nucleus(p, top_p, keys, binades, spare, counts)
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


@njit(**FAST)
def keep_nucleus(p, top_p, keys, binades, spare, counts):  # pragma: no cover - compiled
    """Zero the probabilities p float32 [K] (all > 0) outside their nucleus: the likeliest classes, ties broken by
    index, taken in that order while the sum of those before (in that order) is under top_p of the total. Only the
    classes that can be in it are sorted: those of the binades (float exponents), from the top down, whose sums
    reach top_p of the total with a margin (1e-9 of it) far above what summing in another order can change.
    Scratch: keys and spare int64 [K], binades float64 [BINADES], counts int64 [RADIX]."""
    K = p.shape[0]
    target = top_p * p.sum()
    bits = p.view(np.int32)  # positive floats order as their bit patterns
    binades[:] = 0.0
    for k in range(K):
        binades[bits[k] >> 23] += p[k]
    binade, mass = BINADES - 1, binades[BINADES - 1]
    while binade > 0 and mass < target * (1 + 1e-9):
        binade -= 1
        mass += binades[binade]
    floor, m = np.int32(binade) << 23, 0
    for k in range(K):
        if bits[k] >= floor:  # a candidate's key: probability descending, then index ascending
            keys[m] = (np.int64(0x7FFFFFFF - bits[k]) << 32) | k
            m += 1
    ordered = sort_high_halves(keys[:m], spare[:m], counts)
    before, kept = 0.0, 0
    while kept < m and before < target:
        before += p[ordered[kept] & 0xFFFFFFFF]
        kept += 1
    for j in range(kept):  # the kept classes are marked by their sign, then every other class is zeroed
        p[ordered[j] & 0xFFFFFFFF] *= -1
    for k in range(K):
        p[k] = -p[k] if p[k] < 0 else np.float32(0.0)


@njit(**FAST)
def sort_high_halves(keys, spare, counts):  # pragma: no cover - compiled
    """keys int64 [m] >= 0 sorted by their high 32 bits, keys with equal high halves kept in the order they came
    in: a least-significant-digit radix sort, a byte a pass (a pass whose byte all keys share is skipped), several
    times faster than a comparison sort of a few hundred keys. Returns the sorted keys, which are in `keys` or in
    `spare` (same size; both are overwritten); counts int64 [RADIX]: scratch."""
    m = keys.shape[0]
    source, target = keys, spare
    for shift in range(32, 64, 8):
        counts[:] = 0
        for i in range(m):
            counts[(source[i] >> shift) & (RADIX - 1)] += 1
        if m == 0 or counts[(source[0] >> shift) & (RADIX - 1)] == m:
            continue
        start = 0
        for digit in range(RADIX):
            start, counts[digit] = start + counts[digit], start
        for i in range(m):
            digit = (source[i] >> shift) & (RADIX - 1)
            target[counts[digit]] = source[i]
            counts[digit] += 1
        source, target = target, source
    return source


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
