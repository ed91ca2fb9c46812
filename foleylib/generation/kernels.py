"""Numba primitives of the per-sample loops: no allocation, register-blocked products, a vectorizable exp.

One generated sample costs a few hundred thousand multiply-adds spread over some 20 small matrix-vector
products and a few hundred exponentials. At these sizes BLAS gemv spends its time on call overhead and horizontal
sums; `matvec_into` instead keeps BLOCK outputs in vector registers while it walks the inputs, over weights laid
out once (`blocked`) so that every load is contiguous, and serves several takes from one read of the weights.
Its weights are float32, or int8 with a scale per output row (`quantize_rows`): a quarter of the bytes, so that a
model's products fit the L2 cache, at the price of a conversion per weight and about 1% error in the outputs.
libm's exp and tanh are scalar calls (numba's pip build has no SVML), so `exp_into` computes exp with the Cephes
single-precision polynomial in a loop LLVM vectorizes; tanh and the sigmoid are built from it.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401 - the BLAS that np.dot calls in compiled code: loaded now to be limited
from numba import carray, njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload
from threadpoolctl import ThreadpoolController

_BLAS = ThreadpoolController().select(user_api="blas")


def blas_threads(n: int):
    """Context manager: numpy's and scipy's BLAS (so numba's np.dot) limited to n threads. Its own threads only
    slow the small products of one step, and oversubscribe the cores when takes run on threads."""
    return _BLAS.limit(limits=n)


FAST = dict(cache=True, fastmath=True, nogil=True)  # nogil: streams on threads run on all cores
# Products: fused multiply-adds but no reassociation, so each sum runs in input order whatever the vectorization.
EXACT = dict(FAST, fastmath={"contract", "nnan", "ninf", "nsz"})
BLOCK = 64  # outputs a product keeps in registers: 8 AVX2 vectors (16 registers hold them and the operands)
HALF = BLOCK // 2  # outputs per take when two takes share the registers


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


def blocked(w: np.ndarray) -> np.ndarray:
    """Weights [..., O, I] (float32, or int8 of quantize_rows) -> [..., ceil(O / BLOCK), I, BLOCK], what
    matvec_into reads: each block of BLOCK output rows stored input by input (the BLOCK weights of one input are
    one contiguous run), zero rows padding the last block."""
    *lead, outputs, inputs = w.shape
    padded = np.zeros((*lead, -(-outputs // BLOCK) * BLOCK, inputs), w.dtype)
    padded[..., :outputs, :] = w
    return np.ascontiguousarray(padded.reshape(*lead, -1, BLOCK, inputs).swapaxes(-1, -2))


@intrinsic
def _stack_floats(typingctx, n):
    """A pointer to n float32 in the calling function's stack frame (n a compile-time constant): an accumulator
    the compiler can keep in registers, which it cannot for an array that might alias the operands."""
    if not isinstance(n, types.IntegerLiteral):
        return None

    def codegen(context, builder, signature, args):
        return cgutils.alloca_once(builder, context.get_value_type(types.float32), size=n.literal_value)

    return types.CPointer(types.float32)(n), codegen


def quantize_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weights [..., O, I] -> (int8 q [..., O, I], float32 scales [..., O]) with w[o] ~ scales[o] * q[o]: each row's
    largest magnitude maps to 127, the rest round to the nearest step (a zero row: scale 0), so each weight is off
    by at most half its row's step. int8 weights take a quarter of float32's memory: a model's products fit the
    L2 cache that float32 ones overflow."""
    scales = (np.abs(w).max(axis=-1) / np.float32(127.0)).astype(np.float32)
    steps = np.where(scales > 0, scales, np.float32(1.0))[..., None]
    return np.rint(w / steps).astype(np.int8), scales


UNSCALED = np.zeros(0, np.float32)  # matvec_into's scales for float32 weights


def unscaled(w: np.ndarray) -> np.ndarray:
    """The `scales` of float32 products for matvec_into: empty along the output axis, [..., 0] for w [..., O, I]."""
    return np.zeros((*w.shape[:-2], 0), np.float32)


def prepared(w: np.ndarray, precision: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A product's weights [..., O, I] as matvec_into takes them at `precision`, "fp32" or "int8": (the weights it
    computes with: w, or each row's scale times its int8 values; their layout for matvec_into: blocked(w) or
    blocked(q); the scales: unscaled(w), or quantize_rows's)."""
    if precision == "int8":
        q, scales = quantize_rows(w)
        return scales[..., None] * q, blocked(q), scales
    return w, blocked(w), unscaled(w)


def _is_quantized(wb) -> bool:
    """Whether matvec_into's weights are quantized (int8): a constant of each compiled version, so the compiler
    drops the other kind's code."""
    return wb.dtype == np.int8


@overload(_is_quantized, jit_options=EXACT)
def _is_quantized_typed(wb):
    quantized_weights = wb.dtype == types.int8
    return lambda wb: quantized_weights


@njit(**EXACT)
def matvec_into(wb, scales, x, b, out):  # pragma: no cover - compiled
    """out[t] = W @ x[t] + b for every take t: x [T, I], out [T, O], b [O], W [O, I] given as blocked(W) with
    empty `scales` (unscaled(W)), or as blocked(q) with q, scales = quantize_rows(W) (W[o] = scales[o] * q[o]).

    Each output is b[o] + w[o, 0] x[t, 0] + w[o, 1] x[t, 1] + ..., summed in input order with fused multiply-adds
    in registers: the same arithmetic whatever T (int8: b[o] + scales[o] * (q[o, 0] x[t, 0] + ...)). Takes go in
    pairs that share every weight load (half a block of outputs each); an odd last take goes alone, a whole block
    at a time. A block's weights come from memory once per call and from cache for the other takes."""
    acc = carray(_stack_floats(BLOCK), BLOCK)
    takes, inputs = x.shape
    scaled = _is_quantized(wb)  # then the bias is added after the scale
    for ob in range(wb.shape[0]):
        for half in range(0, BLOCK, HALF):
            first = ob * BLOCK + half
            rows = min(HALF, b.shape[0] - first)
            for t in range(0, takes - 1, 2):
                for j in range(HALF):
                    acc[j] = b[first + j] if j < rows and not scaled else np.float32(0.0)
                    acc[HALF + j] = acc[j]
                for i in range(inputs):
                    x0, x1 = x[t, i], x[t + 1, i]
                    for j in range(HALF):
                        w = np.float32(wb[ob, i, half + j])
                        acc[j] += w * x0
                        acc[HALF + j] += w * x1
                for j in range(rows):
                    if scaled:
                        out[t, first + j] = b[first + j] + scales[first + j] * acc[j]
                        out[t + 1, first + j] = b[first + j] + scales[first + j] * acc[HALF + j]
                    else:
                        out[t, first + j] = acc[j]
                        out[t + 1, first + j] = acc[HALF + j]
        if takes % 2:
            t, first = takes - 1, ob * BLOCK
            rows = min(BLOCK, b.shape[0] - first)
            for j in range(BLOCK):
                acc[j] = b[first + j] if j < rows and not scaled else np.float32(0.0)
            for i in range(inputs):
                xi = x[t, i]
                for j in range(BLOCK):
                    acc[j] += np.float32(wb[ob, i, j]) * xi
            for j in range(rows):
                out[t, first + j] = b[first + j] + scales[first + j] * acc[j] if scaled else acc[j]


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
