"""Generation as in the paper (Sec. III-D, Fig. 4), frame by frame as the video arrives.

Sample-level models emit the next sample each step, with the video context frozen for the samples of a frame;
deep fusion emits a whole frame's samples per step (optionally overlapped and crossfaded). The audio context is
zero-padded at the start, or primed with real audio before the first generated sample. Output is float [N, C]
in [-1, 1].

Two methods give the same audio: "naive" re-runs the network on its whole context for every step (the paper);
"cached" keeps per-layer state between steps (WaveNet queues, the transformer's KV cache) and costs one column
of work per sample. `FoleyEngine` makes each frame's audio as that frame arrives (live Foley, `stream`);
`generate` runs it over the frames of a clip, `generate_takes` several takes of them at once.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Literal

import numpy as np
import torch

from foleylib.core.config import AVSpec
from foleylib.core.device import free_cores, thread_count
from foleylib.core.progress import progress_bar
from foleylib.data.dataset import (
    AdvancedFrames,
    audio_context,
    causal_window,
    look_ahead,
    video_context,
    window_frame_count,
)
from foleylib.data.motion import HISTORY, FrameInput, input_channels
from foleylib.generation.fastgen import FastTransformerStepper, FastWaveNetStepper, FusedStepper, SplitStepper
from foleylib.generation.kernels import blas_threads
from foleylib.generation.sampling import Sampler
from foleylib.models.config import ModelConfig
from foleylib.models.transformer import window_start

Method = Literal["auto", "naive", "cached"]


STEPPERS = {"wavenet": FastWaveNetStepper, "transformer": FastTransformerStepper}


def make_stepper(model: torch.nn.Module, takes: int = 1, workers: int = 1,
                 precision: str = "fp32") -> FusedStepper | SplitStepper:
    """The model's fused stepper for `takes` streams in lockstep, split over up to `workers` threads, its products'
    weights at `precision` (core.config.GENERATION_PRECISIONS)."""
    make = partial(STEPPERS[model.cfg.arch], model, precision=precision)
    return make(takes) if min(workers, takes) <= 1 else SplitStepper(make, takes, min(workers, takes))


def torch_threads(n: int) -> AbstractContextManager[None]:
    """torch's intra-op thread count set to n inside, the count before restored after."""
    return thread_count(torch.get_num_threads, torch.set_num_threads, n)


@contextmanager
def single_thread() -> Iterator[None]:
    """Per-sample steps are latency-bound: one intra-op thread for torch and for BLAS avoids thread hand-off and,
    when takes run on threads, oversubscribed cores. Inside it, the process-wide count that
    foleylib.core.device.configure_threads chose for training is set aside, and restored after."""
    with torch_threads(1), blas_threads(1):
        yield


def supports_cached(model: torch.nn.Module) -> bool:
    """Cached generation exists for the causal sample-level models (WaveNet queues, transformer KV cache)."""
    return model.cfg.arch in STEPPERS and model.cfg.mode == "causal"


def resolve_method(model: torch.nn.Module, method: Method) -> Literal["naive", "cached"]:
    """"auto" is cached where the model supports it, else naive; "cached" elsewhere is refused."""
    if method == "auto":
        return "cached" if supports_cached(model) else "naive"
    if method == "cached" and not supports_cached(model):
        raise ValueError(f"cached generation needs a causal wavenet or transformer, not "
                         f"{model.cfg.arch}/{model.cfg.mode}; use method naive")
    if method not in ("naive", "cached"):
        raise ValueError(f"unknown method {method!r}; choose auto, naive or cached")
    return method


class Tape:
    """A growing array addressed by global row index that forgets rows far behind its end.

    It offers what the context functions use (len, shape, slices and items at kept rows), so they read a
    stream of unbounded length in bounded memory. At least the last `keep` rows are always kept.
    """

    def __init__(self, rows: np.ndarray, offset: int, keep: int):
        self.data, self.offset, self.keep = rows, offset, keep

    def __len__(self) -> int:
        return self.offset + len(self.data)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.data.shape[1:])

    def _local(self, index: int | slice) -> int | slice:
        start = index.start if isinstance(index, slice) else index
        if start is None or start < self.offset:
            raise IndexError(f"row {start} is no longer kept (the tape starts at {self.offset})")
        if isinstance(index, slice):
            return slice(start - self.offset, None if index.stop is None else index.stop - self.offset)
        return index - self.offset

    def __getitem__(self, index: int | slice) -> np.ndarray:
        return self.data[self._local(index)]

    def __setitem__(self, index: int | slice, value: np.ndarray) -> None:
        self.data[self._local(index)] = value

    def extend(self, rows: np.ndarray) -> None:
        """Append rows; when more than 2 * keep are held, drop all but the last keep."""
        self.data = np.concatenate([self.data, rows])
        if len(self.data) > 2 * self.keep:
            drop = len(self.data) - self.keep
            self.data = self.data[drop:].copy()
            self.offset += drop


@dataclass
class FrameAudio:
    """The audio of one video frame, as the engine made it."""

    frame: int  # global frame index
    audio: np.ndarray  # float32 [samples of the frame, C], or [samples, takes, C] for an engine of several takes
    latency: float  # wall seconds between the frame's arrival and its audio


def crossfade_weights(n: int) -> np.ndarray:
    """Raised-cosine fade-in weights [n, 1] in (0, 1); the fade-out is 1 - w, so the two sum to one."""
    return (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)[:, None]


def guidance_refusal(cfg: ModelConfig, guidance: float) -> str | None:
    """Why a model cannot generate with classifier-free `guidance` (which mixes mu-law logits), or None."""
    if guidance != 1.0 and cfg.output != "mulaw":
        return f"guidance mixes logits: it needs a model with mu-law output (loss ce), not {cfg.output}"
    return None


class FoleyEngine:
    """Makes the audio of each video frame as the frame arrives (push), by the paper's rules.

    sampler: a Sampler, or a list of them to make one take per sampler in lockstep (cached generation only: the
    takes share the frames and their embeddings, and each of `workers` threads its share of the takes and one read
    of the weights per step for them; audio rows are then [takes, C]).
    start_frame: global index of the first frame to be pushed (frame/sample arithmetic and zero padding are
    global); past_frames: frames just before it (black where missing); prime: real audio just before its first
    sample (zeros where missing; every take starts from it). crossfade (deep fusion only): segments of spf samples
    are made every spf - crossfade samples and overlapped with a raised-cosine crossfade over `crossfade` samples.
    precision (cached generation): the products' weights, "fp32" (equal to the naive path within float32
    rounding) or "int8" (per-row scales: faster, outputs within about 1% of fp32's; kernels.quantize_rows).
    guidance (mu-law models): classifier-free guidance weight w; every output is drawn from the logits
    u + w (c - u), c the model's on the frames and u its logits on black frames (what a model trained with
    `--video-dropout` predicts without picture). 1 (the default) is the model alone; above 1 stresses what the
    picture changes. Costs a second pass per step.
    """

    def __init__(self, model: torch.nn.Module, spec: AVSpec, method: Method = "auto",
                 sampler: Sampler | list[Sampler] | None = None, start_frame: int = 0,
                 past_frames: np.ndarray | None = None, prime: np.ndarray | None = None, crossfade: int = 0,
                 workers: int = 1, precision: str = "fp32", guidance: float = 1.0):
        cfg = model.cfg
        self.model, self.cfg = model.eval(), cfg
        self.spec = cfg.spec_for(spec)
        self.method = resolve_method(model, method)
        if refusal := guidance_refusal(cfg, guidance):
            raise ValueError(refusal)
        self.guidance = float(guidance)
        self.sampler = sampler or Sampler()
        takes = len(sampler) if isinstance(sampler, list) else None
        if takes is not None and self.method != "cached":
            raise ValueError("takes in lockstep need cached generation")
        if precision != "fp32" and self.method != "cached":
            raise ValueError(f"{precision} weights need cached generation")
        self.row = (cfg.channels,) if takes is None else (takes, cfg.channels)  # one audio sample of every take
        if takes is not None and prime is not None:
            prime = np.broadcast_to(np.asarray(prime)[:, None], (len(prime), *self.row))
        self.device = next(model.parameters()).device
        self.span = cfg.samples_per_frame if cfg.arch == "fusion" else 1  # samples made per model call
        if crossfade and cfg.arch != "fusion":
            raise ValueError("crossfade applies to deep fusion, whose steps make whole segments")
        if not 0 <= crossfade < self.span // 2 + 1:
            raise ValueError(f"crossfade must be in [0, {self.span // 2}] samples, got {crossfade}")
        self.crossfade, self.tail = crossfade, None  # tail: the last call's overlap, faded out into the next
        self.next_frame = start_frame
        first = self.spec.frame_start(start_frame)
        self.made = first  # samples before this one are final
        history = samples_read(model)
        self.audio = self._tape(prime, first, history + 2 * self.spec.max_samples_per_frame, self.row, np.float32)
        self.frame_input = FrameInput(cfg.video_input)  # RGB frames -> the model's input frames (causal motion)
        keep = frames_kept(model, spec)
        past = None if past_frames is None else self.frame_input.last(past_frames, keep)
        self.frames = self._tape(past, start_frame, keep, (cfg.size, cfg.size, input_channels(cfg.video_input)),
                                 np.uint8)
        self.origin = max(0, first - model.receptive_field)  # where cached state (and the naive windows) begin
        self.stepper = make_stepper(model, takes or 1, workers, precision) if self.method == "cached" else None
        self.on_screen = None  # the frame whose embedding conditions the stepper
        self.ahead: tuple[np.ndarray, Future] | None = None  # the next frame and its (input frame, embedding)
        self.ready: tuple[int, torch.Tensor] | None = None  # a frame's embedding made ahead: (index, [1, d])
        self.helper = ThreadPoolExecutor(1) if self.stepper is not None else None  # makes them
        if self.stepper is not None:
            with torch.no_grad():
                black = np.zeros((cfg.context_frames, *self.frames.shape[1:]), np.uint8)  # frames before 0
                if self.guidance != 1.0:
                    self.stepper.guide(self.guidance, self._embed(black))
                if self.origin == 0:  # before the caches' first position lies the naive path's zero padding
                    self.stepper.start_padded(self._embed(black))
                self._step_cached(self.origin, first, teacher_forced=True)  # warm the caches on the prime

    @staticmethod
    def _tape(past: np.ndarray | None, stop: int, keep: int, row: tuple[int, ...], dtype: type) -> Tape:
        """A tape holding rows max(0, stop - keep) .. stop - 1: zeros, with the tail of `past` at the end."""
        offset = max(0, stop - keep)
        rows = np.zeros((stop - offset, *row), dtype)
        if past is not None and len(past) and len(rows):
            tail = np.asarray(past)[-len(rows):]
            rows[len(rows) - len(tail):] = tail
        return Tape(rows, offset, keep)

    def push(self, frame: np.ndarray, upcoming: np.ndarray | None = None) -> FrameAudio:
        """Take the next video frame [S, S, 3] uint8 and return the audio of its samples. `upcoming`: the frame
        that will be pushed next, when it is known already (a file, not a camera): cached generation then makes
        its input frame and embedding on a second thread while this frame's samples are made (the same values)."""
        t0 = time.perf_counter()
        k, spec = self.next_frame, self.spec
        with torch.no_grad(), single_thread():
            if self.ahead is not None:
                promised, made = self.ahead
                if not np.array_equal(promised, frame):
                    raise ValueError(f"frame {k} is not the `upcoming` frame pushed with frame {k - 1}")
                model_frame, embedding = made.result()
                self.ready = (k, embedding)
            else:
                model_frame = self.frame_input.push(frame)
            self.ahead = None
            self.frames.extend(model_frame[None])
            if upcoming is not None and self.helper is not None:
                promised = np.array(upcoming)
                self.ahead = (promised, self.helper.submit(self._make_ahead, k, promised))
            lo, hi = spec.frame_start(k), spec.frame_start(k + 1)
            try:
                if self.cfg.arch == "fusion":
                    self._fill_segments(hi)
                elif self.stepper is not None:
                    self._step_cached(self.made, hi, teacher_forced=False)
                else:
                    self._step_naive(hi)
            finally:
                if self.ahead is not None:  # torch's work for it ends under this thread setting
                    wait([self.ahead[1]])
        self.next_frame += 1
        return FrameAudio(k, np.array(self.audio[lo:hi]), time.perf_counter() - t0)

    def _make_ahead(self, k: int, upcoming: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        """On the helper thread: frame k + 1's model input frame and embedding, from `upcoming` and the frames up
        to k (read, not changed: the tape gets the input frame when k + 1 is pushed)."""
        model_frame = self.frame_input.push(upcoming)
        window = np.concatenate([video_context(self.frames, k, self.spec.context_frames)[1:], model_frame[None]])
        with torch.no_grad():
            return model_frame, self._embed(window)

    def _grow_audio(self, stop: int) -> None:
        if stop > len(self.audio):
            self.audio.extend(np.zeros((stop - len(self.audio), *self.row), np.float32))

    def _run(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The model's output for one example; with guidance, mixed with its output on black frames (naive
        paths; see the class)."""
        output = self._forward(batch)
        if self.guidance == 1.0:
            return output
        unconditional = self._forward({**batch, "video": torch.zeros_like(batch["video"])})
        return unconditional + self.guidance * (output - unconditional)

    def _forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model({k: v[None].to(self.device) for k, v in batch.items()})[0].float().cpu()

    def _embed(self, window: np.ndarray) -> torch.Tensor:
        """The per-frame video embedding e_p of an n-frame window of model input frames [n, S, S, V] uint8. [1, d]"""
        return self.model.frames(torch.from_numpy(window)[None].to(self.device))[:, 0]

    def _frame_embedding(self, i: int) -> torch.Tensor:
        """The per-frame video embedding e_p of the frame on screen at sample i (made ahead, or now). [1, d]"""
        k = self.spec.frame_of_sample(i)
        if self.ready is not None and self.ready[0] == k:
            return self.ready[1]
        return self._embed(video_context(self.frames, k, self.spec.context_frames))

    def _step_cached(self, start: int, stop: int, teacher_forced: bool) -> None:
        """Positions start .. stop - 1 through the stepper, a frame's run of samples at a time; teacher-forced
        steps keep the audio that is there (they only fill the caches)."""
        self._grow_audio(stop)
        i = start
        while i < stop:
            k = self.spec.frame_of_sample(i)
            end = min(stop, self.spec.frame_start(k + 1))
            if k != self.on_screen:  # a new frame: its embedding conditions the next samples
                self.stepper.set_frame(self._frame_embedding(i))
                self.on_screen = k
            previous = self.audio[i - 1] if i > 0 else np.zeros(self.row, np.float32)
            if teacher_forced:
                self.stepper.run(previous, end - i, given=self.audio[i:end])
            else:
                self.audio[i:end] = self.stepper.run(previous, end - i, self.sampler)
            i = end
        self.made = max(self.made, stop)

    def window_start(self, i: int) -> int:
        """First position of the causal window whose last position predicts sample i (naive causal steps).

        WaveNet: the receptive field ending at i. Transformer: the window forward_causal (and the KV cache)
        uses for i, counting windows from `origin` (models.transformer.window_start); with alibi positions the
        receptive field ending at i, but never before `origin`, where the rolling cache begins empty.
        """
        m = self.model
        if self.cfg.arch == "wavenet":
            return i - m.receptive_field + 1
        if m.sliding:
            return max(self.origin, i - m.receptive_field + 1)
        return window_start(i, self.origin, m.max_context, m.hop)

    def _step_naive(self, stop: int) -> None:
        """Samples made .. stop - 1, re-running the model on its whole context for each."""
        self._grow_audio(stop)
        spec = self.spec
        for i in range(self.made, stop):
            if self.cfg.mode == "paper":
                batch = {"audio": torch.from_numpy(audio_context(self.audio, i, spec.context_samples)),
                         "video": torch.from_numpy(video_context(self.frames, spec.frame_of_sample(i),
                                                                 spec.context_frames))}
                output = self._run(batch)
            else:
                start = self.window_start(i)
                length = i - start + 1
                output = self._run(causal_window(self.audio, self.frames, spec, start, length,
                                                 window_frame_count(spec, length)))[-1]
            self.audio[i] = self.sampler(output, self.cfg.output == "mulaw")
        self.made = stop

    def _fill_segments(self, stop: int) -> None:
        """Deep fusion: one call per segment until samples before `stop` are final.

        Without crossfade a call at a frame start makes that frame's samples (the paper). With it, a call at t
        makes spf samples from t; the first `crossfade` are blended with the previous call's last ones, and the
        next call starts at t + spf - crossfade.
        """
        spec, X = self.spec, self.crossfade
        while self.made < stop:
            t = self.made
            k = spec.frame_of_sample(t)
            batch = {"audio": torch.from_numpy(audio_context(self.audio, t, spec.context_samples)),
                     "video": torch.from_numpy(video_context(self.frames, k, spec.context_frames))}
            segment = self.sampler(self._run(batch), self.cfg.output == "mulaw")  # [spf, C]
            if X and self.tail is not None:
                w = crossfade_weights(X)
                segment[:X] = (1 - w) * self.tail + w * segment[:X]
            end = t + self.span - X if X else spec.frame_start(k + 1)
            self._grow_audio(end)
            self.audio[t:end] = segment[:end - t]
            self.tail = segment[end - t:end - t + X] if X else None
            self.made = end


def samples_read(model: torch.nn.Module) -> int:
    """How many samples up to the next one a step reads: its audio context and the sample before it."""
    return max(model.cfg.context_samples, model.receptive_field) + 1


def frames_kept(model: torch.nn.Module, spec: AVSpec) -> int:
    """How many input frames before the next one a FoleyEngine keeps: as far back as its next steps' contexts
    reach."""
    return window_frame_count(model.cfg.spec_for(spec), samples_read(model)) + 2


def stream(model: torch.nn.Module, spec: AVSpec, frames: Iterable[np.ndarray], **engine_args) -> Iterator[FrameAudio]:
    """Live Foley: yield each frame's audio as soon as it is made, taking frames one at a time from an iterator
    (a camera, a decoder). `engine_args` go to FoleyEngine (method, sampler, start_frame, past_frames, prime,
    crossfade, precision, guidance). A model that looks ahead (ModelConfig.video_lookahead = K) makes frame j's
    audio once frame j + K has come (K frames of latency), and the last K frames' audio at the end."""
    past, frames = look_ahead(engine_args.pop("past_frames", None), frames, model.cfg.video_lookahead)
    engine = FoleyEngine(model, spec, past_frames=past, **engine_args)
    for frame in frames:
        yield engine.push(frame)


def generate(model: torch.nn.Module, spec: AVSpec, frames: np.ndarray, start_frame: int, n_frames: int,
             prime: np.ndarray | None = None, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
             method: Method = "auto", crossfade: int = 0, progress: bool = False,
             precision: str = "fp32", guidance: float = 1.0) -> np.ndarray:
    """Generate the audio of frames start_frame .. start_frame + n_frames - 1 of a clip.

    frames: the clip's aligned frames [T, S, S, 3]; prime: real audio just before the first generated sample
    (zero padding where it is shorter than the context); precision, guidance: see FoleyEngine. Returns float32
    [N, C].
    """
    return _generate(model, spec, frames, start_frame, n_frames, Sampler(temperature, top_p, seed), prime, method,
                     crossfade, progress, precision=precision, guidance=guidance)


def _generate(model: torch.nn.Module, spec: AVSpec, frames: np.ndarray, start_frame: int, n_frames: int,
              sampler: Sampler | list[Sampler], prime: np.ndarray | None = None, method: Method = "auto",
              crossfade: int = 0, progress: bool = False, workers: int = 1, precision: str = "fp32",
              guidance: float = 1.0) -> np.ndarray:
    """generate with a Sampler, or with a list of them: takes in lockstep on `workers` threads, [N, takes, C]."""
    if start_frame < 0 or n_frames < 1 or start_frame + n_frames > len(frames):
        raise ValueError(f"frames {start_frame} .. {start_frame + n_frames - 1} are not all in the clip "
                         f"({len(frames)} frames)")
    ahead = model.cfg.video_lookahead
    shown = AdvancedFrames(frames, ahead) if ahead else frames  # what the model reads as the clip's frames
    past = shown[max(0, start_frame - frames_kept(model, spec) - HISTORY):start_frame]
    engine = FoleyEngine(model, spec, method, sampler, start_frame, past_frames=past, prime=prime,
                         crossfade=crossfade, workers=workers, precision=precision, guidance=guidance)
    total = spec.frame_start(start_frame + n_frames) - spec.frame_start(start_frame)
    return run_frames(engine, (shown[k] for k in range(start_frame, start_frame + n_frames)), total, progress)[0]


def generate_takes(model: torch.nn.Module, spec: AVSpec, frames: np.ndarray, start_frame: int, n_frames: int,
                   seeds: Iterable[int], workers: int | None = None, temperature: float = 1.0, top_p: float = 1.0,
                   **generate_args) -> list[np.ndarray]:
    """Several takes of the same frames, one per seed, each equal to generate(..., seed=seed); `generate_args` go
    to generate. They run on `workers` threads (default: one per core that other work leaves free, at most one per
    take). Cached generation makes them in lockstep in one engine: each frame is embedded once for all, and each
    thread steps its share of the takes with one read of the weights per step. Other methods run an engine per
    take; the fused loops and torch release the GIL, so the threads run in parallel."""
    seeds = [int(seed) for seed in seeds]
    if not seeds:
        return []
    workers = min(workers or free_cores(), len(seeds))
    with single_thread():  # one thread count for all takes, restored after
        if resolve_method(model, generate_args.get("method", "auto")) == "cached":
            samplers = [Sampler(temperature, top_p, seed) for seed in seeds]
            audio = _generate(model, spec, frames, start_frame, n_frames, samplers, workers=workers, **generate_args)
            return [np.ascontiguousarray(audio[:, k]) for k in range(len(seeds))]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda seed: generate(model, spec, frames, start_frame, n_frames,
                                                       temperature=temperature, top_p=top_p, seed=seed,
                                                       **generate_args), seeds))


def run_frames(engine: FoleyEngine, frames: Iterable[np.ndarray], total: int | None = None, progress: bool = False,
               on_frame: Callable[[FrameAudio, float], None] | None = None) -> tuple[np.ndarray, float]:
    """Push frames through an engine with a progress bar (samples, real-time factor); `on_frame(piece, elapsed
    wall seconds)` follows each frame. Returns the audio float32 [N, C] and the wall seconds it took."""
    pieces = []
    with progress_bar(total, "generate", enabled=progress, unit="sample", unit_scale=True) as bar:
        t0 = time.perf_counter()
        frames = iter(frames)
        upcoming = next(frames, None)
        while upcoming is not None:
            frame, upcoming = upcoming, next(frames, None)
            piece = engine.push(frame, upcoming)  # the next frame is known: its embedding is made meanwhile
            pieces.append(piece.audio)
            bar.update(len(piece.audio))
            bar.set_postfix(rtf=f"{bar.n / engine.spec.sr / (time.perf_counter() - t0):.3f}", refresh=False)
            if on_frame:
                on_frame(piece, time.perf_counter() - t0)
        wall = time.perf_counter() - t0
    if not pieces:
        raise ValueError("no frames to generate audio for")
    return np.concatenate(pieces), wall
