"""Does the model use the video? Pieces of the ablations that notebooks 05 and 09 run step by step.

Teacher-forced likelihood hardly sees the difference between a model with and without video (a burst is
unpredictable sample by sample either way), so `event_nll` shows where the NLL is spent (around the sounds or
elsewhere) and the generated audio is scored by `metrics.sync_scores`; `twin_nll` compares the model's NLL with
the true video and with the twins of `evaluate.free_running` (foley crossval reports it per clip);
`reports_table` sets `evaluate.evaluate_run` reports of one clip side by side.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch

from foleylib.core.config import AVSpec
from foleylib.data.dataset import AlignedClip
from foleylib.evaluation.evaluate import shuffled_video
from foleylib.evaluation.metrics import detect_onsets, per_sample_nll, window_mask
from foleylib.evaluation.notebook import fmt_cell


def event_nll(nll: np.ndarray, sr: int, onset_times: np.ndarray, offset: float = 0.0) -> dict[str, float]:
    """Where the per-sample NLL nll [n] (nats, NaN where unscored; sample 0 at `offset` s, onset times in s) is
    spent: the mean over all scored samples ("nll_nats"), over the event windows -20 .. +100 ms around each onset
    ("nll_event_windows") and over the first 10 ms after each onset ("nll_first_10ms"); NaN where none is scored."""
    scored = ~np.isnan(nll)
    events = window_mask(len(nll), sr, onset_times, 0.02, 0.10, offset=offset) & scored
    attacks = window_mask(len(nll), sr, onset_times, 0.0, 0.01, offset=offset) & scored

    def mean(where: np.ndarray) -> float:
        return float(nll[where].mean()) if where.any() else math.nan

    return {"nll_nats": mean(scored), "nll_event_windows": mean(events), "nll_first_10ms": mean(attacks)}


def twin_nll(model: torch.nn.Module, clip: AlignedClip, spec: AVSpec, tail: range) -> dict[str, dict]:
    """The model's teacher-forced mu-law NLL (nats per sample and channel) of the tail's true audio with the clip's
    video (`model`) and with free_running's twins (`video_shuffled`: shuffled_video's frames, motion recomputed
    from them; `video_zeroed`): `nll` over the tail, `onset_nll` over event_nll's windows around the
    onsets detected in the true audio (None where there is none). It needs no draw, so it is far steadier than
    the onset F1 of sampled audio: a model that uses the picture is less surprised where the true sounds start
    with the true video than with the twins. All None for models without this likelihood (paper mode, tanh)."""
    twins = ("model", "video_shuffled", "video_zeroed")
    if model.cfg.mode != "causal" or model.cfg.output != "mulaw":
        return {name: {"nll": None, "onset_nll": None} for name in twins}
    reference = np.asarray(clip.audio[spec.frame_start(tail.start):spec.frame_start(tail.stop)])
    onsets = detect_onsets(reference, spec.sr)
    frames = np.asarray(clip.frames)
    shuffled = replace(clip, frames=shuffled_video(frames), meta={**clip.meta, "motion": None})
    nll = {"model": per_sample_nll(model, clip, spec, tail),
           "video_shuffled": per_sample_nll(model, shuffled, spec, tail),
           "video_zeroed": per_sample_nll(model, clip, spec, tail, zero_video=True)}

    def defined(x: float) -> float | None:
        return None if math.isnan(x) else x

    spent = {name: event_nll(v, spec.sr, onsets) for name, v in nll.items()}
    return {name: {"nll": defined(e["nll_nats"]), "onset_nll": defined(e["nll_event_windows"]) if len(onsets) else None}
            for name, e in spent.items()}


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
