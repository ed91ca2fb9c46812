"""Alignment: decode a video into an aligned clip folder (frames.npy, audio.npy, meta.json) by the paper's rules,
and on request the frames' motion cached in motion.npy (foleylib.data.motion).

Frames are resampled to `spec.fps` and resized to `spec.size`; audio is resampled to `spec.sr` with
`spec.channels`. Then the paper's clipping (Sec. III-B): audio is cut to whole frames and frames to the
audio's length (see `AVSpec.clip_lengths`). A clip whose source bytes and parameters are unchanged is skipped.
`ingest` aligns many videos, several at once on worker threads when asked (`jobs`): ffmpeg decodes in its own
processes and cv2 and the compiled motion pass release the GIL, so a thread per core keeps the cores busy.
"""
from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np

from foleylib import __version__
from foleylib.core.config import AVSpec
from foleylib.core.device import available_cores
from foleylib.core.errors import Batch, InputError
from foleylib.core.fsutil import atomic_dir, sha256_file, write_json
from foleylib.core.names import safe_name
from foleylib.data import media, motion

MAX_SECONDS = 4 * 3600.0  # default longest video ingest accepts (64x64 frames: 4.4 GB on disk at 25 fps)
ALIGN_KEYS = ("sr", "fps", "size", "channels")  # the parameters that change an aligned clip
FRAME_RULE = "frame_of_sample(i) = floor(i * fps / sr); frame k owns samples [ceil(k*sr/fps), ceil((k+1)*sr/fps))"


@dataclass(frozen=True)
class IngestResult:
    source: Path
    clip_dir: Path
    status: Literal["ingested", "skipped"]
    meta: dict


def _clip_dir_for(source: Path, sha: str, out_root: Path) -> Path:
    """out_root/<safe stem>, or <safe stem>-<sha8> when that name already holds another source."""
    clip_dir = out_root / safe_name(source.stem)
    meta = _read_meta(clip_dir)
    if meta and meta.get("source") != str(source.resolve()) and meta.get("sha256") != sha:
        clip_dir = out_root / f"{safe_name(source.stem)}-{sha[:8]}"
    return clip_dir


def _read_meta(clip_dir: Path) -> dict | None:
    try:
        return json.loads((clip_dir / "meta.json").read_text())
    except (OSError, ValueError):
        return None


def _is_current(meta: dict | None, sha: str, spec: AVSpec, resize: str, motion_cache: bool, clip_dir: Path) -> bool:
    """Whether the clip folder holds this source aligned this way (and its motion cache, when one is asked for)."""
    if not meta or meta.get("sha256") != sha:
        return False
    if any(meta.get(k) != v for k, v in spec.to_dict().items() if k in ALIGN_KEYS):
        return False
    if meta.get("resize", "cv2") != resize:  # clips from before the choice existed were resized with cv2
        return False
    if motion_cache and not motion.has_cache(meta, clip_dir):
        return False
    return (clip_dir / "frames.npy").exists() and (clip_dir / "audio.npy").exists()


def _stream_frames(frames: Iterable[np.ndarray], raw: Path, motion_raw: Path | None, chunk: int = 64) -> int:
    """Write decoded frames and, unless motion_raw is None, their motion to raw files, `chunk` frames at a time
    (memory stays a chunk; ffmpeg decodes the next frames while a chunk's motion is computed); returns how many."""
    tracker, count = motion.MotionTracker(), 0
    with raw.open("wb") as frames_out, nullcontext() if motion_raw is None else motion_raw.open("wb") as motion_out:
        decoded = iter(frames)
        while part := list(itertools.islice(decoded, chunk)):
            part = np.stack(part).astype(np.uint8, copy=False)
            frames_out.write(part.tobytes())
            if motion_out is not None:
                motion_out.write(tracker.extend(part).tobytes())
            count += len(part)
    return count


def _save_frames(raw: Path, keep: int, frame_shape: tuple[int, ...], path: Path, chunk: int = 1 << 24) -> None:
    """A .npy file of the first `keep` raw uint8 frames of `raw` (then removed): its header, then the bytes copied
    in chunks (memory stays a chunk)."""
    left = keep * int(np.prod(frame_shape))
    with raw.open("rb") as source, path.open("wb") as target:
        np.lib.format.write_array_header_1_0(target, {"descr": "|u1", "fortran_order": False,
                                                      "shape": (keep, *frame_shape)})
        while left:
            left -= target.write(source.read(min(chunk, left)))
    raw.unlink()


def ingest_file(source: str | Path, out_root: str | Path, spec: AVSpec = AVSpec(), force: bool = False,
                max_seconds: float = MAX_SECONDS, resize: str = "cv2", motion_cache: bool = False,
                threads: int | None = None) -> IngestResult:
    """Align one video into out_root/<name>/; raises InputError for a file that cannot be used. Frames stream to
    disk as they are decoded, so memory does not grow with the video's length; longer videos than `max_seconds`
    are refused up front. `resize` "ffmpeg" resizes with ffmpeg's scaler instead of cv2 (media.iter_frames).
    `motion_cache` also writes the frames' motion to motion.npy (two optical flows per frame, more work than the
    decode), for models with motion input; without it they compute the same values from the frames each time they
    load the clip (motion.clip_motion). `threads`: ffmpeg's decoder threads (None: its own choice)."""
    source, out_root = Path(source), Path(out_root)
    info = media.probe(source)
    if not info.has_video:
        raise InputError("no video stream", source)
    if not info.has_audio:
        raise InputError("no audio track (training needs the video's sound)", source)
    if info.duration > max_seconds:
        raise InputError(f"{info.duration:.0f} s long, more than the limit of {max_seconds:g} s (--max-seconds)",
                         source)
    sha = sha256_file(source)
    clip_dir = _clip_dir_for(source, sha, out_root)
    old = _read_meta(clip_dir)
    if not force and _is_current(old, sha, spec, resize, motion_cache, clip_dir):
        return IngestResult(source, clip_dir, "skipped", old)

    with atomic_dir(clip_dir) as tmp:
        decoded = _stream_frames(media.iter_frames(source, fps=spec.fps, size=spec.size, resize=resize, info=info,
                                                  threads=threads, audio_out=tmp / "audio.raw", sr=spec.sr,
                                                  channels=spec.channels),
                                 tmp / "frames.raw", tmp / "motion.raw" if motion_cache else None)
        if decoded == 0:
            raise InputError("video has no decodable frames", source)
        audio = media.read_raw_audio(tmp / "audio.raw", spec.sr, spec.channels, info, source)
        (tmp / "audio.raw").unlink()
        n_frames, n_samples = spec.clip_lengths(len(audio), decoded)
        if n_frames == 0:
            raise InputError(f"too short: no whole video frame with audio ({len(audio)} samples)", source)
        meta = {
            "source": str(source.resolve()),
            "sha256": sha,
            **{k: getattr(spec, k) for k in ALIGN_KEYS},
            "resize": resize,
            "frames": n_frames,
            "samples": n_samples,
            "seconds": n_samples / spec.sr,
            "samples_per_frame": str(spec.samples_per_frame),
            "frame_rule": FRAME_RULE,
            "clipped": {"frames_decoded": decoded, "samples_decoded": len(audio),
                        "frames_dropped": decoded - n_frames, "samples_dropped": len(audio) - n_samples},
            "probe": info.to_dict(),
            "foleylib": __version__,
            "motion": motion.CACHE_INFO if motion_cache else None,
        }
        _save_frames(tmp / "frames.raw", n_frames, (spec.size, spec.size, 3), tmp / "frames.npy")
        if motion_cache:  # motion of frame k depends on frames up to k only: cut alike
            _save_frames(tmp / "motion.raw", n_frames,
                         (spec.size, spec.size, len(motion.MOTION_CHANNELS)), tmp / motion.MOTION_FILE)
        np.save(tmp / "audio.npy", np.ascontiguousarray(audio[:n_samples], np.float32))
        write_json(tmp / "meta.json", meta)
    return IngestResult(source, clip_dir, "ingested", meta)


def write_manifest(out_root: str | Path) -> dict:
    """Rewrite out_root/manifest.json listing every clip folder under it."""
    out_root = Path(out_root)
    clips = []
    for meta_path in sorted(out_root.glob("*/meta.json")):
        meta = _read_meta(meta_path.parent)
        if meta:
            clips.append({"name": meta_path.parent.name, "source": meta["source"], "sha256": meta["sha256"],
                          "frames": meta["frames"], "samples": meta["samples"], "seconds": meta["seconds"],
                          **{k: meta[k] for k in ALIGN_KEYS}})
    manifest = {"clips": clips, "total_seconds": sum(c["seconds"] for c in clips)}
    write_json(out_root / "manifest.json", manifest)
    return manifest


def _ingest_chain(align: Callable[[Path], IngestResult], sources: list[Path],
                  stopped: threading.Event) -> list[IngestResult | InputError]:
    """On a worker thread: align `sources` one after another (a refused one as its InputError) until the batch
    stops. A clip being written when it stops is finished, or removed where Ctrl-C stopped its ffmpeg."""
    outcomes = []
    for source in sources:
        if stopped.is_set():  # nobody reads the outcomes of a stopped batch
            break
        try:
            outcomes.append(align(source))
        except InputError as err:
            outcomes.append(err)
    return outcomes


def _outcome(future: Future, position: int) -> IngestResult:
    outcome = future.result()[position]
    if isinstance(outcome, InputError):
        raise outcome
    return outcome


@contextmanager
def _outcomes(align: Callable[[Path], IngestResult], sources: list[Path],
              jobs: int) -> Iterator[Iterator[Callable[[], IngestResult]]]:
    """Each source's outcome in input order, as a call that returns its IngestResult or raises its InputError: run
    here one at a time (`jobs` 1), or on `jobs` worker threads, where sources that claim the same clip folder
    name go to one worker in input order (so they are named as one at a time would). On leaving, work not started
    is skipped and the workers are waited for (a clip being written is finished, or removed on Ctrl-C), cv2 on one
    thread per job meanwhile."""
    if jobs == 1:
        yield (partial(align, source) for source in sources)
        return
    chains: dict[str, list[int]] = {}
    for i, source in enumerate(sources):
        chains.setdefault(safe_name(source.stem), []).append(i)
    stopped = threading.Event()
    with media.cv2_threads(1), ThreadPoolExecutor(min(jobs, len(chains))) as pool:
        try:
            where: dict[int, tuple[Future, int]] = {}
            for chain in chains.values():
                future = pool.submit(_ingest_chain, align, [sources[i] for i in chain], stopped)
                where |= {i: (future, position) for position, i in enumerate(chain)}
            yield (partial(_outcome, *where[i]) for i in range(len(sources)))
        except BaseException:  # Ctrl-C or a failure: the workers start nothing more
            stopped.set()
            raise


def ingest(sources: Iterable[str | Path], out_root: str | Path, spec: AVSpec = AVSpec(), force: bool = False,
           on_error: Callable[[InputError], None] | None = None,
           on_result: Callable[[IngestResult], None] | None = None,
           max_seconds: float = MAX_SECONDS, jobs: int = 1, resize: str = "cv2",
           motion_cache: bool = False) -> tuple[list[IngestResult], list[InputError]]:
    """Align many videos, `jobs` at once (0: one per available core); a bad file is reported through `on_error`
    and skipped, the rest still ingested. Results and errors are reported in input order, the manifest written
    once at the end. The clips are the same for any `jobs`; with more than one, each job decodes on one core
    (ffmpeg's and cv2's threads would only contend). `resize` and `motion_cache`: see ingest_file."""
    sources = [Path(source) for source in sources]
    jobs = min(jobs or available_cores(), max(1, len(sources)))
    align = partial(ingest_file, out_root=out_root, spec=spec, force=force, max_seconds=max_seconds, resize=resize,
                    motion_cache=motion_cache, threads=1 if jobs > 1 else None)
    batch, results = Batch(on_error), []
    with _outcomes(align, sources, jobs) as outcomes:
        for outcome in outcomes:
            result = batch.run(outcome)
            if result is not None:
                results.append(result)
                if on_result:
                    on_result(result)
    write_manifest(out_root)
    return results, batch.errors
