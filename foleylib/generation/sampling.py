"""Drawing mu-law classes from logits, compiled (numba) so that the naive loop and the fused cached loops draw
with the very same arithmetic: same seed, same uniforms, same classes."""
from __future__ import annotations

import numpy as np
import torch
from numba import njit

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
