"""Foley for a video file: decode it with a run's training parameters, generate its audio, write MP4/WAV/MP3.

The video is decoded at the run's frame rate and frame size (as ingest aligned the training clips), streamed
frame by frame through a FoleyEngine, and the generated audio is muxed back into the original video (its
original size and rate), exactly as long as the part generated.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import numpy as np
import torch

from foleylib.core.config import AVSpec
from foleylib.core.errors import InputError
from foleylib.data.dataset import look_ahead, window_frame_count
from foleylib.data.media import Probe, iter_frames, mux_audio, probe, read_audio, write_audio
from foleylib.generation.generate import FoleyEngine, Method, run_frames
from foleylib.generation.sampling import Sampler
from foleylib.training.checkpoint import load_model


def check_output(path: Path, inputs: list[Path], force: bool) -> None:
    """Refuse to overwrite an input, or an existing file without `force`."""
    if any(path.resolve() == p.resolve() for p in inputs):
        raise InputError("output would overwrite an input file", path)
    if path.is_dir():
        raise InputError("output is a folder, expected a file name", path)
    if path.exists() and not force:
        raise InputError("output exists (use --force to replace it)", path)


def plan_part(video: Path, spec: AVSpec, start: float, seconds: float | None) -> tuple[Probe, int, int]:
    """(probe, first frame, frame count) of the part [start, start + seconds) of a video at the spec's frame rate
    (to the end when seconds is None); InputError when there is no video or nothing in that part."""
    info = probe(video)
    if not info.has_video:
        raise InputError("no video stream", video)
    fps = spec.fps_exact
    first = round(start * fps)  # the frame on screen at `start`
    available = math.floor(((info.video_duration or info.duration) - first / fps) * fps)
    if available < 1:
        raise InputError(f"nothing to generate from {start:g} s: the video lasts {info.duration:g} s", video)
    count = min(available, math.floor(seconds * fps)) if seconds else available
    if count < 1:
        raise InputError(f"{seconds:g} s is shorter than one frame at {float(fps):g} fps", video)
    return info, first, count


@contextmanager
def decode_part(video: Path, spec: AVSpec, first: int, model: torch.nn.Module,
                size: int | None = None) -> Iterator[tuple[np.ndarray, Iterator[np.ndarray]]]:
    """Decode a video from frame `first` at the spec's frame rate: yields the frames before it that the model's
    contexts look back on [past, S, S, 3] and an iterator of the frames from `first` on. Without `size`, the
    frames as the model reads them (the spec's size; `look_ahead` when the model looks ahead); with it, the
    video's own frames at that size (for display). The decoder is closed on exit."""
    shown = size or spec.size
    past = min(first, window_frame_count(spec, model.receptive_field + 1))
    with closing(iter_frames(video, fps=spec.fps_exact, size=shown, start=float((first - past) / spec.fps_exact))) \
            as decoded:
        past_frames = np.array(list(itertools.islice(decoded, past)), np.uint8).reshape(-1, shown, shown, 3)
        yield look_ahead(past_frames, decoded, 0 if size else model.cfg.video_lookahead)


def make_engine(model: torch.nn.Module, spec: AVSpec, run: str | Path, *args, **kwargs) -> FoleyEngine:
    """FoleyEngine(model, spec, *args, **kwargs), its refusals (e.g. cached deep fusion) as InputError on the run."""
    try:
        return FoleyEngine(model, spec, *args, **kwargs)
    except ValueError as err:
        raise InputError(str(err), run) from None


def dub_video(video: str | Path, run: str | Path, out: str | Path, wav: str | Path | None = None,
              mp3: str | Path | None = None, start: float = 0.0, seconds: float | None = None,
              method: Method = "auto", seed: int = 0, temperature: float = 1.0, top_p: float = 1.0,
              crossfade_ms: float = 0.0, prime_seconds: float = 0.0, keep_original: bool = False,
              force: bool = False, device: str = "auto", progress: bool = True, precision: str = "fp32",
              guidance: float = 1.0) -> dict:
    """Generate audio for `video` from `start` for `seconds` (None: to the end) with the model of `run`.

    The audio context starts as zeros, or as the video's own last `prime_seconds` of audio before `start`.
    Writes `out` (MP4: the video part with the generated audio; `keep_original` adds the original audio as a
    second track) and optionally `wav`/`mp3`; precision: cached generation's weights, guidance: classifier-free
    guidance weight (FoleyEngine). Returns a summary (seconds generated, wall time, real-time factor).
    """
    video, outputs = Path(video), [Path(p) for p in (out, wav, mp3) if p is not None]
    for path in outputs:
        check_output(path, [video, Path(run)], force)
    if Path(out).suffix.lower() != ".mp4":
        raise InputError("the video output must be an .mp4 file", out)
    model, spec = load_model(run, device)
    info, first, count = plan_part(video, spec, start, seconds)
    prime = None
    if prime_seconds > 0:
        if not info.has_audio:
            raise InputError("--prime needs the video's own audio, and it has none", video)
        lead = spec.frame_start(first)
        prime = read_audio(video, spec.sr, spec.channels)[max(0, lead - round(prime_seconds * spec.sr)):lead]
    with decode_part(video, spec, first, model) as (past_frames, decoded):
        engine = make_engine(model, spec, run, method, Sampler(temperature, top_p, seed), first, past_frames, prime,
                             crossfade=round(crossfade_ms * spec.sr / 1000), precision=precision, guidance=guidance)
        total = spec.frame_start(first + count) - spec.frame_start(first)
        audio, wall = run_frames(engine, itertools.islice(decoded, count), total, progress)
    fps = spec.fps_exact
    t0, length = float(first / fps), len(audio) / spec.sr
    made = spec.frame_of_sample(spec.frame_start(first) + len(audio) - 1) + 1 - first  # frames decoded in time
    mux_audio(video, audio, spec.sr, out, keep_original=keep_original, start=t0,
              duration=length if seconds or first else None)
    for path in (wav, mp3):
        if path is not None:
            write_audio(path, audio, spec.sr)
    return {"video": str(video), "run": str(run), "outputs": [str(p) for p in outputs], "start_s": t0,
            "seconds": length, "frames": made, "method": engine.method, "precision": precision, "guidance": guidance,
            "wall_s": wall,
            "rtf": length / wall, "sr": spec.sr, "fps": float(fps)}
