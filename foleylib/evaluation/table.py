"""Table I as a papermill batch: one run of the packaged table1_cell.ipynb per (video, architecture), gathered.

Videos are the synthetic car / clap / water scenes (the paper's car chase, clapping and nature videos) or the
user's own. Every executed notebook stays in OUT/runs/ for inspection; OUT/table1.csv and OUT/table1.md hold
Table I (validation loss per architecture and video) next to our metrics and the baselines; cells that failed
are listed with their error, not hidden.
"""
from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from foleylib.core.config import AVSpec
from foleylib.core.fsutil import atomic_path
from foleylib.core.names import safe_name
from foleylib.data.align import ingest_file
from foleylib.data.dataset import AlignedClip, load_clip
from foleylib.data.media import read_audio
from foleylib.data.synth import render_scene
from foleylib.evaluation.notebook import fmt_cell

CELL_NOTEBOOK = Path(__file__).with_name("table1_cell.ipynb")  # package data (pyproject: package-data)
COLUMNS = (  # (column, where in a cell's results.json, format)
    ("val_loss", ("teacher_forced", "val_loss"), ".4f"),
    ("nll_bits", ("teacher_forced", "val_nll_bits"), ".3f"),
    ("onset_f1", ("metrics", "model", "onset_f1"), ".2f"),
    ("onset_f1_shuffled", ("metrics", "video_shuffled", "onset_f1"), ".2f"),
    ("onset_f1_zeroed", ("metrics", "video_zeroed", "onset_f1"), ".2f"),
    ("onset_ap", ("metrics", "model", "onset_ap"), ".2f"),
    ("envelope_corr", ("metrics", "model", "envelope_corr"), ".2f"),
    ("envelope_corr_shuffled", ("metrics", "video_shuffled", "envelope_corr"), ".2f"),
    ("logmel_db", ("metrics", "model", "logmel_db"), ".1f"),
    ("mrstft", ("metrics", "model", "mrstft"), ".2f"),
    ("low_band_db", ("metrics", "model", "low_band_db"), ".1f"),
    ("high_band_db", ("metrics", "model", "high_band_db"), ".1f"),
    ("frame_artifact_db", ("metrics", "model", "frame_artifact_db"), ".1f"),
    ("uses_video", ("uses_video",), ""),
    ("rtf", ("rtf",), ".3f"),
    ("train_s", ("train_seconds",), ".0f"),
)
BASELINE_ROWS = ("silence", "histogram", "shifted_1s", "motion_bursts")
BASELINE_COLUMNS = ("onset_f1", "onset_ap", "envelope_corr", "logmel_db", "mrstft")


def prepare_clips(out: Path, spec: AVSpec, scenes: list[str] | None = None, videos: list[Path] | None = None,
                  seconds: float = 30.0, seed: int = 0) -> dict[str, Path]:
    """Aligned clips to evaluate, by name: rendered synthetic scenes, or the user's videos (ingested)."""
    sources = {}
    for kind in scenes or []:
        sources[kind] = render_scene(kind, out / "data" / "synth", seconds=seconds, seed=seed)["video"]
    for video in videos or []:
        sources[safe_name(Path(video).stem)] = Path(video)
    return {name: ingest_file(path, out / "data" / "aligned", spec).clip_dir for name, path in sources.items()}


def run_cell(clip_dir: Path, arch: str, out: Path, parameters: dict) -> dict:
    """Execute the cell notebook for one (clip, arch); returns its results.json, or {"error": ...}."""
    import papermill as pm

    name = f"{clip_dir.name}_{arch}"
    cell_dir = out / "runs" / name
    cell_dir.mkdir(parents=True, exist_ok=True)
    # papermill rewrites its output after every cell: it runs on a temporary copy, renamed when the cell ends
    # (a failed one too, for inspection), so a killed batch leaves no half-written notebook
    with atomic_path(out / "runs" / f"{name}.ipynb") as executed:
        try:
            pm.execute_notebook(str(CELL_NOTEBOOK), str(executed), cwd=str(cell_dir),
                                parameters={"CLIP_DIR": str(clip_dir.resolve()), "OUT_DIR": str(cell_dir.resolve()),
                                            "ARCH": arch, **parameters},
                                kernel_name="python3", progress_bar=False)
            return json.loads((cell_dir / "results.json").read_text())
        except Exception as err:  # noqa: BLE001 - a failed cell is reported in the table, the batch goes on
            lines = [ln for ln in str(err).splitlines() if ln.strip()]
            return {"error": f"{type(err).__name__}: {lines[-1] if lines else ''}"}


def _get(results: dict, path: tuple[str, ...]):
    for key in path:
        if not isinstance(results, dict) or key not in results:
            return None
        results = results[key]
    return results


def table_rows(cells: dict[tuple[str, str], dict]) -> list[dict]:
    """One row per (video, arch): the COLUMNS, or the error of a failed cell."""
    rows = []
    for (video, arch), results in cells.items():
        row = {"video": video, "arch": arch, "error": results.get("error", "")}
        row |= {name: _get(results, path) for name, path, _ in COLUMNS}
        rows.append(row)
    return rows


def write_tables(out: Path, cells: dict[tuple[str, str], dict], header: str) -> list[Path]:
    """OUT/table1.csv (every number) and OUT/table1.md (Table I, the baselines, the failures), atomically."""
    rows = table_rows(cells)
    with atomic_path(out / "table1.csv") as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["video", "arch", *(c for c, _, _ in COLUMNS), "error"])
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"# Table I and past it\n\n{header}\n", "| video | arch | " + " | ".join(c for c, _, _ in COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    lines += [f"| {r['video']} | {r['arch']} | " + " | ".join(fmt_cell(r[c], f) for c, _, f in COLUMNS) + " |"
              for r in rows if not r["error"]]
    lines += ["", "## Baselines (no model; the same tail and metrics)", "",
              "| video | baseline | " + " | ".join(BASELINE_COLUMNS) + " |",
              "|---|---|" + "---|" * len(BASELINE_COLUMNS)]
    seen = set()
    for (video, _), results in cells.items():
        if video in seen or "metrics" not in results:
            continue
        seen.add(video)
        lines.append(f"| {video} | histogram NLL floor | {results['teacher_forced']['histogram_nll_nats']:.3f} nats |"
                     + " |" * (len(BASELINE_COLUMNS) - 1))
        for name in BASELINE_ROWS:
            m = results["metrics"][name]
            lines.append(f"| {video} | {name} | " + " | ".join(fmt_cell(m[c], ".3f") for c in BASELINE_COLUMNS) + " |")
    failed = [r for r in rows if r["error"]]
    lines += ["", "## Failed cells", ""] + ([f"- {r['video']} / {r['arch']}: {r['error']}" for r in failed]
                                            or ["none"])
    with atomic_path(out / "table1.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return [out / "table1.csv", out / "table1.md"]


def load_cells(out: str | Path) -> dict[tuple[str, str], dict]:
    """The cells of a finished (or partly finished) batch, read back from OUT/runs/*/results.json."""
    cells = {}
    for path in sorted(Path(out).glob("runs/*/results.json")):
        results = json.loads(path.read_text())
        cells[(results["scene"], results["arch"])] = results
    return cells


def cell_audio(out: str | Path, results: dict) -> tuple[np.ndarray, np.ndarray, AlignedClip, int]:
    """A finished cell's generated tail [n, C], the true audio of the same samples [n, C], its clip, and the
    first generated frame."""
    clip = load_clip(results["clip"])
    spec = clip.spec
    first = round(results["tail_start_s"] * spec.fps_exact)
    wav = Path(out) / "runs" / f"{Path(results['clip']).name}_{results['arch']}" / "audio" / "model.wav"
    generated = read_audio(wav, spec.sr, spec.channels)
    lo = spec.frame_start(first)
    true = np.asarray(clip.audio[lo:lo + len(generated)])
    return generated[:len(true)], true, clip, first


def winners(cells: dict[tuple[str, str], dict]) -> list[dict]:
    """Per video and metric, the architecture that scores best (lowest loss/distance, highest F1/correlation)."""
    metrics = {"val_loss": (("teacher_forced", "val_loss"), min), "onset_f1": (("metrics", "model", "onset_f1"), max),
               "envelope_corr": (("metrics", "model", "envelope_corr"), max),
               "logmel_db": (("metrics", "model", "logmel_db"), min), "mrstft": (("metrics", "model", "mrstft"), min)}
    rows = []
    for video in dict.fromkeys(v for v, _ in cells):
        for name, (path, best) in metrics.items():
            scored = {arch: _get(r, path) for (v, arch), r in cells.items() if v == video and "error" not in r}
            scored = {arch: value for arch, value in scored.items() if value is not None}
            if scored:
                arch = best(scored, key=scored.get)
                rows.append({"video": video, "metric": name, "best": arch, "value": scored[arch]})
    return rows


def run_table(out: str | Path, archs: list[str], scenes: list[str] | None = None, videos: list[Path] | None = None,
              preset: str = "small", loss: str = "ce", steps: int = 200, gen_seconds: float = 2.0,
              scene_seconds: float = 30.0, seed: int = 0, spec: AVSpec | None = None,
              log: Callable[[str], None] = lambda _: None) -> dict[tuple[str, str], dict]:
    """The whole batch: prepare the clips, run every (clip, arch) cell, write the tables."""
    out = Path(out)
    clips = prepare_clips(out, spec or AVSpec(), scenes, videos, scene_seconds, seed)
    parameters = {"PRESET": preset, "LOSS": loss, "STEPS": steps, "GEN_SECONDS": gen_seconds, "SEED": seed}
    cells = {}
    for video, clip_dir in clips.items():
        for arch in archs:
            t0 = time.perf_counter()
            cells[(video, arch)] = results = run_cell(clip_dir, arch, out, parameters)
            status = results.get("error") or (f"val loss {results['teacher_forced']['val_loss']:.4f}, onset F1 "
                                              f"{fmt_cell(results['metrics']['model']['onset_f1'], '.2f')}")
            log(f"{video} / {arch}: {status} ({time.perf_counter() - t0:.0f} s)")
    header = (f"Preset `{preset}`, loss `{loss}`, {steps} training steps per cell, {gen_seconds:g} s of each held-out "
              f"tail generated, seed {seed}. Executed notebooks: `runs/`.")
    write_tables(out, cells, header)
    return cells
