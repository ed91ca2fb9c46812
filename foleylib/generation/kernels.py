"""Numba primitives of the per-sample loops: no allocation, register-blocked products, a vectorizable exp.

One generated sample costs a few hundred thousand multiply-adds spread over some 20 small matrix-vector
products and a few hundred exponentials. At these sizes BLAS gemv spends its time on call overhead and horizontal
sums; `matvec_into` instead keeps BLOCK outputs in vector registers while it walks the inputs, over weights laid
out once (`blocked`) so that every load is contiguous, and serves several takes from one read of the weights.
Its weights are float32, or int8 with a scale per output row (`quantize_rows`): a quarter of the bytes, so that a
model's products fit the L2 cache. int8 products round each take's inputs to 16-bit steps and sum in integers,
exactly, with 16-bit multiply-adds (AVX2's pmaddwd, emitted as LLVM IR by `_int8_block`): about 1% error in the
outputs, from the weights. libm's exp and tanh are scalar calls (numba's pip build has no SVML), so `exp_into`
computes exp with the Cephes single-precision polynomial in a loop LLVM vectorizes; tanh and the sigmoid are
built from it.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401 - the BLAS that np.dot calls in compiled code: loaded now to be limited
from llvmlite import binding as llvm
from llvmlite import ir
from numba import carray, njit, types
from numba.core import cgutils
from numba.core.caching import FunctionCache
from numba.core.registry import CPUDispatcher
from numba.extending import intrinsic, overload
from threadpoolctl import ThreadpoolController

_BLAS = ThreadpoolController().select(user_api="blas")


def drop_stale_cache(namespace: dict) -> None:
    """numba keys each cached function to the file that defines it alone, but a function compiles what it calls
    from other modules into itself: after an edit of one of those files, its cached code would still run the old
    version. Called at the end of a module with its globals(): when the hash of the files its functions may
    compile in (compiled_sources) differs from the one kept beside the module's cache, every cached function of
    the module is dropped from the cache, to compile afresh at its next call."""
    cached = [f for f in namespace.values() if isinstance(f, CPUDispatcher) and isinstance(f._cache, FunctionCache)
              and f.py_func.__module__ == namespace["__name__"]]
    if not cached:
        return
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in compiled_sources(namespace))).hexdigest()
    stamp = Path(cached[0]._cache.cache_path) / f"{namespace['__name__'].rsplit('.', 1)[-1]}.sources"
    try:
        if stamp.exists() and stamp.read_text() == digest:
            return
        for function in cached:
            function._cache.flush()
        stamp.write_text(digest)
    except OSError:  # a cache folder we cannot write: numba caches nothing there either
        pass


def compiled_sources(namespace: dict) -> list[Path]:
    """The files whose code the compiled functions of a module (its globals(): `namespace`) may compile into
    themselves: the files of the compiled functions it names (its own, imported ones, and those that compile a
    plain function of another module, as fastgen's window rule), of the modules it names that define compiled
    functions, and so on through those modules' names. Sorted by module name."""
    found: dict[str, Path] = {}
    names = [namespace]
    while names:
        for value in list(names.pop().values()):
            if isinstance(value, CPUDispatcher):
                module = sys.modules[value.py_func.__module__]
            elif isinstance(value, ModuleType) and any(isinstance(v, CPUDispatcher) for v in vars(value).values()):
                module = value
            else:
                continue
            if module.__name__ not in found:
                found[module.__name__] = Path(module.__file__)
                names.append(vars(module))
    return [found[name] for name in sorted(found)]


def blas_threads(n: int):
    """Context manager: numpy's and scipy's BLAS (so numba's np.dot) limited to n threads. Its own threads only
    slow the small products of one step, and oversubscribe the cores when takes run on threads."""
    return _BLAS.limit(limits=n)


# nogil: streams on threads run on all cores; numpy's error model: a division by zero gives inf, with no check
# that would keep a loop of divisions from vectorizing
FAST = dict(cache=True, fastmath=True, nogil=True, error_model="numpy")
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


@njit(inline="always", **FAST)  # inlined into the step: a call per layer costs what its vector loops cost
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


@njit(inline="always", **FAST)
def copy_rows(src, dst):  # pragma: no cover - compiled
    """dst[:] = src for 2-D arrays of one shape, as a plain loop: numba compiles each slice assignment between
    arrays with its shape-mismatch error path, seconds of compile time per kind of array."""
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] = src[i, j]


def blocked(w: np.ndarray) -> np.ndarray:
    """Weights [..., O, I] -> [..., ceil(O / BLOCK), 2, I, HALF], what matvec_into reads (float32): each block of
    BLOCK output rows in two halves, each half stored input by input (the HALF weights of one input are one
    contiguous run, and a half is one sequential stream, as a pair of takes walks it), zero rows padding the last
    block. Output row o of the block is half o // HALF, lane o % HALF."""
    *lead, outputs, inputs = w.shape
    padded = np.zeros((*lead, -(-outputs // BLOCK) * BLOCK, inputs), w.dtype)
    padded[..., :outputs, :] = w
    halves = padded.reshape(*lead, -1, 2, HALF, inputs)
    return np.ascontiguousarray(halves.swapaxes(-1, -2))


def blocked_pairs(q: np.ndarray) -> np.ndarray:
    """int8 weights [..., O, I] -> [..., ceil(O / BLOCK), 2, ceil(I / 2), HALF, 2], what matvec_into reads: blocked,
    with the inputs taken by pairs (an output's weights of inputs 2p and 2p + 1 side by side, as a 16-bit
    multiply-add takes them), a zero column padding an odd last input."""
    if q.shape[-1] % 2:
        q = np.concatenate([q, np.zeros((*q.shape[:-1], 1), q.dtype)], axis=-1)
    halves = blocked(q)  # [..., blocks, 2, I, HALF]
    pairs = halves.reshape(*halves.shape[:-2], -1, 2, HALF)  # [..., blocks, 2, I / 2, 2 inputs, HALF]
    return np.ascontiguousarray(pairs.swapaxes(-1, -2))


def _stack_of(dtype: types.Type):
    """An intrinsic: stack(n), a pointer to n values of `dtype` in the calling function's stack frame (n a
    compile-time constant): an accumulator there can live in registers, which one in an array that might alias
    the operands cannot, and scratch there costs no allocation."""

    @intrinsic
    def stack(typingctx, n):
        if not isinstance(n, types.IntegerLiteral):
            return None

        def codegen(context, builder, signature, args):
            return cgutils.alloca_once(builder, context.get_value_type(dtype), size=n.literal_value)

        return types.CPointer(dtype)(n), codegen

    return stack


_stack_floats, _stack_int16s = _stack_of(types.float32), _stack_of(types.int16)


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
    blocked_pairs(q); the scales: unscaled(w), or quantize_rows's)."""
    if precision == "int8":
        q, scales = quantize_rows(w)
        return scales[..., None] * q, blocked_pairs(q), scales
    return w, blocked(w), unscaled(w)


@njit(inline="always", **EXACT)  # with _matvec inlined too, a caller calls the implementation directly
def matvec_into(wb, scales, x, b, out):  # pragma: no cover - compiled
    """out[t] = W @ x[t] + b for every take t: x [T, I], out [T, O], b [O]. W [O, I] comes as blocked(W) with
    empty `scales` (unscaled(W)): _matvec_fp32; or as blocked_pairs(q) with q, scales = quantize_rows(W), W[o] =
    scales[o] * q[o]: _matvec_int8. Either way a take's outputs do not depend on the other takes."""
    _matvec(wb, scales, x, b, out)


def _matvec(wb, scales, x, b, out):
    """matvec_into's implementation for its weights' type (chosen when the caller is compiled: the overload)."""
    (_matvec_int8 if wb.dtype == np.int8 else _matvec_fp32)(wb, scales, x, b, out)


@overload(_matvec, jit_options=EXACT, inline="always")
def _matvec_typed(wb, scales, x, b, out):
    product = _matvec_int8 if wb.dtype == types.int8 else _matvec_fp32
    return lambda wb, scales, x, b, out: product(wb, scales, x, b, out)


@njit(**EXACT)
def _matvec_fp32(wb, scales, x, b, out):  # pragma: no cover - compiled
    """matvec_into of float32 weights blocked(W). Each output is b[o] + w[o, 0] x[t, 0] + w[o, 1] x[t, 1] + ...,
    summed in input order with fused multiply-adds in registers: the same arithmetic whatever T. Takes go in pairs
    that share every weight load, one half block of outputs at a time (a sequential read of that half); an odd last
    take goes alone, a whole block at a time (its two halves side by side). A block's weights come from memory once
    per call and from cache for the other takes."""
    acc = carray(_stack_floats(BLOCK), BLOCK)
    takes, inputs = x.shape
    for ob in range(wb.shape[0]):
        for half in range(2):
            first = ob * BLOCK + half * HALF
            rows = min(HALF, b.shape[0] - first)
            for t in range(0, takes - 1, 2):
                for j in range(HALF):
                    acc[j] = b[first + j] if j < rows else np.float32(0.0)
                    acc[HALF + j] = acc[j]
                for i in range(inputs):
                    x0, x1 = x[t, i], x[t + 1, i]
                    for j in range(HALF):
                        w = wb[ob, half, i, j]
                        acc[j] += w * x0
                        acc[HALF + j] += w * x1
                for j in range(rows):
                    out[t, first + j] = acc[j]
                    out[t + 1, first + j] = acc[HALF + j]
        if takes % 2:
            t, first = takes - 1, ob * BLOCK
            rows = min(BLOCK, b.shape[0] - first)
            for j in range(BLOCK):
                acc[j] = b[first + j] if j < rows else np.float32(0.0)
            for i in range(inputs):
                xi = x[t, i]
                for j in range(HALF):
                    acc[j] += wb[ob, 0, i, j] * xi
                    acc[HALF + j] += wb[ob, 1, i, j] * xi
            for j in range(rows):
                out[t, first + j] = acc[j]


def _host_has_avx2() -> bool:
    try:
        return bool(llvm.get_host_cpu_features().get("avx2", False))
    except RuntimeError:  # features unknown on this platform
        return False


PMADDWD = _host_has_avx2()  # AVX2's 16-bit multiply-add instruction; elsewhere _madd_pairs's portable form
LANES = 8  # outputs per vector (int32 sums, float32 results)
BLOCK_VECTORS, HALF_VECTORS = BLOCK // LANES, HALF // LANES
STACK_INPUTS = 2048  # a take's inputs rounded to int16 fit the stack up to this many; more go to the heap
SCRATCH = 2 * STACK_INPUTS  # two takes' rounded inputs
INDEX, I32, F32 = ir.IntType(64), ir.IntType(32), ir.FloatType()
V16I8, V16I16, V8I32, V8F32 = (ir.VectorType(t, n) for t, n in ((ir.IntType(8), 16), (ir.IntType(16), 16),
                                                                   (I32, LANES), (F32, LANES)))


def _constant(value: int) -> ir.Constant:
    return ir.Constant(INDEX, value)


def _everywhere(builder: ir.IRBuilder, value: ir.Value, vector: ir.VectorType) -> ir.Value:
    """`value` in every lane of a `vector`."""
    one = builder.insert_element(ir.Constant(vector, None), value, ir.Constant(I32, 0))
    return builder.shuffle_vector(one, one, ir.Constant(V8I32, [0] * LANES))


def _madd_pairs(builder: ir.IRBuilder, a: ir.Value, b: ir.Value, native: bool) -> ir.Value:
    """<8 x i32> a[2i] b[2i] + a[2i + 1] b[2i + 1] of <16 x i16> a and b: one AVX2 pmaddwd where `native`, else
    the same sums in portable IR (even and odd lanes widened, multiplied, added)."""
    if native:
        pmaddwd = cgutils.get_or_insert_function(builder.module, ir.FunctionType(V8I32, [V16I16, V16I16]),
                                                 "llvm.x86.avx2.pmadd.wd")
        return builder.call(pmaddwd, [a, b])
    products = []
    for lane in (0, 1):
        lanes = ir.Constant(V8I32, [2 * i + lane for i in range(LANES)])
        products.append(builder.mul(builder.sext(builder.shuffle_vector(a, a, lanes), V8I32),
                                    builder.sext(builder.shuffle_vector(b, b, lanes), V8I32)))
    return builder.add(*products)


def _int8_block_of(native: bool):
    """The intrinsic _int8_block (below) with _madd_pairs's `native` choice."""

    @intrinsic
    def int8_block(typingctx, wb, ob, first, vectors, xq, takes, scales, b, steps, out, t0):
        """For takes t < `takes` and outputs o = ob * BLOCK + (first + v) * 8 + lane, v < `vectors` (both
        compile-time constants; o < O = len(b)): out[t0 + t, o] = b[o] + scales[o] * (steps[t] * sum), sum the
        exact int32 sum over the input pairs p of wb[ob, o % BLOCK // HALF, p, o % HALF, :] . xq[t, 2p:2p + 2] (wb
        int8 blocked_pairs, xq int16 [2, >= 2 * pairs]). The takes * vectors sums stay in registers over the pairs."""
        if not (isinstance(vectors, types.IntegerLiteral) and isinstance(takes, types.IntegerLiteral)):
            return None
        n_vectors, n_takes = vectors.literal_value, takes.literal_value

        def codegen(context, builder, signature, args):
            w, xq_, scales_, b_, steps_, out_ = (context.make_array(signature.args[i])(context, builder, args[i])
                                                 for i in (0, 4, 6, 7, 8, 9))
            ob_, first_, t0_ = args[1], args[2], args[10]
            pairs = cgutils.unpack_tuple(builder, w.shape)[2]
            per_pair = _constant(HALF_VECTORS)  # 16-byte loads of one pair's weights of HALF outputs
            weights = builder.bitcast(w.data, V16I8.as_pointer())
            starts = []  # where vector v's weights of pair 0 are: its half's stream, its place in a pair's row
            for v in range(n_vectors):
                vector = builder.add(first_, _constant(v))  # of the block
                half, place = builder.sdiv(vector, per_pair), builder.srem(vector, per_pair)
                stream = builder.add(builder.mul(ob_, _constant(2)), half)
                starts.append(builder.add(builder.mul(builder.mul(stream, pairs), per_pair), place))
            inputs = builder.bitcast(xq_.data, I32.as_pointer())  # a pair of int16 inputs as one int32
            row_pairs = builder.sdiv(cgutils.unpack_tuple(builder, xq_.shape)[1], _constant(2))
            sums = [cgutils.alloca_once_value(builder, ir.Constant(V8I32, [0] * LANES))
                    for _ in range(n_takes * n_vectors)]
            with cgutils.for_range(builder, pairs) as loop:
                p = loop.index
                x = [builder.bitcast(_everywhere(builder, builder.load(builder.gep(
                    inputs, [builder.add(builder.mul(_constant(t), row_pairs), p)])), V8I32), V16I16)
                    for t in range(n_takes)]
                row = builder.mul(p, per_pair)
                for v in range(n_vectors):
                    a = builder.sext(builder.load(builder.gep(weights, [builder.add(starts[v], row)]), align=1),
                                     V16I16)
                    for t in range(n_takes):
                        s = sums[t * n_vectors + v]
                        builder.store(builder.add(builder.load(s), _madd_pairs(builder, a, x[t], native)), s)
            outputs = cgutils.unpack_tuple(builder, b_.shape)[0]
            out_row = cgutils.unpack_tuple(builder, out_.strides)[0]
            for t in range(n_takes):
                step = builder.load(builder.gep(steps_.data, [_constant(t)]))
                row = builder.gep(builder.bitcast(out_.data, ir.IntType(8).as_pointer()),
                                  [builder.mul(builder.add(t0_, _constant(t)), out_row)])
                for v in range(n_vectors):
                    o = builder.add(builder.mul(ob_, _constant(BLOCK)),
                                    builder.mul(builder.add(first_, _constant(v)), _constant(LANES)))
                    _store_scaled(builder, builder.load(sums[t * n_vectors + v]), step, o, outputs, scales_.data,
                                  b_.data, builder.bitcast(row, F32.as_pointer()))
            return context.get_dummy_value()

        return types.void(wb, ob, first, vectors, xq, takes, scales, b, steps, out, t0), codegen

    return int8_block


def _store_scaled(builder: ir.IRBuilder, sums: ir.Value, step: ir.Value, o: ir.Value, outputs: ir.Value,
                  scales: ir.Value, b: ir.Value, out: ir.Value) -> None:
    """out[o + lane] = b[o + lane] + scales[o + lane] * (step * sums[lane]) for the lanes with o + lane < outputs
    (float32 pointers): a vector where all 8 are, lane by lane at the end of the outputs."""
    values = builder.sitofp(sums, V8F32)
    with builder.if_else(builder.icmp_signed(">=", builder.sub(outputs, o), _constant(LANES))) as (whole, part):
        with whole:
            def vector(pointer: ir.Value) -> ir.Value:
                return builder.bitcast(builder.gep(pointer, [o]), V8F32.as_pointer())

            scaled = builder.fmul(builder.load(vector(scales), align=4),
                                  builder.fmul(_everywhere(builder, step, V8F32), values))
            builder.store(builder.fadd(builder.load(vector(b), align=4), scaled), vector(out), align=4)
        with part:
            for lane in range(LANES):
                index = builder.add(o, _constant(lane))
                with builder.if_then(builder.icmp_signed("<", index, outputs)):
                    value = builder.extract_element(values, ir.Constant(I32, lane))
                    scaled = builder.fmul(builder.load(builder.gep(scales, [index])), builder.fmul(step, value))
                    builder.store(builder.fadd(builder.load(builder.gep(b, [index])), scaled),
                                  builder.gep(out, [index]))


_int8_block = _int8_block_of(PMADDWD)


@intrinsic
def _as_float(typingctx, bits):
    """The float32 whose bit pattern is the int32 `bits`."""
    if bits != types.int32:
        return None
    return types.float32(bits), lambda context, builder, signature, args: builder.bitcast(args[0], F32)


@njit(**FAST)
def _largest_magnitude(x):  # pragma: no cover - compiled
    """max |x[i]| of a float32 row, from the bit patterns with the sign cleared: finite floats order as those
    integers do, and an integer maximum vectorizes where a float one does not."""
    bits = x.view(np.int32)
    m = np.int32(0)
    for i in range(x.shape[0]):
        v = np.int32(bits[i] & np.int32(0x7FFFFFFF))
        m = v if v > m else m
    return _as_float(m)


@njit(**EXACT)
def _matvec_int8(wb, scales, x, b, out):  # pragma: no cover - compiled
    """matvec_into of int8 weights blocked_pairs(q): out[t, o] = b[o] + scales[o] * (s_t * sum_i q[o, i] xq[t, i])
    where each take's inputs are rounded to 16-bit steps, xq[t] = rint(x[t] / s_t), s_t = max |x[t]| / qmax (qmax
    keeps the int32 sums from overflowing), and the sums are exact in integers (_int8_block): 16-bit multiply-adds
    take half the instructions per weight of converting each weight to float. Takes go in pairs (half a block of
    outputs each), an odd last take alone."""
    takes, inputs = x.shape
    padded = inputs + inputs % 2
    on_stack = padded <= STACK_INPUTS
    xq = carray(_stack_int16s(SCRATCH), (2, STACK_INPUTS)) if on_stack else np.empty((2, padded), np.int16)
    steps = carray(_stack_floats(2), 2)
    qmax = min(32767, 2147483647 // (127 * padded))
    for t in range(0, takes, 2):
        group = min(2, takes - t)
        for g in range(group):
            largest = _largest_magnitude(x[t + g])
            steps[g] = largest / np.float32(qmax) if largest > 0 else np.float32(1.0)
            inverse = np.float32(1.0) / steps[g]
            for i in range(inputs):
                xq[g, i] = np.int16(np.rint(x[t + g, i] * inverse))
            if inputs % 2:
                xq[g, inputs] = 0  # the zero weight column of an odd input count meets a zero input
        for ob in range(wb.shape[0]):
            if group == 2:
                for half in range(0, BLOCK, HALF):
                    _int8_block(wb, ob, half // LANES, HALF_VECTORS, xq, 2, scales, b, steps, out, t)
            else:
                _int8_block(wb, ob, 0, BLOCK_VECTORS, xq, 1, scales, b, steps, out, t)


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
