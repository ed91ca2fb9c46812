"""Spectral measures of generated audio against a reference, and of the deep-fusion frame-rate artifact.

Audio is float [N, C] (or [N]) in [-1, 1]; distances take the channel mean (stereo placement is
`metrics.pan_error`'s business) and refuse a generated/reference pair of unequal length. Levels in dB are
re a sine of amplitude 1 (see `audio.power_spectrogram`) and floored at FLOOR_DB, so silence against silence
(or against anything quieter than the floor) is 0 dB apart.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from foleylib.core.audio import mel_filters, mono, pair, power_spectrogram, pyin, stft_magnitude, to_db
from foleylib.core.config import AVSpec

FLOOR_DB = -80.0  # dB re a full-scale sine: quieter bins count as silence
# Parallel WaveGAN's multi-resolution STFT loss: (FFT size, hop, Hann window length) in samples
PWG_RESOLUTIONS: tuple[tuple[int, int, int], ...] = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))


def logmel_distance_db(gen: np.ndarray, ref: np.ndarray, sr: int, n_fft: int = 1024, hop: int = 256,
                       n_mels: int = 64) -> float:
    """Mean absolute difference (dB) of the log-mel spectrograms of gen and ref (channel means; mel filters of
    peak 1 from 0 Hz to sr / 2, centred frames), each floored at FLOOR_DB."""
    gen, ref = pair(gen, ref)
    filters = mel_filters(sr, n_fft, n_mels)
    g, r = (to_db(filters @ power_spectrogram(mono(a), n_fft, hop), floor_db=FLOOR_DB) for a in (gen, ref))
    return float(np.mean(np.abs(g - r)))


def multires_stft_distance(gen: np.ndarray, ref: np.ndarray,
                           resolutions: tuple[tuple[int, int, int], ...] = PWG_RESOLUTIONS) -> dict[str, float]:
    """Parallel WaveGAN's multi-resolution STFT loss of gen against ref (channel means), averaged over the
    `resolutions` (FFT size, hop, window length): spectral convergence ||R| - |G||_F / ||R||_F plus the mean
    absolute difference of natural-log magnitudes, magnitudes clamped to sqrt(1e-7) as PWG does. Keys
    spectral_convergence, log_magnitude (nats) and total (their sum; 0 for identical inputs)."""
    gen, ref = pair(gen, ref)
    convergence = log_magnitude = 0.0
    for n_fft, hop, win in resolutions:
        g, r = (np.sqrt(np.maximum(stft_magnitude(mono(a), n_fft, hop, win_length=win) ** 2, 1e-7))
                for a in (gen, ref))
        convergence += float(np.linalg.norm(r - g) / np.linalg.norm(r))
        log_magnitude += float(np.mean(np.abs(np.log(r) - np.log(g))))
    convergence, log_magnitude = convergence / len(resolutions), log_magnitude / len(resolutions)
    return {"spectral_convergence": convergence, "log_magnitude": log_magnitude,
            "total": convergence + log_magnitude}


def band_errors(gen: np.ndarray, ref: np.ndarray, sr: int, split_hz: float = 1000.0, n_fft: int = 1024,
                hop: int = 256) -> dict[str, float | None]:
    """Mean absolute log-spectral difference (dB) of gen against ref below `split_hz` ("low") and from it up to
    sr / 2 ("high"), over STFT bins (channel means, Hann window of n_fft, frames wholly inside the audio, each
    bin floored at FLOOR_DB). The paper says its transformer matches the low frequencies and misses the high
    ones: then low < high. The default split, 1 kHz, parts the engine's harmonics and the body of impacts from
    their noisy attack. None for audio shorter than n_fft."""
    gen, ref = pair(gen, ref)
    if not 0 < split_hz < sr / 2:
        raise ValueError(f"split_hz must lie between 0 and sr / 2 = {sr / 2} Hz, got {split_hz}")
    if len(gen) < n_fft:
        return {"low": None, "high": None}
    g, r = (to_db(power_spectrogram(mono(a), n_fft, hop, center=False), floor_db=FLOOR_DB) for a in (gen, ref))
    low = np.arange(n_fft // 2 + 1) * sr / n_fft < split_hz
    diff = np.abs(g - r)
    return {"low": float(diff[low].mean()), "high": float(diff[~low].mean())}


def frame_rate_artifact(audio: np.ndarray, sr: int, fps: float, harmonics: int | None = None) -> float | None:
    """Energy at the frame rate and its harmonics over the energy of neighbouring frequencies (dB), in the
    long-term spectrum of the step size |x[i + 1] - x[i]| (channel mean): a jump where video frames meet (the
    paper's Fig. 8 deep-fusion artifact) is a spike in the step size once per frame, i.e. lines at k * fps.

    The spectrum is one Hann-windowed DFT over a whole number of frames, chosen so that every harmonic falls on
    a bin; each harmonic's neighbours are the bins 3 or more bins away and at most fps / 2 from it. The score is
    10 log10(sum of the harmonic bins / sum of their neighbours' means) over the first `harmonics` harmonics
    (default: all below sr / 2); about 0 dB for audio without the artifact. None for fewer than 8 frames of
    audio or no energy beside the harmonics."""
    spf = AVSpec(sr=sr, fps=fps).samples_per_frame
    frames = math.floor(Fraction(len(audio) - 1) / spf) // spf.denominator * spf.denominator
    if frames < 8:
        return None
    n = int(frames * spf)  # harmonic h sits exactly on bin h * frames
    x = np.asarray(audio, np.float64)[: n + 1]
    step = np.abs(np.diff(x, axis=0)).reshape(n, -1).mean(axis=1)
    power = np.abs(np.fft.rfft((step - step.mean()) * np.hanning(n + 1)[:-1])) ** 2  # periodic Hann
    top = (n // 2 - frames // 2) // frames  # the last harmonic with all its neighbours below Nyquist
    count = top if harmonics is None else min(harmonics, top)
    offsets = np.arange(3, frames // 2 + 1)
    peak = neighbours = 0.0
    for h in range(1, count + 1):
        peak += power[h * frames]
        neighbours += np.concatenate([power[h * frames - offsets], power[h * frames + offsets]]).mean()
    return float(10 * np.log10(peak / neighbours)) if neighbours > 0 else None


def f0_error_cents(gen: np.ndarray, sr: int, truth_f0: np.ndarray, truth_times: np.ndarray) -> float | None:
    """Median absolute pitch error (cents) of gen (channel mean, librosa's pyin) against a true f0 track:
    `truth_f0` (Hz; 0 or NaN where unvoiced) at `truth_times` (s from the start of gen), e.g. the car scene's
    per-frame f0 at k / fps. The truth is interpolated linearly to pyin's frames; only frames voiced in both
    and within the truth's time span count. pyin searches from an octave below the lowest to just over an octave
    above the highest true f0 (so octave errors show as 1200 cents) on a 10-cent grid starting at the former.
    None if no frame counts."""
    f0, times = np.asarray(truth_f0, np.float64), np.asarray(truth_times, np.float64)
    voiced_truth = np.isfinite(f0) & (f0 > 0)
    if not voiced_truth.any():
        return None
    fmin = f0[voiced_truth].min() / 2
    fmax = min(2 * f0[voiced_truth].max() * 2 ** (1 / 12), sr / 2)  # a semitone of margin above the octave
    frame_length = 1 << math.ceil(math.log2(4 * sr / fmin))  # 4 periods of fmin (with pyin's minimum, 2, a
    # steady sine came out one 10-cent step off)
    est, voiced, t = pyin(mono(gen), sr, fmin, fmax, frame_length, frame_length // 4)
    truth = np.interp(t, times, np.where(voiced_truth, f0, 0.0))
    both_voiced = np.interp(t, times, voiced_truth.astype(float)) == 1.0  # truth voiced on both sides of t
    use = voiced & both_voiced & (t >= times[0]) & (t <= times[-1]) & np.isfinite(est)
    if not use.any():
        return None
    return float(np.median(1200 * np.abs(np.log2(est[use] / truth[use]))))
