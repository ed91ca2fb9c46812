"""Alignment: decode a video into an aligned clip folder (frames.npy, audio.npy, meta.json) by the paper's rules,
with the frames' motion cached in motion.npy (foleylib.data.motion).

Frames are resampled to `spec.fps` and resized to `spec.size`; audio is resampled to `spec.sr` with
`spec.channels`. Then the paper's clipping (Sec. III-B): audio is cut to whole frames and frames to the
audio's length (see `AVSpec.clip_lengths`). A clip whose source bytes and parameters are unchanged is skipped.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from foleylib import __version__
from foleylib.core.config import AVSpec
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


def _is_current(meta: dict | None, sha: str, spec: AVSpec, clip_dir: Path) -> bool:
    if not meta or meta.get("sha256") != sha:
        return False
    if any(meta.get(k) != v for k, v in spec.to_dict().items() if k in ALIGN_KEYS):
        return False
    return (clip_dir / "frames.npy").exists() and (clip_dir / "audio.npy").exists()


def _stream_frames(frames: Iterable[np.ndarray], raw: Path) -> int:
    """Write decoded frames to a raw file one at a time (memory stays one frame); returns how many."""
    count = 0
    with raw.open("wb") as f:
        for frame in frames:
            f.write(np.ascontiguousarray(frame, np.uint8).tobytes())
            count += 1
    return count


def _save_frames(raw: Path, count: int, keep: int, size: int, path: Path, chunk: int = 4096) -> None:
    """frames.npy from the first `keep` of `count` raw frames, copied in chunks through memory maps."""
    source = np.memmap(raw, np.uint8, "r", shape=(count, size, size, 3))
    target = np.lib.format.open_memmap(path, "w+", np.uint8, (keep, size, size, 3))
    for start in range(0, keep, chunk):
        target[start:start + chunk] = source[start:min(keep, start + chunk)]
    target.flush()
    del source, target
    raw.unlink()


def ingest_file(source: str | Path, out_root: str | Path, spec: AVSpec = AVSpec(), force: bool = False,
                max_seconds: float = MAX_SECONDS) -> IngestResult:
    """Align one video into out_root/<name>/; raises InputError for a file that cannot be used. Frames stream to
    disk as they are decoded, so memory does not grow with the video's length; longer videos than `max_seconds`
    are refused up front."""
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
    if not force and _is_current(old, sha, spec, clip_dir):
        return IngestResult(source, clip_dir, "skipped", old)

    with atomic_dir(clip_dir) as tmp:
        decoded = _stream_frames(media.iter_frames(source, fps=spec.fps, size=spec.size), tmp / "frames.raw")
        if decoded == 0:
            raise InputError("video has no decodable frames", source)
        audio = media.read_audio(source, sr=spec.sr, channels=spec.channels)
        n_frames, n_samples = spec.clip_lengths(len(audio), decoded)
        if n_frames == 0:
            raise InputError(f"too short: no whole video frame with audio ({len(audio)} samples)", source)
        meta = {
            "source": str(source.resolve()),
            "sha256": sha,
            **{k: getattr(spec, k) for k in ALIGN_KEYS},
            "frames": n_frames,
            "samples": n_samples,
            "seconds": n_samples / spec.sr,
            "samples_per_frame": str(spec.samples_per_frame),
            "frame_rule": FRAME_RULE,
            "clipped": {"frames_decoded": decoded, "samples_decoded": len(audio),
                        "frames_dropped": decoded - n_frames, "samples_dropped": len(audio) - n_samples},
            "probe": info.to_dict(),
            "foleylib": __version__,
            "motion": motion.CACHE_INFO,
        }
        _save_frames(tmp / "frames.raw", decoded, n_frames, spec.size, tmp / "frames.npy")
        motion.write_motion(np.load(tmp / "frames.npy", mmap_mode="r"), tmp / motion.MOTION_FILE)
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


def ingest(sources: Iterable[str | Path], out_root: str | Path, spec: AVSpec = AVSpec(), force: bool = False,
           on_error: Callable[[InputError], None] | None = None,
           on_result: Callable[[IngestResult], None] | None = None,
           max_seconds: float = MAX_SECONDS) -> tuple[list[IngestResult], list[InputError]]:
    """Align many videos; a bad file is reported through `on_error` and skipped, the rest still ingested."""
    batch, results = Batch(on_error), []
    for source in sources:
        result = batch.run(ingest_file, source, out_root, spec, force=force, max_seconds=max_seconds)
        if result is not None:
            results.append(result)
            if on_result:
                on_result(result)
    write_manifest(out_root)
    return results, batch.errors
