"""The librosa/soundfile wrappers, on signals whose answers are known by hand."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from foleylib.core import audio

ROOT = Path(__file__).resolve().parents[1]


def sine(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(round(seconds * sr)) / sr)


def test_only_the_audio_module_imports_librosa_or_soundfile():
    lines = subprocess.run(["grep", "-rn", r"import librosa\|import soundfile\|from librosa\|from soundfile",
                            str(ROOT / "foleylib")], capture_output=True, text=True).stdout.splitlines()
    assert lines and {Path(line.split(":")[0]).name for line in lines} == {"audio.py"}


def test_mono_and_pair():
    stereo = np.array([[1.0, 0.0], [0.5, -0.5]])
    assert audio.mono(stereo).tolist() == [0.5, 0.0] and audio.mono(stereo).dtype == np.float32
    assert audio.mono(np.array([0.25, 1.0])).tolist() == [0.25, 1.0]
    gen, ref = audio.pair(np.zeros(3), stereo[[0, 1, 1]])
    assert gen.shape == (3, 1) and ref.shape == (3, 2)
    with pytest.raises(ValueError, match="3 vs 2 samples"):
        audio.pair(np.zeros(3), stereo)


def test_window_rms_by_hand():
    x = np.array([3.0, 4.0, 0.0, 0.0, 0.0, 1.0, 7.0])  # the last sample lies past the last window
    np.testing.assert_allclose(audio.window_rms(x, [0, 2, 5, 6]), [np.sqrt(12.5), 0.0, 1.0])
    stereo = np.array([[3.0, 1.0], [4.0, 1.0]])  # power per sample is the channel mean: 5, 8.5
    np.testing.assert_allclose(audio.window_rms(stereo, [0, 2]), [np.sqrt(13.5 / 2)])
    with pytest.raises(ValueError, match="increasing"):
        audio.window_rms(x, [0, 2, 2])


def test_power_spectrogram_reads_a_sine_amplitude_squared():
    sr, n_fft = 16000, 1024
    y = sine(16 * sr / n_fft, sr, 0.5)  # 250 Hz: on bin 16; amplitude 0.5
    power = audio.power_spectrogram(y, n_fft, 256, center=False)
    np.testing.assert_allclose(power[16], 0.25, rtol=1e-4)  # A^2
    np.testing.assert_allclose(power[[15, 17]], 0.25 / 4, rtol=1e-4)  # the Hann window's side bins: (A / 2)^2
    assert power[20:].max() < 1e-10
    # unscaled magnitude: A * sum(window) / 2 with a window of n_fft / 2 taps summing to n_fft / 4
    magnitude = audio.stft_magnitude(y, n_fft, 256, win_length=n_fft // 2, center=False)
    np.testing.assert_allclose(magnitude[16], 0.5 * (n_fft // 4) / 2, rtol=1e-3)


def test_to_db_and_its_floor():
    np.testing.assert_allclose(audio.to_db(np.array([1.0, 0.01, 0.0, 1e-12])), [0.0, -20.0, -80.0, -80.0])
    np.testing.assert_allclose(audio.to_db(np.array([1.0]), ref=4.0, floor_db=-10), [-20 * np.log10(2)])


def test_mel_filters_peak_one_without_norm():
    filters = audio.mel_filters(16000, 512, 64, fmin=125.0, fmax=7500.0, htk=True)
    assert filters.shape == (64, 257)
    assert filters.max() <= 1.0 and filters.max(axis=1).min() > 0.5  # triangles of peak 1, none empty
    assert filters[:, : int(125 / (16000 / 512))].max() == 0  # nothing below fmin


def test_resample_keeps_the_frequency():
    y = audio.resample(sine(1000, 44100, 1.0), 44100, 22050)
    assert len(y) == 22050
    assert np.argmax(np.abs(np.fft.rfft(y))) == 1000  # 1 Hz bins over one second
    same = sine(1000, 16000, 0.1).astype(np.float32)
    np.testing.assert_array_equal(audio.resample(same, 16000, 16000), same)


def test_onset_detect_finds_clicks_in_every_unit():
    sr, hop = 22050, 512
    y = np.zeros(sr)
    for t in (0.25, 0.6):
        i = round(t * sr)
        y[i:i + 200] = np.random.default_rng(0).standard_normal(200) * np.exp(-np.arange(200) / 40)
    times = audio.onset_detect(sr, y=y, hop=hop)
    np.testing.assert_allclose(times, [0.25, 0.6], atol=hop / sr)
    samples = audio.onset_detect(sr, y=y, hop=hop, units="samples")
    np.testing.assert_allclose(samples / sr, times)
    envelope = audio.onset_strength(y, sr, hop)
    np.testing.assert_array_equal(audio.onset_detect(sr, envelope=envelope, hop=hop, units="frames") * hop, samples)


def test_pyin_tracks_a_sine():
    sr = 16000
    f0, voiced, times = audio.pyin(sine(220, sr, 1.0), sr, fmin=110, fmax=440, frame_length=1024, hop=256)
    assert voiced[2:-2].all() and len(times) == len(f0)
    assert np.nanmax(np.abs(1200 * np.log2(f0[voiced] / 220))) <= 10 + 1e-9  # one step of its 10-cent grid
    np.testing.assert_allclose(times[:3], [0, 256 / sr, 512 / sr])


@pytest.mark.parametrize("subtype, atol", [("FLOAT", 0), ("PCM_16", 1 / 32768)])
def test_write_wav_round_trip(tmp_path, subtype, atol):
    x = np.stack([sine(440, 8000, 0.1), -sine(220, 8000, 0.1, 0.25)], axis=1).astype(np.float32)
    path = tmp_path / "a.tmp"  # the format does not depend on the suffix
    audio.write_wav(path, x, 8000, subtype=subtype)
    back, sr = sf.read(path, dtype="float32")
    assert sr == 8000 and sf.info(path).subtype == subtype and sf.info(path).format == "WAV"
    np.testing.assert_allclose(back, x, atol=atol)


def test_importing_audio_does_not_load_librosa_submodules():
    code = "import sys, foleylib.core.audio; print('librosa.onset' in sys.modules, 'numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
