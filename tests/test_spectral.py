"""Spectral distances and the frame-rate artifact score, on hand-made signals with answers derived by hand."""
import math

import numpy as np
import pytest

from foleylib.evaluation.spectral import (
    band_errors,
    f0_error_cents,
    frame_rate_artifact,
    logmel_distance_db,
    multires_stft_distance,
)

SR = 16000
HALF_DB = 20 * math.log10(2)  # halving an amplitude: -6.0206 dB
PYIN_STEP = 10 + 1e-9  # cents: pyin's pitch grid; an estimate can sit one step off


def noise(seconds: float, sigma: float, seed: int = 0, channels: int = 2) -> np.ndarray:
    return sigma * np.random.default_rng(seed).standard_normal((round(seconds * SR), channels))


def sine(freq: float, seconds: float, amp: float = 0.5) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(round(seconds * SR)) / SR)


def test_logmel_distance_by_hand():
    ref = noise(1.0, 0.3)
    assert logmel_distance_db(ref, ref, SR) == 0.0
    assert logmel_distance_db(np.zeros((SR, 2)), np.zeros((SR, 1)), SR) == 0.0  # silence vs silence
    # half the amplitude is a quarter of the power in every mel band (all far above the -80 dB floor)
    assert logmel_distance_db(0.5 * ref, ref, SR) == pytest.approx(HALF_DB, abs=1e-6)
    # anything below the floor counts as silence
    assert logmel_distance_db(noise(1.0, 1e-6), np.zeros((SR, 2)), SR) == 0.0
    with pytest.raises(ValueError, match="length"):
        logmel_distance_db(ref[:-1], ref, SR)


def test_multires_stft_distance_by_hand():
    ref = noise(1.0, 0.3)
    assert multires_stft_distance(ref, ref) == {"spectral_convergence": 0.0, "log_magnitude": 0.0, "total": 0.0}
    double = multires_stft_distance(2 * ref, ref)  # |G| = 2 |R|: convergence ||R|| / ||R|| = 1, log ratio ln 2
    assert double["spectral_convergence"] == pytest.approx(1.0, abs=1e-6)
    assert double["log_magnitude"] == pytest.approx(math.log(2), abs=1e-6)
    assert double["total"] == pytest.approx(1 + math.log(2), abs=1e-6)
    # silence against noise: |G| is the clamp sqrt(1e-7), tiny next to |R|, so the convergence is about 1
    silent = multires_stft_distance(np.zeros_like(ref), ref)
    assert silent["spectral_convergence"] == pytest.approx(1.0, abs=1e-3)


def test_band_errors_by_hand():
    # tones on every third bin centre of a 1024-point FFT: each bin then holds exactly one tone's main lobe
    # (centre A^2 or side (A/2)^2), whatever the phases. Low tones on bins 3..39, high tones on bins 99..501.
    n_fft, t = 1024, np.arange(SR) / SR
    low = sum(0.005 * np.sin(2 * np.pi * k * SR / n_fft * t + k) for k in range(3, 40, 3))
    high = sum(0.005 * np.sin(2 * np.pi * k * SR / n_fft * t + k) for k in range(99, 502, 3))
    errors = band_errors(low + 0.5 * high, low + high, SR, split_hz=1000.0, n_fft=n_fft)
    # below 1 kHz (bins 0..63) nothing changed; bins 98..502 (405 of the 449 bins from 1 kHz to 8 kHz) lost
    # 6.02 dB, the others are silent in both
    assert errors["low"] == pytest.approx(0.0, abs=1e-6)
    assert errors["high"] == pytest.approx(405 / 449 * HALF_DB, abs=1e-6)
    swapped = band_errors(0.5 * low + high, low + high, SR, split_hz=1000.0, n_fft=n_fft)
    assert swapped["low"] == pytest.approx(39 / 64 * HALF_DB, abs=1e-6)  # bins 2..40 of the 64 below 1 kHz
    assert swapped["high"] == pytest.approx(0.0, abs=1e-6)
    assert band_errors(np.zeros(100), np.zeros(100), SR) == {"low": None, "high": None}
    with pytest.raises(ValueError, match="split_hz"):
        band_errors(low, low, SR, split_hz=SR / 2)


def expected_artifact_db(sigma: float, jump: float, frames: int, spf: int) -> float:
    """The score of white noise (std sigma) with a jump of size `jump` at every frame boundary, derived by hand.

    The step s = |x[i+1] - x[i]| of the noise is |Z|, Z ~ N(0, 2 sigma^2): mean m0 = sd sqrt(2/pi), variance
    v = sd^2 (1 - 2/pi). At a boundary it is |Z + jump|, mean m1 (folded normal). So s = white-ish background of
    variance v + an impulse train of height a = m1 - m0, one per frame. With a periodic Hann window over
    K = frames frames of n = K * spf samples, each harmonic bin holds (a K / 2)^2 from the impulses and
    v * 3n / 8 from the background (on average over the band, which the harmonics span evenly).
    """
    sd = sigma * math.sqrt(2)
    m0 = sd * math.sqrt(2 / math.pi)
    m1 = m0 * math.exp(-jump**2 / (2 * sd**2)) + jump * math.erf(jump / (sd * math.sqrt(2)))
    a, v = m1 - m0, sd**2 * (1 - 2 / math.pi)
    return 10 * math.log10(1 + (a * frames / 2) ** 2 / (v * 3 * frames * spf / 8))


def test_frame_rate_artifact_sees_jumps_at_frame_boundaries():
    fps, spf, frames = 25, 640, 200
    clean = noise(frames * spf / SR + 1 / SR, 0.05, channels=1)
    jumpy = clean + 0.1 * (-1.0) ** (np.arange(len(clean)) // spf)[:, None]  # a 0.2 jump where frames meet
    # the statistical spread of either score is about 0.25 dB (319 harmonics, each bin exponentially distributed)
    assert abs(frame_rate_artifact(clean, SR, fps)) < 1.0
    assert frame_rate_artifact(jumpy, SR, fps) == pytest.approx(expected_artifact_db(0.05, 0.2, frames, spf), abs=0.7)


def test_frame_rate_artifact_at_a_non_integer_frame_length_and_its_limits():
    fps = 30  # 1600/3 samples per frame: boundaries at ceil(k * 1600 / 3)
    clean = noise(6.0, 0.05, channels=1)
    starts = np.ceil(np.arange(181) * 1600 / 3).astype(int)
    offsets = np.repeat(0.1 * (-1.0) ** np.arange(180), np.diff(starts))[:, None]
    jumpy = clean[: len(offsets)] + offsets
    assert abs(frame_rate_artifact(clean, SR, fps)) < 1.0
    assert frame_rate_artifact(jumpy, SR, fps) > frame_rate_artifact(clean[: len(offsets)], SR, fps)
    assert frame_rate_artifact(np.zeros((SR, 2)), SR, fps) is None  # no energy anywhere
    assert frame_rate_artifact(clean[: 7 * 640 + 1], SR, 25) is None  # 7 frames: too few
    assert frame_rate_artifact(clean[: 8 * 640 + 1], SR, 25) is not None


def test_f0_error_cents_by_hand():
    fps = 25
    truth = np.full(25, 220.0)  # one second of a 220 Hz truth, one value per video frame
    times = np.arange(25) / fps
    # pyin searches 110 .. 440 Hz on a 10-cent grid from 110 Hz: 220 Hz and 100 cents above lie on it
    assert f0_error_cents(sine(220, 1.0), SR, truth, times) == pytest.approx(0.0, abs=PYIN_STEP)
    sharp = f0_error_cents(sine(220 * 2 ** (100 / 1200), 1.0), SR, truth, times)
    assert sharp == pytest.approx(100.0, abs=PYIN_STEP)
    # one octave up: 1200 cents
    assert f0_error_cents(sine(440, 1.0), SR, truth, times) == pytest.approx(1200.0, abs=PYIN_STEP)
    assert f0_error_cents(np.zeros(SR), SR, truth, times) is None  # nothing voiced in gen
    assert f0_error_cents(sine(220, 1.0), SR, np.zeros(25), times) is None  # nothing voiced in the truth
