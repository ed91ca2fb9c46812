"""Measures of generated audio against the truth: timing (onsets), envelope, stereo, level, likelihood.

Onsets are what tells whether a model uses the video: a model that hears nothing from the frames can still
reach a good likelihood on unpredictable bursts, but it cannot place them at the right times. `sync_scores` is the
one place onset precision/recall/F1 and envelope correlation are computed (every report, the demo and the notebooks
call it); `audio_metrics` gathers every measure of one generated clip (these and `foleylib.evaluation.spectral`'s)
into one flat dict.

Audio is float [N, C] (or [N]) in [-1, 1]; times are seconds from the first sample of the generated audio.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from foleylib.core.audio import mono, onset_detect, onset_strength, pair, resample, window_rms
from foleylib.core.config import AVSpec
from foleylib.data.dataset import AlignedClip, WindowDataset
from foleylib.data.media import resample_s16
from foleylib.data.motion import model_clip
from foleylib.evaluation.spectral import (
    FLOOR_DB,
    band_errors,
    f0_error_cents,
    frame_rate_artifact,
    logmel_distance_db,
    multires_stft_distance,
)
from foleylib.models.losses import ce_per_position

IMPACT_SR = 22050  # CondFoleyGen detects onsets at 22.05 kHz
IMPACT_TOLERANCE = 0.1  # s: CondFoleyGen's (and MMAudio's) match window for onset AP
EDGE_S = 0.1  # s: detected onsets this close to the start of a clip are the detector seeing the cut, not a sound
CONDFOLEYGEN_SECONDS = 2.0  # s: the length of CondFoleyGen's test clips, each scored on its own
ONSET_METRICS = ("strict", "condfoleygen")  # how audio_metrics computes onset_acc and onset_ap
METRIC_KEYS = ("onset_precision", "onset_recall", "onset_f1", "onset_acc", "onset_ap", "envelope_corr", "logmel_db",
               "mrstft", "pan_error", "f0_cents", "dc_offset", "low_band_db", "high_band_db", "frame_artifact_db",
               "frame_artifact_ref_db", "rms_db", "ref_rms_db")


def detect_onsets(audio: np.ndarray, sr: int, hop: int = 128, min_gap: float = 0.05) -> np.ndarray:
    """Onset times in seconds of float audio [N, C] (channel mean), by librosa's spectral-flux detector.

    A fine hop (8 ms at 16 kHz) for timing; peaks closer than `min_gap` s merge (one burst, one onset).
    """
    y = mono(audio)
    if not np.any(y):
        return np.zeros(0)
    frames = sr / hop  # envelope frames per second
    return onset_detect(sr, envelope=onset_strength(y, sr, hop), hop=hop, units="time",
                        pre_max=round(0.03 * frames), post_max=round(0.03 * frames) + 1,
                        pre_avg=round(0.1 * frames), post_avg=round(0.1 * frames) + 1,
                        wait=round(min_gap * frames), delta=0.07)


def match_onsets(detected: np.ndarray, truth: np.ndarray, tolerance: float) -> int:
    """Hits: pairs (detected, true) within `tolerance` s, each onset used once, closest pairs first."""
    if len(detected) == 0 or len(truth) == 0:
        return 0
    distance = np.abs(np.asarray(detected)[:, None] - np.asarray(truth)[None, :])
    hits, used_d, used_t = 0, set(), set()
    for flat in np.argsort(distance, axis=None):
        d, t = np.unravel_index(flat, distance.shape)
        if distance[d, t] > tolerance:
            break
        if d not in used_d and t not in used_t:
            used_d.add(d), used_t.add(t)
            hits += 1
    return hits


def onset_scores(detected: np.ndarray, truth: np.ndarray, tolerance: float = 0.04) -> dict[str, float]:
    """Precision, recall and F1 of detected onset times against true ones (seconds)."""
    hits = match_onsets(detected, truth, tolerance)
    precision = hits / len(detected) if len(detected) else 0.0
    recall = hits / len(truth) if len(truth) else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "detected": len(detected), "true": len(truth)}


@torch.no_grad()
def per_sample_nll(model: torch.nn.Module, clip: AlignedClip, spec: AVSpec, frames: range, window: int = 4096,
                   zero_video: bool = False) -> np.ndarray:
    """Teacher-forced mu-law NLL (nats, channel mean) of every sample of `frames` for a causal `ce` model.

    Windows tile the range; each is preceded by the model's receptive field of real context.
    """
    model.eval()
    device = next(model.parameters()).device
    span = model.receptive_field
    n = spec.frame_start(frames.stop) - spec.frame_start(frames.start)
    window = min(window, n)
    shown = model_clip(clip, model.cfg.video_input, model.cfg.video_lookahead)  # the frames as the model reads them
    ds = WindowDataset(shown, spec, frames, window=window, warmup=span - 1, stride=window)
    out = np.full(n, np.nan)
    first = spec.frame_start(frames.start)
    for j, batch in enumerate(DataLoader(ds, batch_size=4)):
        batch = {k: v.to(device) for k, v in batch.items()}
        if zero_video:
            batch["video"] = torch.zeros_like(batch["video"])
        nll = ce_per_position(model(batch), batch["target"])[:, span - 1:].cpu().numpy()
        for b, row in enumerate(nll):
            start = int(ds.starts[4 * j + b]) - first
            out[start:start + len(row)] = row
    return out  # the tail past the last whole window stays NaN


def window_mask(n: int, sr: int, times: np.ndarray, before: float, after: float, offset: float = 0.0) -> np.ndarray:
    """bool [n]: samples within [t - before, t + after) of any event time t (seconds; `offset` = time of sample 0)."""
    mask = np.zeros(n, bool)
    for t in np.asarray(times) - offset:
        mask[_event_window(n, sr, t, before, after)] = True  # events wholly before or after the range touch nothing
    return mask


def _event_window(n: int, sr: int, t: float, before: float, after: float) -> slice:
    """The samples [t - before, t + after) s of a signal of n samples at sr Hz (empty outside it)."""
    return slice(max(0, int(round((t - before) * sr))), max(0, min(n, int(round((t + after) * sr)))))


def boundary_jumps(audio: np.ndarray, boundaries: np.ndarray) -> dict[str, float | int | None]:
    """The paper's Fig. 8 artifact as a number: the mean step |x[b] - x[b - 1]| (channel mean) at the given
    sample positions (where segments meet) against the mean step everywhere else. A ratio well above 1 means
    the waveform jumps where segments meet; None where there is no boundary (or no other step)."""
    steps = np.abs(np.diff(np.asarray(audio, np.float64), axis=0)).reshape(len(audio) - 1, -1).mean(axis=1)
    at = np.zeros(len(steps), bool)
    positions = np.asarray(boundaries, int)
    at[positions[(positions >= 1) & (positions < len(audio))] - 1] = True  # step i goes from sample i to i + 1
    edge = float(steps[at].mean()) if at.any() else None
    inside = float(steps[~at].mean()) if (~at).any() else None
    return {"boundary": edge, "inside": inside, "count": int(at.sum()),
            "ratio": edge / inside if edge is not None and inside else None}


def frame_bounds(n: int, sr: int, fps: float) -> np.ndarray:
    """int [K + 1]: the first sample of each of the K whole video frames within n samples, then the end of the
    last one. Frame k owns samples [ceil(k sr / fps), ceil((k + 1) sr / fps)) (the AVSpec rule)."""
    spec = AVSpec(sr=sr, fps=fps)
    return np.array([spec.frame_start(k) for k in range(math.floor(n / spec.samples_per_frame) + 1)], np.int64)


def envelope_correlation(gen: np.ndarray, ref: np.ndarray, sr: int, fps: float) -> float | None:
    """Pearson correlation of the RMS per video frame (over samples and channels) of gen and ref, whole frames
    only (`frame_bounds`). None for fewer than two frames or a constant envelope (e.g. silence)."""
    gen, ref = pair(gen, ref)
    bounds = frame_bounds(len(gen), sr, fps)
    if len(bounds) < 3:
        return None
    g, r = window_rms(gen, bounds), window_rms(ref, bounds)
    if any(np.ptp(e) <= 1e-9 * np.abs(e).max() for e in (g, r)):  # constant up to rounding
        return None
    return float(np.corrcoef(g, r)[0, 1])


def dc_offset(audio: np.ndarray) -> dict[str, float | list[float]]:
    """The mean sample value (DC offset, full scale 1): per channel ("per_channel") and over all ("overall")."""
    audio = np.asarray(audio, np.float64).reshape(len(audio), -1)
    return {"per_channel": [float(m) for m in audio.mean(axis=0)], "overall": float(audio.mean())}


def rms_db(audio: np.ndarray) -> float:
    """Level in dB re full scale: 20 log10 of the RMS over samples and channels, floored at FLOOR_DB."""
    rms = float(np.sqrt(np.mean(np.asarray(audio, np.float64) ** 2)))
    return max(FLOOR_DB, 20 * math.log10(rms)) if rms > 0 else FLOOR_DB


def stereo_pan(audio: np.ndarray) -> float | None:
    """Pan position in [-1 (left), 1 (right)] of stereo audio [N, 2]: (2 / pi) arcsin((E_R - E_L) / (E_R + E_L))
    with E the channel energies. It inverts constant-power panning (L = m cos(a), R = m sin(a),
    a = (pan + 1) pi / 4, as `synth` renders): a source panned to p reads p. None for mono or silence."""
    audio = np.asarray(audio, np.float64)
    if audio.ndim != 2 or audio.shape[1] != 2:
        return None
    left, right = np.sum(audio**2, axis=0)
    if left + right == 0:
        return None
    return float(2 / np.pi * np.arcsin(np.clip((right - left) / (right + left), -1, 1)))


def pan_error(gen: np.ndarray, ref: np.ndarray, sr: int, *, onsets: np.ndarray | None = None,
              pan: np.ndarray | None = None, before: float = 0.02, after: float = 0.08) -> float | None:
    """Mean absolute difference of `stereo_pan` (pan units: 0 .. 2) between gen and the truth.

    With `onsets` (s), per event over [t - before, t + after): the truth is `pan` (one value per onset, e.g.
    the clap scene's events) or else ref's pan in the same window; events where gen (or that ref window) is
    silent are left out (missing sounds are the onset recall's business). Without onsets, the pan of the whole
    of gen against the whole of ref. None where gen is not stereo, or no event counts."""
    gen, ref = pair(gen, ref)
    if onsets is None:
        g, r = stereo_pan(gen), stereo_pan(ref)
        return None if g is None or r is None else abs(g - r)
    onsets = np.asarray(onsets, np.float64)
    if pan is not None and len(pan) != len(onsets):
        raise ValueError(f"pan has {len(pan)} values for {len(onsets)} onsets")
    errors = []
    for i, t in enumerate(onsets):
        window = _event_window(len(gen), sr, t, before, after)
        g = stereo_pan(gen[window])
        truth = stereo_pan(ref[window]) if pan is None else float(pan[i])
        if g is not None and truth is not None:
            errors.append(abs(g - truth))
    return float(np.mean(errors)) if errors else None


def impact_onset_samples(y: np.ndarray) -> np.ndarray:
    """Onsets (sample positions) of mono y at 22.05 kHz as CondFoleyGen detects them: librosa's onset detector
    with delta 0.3, otherwise its defaults (hop 512 = 23 ms)."""
    return onset_detect(IMPACT_SR, y=y, units="samples", delta=0.3)


def impact_onsets(audio: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Onsets as CondFoleyGen's impact evaluation detects them: (times s [M], confidence [M] in [0, 1]).

    The channel mean is resampled to 22.05 kHz; librosa's onset detector with delta 0.3 (otherwise its
    defaults: hop 512 = 23 ms); an onset's confidence is the peak of |x| (min-max normalised over the clip)
    within +-50 ms of it. Not thinned: CondFoleyGen counts these for its onset accuracy.
    """
    y = resample(mono(audio), sr, IMPACT_SR)
    magnitude = np.abs(y)
    if np.ptp(magnitude) == 0:
        return np.zeros(0), np.zeros(0)
    samples = impact_onset_samples(y)
    norm = (magnitude - magnitude.min()) / np.ptp(magnitude)
    half = int(0.05 * IMPACT_SR)
    confidence = np.array([norm[max(0, s - half):s + half].max() for s in samples])
    return samples / IMPACT_SR, confidence


def onset_nms(times: np.ndarray, confidence: np.ndarray, window: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """CondFoleyGen's non-maximum suppression: keep the most confident onset, drop the others closer than
    `window` s to it, repeat; returns the kept (times s, confidence) in time order."""
    times, confidence = np.asarray(times, np.float64), np.asarray(confidence, np.float64)
    alive = np.ones(len(times), bool)
    for i in np.argsort(-confidence, kind="stable"):
        if alive[i]:
            close = np.abs(times - times[i]) < window
            close[i] = False
            alive &= ~close
    order = np.argsort(times[alive], kind="stable")
    return times[alive][order], confidence[alive][order]


def onset_accuracy(gen_counts: Sequence[int], ref_counts: Sequence[int]) -> float:
    """CondFoleyGen's onset accuracy: the fraction of clips whose generated audio has exactly as many onsets
    (`impact_onsets`) as the reference (or the true events). MMAudio's script reports hits / true onsets under
    the same name instead; that is closer to our onset recall."""
    if len(gen_counts) != len(ref_counts) or not gen_counts:
        raise ValueError(f"need one onset count per clip on both sides, got {len(gen_counts)} and {len(ref_counts)}")
    return float(np.mean([g == r for g, r in zip(gen_counts, ref_counts, strict=True)]))


def onset_ap(times: np.ndarray, confidence: np.ndarray, truth: np.ndarray,
             tolerance: float = IMPACT_TOLERANCE) -> float | None:
    """CondFoleyGen's onset AP: sklearn's average precision of the generated onsets' confidences.

    In time order, each true onset takes the most confident unused generated onset closer than `tolerance` s
    (CondFoleyGen's default, 0.1 s): a hit (label 1, score its confidence); a true onset with none is a miss
    (label 1, score 0); unused generated onsets are false alarms (label 0, their confidence). By that
    convention misses lower the AP only when false alarms outrank them. Apply `onset_nms` to generated onsets
    first, as CondFoleyGen does. None without true onsets; 0 when nothing was generated (CondFoleyGen's script
    would score that 1). CondFoleyGen chooses among candidates by |x| at the onset sample; here by confidence.
    """
    if len(truth) == 0:
        return None
    if len(times) == 0:
        return 0.0
    from sklearn.metrics import average_precision_score  # heavy import, only needed here

    times, confidence = np.asarray(times, np.float64), np.asarray(confidence, np.float64)
    unused = np.ones(len(times), bool)
    labels, scores = [], []
    for t in np.sort(truth):
        near = np.flatnonzero(unused & (np.abs(times - t) < tolerance))
        labels.append(1)
        if len(near):
            best = near[np.argmax(confidence[near])]
            unused[best] = False
            scores.append(confidence[best])
        else:
            scores.append(0.0)
    labels += [0] * int(unused.sum())
    scores += list(confidence[unused])
    return float(average_precision_score(labels, scores))


def condfoleygen_audio(audio: np.ndarray, sr: int) -> np.ndarray:
    """float64 [M]: audio [N, C] at sr Hz as CondFoleyGen's predict_onset.py reads a video's audio with moviepy
    1.0.3: ffmpeg decodes it to 16-bit 44.1 kHz (AudioFileClip), to_soundarray(fps=22050) takes every other
    sample (the nearest of round(44100 t)), and the channels are averaged."""
    return resample_s16(audio, sr, 2 * IMPACT_SR)[::2].mean(axis=1)


def condfoleygen_nms(onsets: np.ndarray, confidence: Sequence[float], window: float = 0.05) -> np.ndarray:
    """predict_onset.py's onset_nms on sample positions (22.05 kHz), as written: the most confident onset stays
    and removes those closer than `window` s, but it removes them from the list it is walking, so the onset after
    each removed one escapes that round. Returns the kept positions in time order."""
    onsets = np.asarray(onsets)
    remain, kept = onsets.tolist(), []
    for i in np.argsort(confidence)[::-1]:
        current = onsets[i]
        if current not in remain:
            continue
        kept.append(current)
        remain.remove(current)
        for other in remain:  # the script's loop, mutation of the walked list included
            if abs(current - other) < window * IMPACT_SR:
                remain.remove(other)
    return np.array(sorted(kept), dtype=onsets.dtype)


def condfoleygen_pair(gen: np.ndarray, ref: np.ndarray, delta: float = IMPACT_TOLERANCE) -> dict[str, float | None]:
    """predict_onset.py's scores of one generated clip against its target, both mono float at 22.05 kHz
    (`condfoleygen_audio`): "count_match" (1.0 when both have as many onsets, before NMS: its "onset acc") and
    "ap" (its "detection ap"; its "detection acc", hits / target onsets, is not kept).

    Onsets by `impact_onset_samples` anywhere in the clip (no edge rule). The generated onsets' confidence is the
    peak of |gen| (min-max normalised) within +-50 ms; `condfoleygen_nms` thins them. In time order each target
    onset takes, among the unused generated onsets closer than `delta` s, the one with the largest |gen| at its
    own sample (a hit, scored with its confidence) or none (a miss, label 1 and score 0); once every generated
    onset is used the script stops, so later target onsets are not counted; unused ones are false alarms.
    sklearn's average precision of that: 1.0 when nothing was generated (misses only); None without target
    onsets (the script's sklearn returned NaN there)."""
    from sklearn.metrics import average_precision_score  # heavy import, only needed here

    truth, onsets = impact_onset_samples(ref), impact_onset_samples(gen)
    magnitude = np.abs(gen)
    norm = (magnitude - magnitude.min()) / (np.ptp(magnitude) or 1.0)
    half = int(0.05 * IMPACT_SR)

    def confidence(o: int) -> float:
        return float(np.max(norm[o - half:o + half]))  # the script's slice, negative start included

    unused = condfoleygen_nms(onsets, [confidence(o) for o in onsets]).tolist()
    labels, scores = [], []
    for t in truth:
        near = [i for i, o in enumerate(unused) if abs(o - t) < delta * IMPACT_SR]
        labels.append(1)
        if not near:
            scores.append(0.0)
            continue
        match = near[np.argsort([norm[unused[i]] for i in near])[-1]]
        scores.append(confidence(unused.pop(match)))
        if not unused:
            break
    labels += [0] * len(unused)
    scores += [confidence(o) for o in unused]
    return {"count_match": float(len(truth) == len(onsets)),
            "ap": float(average_precision_score(labels, scores)) if len(truth) else None}


def condfoleygen_scores(gen: np.ndarray, ref: np.ndarray, sr: int,
                        seconds: float = CONDFOLEYGEN_SECONDS) -> dict[str, float | None]:
    """CondFoleyGen's onset accuracy and AP of gen [N, C] against ref [N, C] at sr Hz, as its predict_onset.py
    computes them over a test set of `seconds`-long clips: gen and ref are cut into consecutive windows of that
    length (a shorter remainder is left out; audio shorter than one window is one window), each window is read as
    the script reads a clip (`condfoleygen_audio`, truncated to seconds * 22050 samples) and scored
    (`condfoleygen_pair`). Returns the means over windows: "onset_acc" (count match) and "onset_ap" (over the
    windows with target onsets; None where none has one)."""
    gen, ref = pair(gen, ref)
    size = min(len(gen), round(seconds * sr))
    keep = round(seconds * IMPACT_SR)
    pairs = [condfoleygen_pair(condfoleygen_audio(gen[s:s + size], sr)[:keep],
                               condfoleygen_audio(ref[s:s + size], sr)[:keep])
             for s in range(0, len(gen) - size + 1, size)]
    aps = [p["ap"] for p in pairs if p["ap"] is not None]
    return {"onset_acc": float(np.mean([p["count_match"] for p in pairs])),
            "onset_ap": float(np.mean(aps)) if aps else None}


def past_edge(times: np.ndarray, *aligned: np.ndarray) -> tuple[np.ndarray, ...]:
    """Detected onset times (and arrays aligned with them) without those in the first EDGE_S seconds: a clip cut
    out of running sound makes the detectors fire at its start, a sound nobody made."""
    keep = np.asarray(times) >= EDGE_S
    return (np.asarray(times)[keep], *(np.asarray(a)[keep] for a in aligned))


def onsets_within(onsets: np.ndarray, n: int, sr: int) -> np.ndarray:
    """bool [M]: which onset times (s) lie within a signal of n samples at sr Hz, [0, n / sr)."""
    onsets = np.asarray(onsets, np.float64)
    return (onsets >= 0) & (onsets < n / sr)


def sync_scores(gen: np.ndarray, ref: np.ndarray, sr: int, fps: float, *, onsets: np.ndarray | None = None,
                tolerance: float | None = None) -> dict[str, float | int | None]:
    """How well generated audio gen [N, C] keeps time with the truth: the sync figures every report shows.

    onset_precision/recall/f1: onsets detected in gen (`detect_onsets`, those in the first EDGE_S dropped:
    `past_edge`) matched to the true ones within `tolerance` s (default one video frame, 1 / fps), each used once.
    The true onsets are `onsets` (s from the start of gen; those outside it are dropped) or, when None, the onsets
    detected in ref (past the edge too). Precision is None without generated onsets, recall and F1 None without
    true ones. onsets_detected, onsets_true: the counts. envelope_corr: `envelope_correlation` of gen and ref.
    """
    gen, ref = pair(gen, ref)
    tol = 1 / fps if tolerance is None else tolerance
    detected = past_edge(detect_onsets(gen, sr))[0]
    if onsets is None:
        truth = past_edge(detect_onsets(ref, sr))[0]
    else:
        truth = np.asarray(onsets, np.float64)[onsets_within(onsets, len(gen), sr)]
    scores = onset_scores(detected, truth, tol)
    return {"onset_precision": scores["precision"] if len(detected) else None,
            "onset_recall": scores["recall"] if len(truth) else None,
            "onset_f1": scores["f1"] if len(truth) else None,
            "onsets_detected": len(detected), "onsets_true": len(truth),
            "envelope_corr": envelope_correlation(gen, ref, sr, fps)}


def audio_metrics(gen: np.ndarray, ref: np.ndarray, sr: int, fps: float, *, onsets: np.ndarray | None = None,
                  pan: np.ndarray | None = None, f0: np.ndarray | None = None, f0_fps: float | None = None,
                  tolerance: float | None = None, onset_metric: str = "strict") -> dict[str, float | None]:
    """Every measure of generated audio gen [N, C] against the reference ref [N, C'] at sr Hz and fps frames/s,
    as one flat dict with the keys METRIC_KEYS (None where a measure does not apply).

    onsets: true onset times (s from the start of gen; those outside [0, N / sr) are dropped), or None to take
    the onsets detected in ref as the truth (`detect_onsets` for precision/recall/F1, `impact_onsets` for
    CondFoleyGen's onset accuracy and AP); onsets detected in the first EDGE_S are dropped (`past_edge`).
    pan: the true pan per onset (aligned with `onsets`), else ref's.
    f0: the true f0 (Hz, 0 = unvoiced) per video frame at f0_fps (default fps), frame k at k / f0_fps s.
    tolerance: the onset match window (s) for precision/recall/F1 and the pan windows (one before, two after
    each onset); default one video frame, 1 / fps. Onset AP keeps CondFoleyGen's 0.1 s, for comparison.
    onset_metric: how onset_acc and onset_ap are computed. "strict" (the default): on the whole of gen against
    the truth above, first-EDGE_S rule, proper NMS, every missed true onset counted, AP 0 when nothing was
    generated. "condfoleygen": exactly as CondFoleyGen's predict_onset.py (`condfoleygen_scores`: 2 s windows,
    truth detected in ref even where `onsets` are given, no edge rule, AP 1 when nothing was generated).

    onset_precision/recall/f1 and envelope_corr (as `sync_scores` computes them: precision None without
    generated onsets, recall and F1 None without true ones), onset_acc and onset_ap (CondFoleyGen), logmel_db (dB),
    mrstft (`multires_stft_distance`'s total), pan_error (pan units), f0_cents, dc_offset (gen's mean sample),
    low_band_db and high_band_db (`band_errors`), frame_artifact_db and frame_artifact_ref_db
    (`frame_rate_artifact` of gen and of ref), rms_db and ref_rms_db (dB re full scale).
    """
    if onset_metric not in ONSET_METRICS:
        raise ValueError(f"onset_metric must be one of {', '.join(ONSET_METRICS)}, not {onset_metric!r}")
    gen, ref = pair(gen, ref)
    tol = 1 / fps if tolerance is None else tolerance
    if onsets is not None:
        onsets = np.asarray(onsets, np.float64)
        if pan is not None and len(pan) != len(onsets):
            raise ValueError(f"pan has {len(pan)} values for {len(onsets)} onsets")
        keep = onsets_within(onsets, len(gen), sr)
        onsets, pan = onsets[keep], None if pan is None else np.asarray(pan, np.float64)[keep]
    sync = sync_scores(gen, ref, sr, fps, onsets=onsets, tolerance=tol)
    if onset_metric == "condfoleygen":
        impact = condfoleygen_scores(gen, ref, sr)
    else:
        impact_times, impact_confidence = past_edge(*impact_onsets(gen, sr))
        impact_truth = past_edge(impact_onsets(ref, sr)[0])[0] if onsets is None else onsets
        impact = {"onset_acc": onset_accuracy([len(impact_times)], [len(impact_truth)]),
                  "onset_ap": onset_ap(*onset_nms(impact_times, impact_confidence), impact_truth)}
    bands = band_errors(gen, ref, sr)
    f0_times = None if f0 is None else np.arange(len(f0)) / (fps if f0_fps is None else f0_fps)
    return {
        "onset_precision": sync["onset_precision"],
        "onset_recall": sync["onset_recall"],
        "onset_f1": sync["onset_f1"],
        "onset_acc": impact["onset_acc"],
        "onset_ap": impact["onset_ap"],
        "envelope_corr": sync["envelope_corr"],
        "logmel_db": logmel_distance_db(gen, ref, sr),
        "mrstft": multires_stft_distance(gen, ref)["total"],
        "pan_error": pan_error(gen, ref, sr, onsets=onsets, pan=pan, before=tol, after=2 * tol),
        "f0_cents": None if f0 is None else f0_error_cents(gen, sr, f0, f0_times),
        "dc_offset": dc_offset(gen)["overall"],
        "low_band_db": bands["low"],
        "high_band_db": bands["high"],
        "frame_artifact_db": frame_rate_artifact(gen, sr, fps),
        "frame_artifact_ref_db": frame_rate_artifact(ref, sr, fps),
        "rms_db": rms_db(gen),
        "ref_rms_db": rms_db(ref),
    }


def bootstrap_mean(values: Sequence[float | None], resamples: int = 2000, confidence: float = 0.95,
                   seed: int = 0) -> dict[str, float | int] | None:
    """The mean of per-clip values and its percentile-bootstrap interval: `resamples` draws of as many values
    with replacement (seeded), the (1 - confidence) / 2 and (1 + confidence) / 2 quantiles of their means.
    Returns {"mean", "lo", "hi", "n"} over the values that are not None; None when none is left."""
    if not 0 < confidence < 1 or resamples < 1:
        raise ValueError(f"need 0 < confidence < 1 and resamples >= 1, got {confidence} and {resamples}")
    x = np.array([v for v in values if v is not None], np.float64)
    if not len(x):
        return None
    means = x[np.random.default_rng(seed).integers(0, len(x), (resamples, len(x)))].mean(axis=1)
    lo, hi = np.clip(np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2]), x.min(), x.max())  # rounding
    return {"mean": float(x.mean()), "lo": float(lo), "hi": float(hi), "n": len(x)}
