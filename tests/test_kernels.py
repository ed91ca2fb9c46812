"""The numba primitives of the fused generation loops against numpy/torch on the same inputs."""
import numpy as np
import torch

from foleylib.generation import kernels
from foleylib.generation.kernels import BLOCK, blocked, exp_into, gated_into, layer_norm_into, matvec_into, softmax_into


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
    assert wb.shape == (2, 37, BLOCK) and np.all(wb[1, :, 9:] == 0)  # rows padded to whole blocks
    np.testing.assert_array_equal(wb[0, 5], w[:BLOCK, 5])  # a block's weights of one input are contiguous
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


def test_int8_products_equal_float32_products_of_the_dequantized_weights():
    rng = np.random.default_rng(3)
    w, x, b = (rng.standard_normal(s).astype(np.float32) for s in ((BLOCK + 9, 37), (3, 37), BLOCK + 9))
    q, scales = kernels.quantize_rows(w)
    assert np.all(np.abs(scales[:, None] * q - w) <= scales[:, None] / 2 * (1 + 1e-6))  # half a step at most
    out = np.empty((3, BLOCK + 9), np.float32)
    matvec_into(blocked(q), scales, x, b, out)
    dequantized = (scales[:, None] * q.astype(np.float64))
    np.testing.assert_allclose(out, x @ dequantized.T + b, rtol=1e-5, atol=1e-5)
    for t in range(3):  # one take alone and in pairs: the same arithmetic
        one = np.empty((1, BLOCK + 9), np.float32)
        matvec_into(blocked(q), scales, x[t:t + 1], b, one)
        np.testing.assert_array_equal(one[0], out[t])


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
