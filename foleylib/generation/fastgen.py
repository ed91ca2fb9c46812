"""Fast WaveNet generation (Paine et al. 2016) fused into compiled (numba) loops.

Each layer keeps a ring buffer of its past inputs, so a step costs one column of every convolution instead of a
forward pass over the receptive field. Done with torch ops, a step is some 15 small ops per layer, each costing
microseconds of dispatch: overhead, not arithmetic, bounds it. Here a whole run of samples (one video frame's)
is one numba call: input conv, every layer's dilated taps from its ring, gates, skips, residuals, the dense head
and the mu-law draw, over float32 weights copied from the model, in preallocated buffers. It runs on the CPU
whatever device the model is on (one stream of sample-by-sample generation is latency-bound). Outputs equal the
full forward within float32 rounding (tests check < 1e-4). The causal transformer runs the same way with a
sliding KV cache.

Each model owns its incremental form: it exports by name the weights a step reads (WaveNet.step_weights,
AVTransformer.step_weights) and the transformer its window rule (models.transformer.window_start); the loops
here take those named arrays, a stream's named state and the sampler's DrawParameters.
"""
from __future__ import annotations

from typing import NamedTuple, TypeVar

import numpy as np
import torch
from numba import njit

from foleylib.generation.kernels import FAST, affine_into, gated_into, layer_norm_into, softmax_into
from foleylib.generation.sampling import MULAW_VALUES, DrawParameters, Sampler, sample_classes
from foleylib.models.transformer import AVTransformer, window_start
from foleylib.models.wavenet import WaveNet

Weights = TypeVar("Weights", bound=tuple)
_window_start = njit(**FAST)(window_start)  # the model's window rule, compiled for the KV-cache loop


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().float().cpu().numpy())


def _arrays(weights: Weights) -> Weights:
    """A model's step weights (WaveNet.step_weights, AVTransformer.step_weights) with every tensor as a contiguous
    float32 numpy array on the CPU: what the compiled loops take."""
    return type(weights)(*(_np(w) if isinstance(w, torch.Tensor) else w for w in weights))


class FusedStepper:
    """A model's incremental form, one stream: start_padded(e) resets it, set_frame(e) sets the frame on screen,
    run() makes a frame's samples (sampled or teacher-forced) and step() one (tests). Subclasses hold `weights`
    (the model's step weights as arrays), `state` (whose `out` is the last step's head output), `channels`,
    `classes` and the compiled `_call`."""

    channels: int
    classes: int
    state: WaveNetState | TransformerState

    def _call(self, previous: np.ndarray, n: int, given: np.ndarray, draw: DrawParameters,
              audio: np.ndarray) -> None:
        raise NotImplementedError

    def run(self, previous: np.ndarray, n: int, sampler: Sampler | None = None,
            given: np.ndarray | None = None) -> np.ndarray:
        """n steps from `previous` [C] (the sample before the first step). With `given` [n, C] the inputs are those
        samples (teacher forcing: the caches fill, nothing is sampled); else each step's output is sampled by
        `sampler` and fed to the next step. Returns the n sampled values [n, C] (zeros when teacher-forced)."""
        C = self.channels
        audio = np.zeros((n, C), np.float32)
        if sampler is None:
            draw = DrawParameters(1.0, 1.0, np.zeros((n, C)))
        else:
            draw = sampler.draw_parameters(n, C, mulaw=self.classes > 1)
        inputs = np.zeros((0, C), np.float32) if given is None else np.ascontiguousarray(given, np.float32)
        self._call(np.ascontiguousarray(previous, np.float32), n, inputs, draw, audio)
        return audio

    def start_padded(self, e: torch.Tensor) -> None:
        """Reset to the state the naive path has before sample 0, its zero padding: zero samples, with the frame
        on screen that of an all-black window, whose embedding is e [1, d]."""
        raise NotImplementedError

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """x [1, C]: the previous sample -> this position's output [1, C] (tanh) or logits [1, C, 256]."""
        self.run(_np(x[0]), 1, given=_np(x))
        y = torch.from_numpy(self.state.out.copy())[None]
        return torch.tanh(y) if self.classes == 1 else y.view(1, self.channels, self.classes)


@njit(**FAST)
def _next_input(x, j, out, given, draw, audio):  # pragma: no cover - compiled
    """After step j, the next step's input x [C]: given[j] (teacher forcing), else the value drawn from the head's
    output `out` (tanh, or mu-law logits with `draw`'s settings and uniforms[j]), which is also written to
    audio[j]."""
    if given.shape[0]:
        x[:] = given[j]
        return
    C = x.shape[0]
    logits = out.reshape(C, -1)
    if logits.shape[1] == 1:
        x[:] = np.tanh(out)
    elif draw.temperature == 0:
        for c in range(C):
            x[c] = MULAW_VALUES[np.argmax(logits[c])]
    else:
        classes = sample_classes(logits, draw.temperature, draw.top_p, draw.uniforms[j])
        for c in range(C):
            x[c] = MULAW_VALUES[classes[c]]
    audio[j] = x


class WaveNetState(NamedTuple):
    """One stream of FastWaveNetStepper: each layer's queue of past inputs (a ring), the frame's conditioning and
    scratch buffers."""

    input_hist: np.ndarray  # [k, C] the input conv's last k samples
    rings: np.ndarray  # [sum of lengths, r] every layer's ring, one after another
    offsets: np.ndarray  # [L] where each layer's ring starts in rings
    lengths: np.ndarray  # [L] each ring's length: the (k - 1) * dilation + 1 inputs its taps reach
    dilations: np.ndarray  # [L]
    positions: np.ndarray  # [L] where each ring's newest input is
    bias_cond: np.ndarray  # [L, 2r] dilated bias + the frame's conditioning
    gated: np.ndarray  # [L, r] every layer's gated output, for the summed skips
    work: np.ndarray  # scratch: z, exp, h, res, taps, skip, hidden
    out: np.ndarray  # [C * classes] the head's output


class FastWaveNetStepper(FusedStepper):
    """Cached generation for a causal WaveNet, one stream: set_frame(e) once per video frame, then run() a frame's
    samples (or step() one, for tests). The skip projections are linear, so their sum is one product of the
    stacked skip weights with all layers' gated outputs, after the last layer."""

    def __init__(self, model: WaveNet):
        if model.cfg.mode != "causal":
            raise ValueError("FastWaveNetStepper needs a causal-mode WaveNet")
        cfg = model.cfg
        self.model, self.channels, self.classes = model, cfg.channels, model.classes
        self.weights = _arrays(model.step_weights())
        k, r, s, L = cfg.kernel_size, cfg.residual_channels, cfg.skip_channels, len(model.dilations)
        dilations = np.array(model.dilations, np.int64)
        lengths = (k - 1) * dilations + 1  # each layer's ring holds the inputs its taps reach
        self.state = WaveNetState(
            input_hist=np.zeros((k, self.channels), np.float32),
            rings=np.zeros((int(lengths.sum()), r), np.float32),
            offsets=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
            lengths=lengths, dilations=dilations, positions=np.zeros(L, np.int64),
            bias_cond=self.weights.dilated_b.copy(), gated=np.zeros((L, r), np.float32),
            work=np.zeros(6 * r + k * r + 2 * s, np.float32), out=np.zeros(self.channels * self.classes, np.float32))

    def flops_per_step(self) -> int:
        """Floating-point operations of the products in one step (2 per multiply-add; activations not counted)."""
        w = self.weights
        macs = (w.input_w.size + w.dilated_w.size + w.res_w[:-1].size + w.skip_w.size + w.head_w1.size
                + w.head_w2.size)
        return 2 * int(macs)

    @torch.no_grad()
    def set_frame(self, e: torch.Tensor) -> None:
        """e [1, cond]: the embedding of the frame now on screen (model.frames of its n-frame window)."""
        self.state.bias_cond[:] = self.weights.dilated_b + _np(self.model.layer_conditioning(e)[0])

    def start_padded(self, e: torch.Tensor) -> None:
        """See FusedStepper. The naive windows reach back before sample 0, where the padding passes through every
        layer (biases and conditioning make its activations non-zero). Padded positions all see the same inputs,
        so each layer's queue holds one constant activation: receptive_field zero steps fill every queue with it."""
        self.set_frame(e)
        zeros = np.zeros((self.model.receptive_field, self.channels), np.float32)
        self.run(zeros[0], len(zeros), given=zeros)

    def _call(self, previous, n, given, draw, audio) -> None:
        _run_wavenet(previous, n, given, draw, audio, self.state, self.weights)


@njit(**FAST)
def _run_wavenet(previous, n, given, draw, audio, state, weights):  # pragma: no cover - compiled
    """n steps (see FusedStepper.run): step j's input is given[j - 1] (previous for j = 0) when given is
    not empty, else the sample drawn at step j - 1, which is written to audio[j]."""
    x = previous.copy()
    for j in range(n):
        _wavenet_step(x, state, weights)
        _next_input(x, j, state.out, given, draw, audio)


@njit(**FAST)
def _wavenet_step(x, state, weights):  # pragma: no cover - compiled
    """One sample through the whole network (see FastWaveNetStepper); writes the head's output to state.out."""
    w, input_hist, rings, work = weights, state.input_hist, state.rings, state.work
    k, r, s, L = input_hist.shape[0], w.input_w.shape[0], w.skip_w.shape[0], state.dilations.shape[0]
    z, e, h, res = work[:2 * r], work[2 * r:4 * r], work[4 * r:5 * r], work[5 * r:6 * r]
    taps, skip, hidden = work[6 * r:(6 + k) * r], work[(6 + k) * r:(6 + k) * r + s], work[(6 + k) * r + s:]
    for j in range(k - 1):  # the input conv's window slides by one sample
        input_hist[j] = input_hist[j + 1]
    input_hist[k - 1] = x
    affine_into(w.input_w, input_hist.ravel(), w.input_b, h)
    for i in range(L):
        n, d, o = state.lengths[i], state.dilations[i], state.offsets[i]
        p = (state.positions[i] + 1) % n
        state.positions[i] = p
        rings[o + p] = h
        for j in range(k):  # taps at lags (k-1)d, ..., d, 0: oldest first, as the weights are laid out
            taps[j * r:(j + 1) * r] = rings[o + (p - (k - 1 - j) * d) % n]
        affine_into(w.dilated_w[i], taps, state.bias_cond[i], z)
        gated_into(z, e, state.gated[i])
        if i < L - 1:
            affine_into(w.res_w[i], state.gated[i], w.res_b[i], res)
            h += res
    affine_into(w.skip_w, state.gated.ravel(), w.skip_b, skip)
    np.maximum(skip, np.float32(0.0), skip)
    affine_into(w.head_w1, skip, w.head_b1, hidden)
    np.maximum(hidden, np.float32(0.0), hidden)
    affine_into(w.head_w2, hidden, w.head_b2, state.out)


class TransformerState(NamedTuple):
    """One stream of FastTransformerStepper: the window's tokens and key/value caches, the frame's embedding and
    scratch buffers."""

    e: np.ndarray  # [d] the embedding of the frame on screen
    tokens: np.ndarray  # [M, d] the window's tokens, before the positional embedding
    keys: np.ndarray  # [n_layers, heads, M, d / heads]
    values: np.ndarray  # [n_layers, heads, M, d / heads]
    span: np.ndarray  # int64 [2]: the window's first position and the next position, counted from the reset
    hop: int  # the window's slide (AVTransformer.hop)
    work: np.ndarray  # scratch
    out: np.ndarray  # [C * classes] the decoder's output


class TransposedProjections(NamedTuple):
    """The per-layer projections of TransformerStepWeights transposed [n_layers, in, out]: the block re-encode
    multiplies row-major token blocks by them."""

    qkv_w: np.ndarray
    attn_out_w: np.ndarray
    ff1_w: np.ndarray
    ff2_w: np.ndarray


class FastTransformerStepper(FusedStepper):
    """Cached generation for the causal transformer, one stream, fused like FastWaveNetStepper: each new token
    runs every layer against cached keys and values in one numba call per run of samples. When the model's
    window_start moves past the cache's first position (the cache holds max_context tokens), the oldest hop are
    dropped and the rest re-encoded as one block (matrix products and a causal mask, which equals encoding them
    token by token): exactly the windows forward_causal trains on."""

    def __init__(self, model: AVTransformer):
        if model.cfg.mode != "causal":
            raise ValueError("FastTransformerStepper needs a causal-mode transformer")
        cfg = model.cfg
        self.model, self.channels, self.classes = model, cfg.channels, model.classes
        self.weights = w = _arrays(model.step_weights())
        self.transposed = TransposedProjections(*(np.ascontiguousarray(a.transpose(0, 2, 1))
                                                  for a in (w.qkv_w, w.attn_out_w, w.ff1_w, w.ff2_w)))
        d, M, heads = cfg.d_model, model.max_context, cfg.n_heads
        keys = np.zeros((cfg.n_layers, heads, M, d // heads), np.float32)
        self.state = TransformerState(
            e=np.zeros(d, np.float32), tokens=np.zeros((M, d), np.float32), keys=keys, values=np.zeros_like(keys),
            span=np.zeros(2, np.int64), hop=model.hop, work=np.zeros(7 * d + cfg.d_ff + 2 * M, np.float32),
            out=np.zeros(self.channels * self.classes, np.float32))

    def flops_per_step(self) -> int:
        """Floating-point operations of the products in one step, averaged over a window cycle (2 per multiply-add;
        norms and softmax not counted): the new token attends to M - hop/2 cached ones on average, and every hop
        steps M - hop tokens are re-encoded (each attending to half of them on average)."""
        w, M, hop = self.weights, self.state.tokens.shape[0], self.state.hop
        layers, d = w.qkv_w.shape[0], w.qkv_w.shape[2]
        dense = w.qkv_w[0].size + w.attn_out_w[0].size + w.ff1_w[0].size + w.ff2_w[0].size  # per layer and token

        def token(attended: float) -> float:
            return layers * (dense + 2 * attended * d)

        step = w.embed_w.size + token(M - hop / 2) + w.decoder_w.size
        reencode = (M - hop) * token((M - hop + 1) / 2) / hop
        return round(2 * (step + reencode))

    @torch.no_grad()
    def set_frame(self, e: torch.Tensor) -> None:
        """e [1, d]: the embedding of the frame now on screen (model.frames of its n-frame window)."""
        self.state.e[:] = _np(e[0])

    def start_padded(self, e: torch.Tensor) -> None:
        """See FusedStepper. The naive windows start at sample 0 or later (FoleyEngine.window_start), so no padded
        token is ever attended: the cache starts empty."""
        self.set_frame(e)
        self.state.span[:] = 0

    def _call(self, previous, n, given, draw, audio) -> None:
        _run_transformer(previous, n, given, draw, audio, self.state, self.weights, self.transposed)


@njit(**FAST)
def _token(x, t, state, weights):  # pragma: no cover - compiled
    """Token x [d] (before the positional embedding) at window position t through every layer, its keys and values
    cached at t (attending to positions 0 .. t); the decoder's output goes to state.out."""
    w, keys, values, work = weights, state.keys, state.values, state.work
    heads, M, dh = keys.shape[1], keys.shape[2], keys.shape[3]
    d, ff = x.shape[0], w.ff1_w.shape[1]
    h, normed, qkv, attended, tmp = work[:d], work[d:2 * d], work[2 * d:5 * d], work[5 * d:6 * d], work[6 * d:7 * d]
    hidden, scores, probs = work[7 * d:7 * d + ff], work[7 * d + ff:7 * d + ff + M], work[7 * d + ff + M:]
    h[:] = x + w.pos[t]
    scale = np.float32(1.0 / np.sqrt(dh))
    for la in range(keys.shape[0]):
        layer_norm_into(h, w.norm1_w[la], w.norm1_b[la], w.eps, normed)
        affine_into(w.qkv_w[la], normed, w.qkv_b[la], qkv)
        for hd in range(heads):
            keys[la, hd, t] = qkv[d + hd * dh:d + (hd + 1) * dh]
            values[la, hd, t] = qkv[2 * d + hd * dh:2 * d + (hd + 1) * dh]
            np.dot(keys[la, hd, :t + 1], qkv[hd * dh:(hd + 1) * dh], scores[:t + 1])
            scores[:t + 1] *= scale
            softmax_into(scores[:t + 1], probs[:t + 1])
            np.dot(probs[:t + 1], values[la, hd, :t + 1], attended[hd * dh:(hd + 1) * dh])
        affine_into(w.attn_out_w[la], attended, w.attn_out_b[la], tmp)
        h += tmp
        layer_norm_into(h, w.norm2_w[la], w.norm2_b[la], w.eps, normed)
        affine_into(w.ff1_w[la], normed, w.ff1_b[la], hidden)
        np.maximum(hidden, np.float32(0.0), hidden)
        affine_into(w.ff2_w[la], hidden, w.ff2_b[la], tmp)
        h += tmp
    layer_norm_into(h, w.norm_w, w.norm_b, w.eps, normed)
    affine_into(w.decoder_w, normed, w.decoder_b, state.out)


@njit(**FAST)
def _block(tokens, state, weights, transposed):  # pragma: no cover - compiled
    """Tokens [T, d] at window positions 0 .. T-1 through every layer at once with a causal mask, filling the key
    and value caches at 0 .. T-1 (what T calls of _token do, as matrix products)."""
    w, wt, keys, values = weights, transposed, state.keys, state.values
    T, d = tokens.shape
    heads, dh = keys.shape[1], keys.shape[3]
    h = tokens + w.pos[:T]
    normed = np.empty_like(h)
    attended = np.empty_like(h)
    probs = np.zeros((T, T), np.float32)
    q = np.empty((T, dh), np.float32)
    scale = np.float32(1.0 / np.sqrt(dh))
    for la in range(keys.shape[0]):
        for t in range(T):
            layer_norm_into(h[t], w.norm1_w[la], w.norm1_b[la], w.eps, normed[t])
        qkv = np.dot(normed, wt.qkv_w[la]) + w.qkv_b[la]
        for hd in range(heads):
            q[:] = qkv[:, hd * dh:(hd + 1) * dh]
            keys[la, hd, :T] = qkv[:, d + hd * dh:d + (hd + 1) * dh]
            values[la, hd, :T] = qkv[:, 2 * d + hd * dh:2 * d + (hd + 1) * dh]
            scores = np.dot(q, keys[la, hd, :T].T) * scale
            for t in range(T):
                softmax_into(scores[t, :t + 1], probs[t, :t + 1])
            attended[:, hd * dh:(hd + 1) * dh] = np.dot(probs, values[la, hd, :T])
        h += np.dot(attended, wt.attn_out_w[la]) + w.attn_out_b[la]
        for t in range(T):
            layer_norm_into(h[t], w.norm2_w[la], w.norm2_b[la], w.eps, normed[t])
        h += np.dot(np.maximum(np.dot(normed, wt.ff1_w[la]) + w.ff1_b[la], np.float32(0.0)), wt.ff2_w[la]) + w.ff2_b[la]


@njit(**FAST)
def _run_transformer(previous, n, given, draw, audio, state, weights, transposed):  # pragma: no cover - compiled
    """n steps (see FusedStepper.run) of the transformer with its sliding KV cache: the window of each position
    starts where the model's window_start says (origin: the reset); when it moves, the tokens it keeps are
    re-encoded from an empty cache."""
    tokens, span, M = state.tokens, state.span, state.tokens.shape[0]
    x = previous.copy()
    for j in range(n):
        position = span[1]
        start = _window_start(position, 0, M, state.hop)
        if start > span[0]:  # the window slid (by hop): re-encode the tokens it keeps
            keep = position - start
            tokens[:keep] = tokens[start - span[0]:position - span[0]].copy()
            _block(tokens[:keep], state, weights, transposed)
            span[0] = start
        t = position - span[0]
        tokens[t] = np.dot(weights.embed_w, x) + weights.embed_b + state.e
        _token(tokens[t], t, state, weights)
        span[1] = position + 1
        _next_input(x, j, state.out, given, draw, audio)
