"""The losses of the paper (Sec. III-D4) and mu-law quantization.

    mse, mae   continuous outputs (tanh, in [-1, 1]) vs the target samples; mean per sample per channel
    ce         the proper categorical cross-entropy: logits [..., C, 256] vs mu-law classes of the target;
               nats per sample per channel (`nats_to_bits` for bits)
    paper_ce   the literal reading of the paper's cross-entropy (see `paper_ce`): NOT a likelihood

Shapes: `output` is [B, C] / [B, L, C] (continuous) or [B, C, 256] / [B, L, C, 256] (ce); `target` is [B, C] /
[B, L, C] floats in [-1, 1]. `mask` ([B] / [B, L], bool or float weights) selects the scored positions, e.g.
causal windows after their warm-up, or the real samples of a zero-padded deep-fusion frame.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from foleylib.models.config import LOSSES

MU = 255


def mulaw_encode(x: torch.Tensor, mu: int = MU) -> torch.Tensor:
    """Float samples in [-1, 1] (clamped) -> long classes 0 .. mu by mu-law companding and rounding.

    0 -> 128 (for mu = 255), +1 -> 255, -1 -> 0. The round trip through `mulaw_decode` is off by at most
    ~0.0222 * (|x| + 1/mu): about 1e-4 near silence, 0.022 near full scale.
    """
    x = x.clamp(-1.0, 1.0)
    y = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)  # companded, in [-1, 1]
    return torch.floor((y + 1) / 2 * mu + 0.5).long()


def mulaw_decode(classes: torch.Tensor, mu: int = MU) -> torch.Tensor:
    """Classes 0 .. mu -> float samples in [-1, 1] (the inverse companding of each class's center)."""
    y = 2 * classes.float() / mu - 1
    return torch.sign(y) * ((1 + mu) ** y.abs() - 1) / mu


def nats_to_bits(x: float | torch.Tensor) -> float | torch.Tensor:
    """Nats -> bits (divide by ln 2)."""
    return x / math.log(2)


def masked_mean(per_position: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of per-position losses [B] / [B, L], weighted by mask (same shape) when given."""
    if mask is None:
        return per_position.mean()
    mask = mask.to(per_position.dtype)
    return (per_position * mask).sum() / mask.sum().clamp_min(1e-8)


def mse(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error per sample per channel."""
    return masked_mean((output - target).pow(2).mean(-1), mask)


def mae(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error per sample per channel."""
    return masked_mean((output - target).abs().mean(-1), mask)


def ce_per_position(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mu-law NLL in nats per position (mean over channels): logits [..., C, 256], target [..., C] -> [...]."""
    nll = F.cross_entropy(output.flatten(0, -2), mulaw_encode(target).flatten(), reduction="none")
    return nll.view(target.shape).mean(-1)


def ce(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Categorical cross-entropy of mu-law classes: logits [..., C, 256] vs target [..., C] in [-1, 1].

    Nats per sample per channel (a proper negative log-likelihood: >= 0, log(256) = 5.545 for a uniform guess).
    """
    return masked_mean(ce_per_position(output, target), mask)


def paper_ce(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The paper's "cross-entropy", read literally: -sum_c target_c * log_softmax(output)_c, over the CHANNELS.

    output: the model's continuous output [..., C], i.e. AFTER its final tanh (what a PyTorch
    nn.CrossEntropyLoss(output, target) with float targets sees for [B, 2] outputs: it softmaxes dim 1, the two
    channels). target: the raw samples [..., C] in [-1, 1], used as if they were probabilities. Averaged over
    positions (summed over channels).

    What it is: a soft-target cross-entropy between a softmax over the C channels and "weights" that are the
    signed target samples. What it is not: a likelihood (targets are not a distribution: they can be negative
    and need not sum to 1), so it can be negative (targets (-1, -1) with equal outputs give -2 ln 2), which is
    how the paper's Table I has negative values. It is invariant to adding one offset to all channels of the
    output (softmax is), so it cannot pin the absolute output level (the paper's +/-0.6 resting level, Fig. 11);
    with C = 1 it is constant (0). Minimizing it pushes a channel with a negative target towards the lowest
    output and one with a positive target towards the highest: it rewards the sign pattern across channels, not
    the waveform. On unbounded outputs it would fall without bound; on tanh outputs it is bounded. Compare
    models with `ce` (mu-law, nats); this one is here to reproduce the paper's numbers.
    """
    per_position = -(target * F.log_softmax(output, dim=-1)).sum(-1)  # [...]
    return masked_mean(per_position, mask)


LOSS_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = dict(zip(LOSSES, (mse, mae, ce, paper_ce)))  # by name


def loss_fn(name: str) -> Callable[..., torch.Tensor]:
    """The loss function `f(output, target, mask=None) -> scalar` of a name; unknown names are refused."""
    try:
        return LOSS_FUNCTIONS[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}") from None


def compute_loss(name: str, output: torch.Tensor, target: torch.Tensor,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """Scalar loss `name` of a model output against target samples (see the module docstring for shapes)."""
    return loss_fn(name)(output, target, mask)
