"""Does the model use the video? The same model trained with and without it, judged on generated audio.

Teacher-forced likelihood hardly sees the difference (a burst is unpredictable sample by sample either way),
so both models also generate the held-out tail free-running, and their onsets are scored against the truth.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from foleylib.core.fsutil import write_json
from foleylib.data.dataset import AlignedClip, split_by_time
from foleylib.evaluation.metrics import detect_onsets, onset_scores, per_sample_nll, window_mask
from foleylib.evaluation.notebook import fmt_cell
from foleylib.generation.generate import generate
from foleylib.models import ModelConfig
from foleylib.training.checkpoint import load_model
from foleylib.training.config import TrainConfig
from foleylib.training.trainer import train

VARIANTS = {"video": False, "audio_only": True}  # name -> zero_video


def video_ablation(clip: AlignedClip, onset_times: np.ndarray, cfg: ModelConfig, tc: TrainConfig, out: str | Path,
                   gen_seconds: float = 4.0, tolerance: float = 0.04, progress: bool = False) -> dict:
    """Train `cfg` with real and with zeroed video on `clip`, then compare on its held-out tail.

    onset_times: true onset times (s) of the clip's sounds. Reports per variant: teacher-forced NLL (nats per
    sample) overall, in event windows (-20 .. +100 ms) and in the first 10 ms after each onset; and onset
    precision/recall/F1 (+/- `tolerance` s) of `gen_seconds` generated from the start of the tail.
    """
    out = Path(out)
    spec = clip.spec.with_(context_frames=cfg.context_frames, context_samples=cfg.context_samples)
    val = split_by_time(clip, tc.val_fraction)[1]
    t0 = spec.frame_start(val.start) / spec.sr
    gen_frames = min(len(val), round(gen_seconds * float(spec.fps_exact)))
    results = {}
    for name, zero in VARIANTS.items():
        run = out / name
        train([clip], cfg, replace(tc, zero_video=zero), run, progress=progress)
        model, _ = load_model(run, device=tc.device)
        nll = per_sample_nll(model, clip, spec, val, zero_video=zero)
        scored = ~np.isnan(nll)
        events = window_mask(len(nll), spec.sr, onset_times, 0.02, 0.10, offset=t0) & scored
        attacks = window_mask(len(nll), spec.sr, onset_times, 0.0, 0.01, offset=t0) & scored
        frames = np.zeros_like(clip.frames) if zero else clip.frames
        audio = generate(model, spec, frames, val.start, gen_frames, prime=clip.audio[:spec.frame_start(val.start)],
                         seed=tc.seed, progress=progress)
        truth = onset_times[(onset_times >= t0) & (onset_times < t0 + len(audio) / spec.sr)] - t0
        np.save(run / "generated.npy", audio)
        results[name] = {
            "nll_nats": float(np.nanmean(nll)), "nll_event_windows": float(nll[events].mean()),
            "nll_first_10ms": float(nll[attacks].mean()),
            "onsets": onset_scores(detect_onsets(audio, spec.sr), truth, tolerance),
            "generated_seconds": len(audio) / spec.sr, "final": _last_line(run / "metrics.jsonl"),
        }
    results["f1_gain"] = results["video"]["onsets"]["f1"] - results["audio_only"]["onsets"]["f1"]
    write_json(out / "ablation.json", results)
    return results


def _last_line(path: Path) -> dict:
    return json.loads(path.read_text().strip().splitlines()[-1])


def reports_table(reports: dict[str, dict], baselines: tuple[str, ...] = ("motion_bursts", "histogram", "silence")
                  ) -> str:
    """A Markdown table of `evaluate.evaluate_run` reports of one clip, a row per model: validation NLL, onset F1
    of the model, of itself on shuffled and on zeroed video and their difference, log-mel distance and envelope
    correlation; then the baselines (no model, the same tail) from the first report."""
    lines = ["| model | val NLL (nats) | onset F1 | shuffled | zeroed | beats shuffled | log-mel dB | envelope r |",
             "|---|---|---|---|---|---|---|---|"]
    for name, report in reports.items():
        m = report["metrics"]
        f1, shuffled = m["model"]["onset_f1"], m["video_shuffled"]["onset_f1"]
        gain = None if f1 is None or shuffled is None else f1 - shuffled
        cells = [fmt_cell(report["teacher_forced"]["val_loss"]), fmt_cell(f1, ".2f"), fmt_cell(shuffled, ".2f"),
                 fmt_cell(m["video_zeroed"]["onset_f1"], ".2f"), fmt_cell(gain, "+.2f"),
                 fmt_cell(m["model"]["logmel_db"], ".1f"), fmt_cell(m["model"]["envelope_corr"], ".2f")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    first = next(iter(reports.values()))["metrics"]
    lines += [f"| baseline: {name} | - | {fmt_cell(first[name]['onset_f1'], '.2f')} | - | - | - | "
              f"{fmt_cell(first[name]['logmel_db'], '.1f')} | {fmt_cell(first[name]['envelope_corr'], '.2f')} |"
              for name in baselines]
    return "\n".join(lines)
