"""mu-law quantization and the four losses (mse, mae, ce, paper_ce)."""
import math

import pytest
import torch

from foleylib.models.losses import LOSSES, compute_loss, loss_fn, mulaw_decode, mulaw_encode, nats_to_bits, paper_ce


def test_mulaw_known_values():
    assert mulaw_encode(torch.tensor([-1.0, 0.0, 1.0])).tolist() == [0, 128, 255]
    assert mulaw_encode(torch.tensor([-3.0, 2.0])).tolist() == [0, 255]  # clamped
    assert mulaw_encode(torch.tensor([0.0])).dtype == torch.long
    torch.testing.assert_close(mulaw_decode(torch.tensor([0, 255])), torch.tensor([-1.0, 1.0]))
    assert abs(float(mulaw_decode(torch.tensor(128)))) < 1e-4  # the class of silence decodes near 0


def test_mulaw_round_trip_error_is_that_of_an_8_bit_mulaw_quantizer():
    x = torch.linspace(-1, 1, 200_001)
    err = (mulaw_decode(mulaw_encode(x)) - x).abs()
    # rounding in the companded domain is off by <= 1/mu; the expansion's slope there is at most
    # ln(1 + mu) / mu * (1 + mu |x|) * (1 + mu)^(1/mu), so |error| <= 0.02223 * (|x| + 1/mu)
    bound = math.log1p(255) / 255 * 256 ** (1 / 255) * (x.abs() + 1 / 255) + 1e-6
    assert (err <= bound).all()
    assert err.max() < 0.023 and err[x.abs() < 0.01].max() < 3e-4
    classes = torch.arange(256)
    assert mulaw_encode(mulaw_decode(classes)).tolist() == classes.tolist()  # every class survives


def test_mse_mae_and_mask():
    out = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])  # [B=1, L=2, C=2]
    target = torch.tensor([[[0.5, -0.5], [0.0, 1.0]]])
    assert float(compute_loss("mse", out, target)) == pytest.approx((0.25 + 0.25 + 1 + 0) / 4)
    assert float(compute_loss("mae", out, target)) == pytest.approx((0.5 + 0.5 + 1 + 0) / 4)
    mask = torch.tensor([[False, True]])
    assert float(compute_loss("mse", out, target, mask)) == pytest.approx(0.5)
    assert float(compute_loss("mae", out, target, mask.float())) == pytest.approx(0.5)


def test_ce_is_nats_per_sample_per_channel():
    target = torch.tensor([[0.0, 1.0]])  # classes 128 and 255
    uniform = torch.zeros(1, 2, 256)
    assert float(compute_loss("ce", uniform, target)) == pytest.approx(math.log(256))
    assert float(nats_to_bits(compute_loss("ce", uniform, target))) == pytest.approx(8.0)
    sure = torch.full((1, 2, 256), -30.0)
    sure[0, 0, 128] = sure[0, 1, 255] = 30.0
    assert float(compute_loss("ce", sure, target)) < 1e-6
    half = uniform.clone()
    half[0, 1, 255] = 50.0  # channel 1 certain, channel 0 uniform
    assert float(compute_loss("ce", half, target)) == pytest.approx(math.log(256) / 2)
    seq = torch.zeros(2, 5, 1, 256)  # [B, L, C, 256] with a mask over [B, L]
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[:, 3:] = True
    assert float(compute_loss("ce", seq, torch.zeros(2, 5, 1), mask)) == pytest.approx(math.log(256))


def test_paper_ce_hand_computed():
    out = torch.tensor([[0.5, -0.5]])  # one position, two channels
    target = torch.tensor([[0.3, 0.8]])
    lse = math.log(math.exp(0.5) + math.exp(-0.5))
    expected = -(0.3 * (0.5 - lse) + 0.8 * (-0.5 - lse))
    assert float(paper_ce(out, target)) == pytest.approx(expected)
    assert float(compute_loss("paper_ce", out, target)) == pytest.approx(1.14458, abs=1e-5)


def test_paper_ce_can_be_negative_and_ignores_a_common_offset():
    target = torch.tensor([[-1.0, -1.0], [-0.5, 0.2]])
    out = torch.tensor([[0.0, 0.0], [-0.9, 0.9]])
    assert float(paper_ce(out[:1], target[:1])) == pytest.approx(-2 * math.log(2))  # negative: not a likelihood
    assert float(paper_ce(out, target)) < 0
    torch.manual_seed(0)
    out, target = torch.randn(4, 7, 2), torch.rand(4, 7, 2) * 2 - 1
    for offset in (-0.6, 0.6, 3.0):  # the paper's +/-0.6 resting level costs nothing
        torch.testing.assert_close(paper_ce(out + offset, target), paper_ce(out, target))
    assert float(paper_ce(torch.randn(3, 1), torch.rand(3, 1))) == 0.0  # one channel: constant


def test_unknown_loss_is_refused():
    assert set(LOSSES) == {"mse", "mae", "ce", "paper_ce"}
    assert loss_fn("mae") is not None
    with pytest.raises(ValueError, match="choose one of mse, mae, ce, paper_ce"):
        compute_loss("l1", torch.zeros(1, 2), torch.zeros(1, 2))


@pytest.mark.parametrize("name", ["mse", "mae", "ce", "paper_ce"])
def test_losses_give_gradients(name):
    torch.manual_seed(0)
    out = torch.randn(2, 3, 2, 256 if name == "ce" else 1).squeeze(-1).requires_grad_(True)
    loss = compute_loss(name, out, torch.rand(2, 3, 2) * 2 - 1, torch.tensor([[1, 1, 0], [0, 1, 1]]))
    loss.backward()
    assert loss.dim() == 0 and torch.isfinite(out.grad).all() and out.grad.abs().sum() > 0
