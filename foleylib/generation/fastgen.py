"""Fast WaveNet generation (Paine et al. 2016) fused into compiled (numba) loops.

Each layer keeps a ring buffer of its past inputs, so a step costs one column of every convolution instead of a
forward pass over the receptive field. Done with torch ops, a step is some 15 small ops per layer, each costing
microseconds of dispatch: overhead, not arithmetic, bounds it. Here a whole run of samples (one video frame's)
is one numba call: input conv, every layer's dilated taps from its ring, gates, skips, residuals, the dense head
and the mu-law draw, over float32 weights copied from the model, in preallocated buffers. It runs on the CPU
whatever device the model is on (one stream of sample-by-sample generation is latency-bound). Outputs equal the
full forward within float32 rounding (tests check < 1e-4). The causal transformer runs the same way with a
sliding KV cache.

A stepper runs `takes` streams in lockstep (takes of the same frames: one frame embedding, each take its own
samples and sampler). Every product with the weights in a step is kernels.matvec_into over all takes at once, so a
step reads each weight from memory once however many takes it makes, and each take's arithmetic is the same as
when it runs alone. SplitStepper shares the takes out over threads.

Classifier-free guidance (`guide`): a second state runs the same takes on the unconditional context (the
all-black window a model trained with video dropout learned to predict without picture), fed the same samples;
each step draws from the logits u + w (c - u), which stresses what the frames add to the prediction.

Each model owns its incremental form: it exports by name the weights a step reads (WaveNet.step_weights,
AVTransformer.step_weights) and the transformer its window rule (models.transformer.window_start); the loops
here take those named arrays, a stream's named state and the sampler's DrawParameters.
"""
from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, TypeVar

import numpy as np
import torch
from numba import njit

from foleylib.core.config import GENERATION_PRECISIONS
from foleylib.generation import kernels
from foleylib.generation.kernels import (
    BLOCK,
    FAST,
    HALF,
    UNSCALED,
    copy_rows,
    gated_into,
    layer_norm_into,
    matvec_into,
    softmax_into,
)
from foleylib.generation.sampling import MULAW_VALUES, DrawParameters, Sampler, sample_classes, takes_draw
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


def _products(weights: Weights, scales_type: type, precision: str) -> tuple[Weights, Weights, tuple]:
    """The step weights as the compiled loops take them at `precision` (GENERATION_PRECISIONS), for the products
    named by scales_type's fields: (the weights the products compute with: float32 as given, or each row's scale
    times its int8 values; the same with those matrices laid out for matvec_into; their scales by name, empty for
    float32)."""
    if precision not in GENERATION_PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(GENERATION_PRECISIONS)}")
    products = {name: kernels.prepared(getattr(weights, name), precision) for name in scales_type._fields}
    computed, kernel, scales = ({name: product[i] for name, product in products.items()} for i in range(3))
    return weights._replace(**computed), weights._replace(**kernel), scales_type(**scales)


class FusedStepper:
    """A model's incremental form for `takes` streams in lockstep: start_padded(e) resets them, set_frame(e) sets
    the frame on screen, run() makes a frame's samples (sampled or teacher-forced) and step() one (one take; tests).
    Subclasses hold `weights` (the model's step weights as arrays, the products' as they compute at the stepper's
    precision), `kernel_weights` (the same with the products' matrices blocked for matvec_into), `scales` (their
    per-row scales: _products), `state` (whose `out` is the last step's head output, take after take),
    `channels`, `classes`, `takes`, `_new_state()`, `_condition(state, e)` and the compiled `_call`. With guidance
    (`guide`), `unconditional` is a second state stepped beside `state` and `guidance` its weight."""

    channels: int
    classes: int
    takes: int
    state: WaveNetState | TransformerState
    unconditional: WaveNetState | TransformerState | None = None
    guidance: float = 1.0

    def _new_state(self) -> WaveNetState | TransformerState:
        """Empty state of the takes: zero caches, no frame on screen."""
        raise NotImplementedError

    def _condition(self, state: WaveNetState | TransformerState, e: torch.Tensor) -> None:
        """Put the frame whose embedding is e [1, d] on screen in `state`."""
        raise NotImplementedError

    def _call(self, previous: np.ndarray, n: int, given: np.ndarray, draw: DrawParameters,
              audio: np.ndarray) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def set_frame(self, e: torch.Tensor) -> None:
        """e [1, d]: the embedding of the frame now on screen (model.frames of its n-frame window)."""
        self._condition(self.state, e)

    @torch.no_grad()
    def guide(self, weight: float, e: torch.Tensor) -> None:
        """Classifier-free guidance from now on, before any step: a second, unconditional state of the takes
        whose frame on screen is always e [1, d] (the all-black window's embedding) is stepped with the same
        inputs, and each step draws from (writes to state.out) u + weight * (c - u), c and u the two states'
        outputs (mu-law logits). weight 1 is the conditional model alone."""
        self.unconditional, self.guidance = self._new_state(), float(weight)
        self._condition(self.unconditional, e)

    def _states(self) -> tuple[WaveNetState | TransformerState, WaveNetState | TransformerState]:
        """(conditional, unconditional) as the compiled loops take them: the state twice without guidance (the
        second is then never stepped)."""
        return self.state, self.state if self.unconditional is None else self.unconditional

    def run(self, previous: np.ndarray, n: int, sampler: Sampler | list[Sampler] | None = None,
            given: np.ndarray | None = None) -> np.ndarray:
        """n steps from `previous` [C] for one take or [takes, C] (each take's sample before the first step). With
        `given` [n, C] or [n, takes, C] the inputs are those samples (teacher forcing: the caches fill, nothing is
        sampled); else each step's output is sampled by `sampler` (a list of one per take) and fed to the next
        step. Returns the n sampled values [n, C] or [n, takes, C] (zeros when teacher-forced)."""
        width = self.takes * self.channels  # the compiled loops hold the takes side by side
        audio = np.zeros((n, width), np.float32)
        if sampler is None:
            draw = DrawParameters(1.0, 1.0, np.zeros((n, width)))
        else:
            samplers = [sampler] if isinstance(sampler, Sampler) else sampler
            if len(samplers) != self.takes:
                raise ValueError(f"{len(samplers)} samplers for {self.takes} takes")
            draw = takes_draw(samplers, n, self.channels, mulaw=self.classes > 1)
        inputs = np.zeros((0, width), np.float32)
        if given is not None:
            inputs = np.ascontiguousarray(given, np.float32).reshape(n, width)
        self._call(np.ascontiguousarray(previous, np.float32).reshape(width), n, inputs, draw, audio)
        return audio.reshape(n, *np.shape(previous))

    def start_padded(self, e: torch.Tensor) -> None:
        """Reset to the state the naive path has before sample 0, its zero padding: zero samples, with the frame
        on screen that of an all-black window, whose embedding is e [1, d]."""
        raise NotImplementedError

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """One take: x [1, C], the previous sample -> this position's output [1, C] (tanh) or logits [1, C, 256]."""
        self.run(_np(x[0]), 1, given=_np(x))
        y = torch.from_numpy(self.state.out.copy())[None]
        return torch.tanh(y) if self.classes == 1 else y.view(1, self.channels, self.classes)


class SplitStepper:
    """Takes in lockstep split over threads: one stepper per part of the takes (`make(takes)` builds one), the
    parts run at once, the calling thread running the first (the compiled loops release the GIL). It offers what
    FoleyEngine uses of a FusedStepper, for rows of [takes, C] and one sampler per take."""

    def __init__(self, make: Callable[[int], FusedStepper], takes: int, parts: int):
        sizes = [len(part) for part in np.array_split(np.arange(takes), parts)]
        self.parts = [make(size) for size in sizes]
        self.bounds = np.cumsum([0, *sizes])
        self.takes, self.channels, self.classes = takes, self.parts[0].channels, self.parts[0].classes
        self.pool = ThreadPoolExecutor(parts - 1)  # kept: a pool made per frame costs 0.3 ms, a kept one 0.07

    def set_frame(self, e: torch.Tensor) -> None:
        for part in self.parts:
            part.set_frame(e)

    def guide(self, weight: float, e: torch.Tensor) -> None:
        for part in self.parts:
            part.guide(weight, e)

    def start_padded(self, e: torch.Tensor) -> None:
        self._each(lambda part, first, end: part.start_padded(e))

    def run(self, previous: np.ndarray, n: int, sampler: list[Sampler] | None = None,
            given: np.ndarray | None = None) -> np.ndarray:
        """FusedStepper.run for previous [takes, C], given [n, takes, C]; returns [n, takes, C]."""
        return np.concatenate(self._each(lambda part, first, end: part.run(
            previous[first:end], n, None if sampler is None else sampler[first:end],
            None if given is None else given[:, first:end])), axis=1)

    def _each(self, work: Callable[[FusedStepper, int, int], object]) -> list:
        """work(part, its first take, the take after its last) for every part at once; the results in order."""
        spans = list(zip(self.parts, self.bounds[:-1], self.bounds[1:]))
        rest = [self.pool.submit(work, *span) for span in spans[1:]]
        return [work(*spans[0])] + [future.result() for future in rest]


@njit(**FAST)
def _next_input(x, j, out, given, draw, audio):  # pragma: no cover - compiled
    """After step j, the next step's inputs x [takes * C]: given[j] (teacher forcing), else the values drawn from
    the head's outputs `out` (tanh, or mu-law logits with `draw`'s settings and uniforms[j]), which are also written
    to audio[j]."""
    C = x.shape[0]
    if given.shape[0]:
        for c in range(C):
            x[c] = given[j, c]
        return
    logits = out.reshape(C, -1)
    if logits.shape[1] == 1:
        for c in range(C):
            x[c] = np.tanh(out[c])
    elif draw.temperature == 0:
        for c in range(C):
            x[c] = MULAW_VALUES[np.argmax(logits[c])]
    else:
        classes = sample_classes(logits, draw.temperature, draw.top_p, draw.uniforms[j])
        for c in range(C):
            x[c] = MULAW_VALUES[classes[c]]
    for c in range(C):
        audio[j, c] = x[c]


@njit(**FAST)
def _guided(out, unconditional, guidance):  # pragma: no cover - compiled
    """out = unconditional + guidance * (out - unconditional), in place (classifier-free guidance of logits)."""
    g = np.float32(guidance)
    for i in range(out.shape[0]):
        out[i] = unconditional[i] + g * (out[i] - unconditional[i])


class WaveNetState(NamedTuple):
    """The takes of FastWaveNetStepper: each layer's queue of past inputs (a ring, the takes side by side), the
    frame's conditioning and scratch buffers (a row per take)."""

    input_hist: np.ndarray  # [T, k * C] the input conv's last k samples, oldest first
    rings: np.ndarray  # [sum of lengths, T, r] every layer's ring, one after another
    offsets: np.ndarray  # [L] where each layer's ring starts in rings
    lengths: np.ndarray  # [L] each ring's length: the (k - 1) * dilation + 1 inputs its taps reach
    dilations: np.ndarray  # [L]
    positions: np.ndarray  # [L] where each ring's newest input is
    bias_cond: np.ndarray  # [L, 2r] dilated bias + the frame's conditioning
    h: np.ndarray  # [T, r] the residual stream: a layer's input
    taps: np.ndarray  # [T, k * r] a dilated conv's inputs, oldest lag first
    z: np.ndarray  # [T, 2r] a dilated conv's output (filter half, then gate half); scratch of the gate
    exp: np.ndarray  # [T, 2r] scratch of the gate
    gated: np.ndarray  # [T, L * r] every layer's gated output, for the summed skips
    res: np.ndarray  # [T, r] a residual conv's output
    skip: np.ndarray  # [T, s] the summed skips
    hidden: np.ndarray  # [T, s] the head's hidden layer
    out: np.ndarray  # [T * C * classes] the head's output


# the products of a step by their step-weight names; each field holds that product's per-row scales
WaveNetScales = namedtuple("WaveNetScales", ("input_w", "dilated_w", "res_w", "skip_w", "head_w1", "head_w2"))


class FastWaveNetStepper(FusedStepper):
    """Cached generation for a causal WaveNet, `takes` streams: set_frame(e) once per video frame, then run() a
    frame's samples (or step() one, for tests). The skip projections are linear, so their sum is one product of
    the stacked skip weights with all layers' gated outputs, after the last layer."""

    def __init__(self, model: WaveNet, takes: int = 1, precision: str = "fp32"):
        if model.cfg.mode != "causal":
            raise ValueError("FastWaveNetStepper needs a causal-mode WaveNet")
        cfg = model.cfg
        self.model, self.channels, self.classes, self.takes = model, cfg.channels, model.classes, takes
        self.weights, self.kernel_weights, self.scales = _products(_arrays(model.step_weights()), WaveNetScales,
                                                                   precision)
        self.state = self._new_state()

    def _new_state(self) -> WaveNetState:
        cfg, model = self.model.cfg, self.model
        k, r, s, L, T = cfg.kernel_size, cfg.residual_channels, cfg.skip_channels, len(model.dilations), self.takes
        dilations = np.array(model.dilations, np.int64)
        lengths = (k - 1) * dilations + 1  # each layer's ring holds the inputs its taps reach

        def rows(width: int) -> np.ndarray:
            return np.zeros((T, width), np.float32)

        return WaveNetState(
            input_hist=rows(k * self.channels), rings=np.zeros((int(lengths.sum()), T, r), np.float32),
            offsets=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
            lengths=lengths, dilations=dilations, positions=np.zeros(L, np.int64),
            bias_cond=self.weights.dilated_b.copy(), h=rows(r), taps=rows(k * r), z=rows(2 * r), exp=rows(2 * r),
            gated=rows(L * r), res=rows(r), skip=rows(s), hidden=rows(s),
            out=np.zeros(T * self.channels * self.classes, np.float32))

    @staticmethod
    def _step_matrices(w: Weights) -> list[np.ndarray]:
        """The weight matrices of `w` (weights or kernel_weights) that one step's products use: the last layer's
        residual product is not run."""
        return [w.input_w, w.dilated_w, w.res_w[:-1], w.skip_w, w.head_w1, w.head_w2]

    def flops_per_step(self) -> int:
        """Floating-point operations of the products in one step of one take (2 per multiply-add; activations not
        counted)."""
        return 2 * sum(int(m.size) for m in self._step_matrices(self.weights))

    def bytes_per_step(self) -> int:
        """Bytes the products of one step of one take read: each matrix once, at the stepper's precision and laid
        out as matvec_into reads it."""
        return sum(int(m.nbytes) for m in self._step_matrices(self.kernel_weights))

    def _condition(self, state: WaveNetState, e: torch.Tensor) -> None:
        w = self.weights
        state.bias_cond[:] = w.dilated_b + w.cond_b + w.cond_w @ _np(e[0])

    def start_padded(self, e: torch.Tensor) -> None:
        """See FusedStepper. The naive windows reach back before sample 0, where the padding passes through every
        layer (biases and conditioning make its activations non-zero). Padded positions all see the same inputs,
        so each layer's queue holds one constant activation: receptive_field zero steps fill every queue with it."""
        self.set_frame(e)
        zeros = np.zeros((self.model.receptive_field, self.takes, self.channels), np.float32)
        self.run(zeros[0], len(zeros), given=zeros)

    def _call(self, previous, n, given, draw, audio) -> None:
        _run_wavenet(previous, n, given, draw, audio, *self._states(), self.guidance, self.kernel_weights,
                     self.scales)


@njit(**FAST)
def _run_wavenet(previous, n, given, draw, audio, state, unconditional, guidance, weights,
                 scales):  # pragma: no cover - compiled
    """n steps (see FusedStepper.run): step j's inputs are given[j - 1] (previous for j = 0) when given is
    not empty, else the samples drawn at step j - 1, which are written to audio[j]. With guidance other than 1
    the unconditional state steps too, on the same inputs (FusedStepper.guide)."""
    x = previous.copy()
    for j in range(n):
        _wavenet_step(x, state, weights, scales)
        if guidance != 1.0:
            _wavenet_step(x, unconditional, weights, scales)
            _guided(state.out, unconditional.out, guidance)
        _next_input(x, j, state.out, given, draw, audio)


@njit(**FAST)
def _wavenet_step(x, state, weights, scales):  # pragma: no cover - compiled
    """One sample of every take through the whole network (see FastWaveNetStepper): x [T * C] the takes' inputs;
    writes the head's outputs to state.out."""
    w, s, st = weights, scales, state
    hist, rings, h, taps, gated = st.input_hist, st.rings, st.h, st.taps, st.gated
    T, r, L = h.shape[0], h.shape[1], st.dilations.shape[0]
    C, k = x.shape[0] // T, taps.shape[1] // r
    for t in range(T):  # the input conv's window slides by one sample
        for j in range(hist.shape[1] - C):
            hist[t, j] = hist[t, j + C]
        for c in range(C):
            hist[t, hist.shape[1] - C + c] = x[t * C + c]
    matvec_into(w.input_w, s.input_w, hist, w.input_b, h)
    for i in range(L):
        n, d, o = st.lengths[i], st.dilations[i], st.offsets[i]
        p = (st.positions[i] + 1) % n
        st.positions[i] = p
        copy_rows(h, rings[o + p])
        for j in range(k):  # taps at lags (k-1)d, ..., d, 0: oldest first, as the weights are laid out
            copy_rows(rings[o + (p - (k - 1 - j) * d) % n], taps[:, j * r:(j + 1) * r])
        matvec_into(w.dilated_w[i], s.dilated_w[i], taps, st.bias_cond[i], st.z)
        layer = gated[:, i * r:(i + 1) * r]
        for t in range(T):
            gated_into(st.z[t], st.exp[t], layer[t])
        if i < L - 1:
            matvec_into(w.res_w[i], s.res_w[i], layer, w.res_b[i], st.res)
            h += st.res
    matvec_into(w.skip_w, s.skip_w, gated, w.skip_b, st.skip)
    np.maximum(st.skip, np.float32(0.0), st.skip)
    matvec_into(w.head_w1, s.head_w1, st.skip, w.head_b1, st.hidden)
    np.maximum(st.hidden, np.float32(0.0), st.hidden)
    matvec_into(w.head_w2, s.head_w2, st.hidden, w.head_b2, st.out.reshape(T, -1))


class TransformerState(NamedTuple):
    """The takes of FastTransformerStepper: each take's window of tokens and key/value caches, the frame's
    embedding and scratch buffers (a row per take)."""

    e: np.ndarray  # [d] the embedding of the frame on screen
    tokens: np.ndarray  # [T, M, d] the window's tokens, before the positional embedding (a ring when sliding)
    keys: np.ndarray  # [T, n_layers, heads, ceil(M / BLOCK), 2, d / heads, HALF]: laid out as matvec_into's weights
    values: np.ndarray  # [T, n_layers, heads, d / heads, M] (transposed: see _attend)
    bias_ring: np.ndarray  # [heads, 2M]: slice (M - t) % M .. + M holds each slot's alibi bias at slot t (or 0)
    query: np.ndarray  # [1, d / heads] one head's scaled query
    span: np.ndarray  # int64 [2]: the window's first position and the next position, counted from the reset
    hop: int  # the window's slide (AVTransformer.hop)
    h: np.ndarray  # [T, d] the residual stream
    normed: np.ndarray  # [T, d] its layer norm
    qkv: np.ndarray  # [T, 3d] query, key and value
    attended: np.ndarray  # [T, d] every head's attention output
    tmp: np.ndarray  # [T, d] a projection's output
    hidden: np.ndarray  # [T, d_ff] the feed-forward's hidden layer
    scores: np.ndarray  # [M] one head's attention scores
    probs: np.ndarray  # [M]
    out: np.ndarray  # [T * C * classes] the decoder's output


class TransposedProjections(NamedTuple):
    """The per-layer projections of TransformerStepWeights transposed [n_layers, in, out]: the block re-encode
    multiplies row-major token blocks by them."""

    qkv_w: np.ndarray
    attn_out_w: np.ndarray
    ff1_w: np.ndarray
    ff2_w: np.ndarray


# as WaveNetScales
TransformerScales = namedtuple("TransformerScales", ("embed_w", "qkv_w", "attn_out_w", "ff1_w", "ff2_w",
                                                     "decoder_w"))


class FastTransformerStepper(FusedStepper):
    """Cached generation for the causal transformer, `takes` streams, fused like FastWaveNetStepper: each new token
    runs every layer against cached keys and values in one numba call per run of samples. Absolute positions: when
    the model's window_start moves past the cache's first position (the cache holds max_context tokens), the
    oldest hop are dropped and the rest re-encoded as one block (matrix products and a causal mask, which equals
    encoding them token by token): exactly the windows forward_causal trains on. alibi: a token's keys and values
    do not depend on any window, so the caches are rings that overwrite the oldest position, and nothing is
    re-encoded."""

    def __init__(self, model: AVTransformer, takes: int = 1, precision: str = "fp32"):
        if model.cfg.mode != "causal":
            raise ValueError("FastTransformerStepper needs a causal-mode transformer")
        cfg = model.cfg
        self.model, self.channels, self.classes, self.takes = model, cfg.channels, model.classes, takes
        self.weights, self.kernel_weights, self.scales = _products(_arrays(model.step_weights()), TransformerScales,
                                                                   precision)
        w = self.weights  # None for a sliding model, which re-encodes nothing: see _transformer_step
        self.transposed = None if model.sliding else TransposedProjections(
            *(np.ascontiguousarray(a.transpose(0, 2, 1)) for a in (w.qkv_w, w.attn_out_w, w.ff1_w, w.ff2_w)))
        self.state = self._new_state()

    def _new_state(self) -> TransformerState:
        cfg, model, w = self.model.cfg, self.model, self.weights
        d, M, heads, T = cfg.d_model, model.max_context, cfg.n_heads, self.takes
        dh, distance = d // heads, (M - np.arange(2 * M)) % M  # a slot's distance back from slot t: see _attend

        def rows(width: int) -> np.ndarray:
            return np.zeros((T, width), np.float32)

        return TransformerState(
            e=np.zeros(d, np.float32), tokens=np.zeros((T, M, d), np.float32),
            keys=np.zeros((T, cfg.n_layers, heads, -(-M // BLOCK), 2, dh, HALF), np.float32),
            values=np.zeros((T, cfg.n_layers, heads, dh, M), np.float32),
            bias_ring=-(w.slopes[:, None] * distance[None].astype(np.float32)), query=np.zeros((1, dh), np.float32),
            span=np.zeros(2, np.int64), hop=model.hop, h=rows(d), normed=rows(d),
            qkv=rows(3 * d), attended=rows(d), tmp=rows(d), hidden=rows(cfg.d_ff), scores=np.zeros(M, np.float32),
            probs=np.zeros(M, np.float32), out=np.zeros(T * self.channels * self.classes, np.float32))

    def flops_per_step(self) -> int:
        """Floating-point operations of the products in one step of one take, once the cache is full (2 per
        multiply-add; norms and softmax not counted). alibi: the new token attends to M. Absolute positions,
        averaged over a window cycle: the new token attends to M - hop/2 cached ones on average, and every hop
        steps M - hop tokens are re-encoded (each attending to half of them on average)."""
        w, M, hop = self.weights, self.state.tokens.shape[1], self.state.hop
        layers, d = w.qkv_w.shape[0], w.qkv_w.shape[2]
        dense = w.qkv_w[0].size + w.attn_out_w[0].size + w.ff1_w[0].size + w.ff2_w[0].size  # per layer and token

        def token(attended: float) -> float:
            return layers * (dense + 2 * attended * d)

        if self.model.sliding:
            return round(2 * (w.embed_w.size + token(M) + w.decoder_w.size))
        step = w.embed_w.size + token(M - hop / 2) + w.decoder_w.size
        reencode = (M - hop) * token((M - hop + 1) / 2) / hop
        return round(2 * (step + reencode))

    def bytes_per_step(self) -> int:
        """Bytes one step of one take reads, once the cache is full: each matrix once, at the stepper's precision
        and laid out as matvec_into reads it, and the keys and values the new token attends to (as counted in
        flops_per_step; absolute positions: without the re-encodes, so a lower bound)."""
        w, st, M = self.kernel_weights, self.state, self.state.tokens.shape[1]
        matrices = sum(getattr(w, name).nbytes for name in TransformerScales._fields)
        attended = M if self.model.sliding else M - st.hop / 2
        return round(matrices + (st.keys[0].nbytes + st.values[0].nbytes) * attended / M)

    def _condition(self, state: TransformerState, e: torch.Tensor) -> None:
        state.e[:] = _np(e[0])

    def start_padded(self, e: torch.Tensor) -> None:
        """See FusedStepper. The naive windows start at sample 0 or later (FoleyEngine.window_start), so no padded
        token is ever attended: the caches start empty."""
        self.set_frame(e)
        for state in self._states():
            state.span[:] = 0

    def _call(self, previous, n, given, draw, audio) -> None:
        _run_transformer(previous, n, given, draw, audio, *self._states(), self.guidance, self.kernel_weights,
                         self.scales, self.transposed)


@njit(**FAST)
def _attend(qkv, keys, values, t, count, bias_ring, query, scores, probs, attended):  # pragma: no cover - compiled
    """One take's attention at cache slot t: caches the keys and values of qkv [3d] at t in keys [heads,
    ceil(M / BLOCK), 2, dh, HALF] (blocked: a query's scores are one matvec_into, the keys its weights) and values
    [heads, dh, M] (transposed: a contiguous vector loop over the slots), and writes every head's softmax-weighted
    values over slots 0 .. count - 1 (t among them) to attended [d]. Head h's scores start from its alibi bias:
    bias_ring[h, (M - t) % M + s] = -slope_h times slot s's distance back from t around the ring of M slots (all
    zero for absolute positions, whose slots are positions 0 .. t of the window)."""
    heads, dh, M = values.shape
    d = heads * dh
    scale = np.float32(1.0 / np.sqrt(dh))
    block, half, lane, first = t // BLOCK, t % BLOCK // HALF, t % HALF, (M - t) % M
    for hd in range(heads):
        for i in range(dh):
            keys[hd, block, half, i, lane] = qkv[d + hd * dh + i]
            values[hd, i, t] = qkv[2 * d + hd * dh + i]
            query[0, i] = qkv[hd * dh + i] * scale
        matvec_into(keys[hd], UNSCALED, query, bias_ring[hd, first:first + M], scores.reshape(1, M))
        softmax_into(scores[:count], probs[:count])
        vt = values[hd]
        for i in range(dh):
            acc = np.float32(0.0)
            for s in range(count):
                acc += probs[s] * vt[i, s]
            attended[hd * dh + i] = acc


@njit(**FAST)
def _token(t, count, state, weights, scales):  # pragma: no cover - compiled
    """Every take's token at cache slot t (state.tokens[:, t], before the positional embedding of window position
    t) through every layer, its keys and values cached at t, attending to slots 0 .. count - 1 (_attend); the
    decoder's outputs go to state.out."""
    w, s, st = weights, scales, state
    h, normed, tmp = st.h, st.normed, st.tmp
    T = h.shape[0]
    for k in range(T):
        for i in range(h.shape[1]):
            h[k, i] = st.tokens[k, t, i] + w.pos[t, i]
    for la in range(st.keys.shape[1]):
        for k in range(T):
            layer_norm_into(h[k], w.norm1_w[la], w.norm1_b[la], w.eps, normed[k])
        matvec_into(w.qkv_w[la], s.qkv_w[la], normed, w.qkv_b[la], st.qkv)
        for k in range(T):
            _attend(st.qkv[k], st.keys[k, la], st.values[k, la], t, count, st.bias_ring, st.query, st.scores,
                    st.probs, st.attended[k])
        matvec_into(w.attn_out_w[la], s.attn_out_w[la], st.attended, w.attn_out_b[la], tmp)
        h += tmp
        for k in range(T):
            layer_norm_into(h[k], w.norm2_w[la], w.norm2_b[la], w.eps, normed[k])
        matvec_into(w.ff1_w[la], s.ff1_w[la], normed, w.ff1_b[la], st.hidden)
        np.maximum(st.hidden, np.float32(0.0), st.hidden)
        matvec_into(w.ff2_w[la], s.ff2_w[la], st.hidden, w.ff2_b[la], tmp)
        h += tmp
    for k in range(T):
        layer_norm_into(h[k], w.norm_w, w.norm_b, w.eps, normed[k])
    matvec_into(w.decoder_w, s.decoder_w, normed, w.decoder_b, st.out.reshape(T, -1))


@njit(**FAST)
def _block(tokens, keys, values, weights, transposed):  # pragma: no cover - compiled
    """One take's tokens [W, d] at window positions 0 .. W-1 through every layer at once with a causal mask,
    filling its key and value caches (TransformerState's layouts, less the take axis) at 0 .. W-1 (what W calls
    of _token do, as matrix products)."""
    w, wt = weights, transposed
    W, d = tokens.shape
    heads, dh = values.shape[1], values.shape[2]
    h = tokens + w.pos[:W]
    normed = np.empty_like(h)
    attended = np.empty_like(h)
    probs = np.zeros((W, W), np.float32)
    q, k, v = np.empty((W, dh), np.float32), np.empty((W, dh), np.float32), np.empty((W, dh), np.float32)
    scale = np.float32(1.0 / np.sqrt(dh))
    for la in range(keys.shape[0]):
        for t in range(W):
            layer_norm_into(h[t], w.norm1_w[la], w.norm1_b[la], w.eps, normed[t])
        qkv = np.dot(normed, wt.qkv_w[la]) + w.qkv_b[la]
        for hd in range(heads):
            copy_rows(qkv[:, hd * dh:(hd + 1) * dh], q)
            copy_rows(qkv[:, d + hd * dh:d + (hd + 1) * dh], k)
            for t in range(W):
                for i in range(dh):
                    keys[la, hd, t // BLOCK, t % BLOCK // HALF, i, t % HALF] = k[t, i]
            copy_rows(qkv[:, 2 * d + hd * dh:2 * d + (hd + 1) * dh], v)
            copy_rows(v.T, values[la, hd, :, :W])
            scores = np.dot(q, k.T) * scale
            for t in range(W):
                softmax_into(scores[t, :t + 1], probs[t, :t + 1])
            copy_rows(np.dot(probs, v), attended[:, hd * dh:(hd + 1) * dh])
        h += np.dot(attended, wt.attn_out_w[la]) + w.attn_out_b[la]
        for t in range(W):
            layer_norm_into(h[t], w.norm2_w[la], w.norm2_b[la], w.eps, normed[t])
        h += np.dot(np.maximum(np.dot(normed, wt.ff1_w[la]) + w.ff1_b[la], np.float32(0.0)), wt.ff2_w[la]) + w.ff2_b[la]


@njit(**FAST)
def _run_transformer(previous, n, given, draw, audio, state, unconditional, guidance, weights, scales,
                     transposed):  # pragma: no cover - compiled
    """n steps (see FusedStepper.run) of the transformer with its KV cache; with guidance other than 1 the
    unconditional state steps too, on the same inputs (FusedStepper.guide)."""
    x = previous.copy()
    for j in range(n):
        _transformer_step(x, state, weights, scales, transposed)
        if guidance != 1.0:
            _transformer_step(x, unconditional, weights, scales, transposed)
            _guided(state.out, unconditional.out, guidance)
        _next_input(x, j, state.out, given, draw, audio)


@njit(**FAST)
def _transformer_step(x, state, weights, scales, transposed):  # pragma: no cover - compiled
    """One sample of every take (inputs x [T * C]) at the state's next position; the decoder's outputs go to
    state.out. Sliding (alibi; `transposed` None): the caches are rings, position p goes to slot p % M and
    attends to the last M positions. Else the window of each position starts where the model's window_start says
    (origin: the reset); when it moves, the tokens it keeps are re-encoded from an empty cache, by products with
    `transposed`. numba prunes the branch that a None `transposed` rules out before compiling, so a sliding model
    never compiles the re-encode (_block: seconds of compile time per precision)."""
    tokens, span, M = state.tokens, state.span, state.tokens.shape[1]
    T = tokens.shape[0]
    position = span[1]
    if transposed is None:
        t, count = position % M, min(position + 1, M)
    else:
        start = _window_start(position, 0, M, state.hop)
        if start > span[0]:  # the window slid (by hop): re-encode the tokens it keeps
            keep = position - start
            for k in range(T):  # kept rows move to the front, each read before it is overwritten
                copy_rows(tokens[k, start - span[0]:position - span[0]], tokens[k, :keep])
                _block(tokens[k, :keep], state.keys[k], state.values[k], weights, transposed)
            span[0] = start
        t = position - span[0]
        count = t + 1
    matvec_into(weights.embed_w, scales.embed_w, x.reshape(T, -1), weights.embed_b, state.tmp)
    for k in range(T):
        for i in range(tokens.shape[2]):
            tokens[k, t, i] = state.tmp[k, i] + state.e[i]
    _token(t, count, state, weights, scales)
    span[1] = position + 1


kernels.drop_stale_cache(globals())
