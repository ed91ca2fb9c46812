"""Drawing mu-law classes from logits, compiled (numba) so that the naive loop, the cached loops and the fused
WaveNet loop draw with the very same arithmetic: same seed, same uniforms, same classes."""
from __future__ import annotations

import numpy as np
import torch
from numba import njit

from .losses import mulaw_decode

MULAW_VALUES = mulaw_decode(torch.arange(256)).numpy()  # class -> sample value, float32 [256]


@njit(cache=True)
def sample_classes(logits, temperature, top_p, uniforms):  # pragma: no cover - compiled
    """Classes int64 [R] from logits float32 [R, K] at `temperature` > 0, restricted to the nucleus holding
    `top_p` of the probability (the likeliest classes, ties broken by index), one uniform in [0, 1) per row."""
    rows, K = logits.shape
    classes = np.empty(rows, np.int64)
    for row in range(rows):
        scaled = logits[row].astype(np.float64) / temperature
        p = np.exp(scaled - scaled.max())
        p /= p.sum()
        if top_p < 1.0:
            before = 0.0  # probability of the likelier classes
            for k in np.argsort(-p, kind="mergesort"):
                if before >= top_p:
                    before += p[k]
                    p[k] = 0.0
                else:
                    before += p[k]
        cdf = np.cumsum(p)
        classes[row] = min(np.searchsorted(cdf, uniforms[row] * cdf[-1], side="right"), K - 1)
    return classes
