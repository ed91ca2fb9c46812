"""The one module that imports librosa and soundfile: thin wrappers for what foleylib needs of them.

Audio is float [N, C] or [N] in [-1, 1]; the analysis functions take mono float [N] (see `mono`). Spectrograms
are [frequency bins, frames] with a Hann window. librosa loads its submodules lazily, so importing this module
is cheap; the first onset or pitch call pays for numba.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import librosa
import numpy as np
import soundfile as sf

OnsetUnits = Literal["time", "samples", "frames"]


def mono(audio: np.ndarray) -> np.ndarray:
    """float32 [N]: the channel mean of [N, C] (a [N] input is returned as float32)."""
    audio = np.asarray(audio, np.float32)
    return audio.mean(axis=1) if audio.ndim == 2 else audio


def pair(gen: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """gen and ref as float64 [N, C] ([N] becomes [N, 1]; channel counts may differ); refuses unequal lengths."""
    gen, ref = (np.asarray(a, np.float64) for a in (gen, ref))
    if len(gen) != len(ref):
        raise ValueError(f"generated and reference audio differ in length: {len(gen)} vs {len(ref)} samples")
    return (gen[:, None] if gen.ndim == 1 else gen), (ref[:, None] if ref.ndim == 1 else ref)


def resample(y: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """Mono float [N] at `sr` Hz resampled to `target_sr` Hz (soxr, high quality); unchanged if the rates agree."""
    return librosa.resample(np.asarray(y, np.float32), orig_sr=sr, target_sr=target_sr)


def window_rms(audio: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """float64 [K]: the RMS over samples and channels of audio [N, C] (or [N]) in each window
    [bounds[k], bounds[k + 1]) of the increasing sample positions `bounds` [K + 1] (empty windows are refused)."""
    bounds = np.asarray(bounds, np.int64)
    if np.any(np.diff(bounds) <= 0):
        raise ValueError("window bounds must be strictly increasing")
    power = np.asarray(audio, np.float64) ** 2
    power = power.reshape(len(power), -1).mean(axis=1)  # per sample, channel mean
    sums = np.add.reduceat(power[:bounds[-1]], bounds[:-1])
    return np.sqrt(sums / np.diff(bounds))


def stft_magnitude(y: np.ndarray, n_fft: int, hop: int, *, win_length: int | None = None,
                   center: bool = True) -> np.ndarray:
    """float [n_fft // 2 + 1, frames]: |STFT| of mono y, periodic Hann window of `win_length` (default n_fft)
    centred in the FFT frame; `center` pads n_fft // 2 zeros at both ends (frame t is centred on sample t * hop).
    Unscaled: a sine of amplitude A on a bin centre reads A * sum(window) / 2."""
    return np.abs(librosa.stft(np.asarray(y, np.float32), n_fft=n_fft, hop_length=hop, win_length=win_length,
                               center=center))


def power_spectrogram(y: np.ndarray, n_fft: int, hop: int, *, center: bool = True) -> np.ndarray:
    """float [n_fft // 2 + 1, frames]: |STFT|^2 of mono y (Hann window of n_fft), scaled so that a sine of
    amplitude 1 on a bin centre reads 1.0 there (0 dB); a signal of amplitude A reads A^2 below that."""
    return (stft_magnitude(y, n_fft, hop, center=center) * 4 / n_fft) ** 2  # sum(hann(n)) == n / 2


def mel_filters(sr: int, n_fft: int, n_mels: int, *, fmin: float = 0.0, fmax: float | None = None,
                htk: bool = False, norm: Literal["slaney"] | None = None) -> np.ndarray:
    """float32 [n_mels, n_fft // 2 + 1]: triangular mel filters (peak 1 when `norm` is None; area-normalised
    with "slaney"); `htk` selects the HTK mel formula instead of Slaney's."""
    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm)


def to_db(power: np.ndarray, ref: float = 1.0, floor_db: float = -80.0) -> np.ndarray:
    """10 log10(power / ref) in dB, clipped from below at `floor_db` (so any two powers under it compare equal)."""
    return 10 * np.log10(np.maximum(np.asarray(power, np.float64) / ref, 10 ** (floor_db / 10)))


def onset_strength(y: np.ndarray, sr: int, hop: int = 512) -> np.ndarray:
    """float [frames]: librosa's spectral-flux onset envelope of mono y, one value per `hop` samples."""
    return librosa.onset.onset_strength(y=np.asarray(y, np.float32), sr=sr, hop_length=hop)


def onset_detect(sr: int, *, y: np.ndarray | None = None, envelope: np.ndarray | None = None, hop: int = 512,
                 units: OnsetUnits = "time", **peak_pick: float) -> np.ndarray:
    """Onsets of mono y (or of its onset `envelope`) by librosa's peak picker, in seconds, samples or envelope
    frames (`units`); `peak_pick` passes librosa's pre_max, post_max, pre_avg, post_avg, wait (envelope
    frames) and delta (threshold over the local mean of the normalised envelope, default 0.07)."""
    return librosa.onset.onset_detect(y=None if y is None else np.asarray(y, np.float32), sr=sr,
                                      onset_envelope=envelope, hop_length=hop, units=units, **peak_pick)


def pyin(y: np.ndarray, sr: int, fmin: float, fmax: float, frame_length: int,
         hop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """librosa's probabilistic YIN on mono y: (f0 Hz [T] (NaN where unvoiced), voiced bool [T], frame times s [T]);
    frame t is centred on sample t * hop. The pitch grid has 10-cent steps from fmin."""
    f0, voiced, _ = librosa.pyin(np.asarray(y, np.float32), fmin=fmin, fmax=fmax, sr=sr,
                                 frame_length=frame_length, hop_length=hop)
    return f0, voiced, librosa.times_like(f0, sr=sr, hop_length=hop)


def write_wav(path: str | Path, audio: np.ndarray, sr: int, subtype: str = "FLOAT") -> None:
    """Write audio [N, C] (or [N]) at `sr` Hz as a WAV file (`subtype` e.g. FLOAT or PCM_16), whatever the suffix."""
    sf.write(path, audio, sr, subtype=subtype, format="WAV")


def specshow_mel(db: np.ndarray, sr: int, hop: int, ax):
    """Draw a mel spectrogram in dB [n_mels, frames] (filters of `mel_filters` with fmin 0, fmax sr / 2) into
    matplotlib `ax`, time in seconds and a mel frequency axis in Hz; returns the image."""
    import librosa.display  # imports matplotlib: only for figures

    return librosa.display.specshow(db, sr=sr, hop_length=hop, x_axis="time", y_axis="mel", ax=ax)
