"""`foley bench`: how fast generation, training and ingest run on this machine, measured in one run.

Every figure is the median wall time of several repeats after a warm-up call, turned into a rate. Generation is
measured at the default model preset, 16 kHz stereo, mu-law sampling included, with untrained weights (speed
does not depend on them), one stream on one thread as a live user would run it, the fused step alone (the
kernels' arithmetic rate), and `batch` takes at once, on a thread per core and on one thread (with the step of 1, 2
and 4 takes on one thread: what takes at once can give at most). Ingest is measured
on one file and on a corpus with a job per core, with the exact and the fast resize, and exact with the motion
cache; two `foley train` runs started
together against one alone, each process choosing its threads as the command does. The machine is shared and
noisy: compare ratios from one run, not numbers across runs.
`quick` shrinks every measurement (tiny models, short clips) to check that the benchmark runs, not to report.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from numba import njit
from torch.utils.data import default_collate
from torch.utils.flop_counter import FlopCounterMode

from foleylib.core.config import AVSpec
from foleylib.core.device import available_cores, pick_device
from foleylib.data.align import ingest, ingest_file
from foleylib.data.batches import warmup_positions
from foleylib.data.dataset import AlignedClip, SampleDataset, WindowDataset
from foleylib.data.media import ffmpeg_exe, write_video
from foleylib.generation.generate import (
    STEPPERS,
    FoleyEngine,
    generate_takes,
    run_frames,
    single_thread,
    torch_threads,
)
from foleylib.generation.sampling import Sampler
from foleylib.models.config import ARCHS, model_config
from foleylib.models.registry import build_model
from foleylib.training.trainer import batch_loss


@dataclass(frozen=True)
class Plan:
    """How much each measurement does."""

    preset: str = "default"  # model size of every measurement
    repeats: int = 3  # timed repeats (the median is reported)
    naive_frames: int = 1  # video frames generated per naive repeat (640 samples each at 16 kHz / 25 fps)
    cached_frames: int = 50  # video frames generated per cached repeat
    matmul_n: int = 2048  # size of the square matmul that measures peak GFLOP/s
    train_steps: int = 3  # optimizer steps per training repeat
    takes: int = 4  # takes generated at once (generate_takes)
    causal_windows: int = 4  # causal-mode batch: windows of `window` scored positions
    window: int = 2048
    ingest_seconds: float = 20.0  # length of the 640x360 30 fps clip that ingest reads
    corpus_files: int = 10  # a corpus of this many such clips, ingested with a job per core
    corpus_seconds: float = 10.0  # length of each
    shared_preset: str = "small"  # two `foley train` runs at once against one alone: model preset
    shared_steps: int = 20  # and optimizer steps of each run (the first two and the last are not timed)
    receptive_fields: tuple[int, ...] = (6, 8, 10)  # WaveNet dilation cycles of the scaling curve (2^c + 1)
    top_p: float = 0.9  # the nucleus of step_us_top_p (the README's setting for real footage)


FULL = Plan()
# the models measured, by report key: each architecture, and the transformer with alibi positions (it slides)
MODELS = {**{arch: (arch, {}) for arch in ARCHS}, "transformer_sliding": ("transformer", {"positions": "alibi"})}
QUICK = Plan(preset="tiny", repeats=2, cached_frames=5, matmul_n=512, train_steps=1, causal_windows=2, window=256,
             ingest_seconds=2.0, corpus_files=3, corpus_seconds=1.0, shared_preset="tiny", shared_steps=5,
             receptive_fields=(4, 6))


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall seconds of `repeats` calls of fn after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def matmul_gflops(n: int, repeats: int, threads: int | None = None) -> float:
    """GFLOP/s of an n x n fp32 matmul with torch (all intra-op threads, or `threads`)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    with torch_threads(threads or torch.get_num_threads()):
        return 2 * n ** 3 / median_seconds(lambda: a @ b, repeats) / 1e9


@njit(cache=True, fastmath=True)
def _read_all(a, reps):  # pragma: no cover - compiled
    """The sum of float32 a, `reps` times over: a loop the compiler vectorizes, bound by how fast a is read."""
    total = np.float32(0.0)
    for _ in range(reps):
        for i in range(a.shape[0]):
            total += a[i]
    return total


def read_gbps(nbytes: int, repeats: int) -> float:
    """GB/s at which one thread reads a buffer of `nbytes` over and over, from the cache level (or memory) that
    holds that size: the fastest the products of a step can read their weights."""
    a = np.ones(max(1, nbytes // 4), np.float32)
    reps = max(1, 2 ** 26 // len(a))  # 256 MB read per timing
    _read_all(a, 1)
    return reps * a.nbytes / median_seconds(lambda: _read_all(a, reps), repeats) / 1e9


def machine(plan: Plan) -> dict:
    device = pick_device()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "device": name,
            "peak_matmul_gflops": matmul_gflops(plan.matmul_n, plan.repeats, threads=available_cores()),
            "peak_matmul_gflops_1thread": matmul_gflops(plan.matmul_n, plan.repeats, threads=1)}


def _model(arch: str, plan: Plan, spec: AVSpec, seed: int, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(model_config(arch, plan.preset, spec, loss="ce", **overrides)).eval()


def _scene(spec: AVSpec, frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random frames [frames, S, S, 3] and audio of the same length (speed does not depend on content)."""
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 256, (frames, spec.size, spec.size, 3), dtype=np.uint8)
    audio = rng.uniform(-0.5, 0.5, (spec.frame_start(frames), spec.channels)).astype(np.float32)
    return video, audio


def _samplers(seed: int, takes: int, top_p: float = 1.0) -> Sampler | list[Sampler]:
    """What FoleyEngine takes for `takes` takes: one sampler, or one per take (seeds seed, seed + 1, ...)."""
    samplers = [Sampler(top_p=top_p, seed=seed + k) for k in range(takes)]
    return samplers[0] if takes == 1 else samplers


def generation_rtf(model: torch.nn.Module, spec: AVSpec, method: str, frames: int, plan: Plan, seed: int,
                   precision: str = "fp32", live: bool = False, takes: int = 1, workers: int = 1) -> float:
    """Seconds of audio per wall second of one stream, `frames` frames after a primed start (full contexts), as
    `generate` makes it (run_frames: each next frame embedded on a second thread meanwhile) or, `live`, as frames
    from a camera arrive (pushed one at a time, nothing known ahead); with `takes` > 1 (cached), the audio of all
    of that many takes in lockstep on `workers` threads, as generate_takes makes them. The primed start (an engine
    per timed run, its caches filled by teacher forcing on the frames and audio before) is made before the clock
    starts."""
    start = spec.context_frames + 2 * spec.frame_of_sample(model.receptive_field) + 2
    video, audio = _scene(spec, start + frames, seed)
    samplers = _samplers(seed, takes)
    engines = iter([FoleyEngine(model, spec, method, samplers, start, past_frames=video[:start],
                                prime=audio[:spec.frame_start(start)], workers=workers, precision=precision)
                    for _ in range(plan.repeats + 1)])  # median_seconds's warm-up and timed runs

    def run() -> None:
        engine = next(engines)
        if live:
            for frame in video[start:]:
                engine.push(frame)
        else:
            run_frames(engine, video[start:])

    samples = spec.frame_start(start + frames) - spec.frame_start(start)
    return takes * samples / spec.sr / median_seconds(run, plan.repeats)


def fusion_flops_per_sample(model: torch.nn.Module, spec: AVSpec) -> int:
    """FLOPs of one deep-fusion forward (a frame's samples) per sample, counted by torch (with gradients on, so
    that the 3D convolutions take the path the counter knows: models.video.Conv3d calls oneDNN in inference)."""
    ctx = model.cfg.spec_for(spec)
    batch = {"audio": torch.zeros(1, ctx.context_samples, ctx.channels),
             "video": torch.zeros(1, ctx.context_frames, ctx.size, ctx.size, 3, dtype=torch.uint8)}
    with FlopCounterMode(display=False) as counter:
        model(batch)
    return round(counter.get_total_flops() / model.cfg.samples_per_frame)


def step_seconds(model: torch.nn.Module, spec: AVSpec, frames: int, plan: Plan, seed: int,
                 precision: str = "fp32", takes: int = 1, top_p: float = 1.0) -> float:
    """Wall seconds per sample of the fused step alone (FusedStepper.run) of `takes` takes in lockstep on one
    thread, mu-law draws (from the `top_p` nucleus) included, no video embedding."""
    samplers = _samplers(seed, takes, top_p)
    engine = FoleyEngine(model, spec, "cached", samplers, precision=precision)  # caches warmed on padding
    n = spec.frame_start(frames)
    previous = np.zeros(spec.channels if takes == 1 else (takes, spec.channels), np.float32)
    return median_seconds(lambda: engine.stepper.run(previous, n, engine.sampler), plan.repeats) / n


def takes_rtf(model: torch.nn.Module, spec: AVSpec, plan: Plan, seed: int, workers: int,
              precision: str = "fp32") -> float:
    """Seconds of audio per wall second of plan.takes takes of the same frames at once, on `workers` threads: in
    lockstep in one engine after a primed start (generation_rtf), or for deep fusion, which has no lockstep, an
    engine per take (generate_takes, whose start costs nothing to prime)."""
    if model.cfg.arch in STEPPERS:
        return generation_rtf(model, spec, "cached", plan.cached_frames, plan, seed, precision, takes=plan.takes,
                              workers=workers)
    start = spec.context_frames
    video, audio = _scene(spec, start + plan.cached_frames, seed)
    seconds = median_seconds(lambda: generate_takes(model, spec, video, start, plan.cached_frames, range(plan.takes),
                                                    workers, prime=audio[:spec.frame_start(start)],
                                                    precision=precision), plan.repeats)
    return plan.takes * (spec.frame_start(start + plan.cached_frames) - spec.frame_start(start)) / spec.sr / seconds


def cached_rates(model: torch.nn.Module, spec: AVSpec, plan: Plan, seed: int, flops: int, peak_1thread: float,
                 workers: int, precision: str) -> dict:
    """Cached generation with the products' weights at `precision`: one stream's rtf_cached (and rtf_live, frames
    pushed as they arrive), the fused step alone (step_us_per_sample; step_gflops from the step's `flops`, counted
    as float32 ones; its share of the 1-thread peak; step_us_top_p, the step drawing from the plan.top_p nucleus,
    which with untrained weights' near-flat distributions holds most classes), its roofline (the longer of reading
    the step's bytes at read_gbps and its arithmetic at the 1-thread peak; the step's share of it) and plan.takes
    takes at once on `workers` threads (rtf_batched). What takes at once can give: the step of 1, plan.takes /
    workers and plan.takes takes in lockstep on one thread (step_us_by_takes), and takes_step_bound, the most audio
    plan.takes takes on `workers` threads make against one stream if each thread stepped its share of them as fast
    as alone: takes * step(1) / step(takes / workers)."""
    share = -(-plan.takes // workers)
    by_takes = {n: step_seconds(model, spec, plan.cached_frames, plan, seed, precision, takes=n)
                for n in sorted({1, share, plan.takes})}
    step = by_takes[1]
    nbytes = STEPPERS[model.cfg.arch](model, precision=precision).bytes_per_step()
    read = read_gbps(nbytes, plan.repeats)
    roofline = max(nbytes / read, flops / peak_1thread) / 1e9  # seconds: reading the weights, or their arithmetic
    return {"rtf_cached": generation_rtf(model, spec, "cached", plan.cached_frames, plan, seed, precision),
            "rtf_live": generation_rtf(model, spec, "cached", plan.cached_frames, plan, seed, precision, live=True),
            "step_us_per_sample": step * 1e6, "step_gflops": flops / step / 1e9,
            "step_us_top_p": 1e6 * step_seconds(model, spec, plan.cached_frames, plan, seed, precision,
                                                top_p=plan.top_p),
            "step_fraction_of_peak": flops / step / 1e9 / peak_1thread,
            "step_bytes": nbytes, "read_gbps": read, "roofline_us_per_sample": roofline * 1e6,
            "step_fraction_of_roofline": roofline / step,
            "step_us_by_takes": {str(n): t * 1e6 for n, t in by_takes.items()},
            "takes_step_bound": plan.takes * step / by_takes[share],
            "rtf_batched": takes_rtf(model, spec, plan, seed, workers, precision)}


def generation(arch: str, plan: Plan, spec: AVSpec, peak_1thread: float, seed: int, **overrides) -> dict:
    """rtf_naive, rtf_cached, speedup, the arithmetic rate of the cached path (end to end, and of the fused step
    alone), and `batch` takes at once: on a thread per core (rtf_batched; batch_speedup against one stream) and on
    one thread; under "int8" the cached rates with int8 weights (cached_rates). `overrides`: ModelConfig fields of
    the model measured."""
    model = _model(arch, plan, spec, seed, **overrides)
    workers = min(plan.takes, available_cores())
    result = {"rtf_naive": generation_rtf(model, spec, "naive", plan.naive_frames, plan, seed)}
    if arch == "fusion":  # a frame per step: there is nothing to cache
        flops = fusion_flops_per_sample(model, spec)
        rate = result["rtf_naive"]
        result |= {"rtf_cached": None, "rtf_live": None, "speedup": None, "step_us_per_sample": None,
                   "step_gflops": None, "step_fraction_of_peak": None, "step_us_top_p": None, "step_bytes": None,
                   "read_gbps": None,
                   "roofline_us_per_sample": None, "step_fraction_of_roofline": None, "step_us_by_takes": None,
                   "takes_step_bound": None, "int8": None,
                   "rtf_batched": takes_rtf(model, spec, plan, seed, workers)}
    else:
        flops = STEPPERS[arch](model).flops_per_step()
        rates = {precision: cached_rates(model, spec, plan, seed, flops, peak_1thread, workers, precision)
                 for precision in ("fp32", "int8")}
        result |= rates["fp32"]
        rate = result["rtf_cached"]
        result["speedup"] = rate / result["rtf_naive"]
        result["int8"] = rates["int8"] | {"speedup_over_fp32": rates["int8"]["rtf_cached"] / rate}
    gflops = flops * rate * spec.sr / 1e9
    result |= {"flops_per_sample": flops, "gflops_achieved": gflops, "fraction_of_peak": gflops / peak_1thread}
    result |= {"batch": plan.takes, "batch_workers": workers,
               "rtf_batched_1thread": takes_rtf(model, spec, plan, seed, 1)}
    result["batch_speedup"] = result["rtf_batched"] / rate
    return result


def context_scaling(plan: Plan, spec: AVSpec, seed: int) -> list[dict]:
    """WaveNet rtf, naive and cached, as its receptive field (the context a step reads) grows."""
    rows = []
    for cycle in plan.receptive_fields:
        model = _model("wavenet", plan, spec, seed, dilation_cycle=cycle)
        rows.append({"receptive_field": model.receptive_field,
                     "rtf_naive": generation_rtf(model, spec, "naive", plan.naive_frames, plan, seed),
                     "rtf_cached": generation_rtf(model, spec, "cached", plan.cached_frames, plan, seed)})
    return rows


def _train_rate(model: torch.nn.Module, dataset, batch_size: int, scored: int, plan: Plan) -> float:
    """Scored predictions per second of optimizer steps (forward, backward, AdamW) on one fixed batch."""
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in default_collate([dataset[i] for i in range(batch_size)]).items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def steps() -> None:
        for _ in range(plan.train_steps):
            optimizer.zero_grad()
            batch_loss(model, batch, "ce").backward()
            optimizer.step()

    return scored * plan.train_steps / median_seconds(steps, plan.repeats)


def training(arch: str, plan: Plan, spec: AVSpec, seed: int, **overrides) -> dict:
    """Predictions per second in paper mode (one sample per example) and causal mode (every position of a
    window, a model with `overrides` of its ModelConfig fields), with batches holding the same number of audio
    samples."""
    video, audio = _scene(spec, 8 + spec.frame_of_sample(2 * plan.causal_windows * plan.window), seed)
    meta = {"sr": spec.sr, "fps": spec.fps, "size": spec.size, "channels": spec.channels, "frames": len(video)}
    clip = AlignedClip(Path("bench"), video, audio, meta)
    device = pick_device()
    causal = _model(arch, plan, spec, seed, **overrides).to(device)
    warmup = warmup_positions(causal, plan.window)
    windows = WindowDataset(clip, spec, window=plan.window, warmup=warmup, stride=plan.window)
    audio_samples = plan.causal_windows * (plan.window + warmup)
    paper_batch = max(1, audio_samples // spec.context_samples)
    paper = _model(arch, plan, spec, seed, mode="paper").to(device)
    result = {"paper": {"predictions_per_s": _train_rate(paper, SampleDataset(clip, spec), paper_batch,
                                                         paper_batch, plan), "batch": paper_batch},
              "causal": {"predictions_per_s": _train_rate(causal, windows, plan.causal_windows,
                                                          plan.causal_windows * plan.window, plan),
                         "batch": plan.causal_windows, "window": plan.window},
              "audio_samples_per_batch": audio_samples}
    result["ratio"] = result["causal"]["predictions_per_s"] / result["paper"]["predictions_per_s"]
    return result


def _test_clip(path: Path, seconds: float, seed: int) -> Path:
    """A 640x360 30 fps H.264 clip with 44.1 kHz stereo AAC: moving bars over a smooth still scene (a bit rate
    like camera footage, not like white noise), a noise track."""
    rng = np.random.default_rng(seed)
    texture = cv2.resize(rng.integers(0, 256, (18, 32, 3), dtype=np.uint8), (640, 360), interpolation=cv2.INTER_CUBIC)
    x = np.arange(640)

    def frames():
        for k in range(round(seconds * 30)):
            frame = texture.copy()
            frame[:, (x + 8 * k) % 160 < 40] = (200, 40, 40)
            yield frame

    audio = rng.uniform(-0.3, 0.3, (round(seconds * 44100), 2)).astype(np.float32)
    return write_video(path, frames(), 30, audio, 44100)


def ingest_corpus(plan: Plan, seed: int, folder: Path) -> dict:
    """Seconds of video per wall second of `foley ingest --jobs 0` (a job per core) of a corpus of 640x360 30 fps
    clips, in the three ways of _ingest_rates."""
    first = _test_clip(folder / "corpus0.mp4", plan.corpus_seconds, seed)
    files = [first] + [Path(shutil.copy(first, folder / f"corpus{k}.mp4")) for k in range(1, plan.corpus_files)]
    seconds, jobs = plan.corpus_files * plan.corpus_seconds, available_cores()

    def decode_all() -> None:
        with ThreadPoolExecutor(jobs) as pool:
            list(pool.map(lambda f: subprocess.run(_decode_command(f), stdout=subprocess.DEVNULL, check=True), files))

    return {"files": plan.corpus_files, "seconds": seconds, "jobs": jobs,
            **_ingest_rates(seconds, lambda resize, motion_cache: ingest(
                files, folder / resize, force=True, jobs=0, resize=resize, motion_cache=motion_cache), plan.repeats),
            "ffmpeg_rtf": seconds / median_seconds(decode_all, plan.repeats)}


def _decode_command(clip: Path) -> list[str]:
    """ffmpeg's own decode of a clip's video to raw RGB frames (what ingest is measured against)."""
    return [ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(clip), "-map", "0:v:0", "-f", "rawvideo",
            "-pix_fmt", "rgb24", "-"]


INGEST_WAYS = {"realtime_factor": ("cv2", False), "fast_resize_rtf": ("ffmpeg", False),
               "motion_rtf": ("cv2", True)}  # report key: (resize, motion cache) of `foley ingest`


def _ingest_rates(seconds: float, run: Callable[[str, bool], object], repeats: int) -> dict:
    """Seconds of video per wall second of run(resize, motion_cache) over `seconds` of video, for each way of
    INGEST_WAYS: `foley ingest` (the exact resize), --fast-resize, and --motion."""
    return {key: seconds / median_seconds(lambda: run(*way), repeats)  # noqa: B023 - called within the loop
            for key, way in INGEST_WAYS.items()}


def ingest_speed(plan: Plan, seed: int) -> dict:
    """Seconds of 640x360 30 fps video aligned per wall second (one file; a corpus with a job per core), and
    ffmpeg's own decode of them to raw frames (the corpus's also a job per core)."""
    with tempfile.TemporaryDirectory() as tmp:
        clip = _test_clip(Path(tmp) / "clip.mp4", plan.ingest_seconds, seed)
        rates = _ingest_rates(plan.ingest_seconds, lambda resize, motion_cache: ingest_file(
            clip, Path(tmp) / "aligned", AVSpec(), force=True, resize=resize, motion_cache=motion_cache),
            plan.repeats)
        ffmpeg = median_seconds(lambda: subprocess.run(_decode_command(clip), stdout=subprocess.DEVNULL, check=True),
                                plan.repeats)
        return _against_ffmpeg({**rates, "ffmpeg_rtf": plan.ingest_seconds / ffmpeg,
                                "corpus": _against_ffmpeg(ingest_corpus(plan, seed, Path(tmp)))})


def _against_ffmpeg(rates: dict) -> dict:
    """Ingest rates with how many times ffmpeg's own decode of the same video is faster: exact_ratio (the exact
    resize) and fast_resize_ratio (--fast-resize)."""
    return {**rates, "exact_ratio": rates["ffmpeg_rtf"] / rates["realtime_factor"],
            "fast_resize_ratio": rates["ffmpeg_rtf"] / rates["fast_resize_rtf"]}


def _train_together(count: int, clip: Path, plan: Plan, out: Path) -> list[float]:
    """Steps per second of each of `count` `foley train` runs started together on an aligned clip (the first two
    steps and the last, which validates, not timed)."""
    runs = [out / f"together{count}-{k}" for k in range(count)]
    procs = [subprocess.Popen([sys.executable, "-m", "foleylib", "train", "--arch", "wavenet", "--preset",
                               plan.shared_preset, "--steps", str(plan.shared_steps), "--data", str(clip), "--seed",
                               str(k), "--quiet", "--out", str(run)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for k, run in enumerate(runs)]
    for proc in procs:
        if proc.wait() != 0:
            raise RuntimeError(f"foley train failed: {proc.stderr.read().strip()}")
    walls = [[json.loads(line)["wall_s"] for line in (run / "metrics.jsonl").read_text().splitlines()]
             for run in runs]
    return [(plan.shared_steps - 3) / (wall[-2] - wall[1]) for wall in walls]


def shared_training(plan: Plan, seed: int) -> dict:
    """Two `foley train` runs started together (each process picks its threads as the command does) against one
    alone: steps per second and the ratios."""
    with tempfile.TemporaryDirectory() as tmp:
        video = _test_clip(Path(tmp) / "clip.mp4", max(plan.ingest_seconds, 4.0), seed)
        clip = ingest_file(video, Path(tmp) / "aligned").clip_dir
        alone, together = _train_together(1, clip, plan, Path(tmp))[0], _train_together(2, clip, plan, Path(tmp))
    return {"preset": plan.shared_preset, "steps": plan.shared_steps, "alone_steps_per_s": alone,
            "together_steps_per_s": together, "ratios": [rate / alone for rate in together],
            "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}}


def run_bench(quick: bool = False, seed: int = 0, log: Callable[[str], None] = lambda _: None) -> dict:
    """Every measurement, as the dict `foley bench` writes."""
    plan, spec = (QUICK if quick else FULL), AVSpec()
    t0 = time.perf_counter()
    report = {"plan": {"quick": quick, **plan.__dict__}, "machine": machine(plan)}
    log(f"machine: {report['machine']['cpu']}, peak {report['machine']['peak_matmul_gflops']:.0f} GFLOP/s")
    peak_1thread = report["machine"]["peak_matmul_gflops_1thread"]
    report["generation"] = {}
    for name, (arch, overrides) in MODELS.items():
        with single_thread():
            report["generation"][name] = g = generation(arch, plan, spec, peak_1thread, seed, **overrides)
        cached = "" if g["rtf_cached"] is None else (
            f", cached {g['rtf_cached']:.3f} (live {g['rtf_live']:.3f}; step {g['step_us_per_sample']:.1f} us, "
            f"{g['step_us_top_p']:.1f} us at top-p {plan.top_p}, "
            f"roofline {g['roofline_us_per_sample']:.1f} us)")
        bound = "" if g["takes_step_bound"] is None else f", at most {g['takes_step_bound']:.2f}x by their steps"
        log(f"generation {name}: rtf naive {g['rtf_naive']:.4f}{cached}, {g['batch']} takes at once "
            f"{g['rtf_batched']:.3f} ({g['batch_speedup']:.2f}x one stream{bound}; on one thread "
            f"{g['rtf_batched_1thread']:.3f})")
        if g["int8"]:
            log(f"generation {name} int8 weights: cached {g['int8']['rtf_cached']:.3f} "
                f"({g['int8']['speedup_over_fp32']:.2f}x fp32), step {g['int8']['step_us_per_sample']:.1f} us "
                f"(roofline {g['int8']['roofline_us_per_sample']:.1f} us), {g['batch']} takes at once "
                f"{g['int8']['rtf_batched']:.3f} (at most {g['int8']['takes_step_bound']:.2f}x one int8 stream by "
                "their steps)")
    with single_thread():
        report["context_scaling"] = context_scaling(plan, spec, seed)
    report["training"] = {name: training(arch, plan, spec, seed, **overrides)
                          for name, (arch, overrides) in MODELS.items() if arch != "fusion"}
    for name, t in report["training"].items():
        log(f"training {name}: causal / paper predictions per second {t['ratio']:.0f}x")
    report["ingest"] = i = ingest_speed(plan, seed)
    log(f"ingest: {i['realtime_factor']:.0f}x real time ({i['fast_resize_rtf']:.0f}x --fast-resize, "
        f"{i['motion_rtf']:.0f}x with --motion), ffmpeg decode "
        f"alone {i['ffmpeg_rtf']:.0f}x; {i['corpus']['files']} files with {i['corpus']['jobs']} jobs "
        f"{i['corpus']['realtime_factor']:.0f}x ({i['corpus']['fast_resize_rtf']:.0f}x --fast-resize, "
        f"{i['corpus']['motion_rtf']:.0f}x with --motion), ffmpeg decode {i['corpus']['ffmpeg_rtf']:.0f}x")
    report["shared_training"] = t = shared_training(plan, seed)
    log(f"two trainings at once: {', '.join(f'{r:.2f}' for r in t['ratios'])} of the steps per second of one alone")
    report["wall_s"] = time.perf_counter() - t0
    return report
