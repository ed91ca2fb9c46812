"""Aligned clips on disk and the context windows the models train on.

For an audio index i (the sample to predict) a model sees the `context_samples` samples before i and the
last `context_frames` video frames up to the frame on screen at i (that frame included; a model that looks K
frames ahead reads the clip through `AdvancedFrames`). Missing context at the start of a clip is zero padding, for
audio and for video (paper Sec. III-B and III-D).
"""
from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from foleylib.core.config import AVSpec
from foleylib.core.errors import InputError
from foleylib.data.media import is_positive

META_KEYS = ("source", "sha256", "sr", "fps", "size", "channels", "frames", "samples")


@dataclass
class AlignedClip:
    """One aligned clip: frames uint8 [T, S, S, 3] and audio float32 [N, C], memory-mapped."""

    path: Path
    frames: np.ndarray
    audio: np.ndarray
    meta: dict

    @property
    def spec(self) -> AVSpec:
        """The clip's rates and sizes (default context lengths; override with .with_())."""
        return AVSpec(sr=self.meta["sr"], fps=self.meta["fps"], size=self.meta["size"],
                      channels=self.meta["channels"])

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.meta["sr"]


def _check_meta(meta, path: Path) -> None:
    """InputError unless meta.json is an object with every key: positive rates, sizes and lengths, text for the rest."""
    if not isinstance(meta, dict):
        raise InputError("meta.json is not a JSON object", path)
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise InputError(f"meta.json lacks {', '.join(missing)}", path)
    bad = [k for k in ("sr", "size", "channels", "frames", "samples") if not is_positive(meta[k], integral=True)]
    bad += [] if is_positive(meta["fps"]) else ["fps"]
    bad += [k for k in ("source", "sha256") if not isinstance(meta[k], str)]
    if bad:
        raise InputError("meta.json has impossible " + ", ".join(f"{k} {meta[k]!r}" for k in bad), path)


def _load_array(path: Path, name: str) -> np.ndarray:
    """path/<name>.npy memory-mapped; InputError (its first line) when np.load cannot read it."""
    try:
        return np.load(path / f"{name}.npy", mmap_mode="r")
    except Exception as err:  # noqa: BLE001 - np.load of a damaged file raises many kinds (ValueError, TokenError...)
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise InputError(f"cannot read {name}.npy: {reason}", path) from None


def load_clip(path: str | Path) -> AlignedClip:
    """Open an aligned clip folder; raises InputError naming the folder when it is incomplete or inconsistent."""
    path = Path(path)
    if not path.is_dir():
        raise InputError("not an aligned clip folder", path)
    try:
        meta = json.loads((path / "meta.json").read_text())
    except OSError:
        raise InputError("missing meta.json", path) from None
    except ValueError:
        raise InputError("meta.json is not valid JSON", path) from None
    _check_meta(meta, path)
    frames, audio = _load_array(path, "frames"), _load_array(path, "audio")
    size = meta["size"]
    if frames.dtype != np.uint8 or frames.shape[1:] != (size, size, 3) or len(frames) != meta["frames"]:
        raise InputError(f"frames.npy is {frames.dtype}{list(frames.shape)}, meta.json expects "
                         f"uint8[{meta['frames']}, {size}, {size}, 3]", path)
    if audio.dtype != np.float32 or audio.shape != (meta["samples"], meta["channels"]):
        raise InputError(f"audio.npy is {audio.dtype}{list(audio.shape)}, meta.json expects "
                         f"float32[{meta['samples']}, {meta['channels']}]", path)
    owned = AVSpec(sr=meta["sr"], fps=meta["fps"]).frame_start(meta["frames"])
    if meta["samples"] != owned:
        raise InputError(f"meta.json's {meta['frames']} frames own {owned} samples at its sr and fps, not "
                         f"{meta['samples']}", path)
    if not _finite(audio):
        raise InputError("audio.npy holds NaN or infinite samples (damaged)", path)
    return AlignedClip(path, frames, audio, meta)


def _finite(audio: np.memmap, chunk: int = 1 << 24) -> bool:
    """No NaN or infinity among the samples. Read in chunks with plain file reads, not through the memory map, so
    that what was read stays in the page cache, not in this process's memory."""
    left = audio.nbytes
    with open(audio.filename, "rb") as f:
        f.seek(audio.offset)
        while left > 0:
            block = f.read(min(chunk, left))
            if not block or not np.isfinite(np.frombuffer(block, audio.dtype)).all():
                return False
            left -= len(block)
    return True


def audio_context(audio: np.ndarray, end: int, length: int) -> np.ndarray:
    """audio[end - length : end], zero-padded in front where it starts before sample 0. [length, C]"""
    out = np.zeros((length, audio.shape[1]), np.float32)
    start = end - length
    lo = max(start, 0)
    if end > lo:
        out[lo - start:] = audio[lo:end]
    return out


def video_context(frames: np.ndarray, current: int, count: int) -> np.ndarray:
    """frames[current - count + 1 : current + 1], zero (black) frames in front before frame 0. [count, S, S, 3]"""
    out = np.zeros((count, *frames.shape[1:]), np.uint8)
    start = current - count + 1
    lo = max(start, 0)
    out[lo - start:] = frames[lo:current + 1]
    return out


class AdvancedFrames:
    """What a model that looks `ahead` frames past the one on screen (ModelConfig.video_lookahead) reads as a
    clip's frames: row j is frames[j + ahead], the last frame repeated where that is past the end. Same length and
    shape as `frames`; rows are read only when asked for (a memory map stays one). `look_ahead`: the same for a
    stream."""

    def __init__(self, frames: np.ndarray, ahead: int):
        self.frames, self.ahead = frames, ahead
        self.dtype, self.shape = frames.dtype, frames.shape

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index) -> np.ndarray:
        rows = np.minimum(np.asarray(range(len(self.frames))[index], np.intp) + self.ahead, len(self.frames) - 1)
        return np.asarray(self.frames[rows])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self[:] if dtype is None else self[:].astype(dtype)


def look_ahead(past: np.ndarray | None, frames: Iterable[np.ndarray],
               ahead: int) -> tuple[np.ndarray | None, Iterator[np.ndarray]]:
    """A video stream as a model that looks `ahead` frames ahead reads it (the rows AdvancedFrames gives of the
    whole video): `past` [P, S, S, 3], the frames before the first one to generate, and `frames`, the video from
    there on -> the model's P frames before it and its frames from it on, as many as the video has (video frame
    j + ahead as frame j, the last one repeated at the end). Reads `ahead` frames before yielding the first."""
    frames = iter(frames)
    if not ahead:
        return past, frames
    early = list(itertools.islice(frames, ahead))
    seen = ([] if past is None else list(past)) + early
    if not seen:
        return past, iter(())
    seen += [seen[-1]] * (ahead - len(early))  # past the video's end: its last frame

    def rest() -> Iterator[np.ndarray]:
        last = seen[-1]
        for last in frames:
            yield last
        yield from itertools.repeat(last, len(early))

    model_past = np.array(seen[ahead:], np.uint8).reshape(-1, *np.shape(seen[0]))
    return (model_past if past is not None else None), rest()


def split_by_time(clip: AlignedClip, val_fraction: float = 0.2, val_end: float = 1.0) -> tuple[list[range], range]:
    """(train frame ranges, validation frames): the span of `val_fraction` of the clip that ends at `val_end` (a
    fraction of its length, rounded to frames; 1 = the tail, the paper's Sec. IV) validates, the frames before and
    after it train."""
    if not 0 < val_fraction < 1 or not val_fraction <= val_end <= 1:
        raise ValueError(f"val_fraction must be in (0, 1) and val_end in [val_fraction, 1], got {val_fraction} and "
                         f"{val_end}")
    n = clip.meta["frames"]
    stop = round(n * val_end)
    start = min(stop - 1, round(n * (val_end - val_fraction)))  # at least one frame validates
    train = [part for part in (range(0, start), range(stop, n)) if len(part)]
    if start < 0 or not train:
        raise InputError(f"too short to split: {n} frames", clip.path)
    return train, range(start, stop)


class SampleDataset(Dataset):
    """Paper mode, one sample per example: (audio context, last n frames) -> the next sample.

    Covers every audio sample of the given frames (every `stride`-th one).
    """

    def __init__(self, clip: AlignedClip, spec: AVSpec, frames: range | None = None, stride: int = 1):
        self.clip, self.spec = clip, spec
        frames = frames if frames is not None else range(clip.meta["frames"])
        self.indices = range(spec.frame_start(frames.start), spec.frame_start(frames.stop), stride)  # O(1) memory

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, j: int) -> dict[str, torch.Tensor]:
        i = self.indices[j]
        spec = self.spec
        return {
            "audio": torch.from_numpy(audio_context(self.clip.audio, i, spec.context_samples)),
            "video": torch.from_numpy(video_context(self.clip.frames, spec.frame_of_sample(i), spec.context_frames)),
            "target": torch.from_numpy(np.array(self.clip.audio[i], np.float32)),
            "index": torch.tensor(i),
        }


class FrameDataset(Dataset):
    """Deep-fusion examples: (audio before frame k, last n frames up to k) -> all samples of frame k.

    The target is zero-padded to `spec.max_samples_per_frame`; `length` says how many samples are real.
    """

    def __init__(self, clip: AlignedClip, spec: AVSpec, frames: range | None = None):
        self.clip, self.spec = clip, spec
        self.frames = frames if frames is not None else range(clip.meta["frames"])

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, j: int) -> dict[str, torch.Tensor]:
        k = self.frames[j]
        spec = self.spec
        start, stop = spec.frame_start(k), spec.frame_start(k + 1)
        target = np.zeros((spec.max_samples_per_frame, self.clip.audio.shape[1]), np.float32)
        target[:stop - start] = self.clip.audio[start:stop]
        return {
            "audio": torch.from_numpy(audio_context(self.clip.audio, start, spec.context_samples)),
            "video": torch.from_numpy(video_context(self.clip.frames, k, spec.context_frames)),
            "target": torch.from_numpy(target),
            "length": torch.tensor(stop - start),
            "frame": torch.tensor(k),
        }


def window_frame_count(spec: AVSpec, length: int) -> int:
    """Frames a WindowDataset item holds for `length` positions: the spanned frames plus n - 1 before them."""
    return math.ceil(length / spec.samples_per_frame) + 1 + spec.context_frames - 1


class WindowDataset(Dataset):
    """Causal-mode examples: a window of positions that all predict their next sample at once (teacher forcing).

    Item for a window starting at sample s, with `warmup` positions in front (R) and `window` scored ones (L):
      audio_in    [R+L, C]  audio_in[j] = audio[s - R - 1 + j] (the sample before position j; zero before 0)
      target      [R+L, C]  target[j]   = audio[s - R + j]
      video       [F, S, S, 3] uint8, F = window_frame_count(spec, R+L): the frames of the window's span and
                  the n - 1 frames before it (black where they precede frame 0, and past the span's end)
      frame_index [R+L] long: index into `video` of the frame on screen at position j; that frame and the
                  n - 1 before it are the position's video context
      warmup      the number R of leading positions that only build up the receptive field (not scored)
    """

    def __init__(self, clip: AlignedClip, spec: AVSpec, frames: range | None = None, window: int = 4096,
                 warmup: int = 0, stride: int | None = None):
        self.clip, self.spec, self.window, self.warmup = clip, spec, window, warmup
        frames = frames if frames is not None else range(clip.meta["frames"])
        first, stop = spec.frame_start(frames.start), spec.frame_start(frames.stop)
        if stop - first < window:
            raise InputError(f"{stop - first} samples are fewer than one window of {window}", clip.path)
        self.starts = np.arange(first, stop - window + 1, stride or window)
        self.n_video = window_frame_count(spec, warmup + window)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, j: int) -> dict[str, torch.Tensor]:
        s = int(self.starts[j]) - self.warmup
        item = causal_window(self.clip.audio, self.clip.frames, self.spec, s, self.warmup + self.window, self.n_video)
        item["target"] = torch.from_numpy(audio_context(self.clip.audio, s + self.warmup + self.window,
                                                        self.warmup + self.window))
        item["warmup"] = torch.tensor(self.warmup)
        return item


def causal_window(audio: np.ndarray, frames: np.ndarray, spec: AVSpec, start: int, length: int,
                  n_video: int) -> dict[str, torch.Tensor]:
    """The causal-mode inputs for positions start .. start + length - 1 (see WindowDataset)."""
    on_screen = spec.frames_of_samples(np.arange(start, start + length))
    first_frame = int(on_screen[0])
    lead = spec.context_frames - 1
    video = np.zeros((n_video, *frames.shape[1:]), np.uint8)
    lo, hi = first_frame - lead, min(first_frame - lead + n_video, len(frames))
    if hi > max(lo, 0):
        video[max(lo, 0) - lo:hi - lo] = frames[max(lo, 0):hi]
    return {
        "audio_in": torch.from_numpy(audio_context(audio, start + length - 1, length)),
        "video": torch.from_numpy(video),
        "frame_index": torch.from_numpy(on_screen - first_frame + lead),
    }


def find_clips(paths: list[str | Path]) -> list[AlignedClip]:
    """Clip folders from paths that are clip folders or folders of clips (e.g. data/aligned)."""
    clips = []
    for path in map(Path, paths):
        if (path / "meta.json").exists() or not path.is_dir():
            clips.append(load_clip(path))
            continue
        found = sorted(p.parent for p in path.glob("*/meta.json"))
        if not found:
            raise InputError("no aligned clips here (run foley ingest first)", path)
        clips += [load_clip(p) for p in found]
    return clips


def check_compatible(clips: list[AlignedClip]) -> AVSpec:
    """All clips must share rates and sizes; returns their AVSpec."""
    spec = clips[0].spec
    for clip in clips[1:]:
        if clip.spec != spec:
            raise InputError(f"clip has {clip.spec} but {clips[0].name} has {spec}; re-ingest with the same "
                             "--sr/--fps/--size/--channels", clip.path)
    return spec
