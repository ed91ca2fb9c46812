"""The numba primitives of the fused generation loops against numpy/torch on the same inputs."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from numba import njit

from foleylib.generation import kernels
from foleylib.generation.kernels import (
    BLOCK,
    HALF,
    blocked,
    exp_into,
    gated_into,
    layer_norm_into,
    matvec_into,
    softmax_into,
)


def test_exp_into_matches_exp_over_the_float32_range():
    x = np.linspace(-87, 88, 200_001, dtype=np.float32)
    out = np.empty_like(x)
    exp_into(x, out)
    truth = np.exp(x.astype(np.float64))
    assert np.max(np.abs(out - truth) / truth) < 3e-7
    clamped = np.empty(2, np.float32)  # inputs are clamped to [-87, 88]: no overflow into the sign bit
    exp_into(np.array([-200.0, 200.0], np.float32), clamped)
    assert np.all(np.isfinite(clamped)) and clamped[0] > 0 and clamped[1] > 1e38


def test_gated_into_is_tanh_times_sigmoid():
    rng = np.random.default_rng(0)
    z = (rng.standard_normal(64) * 6).astype(np.float32)
    out = np.empty(32, np.float32)
    gated_into(z.copy(), np.empty(64, np.float32), out)
    truth = np.tanh(z[:32].astype(np.float64)) / (1 + np.exp(-z[32:].astype(np.float64)))
    assert np.max(np.abs(out - truth)) < 1e-6


def test_matvec_sums_every_take_in_input_order_whatever_the_number_of_takes():
    rng = np.random.default_rng(2)
    w, x, b = (rng.standard_normal(s).astype(np.float32) for s in ((BLOCK + 9, 37), (3, 37), BLOCK + 9))
    wb = blocked(w)
    assert wb.shape == (2, 2, 37, HALF)  # blocks of two halves
    assert np.all(wb[1, 0, :, 9:] == 0) and np.all(wb[1, 1] == 0)  # rows padded to whole blocks
    np.testing.assert_array_equal(wb[0, 1, 5], w[HALF:BLOCK, 5])  # a half block's weights of one input: contiguous
    out = np.full((3, BLOCK + 9), np.nan, np.float32)
    matvec_into(wb, kernels.unscaled(w), x, b, out)
    np.testing.assert_allclose(out, x @ w.T + b, rtol=1e-5, atol=1e-5)
    one = np.empty((1, BLOCK + 9), np.float32)
    matvec_into(wb, kernels.UNSCALED, x[1:2], b, one)
    np.testing.assert_array_equal(one[0], out[1])  # a take's outputs do not depend on the other takes


def test_quantize_rows_by_hand():
    w = np.array([[0.5, -1.27, 0.0], [0.0, 0.0, 0.0], [2.54, 1.0, -0.01]], np.float32)
    q, scales = kernels.quantize_rows(w)
    assert q.dtype == np.int8 and scales.dtype == np.float32
    np.testing.assert_allclose(scales, [0.01, 0.0, 0.02], rtol=1e-6)  # each row's largest magnitude -> 127
    np.testing.assert_array_equal(q, [[50, -127, 0], [0, 0, 0], [127, 50, 0]])  # -0.01 / 0.02 = -0.5 rounds to even


def _int8_products_by_hand(q, scales, x, b):
    """The definition of matvec_into's int8 products, in float64: each take's inputs rounded to 16-bit steps
    s = max |x| / qmax (the steps and the rounding in float32, as the kernel does), summed exactly, scaled."""
    inputs = x.shape[1] + x.shape[1] % 2
    qmax = min(32767, (2 ** 31 - 1) // (127 * inputs))
    step = np.abs(x).max(axis=1) / np.float32(qmax)
    rounded = np.rint(x * (np.float32(1.0) / step)[:, None]).astype(np.int64)
    sums = rounded @ q.astype(np.int64).T  # exact
    return b + scales * (step.astype(np.float64)[:, None] * sums), rounded


@pytest.mark.parametrize("inputs", [37, 2 * kernels.STACK_INPUTS + 7])  # odd, and more inputs than a chunk
def test_int8_products_sum_the_int16_rounded_inputs_exactly(inputs):
    rng = np.random.default_rng(3)
    w, x, b = (rng.standard_normal(s).astype(np.float32) for s in ((BLOCK + 9, inputs), (3, inputs), BLOCK + 9))
    q, scales = kernels.quantize_rows(w)
    assert np.all(np.abs(scales[:, None] * q - w) <= scales[:, None] / 2 * (1 + 1e-6))  # half a step at most
    qb = kernels.blocked_pairs(q)
    pairs = (inputs + 1) // 2
    assert qb.shape == (2, 2, pairs, HALF, 2)  # blocks of two halves
    assert np.all(qb[1, 0, :, 9:] == 0) and np.all(qb[1, 1] == 0)  # rows padded to whole blocks
    np.testing.assert_array_equal(qb[0, 1, 5], q[HALF:BLOCK, 10:12])  # inputs 10 and 11 side by side
    assert np.all(qb[:, :, -1, :, 1] == 0)  # the odd last input's pair is padded with a zero weight
    out = np.full((3, BLOCK + 9), np.nan, np.float32)
    matvec_into(qb, scales, x, b, out)
    truth, rounded = _int8_products_by_hand(q, scales, x, b)
    assert np.abs(rounded).max() <= 32767
    np.testing.assert_allclose(out, truth, rtol=1e-5, atol=1e-5)
    dequantized = x @ (scales[:, None] * q.astype(np.float64)).T + b  # the rounding of the inputs costs little
    assert np.abs(out - dequantized).max() < 1e-3 * np.abs(dequantized).max()
    for t in range(3):  # one take alone and in pairs: the same arithmetic
        one = np.empty((1, BLOCK + 9), np.float32)
        matvec_into(qb, scales, x[t:t + 1], b, one)
        np.testing.assert_array_equal(one[0], out[t])


def test_the_portable_pair_products_equal_the_avx2_instruction():
    """int8 products sum int8 weights times int16 inputs with AVX2's pmaddwd where the CPU has it, else with
    portable IR: both must give the exact integer sums, at the extremes of both types too (scales and steps of 1,
    biases of 0: the outputs are the sums)."""
    rng = np.random.default_rng(4)
    q = rng.integers(-127, 128, (BLOCK - 3, 40), dtype=np.int8)  # a last vector of 5 outputs
    q[:, :4] = [[127, -127, 127, -127]]
    xq = np.zeros((2, kernels.STACK_INPUTS), np.int16)
    xq[0, :40] = rng.integers(-32767, 32768, 40)
    xq[0, :4] = [32767, -32767, -32767, 32767]
    truth = (q.astype(np.int64) @ xq[0, :40].astype(np.int64)).astype(np.float32)
    ones = np.ones(BLOCK - 3, np.float32)
    for native in [False, True] if kernels.PMADDWD else [False]:
        out = np.full((1, BLOCK - 3), np.nan, np.float32)
        _one_int8_block(native)(kernels.blocked_pairs(q), xq, ones, 0 * ones, np.ones(2, np.float32), out)
        np.testing.assert_array_equal(out[0], truth)


def _one_int8_block(native: bool):
    """A compiled call of the int8 kernel's block (one take, all 8 vectors of block 0) built with `native`."""
    int8_block = kernels._int8_block_of(native)

    @njit
    def one_block(wb, xq, scales, b, steps, out):
        int8_block(wb, 0, 0, 8, xq, 1, scales, b, steps, out, 0)

    return one_block


def test_layer_norm_and_softmax_match_torch():
    rng = np.random.default_rng(1)
    w, x, b = (rng.standard_normal(s).astype(np.float32) for s in ((48, 32), 32, 48))
    out = w @ x + b
    gain, shift = rng.standard_normal(48).astype(np.float32), rng.standard_normal(48).astype(np.float32)
    normed = np.empty(48, np.float32)
    layer_norm_into(out, gain, shift, 1e-5, normed)
    truth = torch.nn.functional.layer_norm(torch.from_numpy(out), (48,), torch.from_numpy(gain),
                                           torch.from_numpy(shift), 1e-5).numpy()
    np.testing.assert_allclose(normed, truth, atol=1e-5)
    probs = np.empty(48, np.float32)
    softmax_into(out.copy(), probs)
    np.testing.assert_allclose(probs, torch.softmax(torch.from_numpy(out), 0).numpy(), atol=1e-6)
    assert abs(probs.sum() - 1) < 1e-5


CALLEES = {  # how a compiled caller reaches the callee module's code: callee.py's source, the caller's lines
    "compiled function": ("from numba import njit\n\n\n@njit(cache=True)\ndef value():\n    return {}\n",
                          "import callee\n", "callee.value()"),
    "plain function compiled by the caller": ("def value():\n    return {}\n",  # as fastgen's window rule
                                              "from callee import value\n\n_value = njit(cache=True)(value)\n",
                                              "_value()"),
}


@pytest.mark.parametrize("way", CALLEES)
def test_a_cached_function_compiles_afresh_when_a_module_it_calls_is_edited(tmp_path, way):
    """numba's cache alone keys a function to its own file: after an edit of a module it calls, it would still run
    its compiled copy of the old code. drop_stale_cache, called as fastgen and sampling call it, drops it."""
    callee, imports, call = CALLEES[way]
    (tmp_path / "callee.py").write_text(callee.format(1))
    (tmp_path / "caller.py").write_text(
        f"from numba import njit\n\nfrom foleylib.generation import kernels\n{imports}\n\n"
        f"@njit(cache=True)\ndef twice():\n    return 2 * {call}\n\n\nkernels.drop_stale_cache(globals())\n")

    def twice() -> str:
        return subprocess.run([sys.executable, "-c", "import caller; print(caller.twice())"], cwd=tmp_path,
                              capture_output=True, text=True, check=True).stdout.strip()

    assert twice() == "2"
    assert twice() == "2" and list((tmp_path / "__pycache__").glob("caller.twice-*.nbc"))  # from the cache
    (tmp_path / "callee.py").write_text(callee.format(50))
    assert twice() == "100"  # without drop_stale_cache: "2", the caller's cached copy of the old callee

