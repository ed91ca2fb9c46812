"""Does the model use the video? Pieces of the ablations that notebooks 05 and 09 run step by step.

Teacher-forced likelihood hardly sees the difference between a model with and without video (a burst is
unpredictable sample by sample either way), so `event_nll` shows where the NLL is spent (around the sounds or
elsewhere) and the generated audio is scored by `metrics.sync_scores`; `reports_table` sets `evaluate.evaluate_run`
reports of one clip side by side.
"""
from __future__ import annotations

import numpy as np

from foleylib.evaluation.metrics import window_mask
from foleylib.evaluation.notebook import fmt_cell


def event_nll(nll: np.ndarray, sr: int, onset_times: np.ndarray, offset: float = 0.0) -> dict[str, float]:
    """Where the per-sample NLL nll [n] (nats, NaN where unscored; sample 0 at `offset` s, onset times in s) is
    spent: the mean over all scored samples ("nll_nats"), over the event windows -20 .. +100 ms around each onset
    ("nll_event_windows") and over the first 10 ms after each onset ("nll_first_10ms"); NaN where none is scored."""
    scored = ~np.isnan(nll)
    events = window_mask(len(nll), sr, onset_times, 0.02, 0.10, offset=offset) & scored
    attacks = window_mask(len(nll), sr, onset_times, 0.0, 0.01, offset=offset) & scored
    return {"nll_nats": float(np.nanmean(nll)), "nll_event_windows": float(nll[events].mean()),
            "nll_first_10ms": float(nll[attacks].mean())}


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
