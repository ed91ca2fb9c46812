"""Numba primitives of the per-sample loops: no allocation, BLAS for products, a vectorizable exp.

One generated sample costs a few hundred thousand multiply-adds spread over some 30 small matrix-vector
products and a few hundred exponentials. libm's exp and tanh are scalar calls (numba's pip build has no SVML),
so `exp_into` computes exp with the Cephes single-precision polynomial in a loop LLVM vectorizes; tanh and the
sigmoid are built from it. Products go through np.dot with an `out` buffer (BLAS gemv/gemm, nothing allocated).
"""
from __future__ import annotations

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401 - the BLAS that np.dot calls in compiled code: loaded now to be limited
from numba import njit
from threadpoolctl import ThreadpoolController

_BLAS = ThreadpoolController().select(user_api="blas")


def blas_threads(n: int):
    """Context manager: numpy's and scipy's BLAS (so numba's np.dot) limited to n threads. Its own threads only
    slow the small products of one step, and oversubscribe the cores when takes run on threads."""
    return _BLAS.limit(limits=n)


FAST = dict(cache=True, fastmath=True, nogil=True)  # nogil: streams on threads run on all cores


@njit(**FAST)
def exp_into(x, out):  # pragma: no cover - compiled
    """out[i] = exp(x[i]) for float32 1-D arrays, relative error < 3e-7 (x is clamped to [-87, 88])."""
    bits = out.view(np.int32)
    for i in range(x.shape[0]):
        t = min(max(x[i], np.float32(-87.0)), np.float32(88.0))
        k = np.floor(t * np.float32(1.44269504) + np.float32(0.5))
        r = t - k * np.float32(0.693359375) + k * np.float32(2.12194440e-4)  # t - k ln 2 in two parts
        p = np.float32(1.9875691500e-4)
        p = p * r + np.float32(1.3981999507e-3)
        p = p * r + np.float32(8.3334519073e-3)
        p = p * r + np.float32(4.1665795894e-2)
        p = p * r + np.float32(1.6666665459e-1)
        p = p * r + np.float32(5.0000001201e-1)
        out[i] = p * r * r + r + np.float32(1.0)
        bits[i] += np.int32(k) << 23  # times 2^k: add k to the exponent field


@njit(**FAST)
def gated_into(z, scratch, out):  # pragma: no cover - compiled
    """WaveNet's gate: out[c] = tanh(z[c]) * sigmoid(z[r + c]) for z [2r], via one exp_into of [2r] `scratch`;
    tanh(a) = 1 - 2 / (exp(2a) + 1), sigmoid(b) = 1 / (1 + exp(-b)). `z` is overwritten."""
    r = out.shape[0]
    for c in range(r):
        z[c] = 2 * z[c]
        z[r + c] = -z[r + c]
    exp_into(z, scratch)
    for c in range(r):
        out[c] = (1 - 2 / (scratch[c] + 1)) / (1 + scratch[r + c])


@njit(**FAST)
def affine_into(w, x, b, out):  # pragma: no cover - compiled
    """out = w @ x + b for w [O, I] and x [I]."""
    np.dot(w, x, out)
    out += b


@njit(**FAST)
def layer_norm_into(x, w, b, eps, out):  # pragma: no cover - compiled
    """out = LayerNorm(x) over the last axis of a 1-D x, with weight w and bias b."""
    n = x.shape[0]
    mean = np.float32(0.0)
    for i in range(n):
        mean += x[i]
    mean /= n
    var = np.float32(0.0)
    for i in range(n):
        var += (x[i] - mean) ** 2
    scale = np.float32(1.0) / np.sqrt(var / n + np.float32(eps))
    for i in range(n):
        out[i] = (x[i] - mean) * scale * w[i] + b[i]


@njit(**FAST)
def softmax_into(x, out):  # pragma: no cover - compiled
    """out = softmax(x) for a float32 1-D x (x is shifted in place by its maximum)."""
    x -= x.max()
    exp_into(x, out)
    out /= out.sum()
