"""Fast WaveNet generation (Paine et al. 2016) fused into compiled (numba) loops.

Each layer keeps a ring buffer of its past inputs, so a step costs one column of every convolution instead of a
forward pass over the receptive field. Done with torch ops, a step is some 15 small ops per layer, each costing
microseconds of dispatch: overhead, not arithmetic, bounds it. Here a whole run of samples (one video frame's)
is one numba call: input conv, every layer's dilated taps from its ring, gates, skips, residuals, the dense head
and the mu-law draw, over float32 weights copied from the model, in preallocated buffers. It runs on the CPU
whatever device the model is on (one stream of sample-by-sample generation is latency-bound). Outputs equal the
full forward within float32 rounding (tests check < 1e-4).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from numba import njit

from foleylib.generation.kernels import FAST, affine_into, gated_into, layer_norm_into, softmax_into
from foleylib.generation.sampling import MULAW_VALUES, sample_classes
from foleylib.models.transformer import AVTransformer
from foleylib.models.wavenet import WaveNet

if TYPE_CHECKING:
    from foleylib.generation.generate import Sampler


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().float().cpu().numpy())


class FusedStepper:
    """What both fused steppers share: run() a frame's samples (sampled or teacher-forced), step() one (tests).
    Subclasses hold the model's weights and state, `channels`, `classes`, `out` and the compiled `_call`."""

    channels: int
    classes: int
    out: np.ndarray

    def _call(self, previous: np.ndarray, n: int, given: np.ndarray, temperature: float, top_p: float,
              uniforms: np.ndarray, audio: np.ndarray) -> None:
        raise NotImplementedError

    def run(self, previous: np.ndarray, n: int, sampler: Sampler | None = None,
            given: np.ndarray | None = None) -> np.ndarray:
        """n steps from `previous` [C] (the sample before the first step). With `given` [n, C] the inputs are those
        samples (teacher forcing: the caches fill, nothing is sampled); else each step's output is sampled by
        `sampler` and fed to the next step. Returns the n sampled values [n, C] (zeros when teacher-forced)."""
        C = self.channels
        audio = np.zeros((n, C), np.float32)
        draw = sampler is not None and self.classes > 1 and sampler.temperature > 0
        uniforms = sampler.rng.random((n, C)) if draw else np.zeros((n, C))
        temperature, top_p = (sampler.temperature, sampler.top_p) if sampler is not None else (1.0, 1.0)
        inputs = np.zeros((0, C), np.float32) if given is None else np.ascontiguousarray(given, np.float32)
        self._call(np.ascontiguousarray(previous, np.float32), n, inputs, temperature, top_p, uniforms, audio)
        return audio

    def start_padded(self, e: torch.Tensor) -> None:
        """Reset to the state the naive path has before sample 0, its zero padding: zero samples, with the frame
        on screen that of an all-black window, whose embedding is e [1, d]."""
        raise NotImplementedError

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """x [1, C]: the previous sample -> this position's output [1, C] (tanh) or logits [1, C, 256]."""
        self.run(_np(x[0]), 1, given=_np(x))
        y = torch.from_numpy(self.out.copy())[None]
        return torch.tanh(y) if self.classes == 1 else y.view(1, self.channels, self.classes)


class FastWaveNetStepper(FusedStepper):
    """Cached generation for a causal WaveNet, one stream: set_frame(e) once per video frame, then run() a frame's
    samples (or step() one, for tests). The skip projections are linear, so their sum is one product of the
    stacked skip weights with all layers' gated outputs, after the last layer."""

    def __init__(self, model: WaveNet):
        if model.cfg.mode != "causal":
            raise ValueError("FastWaveNetStepper needs a causal-mode WaveNet")
        cfg, layers = model.cfg, model.layers
        self.model, self.k, self.channels, self.classes = model, cfg.kernel_size, cfg.channels, model.classes
        r, s, L = cfg.residual_channels, cfg.skip_channels, len(layers)
        self.input_w = _np(model.input_conv.weight.permute(0, 2, 1).reshape(r, -1))  # [r, k*C], oldest lag first
        self.input_b = _np(model.input_conv.bias)
        self.dilated_w = np.stack([_np(la.dilated.weight.permute(0, 2, 1).reshape(2 * r, -1)) for la in layers])
        self.dilated_b = np.stack([_np(la.dilated.bias) for la in layers])  # [L, 2r]
        self.skip_w = np.ascontiguousarray(np.concatenate([_np(la.skip.weight[..., 0]) for la in layers], axis=1))
        self.skip_b = np.sum([_np(la.skip.bias) for la in layers], axis=0)  # [s, L*r] and [s]: the summed skips
        zeros = torch.zeros(r, r), torch.zeros(r)  # the last layer has no residual output
        self.res_w = np.stack([_np(la.res.weight[..., 0] if la.res is not None else zeros[0]) for la in layers])
        self.res_b = np.stack([_np(la.res.bias if la.res is not None else zeros[1]) for la in layers])
        head = model.head  # ReLU, Linear(s, s), ReLU, Linear(s, C * classes)
        self.head_w1, self.head_b1, self.head_w2, self.head_b2 = (_np(head[1].weight), _np(head[1].bias),
                                                                  _np(head[3].weight), _np(head[3].bias))
        self.dilations = np.array([la.dilation for la in layers], np.int64)
        self.lengths = (self.k - 1) * self.dilations + 1  # each layer's ring holds the inputs its taps reach
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        self.rings = np.zeros((int(self.lengths.sum()), r), np.float32)
        self.positions = np.zeros(L, np.int64)  # where each ring's newest input is
        self.input_hist = np.zeros((self.k, self.channels), np.float32)
        self.bias_cond = self.dilated_b.copy()  # dilated bias + the frame's conditioning, [L, 2r]
        self.gated = np.zeros((L, r), np.float32)  # every layer's gated output, for the summed skips
        self.out = np.zeros(self.channels * self.classes, np.float32)
        self.work = np.zeros(6 * r + self.k * r + 2 * s, np.float32)  # scratch: z, exp, h, res, taps, skip, hidden

    def flops_per_step(self) -> int:
        """Floating-point operations of the products in one step (2 per multiply-add; activations not counted)."""
        macs = (self.input_w.size + self.dilated_w.size + self.res_w[:-1].size + self.skip_w.size
                + self.head_w1.size + self.head_w2.size)
        return 2 * int(macs)

    @torch.no_grad()
    def set_frame(self, e: torch.Tensor) -> None:
        """e [1, cond]: the embedding of the frame now on screen (model.frames of its n-frame window)."""
        self.bias_cond = self.dilated_b + np.stack([_np(layer.cond(e)[0]) for layer in self.model.layers])

    def start_padded(self, e: torch.Tensor) -> None:
        """See FusedStepper. The naive windows reach back before sample 0, where the padding passes through every
        layer (biases and conditioning make its activations non-zero). Padded positions all see the same inputs,
        so each layer's queue holds one constant activation: receptive_field zero steps fill every queue with it."""
        self.set_frame(e)
        zeros = np.zeros((self.model.receptive_field, self.channels), np.float32)
        self.run(zeros[0], len(zeros), given=zeros)

    def _call(self, previous, n, given, temperature, top_p, uniforms, audio) -> None:
        _run(previous, n, given, temperature, top_p, uniforms, MULAW_VALUES, audio, self.input_hist, self.input_w,
             self.input_b, self.rings, self.offsets, self.lengths, self.positions, self.dilations, self.dilated_w,
             self.bias_cond, self.gated, self.skip_w, self.skip_b, self.res_w, self.res_b, self.head_w1,
             self.head_b1, self.head_w2, self.head_b2, self.work, self.out)


@njit(**FAST)
def _run(previous, n, given, temperature, top_p, uniforms, values, audio, input_hist, input_w, input_b, rings,
         offsets, lengths, positions, dilations, dilated_w, bias_cond, gated, skip_w, skip_b, res_w, res_b, w1, b1,
         w2, b2, work, out):  # pragma: no cover - compiled
    """n steps (see FusedStepper.run): step j's input is given[j - 1] (previous for j = 0) when given is
    not empty, else the sample drawn at step j - 1, which is written to audio[j]."""
    x = previous.copy()
    for j in range(n):
        _step(x, input_hist, input_w, input_b, rings, offsets, lengths, positions, dilations, dilated_w, bias_cond,
              gated, skip_w, skip_b, res_w, res_b, w1, b1, w2, b2, work, out)
        _next_input(x, j, out, given, temperature, top_p, uniforms, values, audio)


@njit(**FAST)
def _next_input(x, j, out, given, temperature, top_p, uniforms, values, audio):  # pragma: no cover - compiled
    """After step j, the next step's input x [C]: given[j] (teacher forcing), else the value drawn from the head's
    output `out` (tanh, or mu-law logits at `temperature` with `uniforms[j]`), which is also written to audio[j]."""
    if given.shape[0]:
        x[:] = given[j]
        return
    C = x.shape[0]
    logits = out.reshape(C, -1)
    if logits.shape[1] == 1:
        x[:] = np.tanh(out)
    elif temperature == 0:
        for c in range(C):
            x[c] = values[np.argmax(logits[c])]
    else:
        classes = sample_classes(logits, temperature, top_p, uniforms[j])
        for c in range(C):
            x[c] = values[classes[c]]
    audio[j] = x


@njit(**FAST)
def _step(x, input_hist, input_w, input_b, rings, offsets, lengths, positions, dilations, dilated_w, bias_cond,
          gated, skip_w, skip_b, res_w, res_b, w1, b1, w2, b2, work, out):  # pragma: no cover - compiled
    """One sample through the whole network (see FastWaveNetStepper); writes the head's output into `out`."""
    k = input_hist.shape[0]
    r = input_w.shape[0]
    s = skip_w.shape[0]
    z, e, h, res = work[:2 * r], work[2 * r:4 * r], work[4 * r:5 * r], work[5 * r:6 * r]
    taps, skip, hidden = work[6 * r:(6 + k) * r], work[(6 + k) * r:(6 + k) * r + s], work[(6 + k) * r + s:]
    for j in range(k - 1):  # the input conv's window slides by one sample
        input_hist[j] = input_hist[j + 1]
    input_hist[k - 1] = x
    affine_into(input_w, input_hist.ravel(), input_b, h)
    for i in range(len(dilations)):
        n, d, o = lengths[i], dilations[i], offsets[i]
        p = (positions[i] + 1) % n
        positions[i] = p
        rings[o + p] = h
        for j in range(k):  # taps at lags (k-1)d, ..., d, 0: oldest first, as the weights are laid out
            taps[j * r:(j + 1) * r] = rings[o + (p - (k - 1 - j) * d) % n]
        affine_into(dilated_w[i], taps, bias_cond[i], z)
        gated_into(z, e, gated[i])
        if i < len(dilations) - 1:
            affine_into(res_w[i], gated[i], res_b[i], res)
            h += res
    affine_into(skip_w, gated.ravel(), skip_b, skip)
    np.maximum(skip, np.float32(0.0), skip)
    affine_into(w1, skip, b1, hidden)
    np.maximum(hidden, np.float32(0.0), hidden)
    affine_into(w2, hidden, b2, out)


class FastTransformerStepper(FusedStepper):
    """Cached generation for the causal transformer, one stream, fused like FastWaveNetStepper: each new token
    runs every layer against cached keys and values in one numba call per run of samples. When the cache holds
    max_context tokens, the oldest hop are dropped and the rest re-encoded as one block (matrix products and a
    causal mask, which equals encoding them token by token), exactly the windows forward_causal trains on."""

    def __init__(self, model: AVTransformer):
        if model.cfg.mode != "causal":
            raise ValueError("FastTransformerStepper needs a causal-mode transformer")
        cfg, layers = model.cfg, list(model.encoder.layers)
        self.model, self.channels, self.classes = model, cfg.channels, model.classes
        d, M, heads = cfg.d_model, model.max_context, cfg.n_heads

        def stack(get, transpose: bool = False) -> np.ndarray:
            return np.ascontiguousarray(np.stack([_np(get(la).T if transpose else get(la)) for la in layers]))

        projections = (lambda la: la.self_attn.in_proj_weight, lambda la: la.self_attn.out_proj.weight,
                       lambda la: la.linear1.weight, lambda la: la.linear2.weight)
        self.weights = (
            _np(model.embed_audio.weight), _np(model.embed_audio.bias), _np(model.pos),
            stack(lambda la: la.norm1.weight), stack(lambda la: la.norm1.bias),
            stack(projections[0]), stack(lambda la: la.self_attn.in_proj_bias),
            stack(projections[1]), stack(lambda la: la.self_attn.out_proj.bias),
            stack(lambda la: la.norm2.weight), stack(lambda la: la.norm2.bias),
            stack(projections[2]), stack(lambda la: la.linear1.bias),
            stack(projections[3]), stack(lambda la: la.linear2.bias),
            _np(model.encoder.norm.weight), _np(model.encoder.norm.bias),
            _np(model.decoder.weight), _np(model.decoder.bias),
        )
        self.transposed = tuple(stack(get, transpose=True) for get in projections)  # for the block re-encode
        self.eps = float(layers[0].norm1.eps)
        self.keys = np.zeros((len(layers), heads, M, d // heads), np.float32)
        self.values = np.zeros_like(self.keys)
        self.tokens = np.zeros((M, d), np.float32)  # the cached tokens before the positional embedding
        self.filled = np.zeros(1, np.int64)  # tokens in the cache
        self.hop = model.hop
        self.e = np.zeros(d, np.float32)
        self.out = np.zeros(self.channels * self.classes, np.float32)
        self.work = np.zeros(7 * d + cfg.d_ff + 2 * M, np.float32)

    def flops_per_step(self) -> int:
        """Floating-point operations of the products in one step, averaged over a window cycle (2 per multiply-add;
        norms and softmax not counted): the new token attends to M - hop/2 cached ones on average, and every hop
        steps M - hop tokens are re-encoded (each attending to half of them on average)."""
        embed, _, _, _, _, inw, _, ow, _, _, _, f1w, _, f2w, _, _, _, dw, _ = self.weights
        M, hop = self.tokens.shape[0], self.hop
        layers, d = inw.shape[0], inw.shape[2]
        dense = inw[0].size + ow[0].size + f1w[0].size + f2w[0].size  # per layer and token

        def token(attended: float) -> float:
            return layers * (dense + 2 * attended * d)

        step = embed.size + token(M - hop / 2) + dw.size
        reencode = (M - hop) * token((M - hop + 1) / 2) / hop
        return round(2 * (step + reencode))

    @torch.no_grad()
    def set_frame(self, e: torch.Tensor) -> None:
        """e [1, d]: the embedding of the frame now on screen (model.frames of its n-frame window)."""
        self.e = _np(e[0])

    def start_padded(self, e: torch.Tensor) -> None:
        """See FusedStepper. The naive windows start at sample 0 or later (FoleyEngine.window_start), so no padded
        token is ever attended: the cache starts empty."""
        self.set_frame(e)
        self.filled[0] = 0

    def _call(self, previous, n, given, temperature, top_p, uniforms, audio) -> None:
        _run_transformer(previous, n, given, temperature, top_p, uniforms, MULAW_VALUES, audio, self.e, self.tokens,
                         self.filled, self.hop, self.keys, self.values, self.eps, self.work, self.out,
                         self.transposed, self.weights)


@njit(**FAST)
def _token(x, n, keys, values, eps, work, out, weights):  # pragma: no cover - compiled
    """Token x [d] (before the positional embedding) at position n through every layer, its keys and values
    cached at n (attending to positions 0 .. n); the decoder's output goes to `out`."""
    _, _, pos, n1w, n1b, inw, inb, ow, ob, n2w, n2b, f1w, f1b, f2w, f2b, fnw, fnb, dw, db = weights
    heads, M, dh = keys.shape[1], keys.shape[2], keys.shape[3]
    d, ff = x.shape[0], f1w.shape[1]
    h, normed, qkv, attended, tmp = work[:d], work[d:2 * d], work[2 * d:5 * d], work[5 * d:6 * d], work[6 * d:7 * d]
    hidden, scores, weights_ = work[7 * d:7 * d + ff], work[7 * d + ff:7 * d + ff + M], work[7 * d + ff + M:]
    h[:] = x + pos[n]
    scale = np.float32(1.0 / np.sqrt(dh))
    for la in range(keys.shape[0]):
        layer_norm_into(h, n1w[la], n1b[la], eps, normed)
        affine_into(inw[la], normed, inb[la], qkv)
        for hd in range(heads):
            keys[la, hd, n] = qkv[d + hd * dh:d + (hd + 1) * dh]
            values[la, hd, n] = qkv[2 * d + hd * dh:2 * d + (hd + 1) * dh]
            np.dot(keys[la, hd, :n + 1], qkv[hd * dh:(hd + 1) * dh], scores[:n + 1])
            scores[:n + 1] *= scale
            softmax_into(scores[:n + 1], weights_[:n + 1])
            np.dot(weights_[:n + 1], values[la, hd, :n + 1], attended[hd * dh:(hd + 1) * dh])
        affine_into(ow[la], attended, ob[la], tmp)
        h += tmp
        layer_norm_into(h, n2w[la], n2b[la], eps, normed)
        affine_into(f1w[la], normed, f1b[la], hidden)
        np.maximum(hidden, np.float32(0.0), hidden)
        affine_into(f2w[la], hidden, f2b[la], tmp)
        h += tmp
    layer_norm_into(h, fnw, fnb, eps, normed)
    affine_into(dw, normed, db, out)


@njit(**FAST)
def _block(tokens, keys, values, eps, transposed, weights):  # pragma: no cover - compiled
    """Tokens [T, d] at positions 0 .. T-1 through every layer at once with a causal mask, filling the key and
    value caches at 0 .. T-1 (what T calls of _token do, as matrix products)."""
    _, _, pos, n1w, n1b, _, inb, _, ob, n2w, n2b, _, f1b, _, f2b, _, _, _, _ = weights
    inw_t, ow_t, f1w_t, f2w_t = transposed
    T, d = tokens.shape
    heads, dh = keys.shape[1], keys.shape[3]
    h = tokens + pos[:T]
    normed = np.empty_like(h)
    attended = np.empty_like(h)
    probs = np.zeros((T, T), np.float32)
    q = np.empty((T, dh), np.float32)
    scale = np.float32(1.0 / np.sqrt(dh))
    for la in range(keys.shape[0]):
        for t in range(T):
            layer_norm_into(h[t], n1w[la], n1b[la], eps, normed[t])
        qkv = np.dot(normed, inw_t[la]) + inb[la]
        for hd in range(heads):
            q[:] = qkv[:, hd * dh:(hd + 1) * dh]
            keys[la, hd, :T] = qkv[:, d + hd * dh:d + (hd + 1) * dh]
            values[la, hd, :T] = qkv[:, 2 * d + hd * dh:2 * d + (hd + 1) * dh]
            scores = np.dot(q, keys[la, hd, :T].T) * scale
            for t in range(T):
                softmax_into(scores[t, :t + 1], probs[t, :t + 1])
            attended[:, hd * dh:(hd + 1) * dh] = np.dot(probs, values[la, hd, :T])
        h += np.dot(attended, ow_t[la]) + ob[la]
        for t in range(T):
            layer_norm_into(h[t], n2w[la], n2b[la], eps, normed[t])
        h += np.dot(np.maximum(np.dot(normed, f1w_t[la]) + f1b[la], np.float32(0.0)), f2w_t[la]) + f2b[la]


@njit(**FAST)
def _run_transformer(previous, n, given, temperature, top_p, uniforms, values_table, audio, e, tokens, filled, hop,
                     keys, values, eps, work, out, transposed, weights):  # pragma: no cover - compiled
    """n steps (see FusedStepper.run) of the transformer with its sliding KV cache."""
    eaw, eab = weights[0], weights[1]
    M = tokens.shape[0]
    x = previous.copy()
    for j in range(n):
        if filled[0] == M:  # slide the window by hop: re-encode the rest from an empty cache
            keep = M - hop
            tokens[:keep] = tokens[hop:].copy()
            _block(tokens[:keep], keys, values, eps, transposed, weights)
            filled[0] = keep
        t = filled[0]
        tokens[t] = np.dot(eaw, x) + eab + e
        _token(tokens[t], t, keys, values, eps, work, out, weights)
        filled[0] = t + 1
        _next_input(x, j, out, given, temperature, top_p, uniforms, values_table, audio)
