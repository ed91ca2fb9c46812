"""The main job on an embedded default: a synthetic clap scene, rendered, aligned and plotted (no download)."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import matplotlib

from .align import ingest_file
from .config import AVSpec
from .dataset import load_clip
from .fsutil import atomic_path, write_json
from .synth import render_scene


def run_demo(out: str | Path, seconds: float = 12.0, seed: int = 0,
             log: Callable[[str], None] = lambda _: None) -> list[Path]:
    """Render a clap scene, align it, and write out/waveform.png and out/summary.json."""
    matplotlib.use("Agg")
    from .plots import plot_waveform

    out = Path(out)
    t0 = time.perf_counter()
    scene = render_scene("clap", out / "scene", seconds=seconds, seed=seed)
    log(f"synth: {seconds:g} s clap scene in {time.perf_counter() - t0:.1f} s -> {scene['video']}")
    t1 = time.perf_counter()
    result = ingest_file(scene["video"], out / "aligned", AVSpec(), force=True)
    log(f"ingest: {result.meta['frames']} frames, {result.meta['samples']} samples in "
        f"{time.perf_counter() - t1:.1f} s -> {result.clip_dir}")
    clip = load_clip(result.clip_dir)
    fig = plot_waveform(clip.audio, clip.meta["sr"], clip.meta["fps"], frames=clip.frames, seconds=2.0,
                        title="Synthetic clap scene: audio with video-frame boundaries",
                        labels=("clip audio", "reference"))
    with atomic_path(out / "waveform.png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    summary = {"scene": {k: str(v) for k, v in scene.items()}, "clip": str(result.clip_dir),
               "frames": result.meta["frames"], "samples": result.meta["samples"],
               "seconds_total": round(time.perf_counter() - t0, 2)}
    write_json(out / "summary.json", summary)
    return [scene["video"], result.clip_dir, out / "waveform.png", out / "summary.json"]
