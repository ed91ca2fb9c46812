import math

import numpy as np
import pytest

from foleylib.evaluation.metrics import (
    IMPACT_SR,
    METRIC_KEYS,
    audio_metrics,
    bootstrap_mean,
    boundary_jumps,
    condfoleygen_audio,
    condfoleygen_nms,
    condfoleygen_pair,
    condfoleygen_scores,
    dc_offset,
    detect_onsets,
    envelope_correlation,
    frame_bounds,
    impact_onsets,
    match_onsets,
    onset_accuracy,
    onset_ap,
    onset_nms,
    onset_scores,
    pan_error,
    rms_db,
    stereo_pan,
    sync_scores,
    window_mask,
)

SR, FPS = 16000, 25
PYIN_STEP = 10 + 1e-9  # cents: pyin's pitch grid; an estimate can sit one step off


def bursts(times, seconds: float = 3.0, sr: int = SR, gains=None, amps=None, seed: int = 0) -> np.ndarray:
    """[N, 2] decaying noise bursts (30 ms, 800 samples at 16 kHz) starting at `times` s, each with its (L, R)
    channel gains (default equal) and peak amplitude (default 0.5)."""
    audio = np.zeros((round(seconds * sr), 2))
    rng = np.random.default_rng(seed)
    length = round(0.05 * sr)
    for i, t in enumerate(times):
        burst = rng.standard_normal(length) * np.exp(-np.arange(length) / (0.006 * sr))
        burst *= (0.5 if amps is None else amps[i]) / np.abs(burst).max()
        gain = (1.0, 1.0) if gains is None else gains[i]
        start = round(t * sr)
        audio[start:start + length] += burst[:, None] * np.asarray(gain)[None, :]
    return audio.astype(np.float32)


def test_onset_scores_hand_computed():
    truth = np.array([1.0, 2.0, 3.0, 4.0])
    detected = np.array([1.01, 2.05, 2.99, 3.02, 7.0])  # 1.01 and 2.99 hit; 3.02 is a second claim on 3.0
    assert match_onsets(detected, truth, 0.04) == 2
    s = onset_scores(detected, truth, 0.04)
    assert s["precision"] == pytest.approx(2 / 5) and s["recall"] == pytest.approx(2 / 4)
    assert s["f1"] == pytest.approx(2 * 0.4 * 0.5 / 0.9)
    assert onset_scores(np.array([]), truth)["f1"] == 0.0
    assert match_onsets(np.array([3.02, 2.99]), np.array([3.0]), 0.04) == 1


def test_detect_onsets_finds_clicks():
    sr = 16000
    audio = np.zeros((sr * 2, 2), np.float32)
    rng = np.random.default_rng(0)
    for t in (0.5, 1.2, 1.7):
        i = int(t * sr)
        audio[i:i + 400] = rng.standard_normal((400, 2)) * np.exp(-np.arange(400) / 80)[:, None] * 0.5
    found = detect_onsets(audio, sr)
    assert onset_scores(found, np.array([0.5, 1.2, 1.7]), 0.04)["f1"] == 1.0
    assert len(detect_onsets(np.zeros((sr, 2)), sr)) == 0


def test_window_mask():
    mask = window_mask(100, 10, np.array([3.0]), before=0.2, after=0.5, offset=1.0)  # t = 2 s after sample 0
    assert np.flatnonzero(mask).tolist() == list(range(18, 25))
    # events far before or after the range (e.g. in the training part of a clip) mark nothing
    assert not window_mask(100, 10, np.array([-50.0, 0.5, 99.0]), before=0.2, after=0.5, offset=1.0).any()


def test_boundary_jumps_against_a_hand_made_staircase():
    ramp = np.tile(np.arange(10) * 0.01, 3)  # three segments of a slow ramp: inside steps 0.01, jumps -0.09
    audio = np.stack([ramp, 2 * ramp], axis=1)  # channel mean: inside 0.015, boundary 0.135
    jumps = boundary_jumps(audio, [10, 20, 40, 0])  # 40 and 0 are outside the audio: ignored
    assert jumps["count"] == 2
    assert jumps["boundary"] == pytest.approx(0.135) and jumps["inside"] == pytest.approx(0.015)
    assert jumps["ratio"] == pytest.approx(9.0)
    assert boundary_jumps(audio, [])["ratio"] is None


def test_frame_bounds_follow_the_ceil_rule():
    # 100 Hz audio, 30 fps: 10/3 samples per frame, frame k starts at ceil(10 k / 3)
    assert frame_bounds(20, 100, 30).tolist() == [0, 4, 7, 10, 14, 17, 20]
    assert frame_bounds(19, 100, 30).tolist() == [0, 4, 7, 10, 14, 17]  # the sixth frame is not whole
    assert frame_bounds(2, 100, 30).tolist() == [0]


def test_envelope_correlation_by_hand():
    sr, fps = 100, 10  # 10 samples per frame; a constant c has RMS |c|
    ref = np.repeat([0.1, 0.2, 0.3, 0.4], 10)
    # deviations (-1.5, -0.5, 0.5, 1.5) against (-1.5, 0.5, -0.5, 1.5): sum of products 4, sums of squares 5
    assert envelope_correlation(np.repeat([0.1, 0.3, 0.2, 0.4], 10), ref, sr, fps) == pytest.approx(0.8)
    assert envelope_correlation(-3 * ref, ref, sr, fps) == pytest.approx(1.0)  # RMS ignores sign and scale
    assert envelope_correlation(ref[::-1], ref, sr, fps) == pytest.approx(-1.0)
    # frames follow the ceil rule: at 30 fps (10/3 samples per frame) sample 3 is the last of frame 0
    click = np.zeros(20)
    click[3] = 1.0
    ramp = np.repeat([1.0, 0.0, 0.0, 0.0, 0.0, 0.0], [4, 3, 3, 4, 3, 3])
    assert envelope_correlation(click, ramp, 100, 30) == pytest.approx(1.0)
    assert envelope_correlation(np.zeros(40), ref, sr, fps) is None  # silence: a constant envelope
    assert envelope_correlation(ref[:15], ref[:15], sr, fps) is None  # one whole frame only


def test_dc_offset_and_rms_db_by_hand():
    t = np.arange(1600) / 16000
    tone = 0.2 * np.sin(2 * np.pi * 100 * t)  # ten whole cycles: mean 0
    audio = np.stack([tone + 0.1, tone - 0.3], axis=1)
    offset = dc_offset(audio)
    np.testing.assert_allclose(offset["per_channel"], [0.1, -0.3], atol=1e-12)
    assert offset["overall"] == pytest.approx(-0.1)
    assert rms_db(np.sin(2 * np.pi * 100 * t)) == pytest.approx(-10 * math.log10(2))  # a full-scale sine: -3 dB
    assert rms_db(np.full((10, 2), 0.1)) == pytest.approx(-20.0)
    assert rms_db(np.zeros((10, 2))) == -80.0


def test_stereo_pan_inverts_constant_power_panning():
    m = np.random.default_rng(0).standard_normal(1000)
    theta = (0.5 + 1) * np.pi / 4  # pan 0.5: gains cos(3 pi / 8) = 0.383 (L), sin(3 pi / 8) = 0.924 (R)
    assert stereo_pan(np.stack([m * np.cos(theta), m * np.sin(theta)], 1)) == pytest.approx(0.5)
    # gains 0.6 / 0.8: energy balance (0.64 - 0.36) / 1 = 0.28
    assert stereo_pan(np.stack([0.6 * m, 0.8 * m], 1)) == pytest.approx(2 / np.pi * math.asin(0.28))
    assert stereo_pan(np.stack([m, m], 1)) == pytest.approx(0.0)
    assert stereo_pan(np.stack([m, 0 * m], 1)) == -1.0
    assert stereo_pan(m[:, None]) is None and stereo_pan(np.zeros((10, 2))) is None


def test_pan_error_per_event_and_whole():
    right, centre = (0.6, 0.8), (1.0, 1.0)  # pans 2/pi asin(0.28) and 0
    p = 2 / np.pi * math.asin(0.28)
    gen = bursts([0.5, 1.5], gains=[right, centre])
    ref = bursts([0.5, 1.5], gains=[centre, centre])
    onsets = np.array([0.5, 1.5, 2.5])  # nothing sounds at 2.5 s: that event is left out
    assert pan_error(gen, ref, SR, onsets=onsets, pan=np.array([0.0, 0.0, 0.0])) == pytest.approx(p / 2)
    assert pan_error(gen, ref, SR, onsets=onsets, pan=np.array([p, -0.5, 1.0])) == pytest.approx(0.25)
    assert pan_error(gen, ref, SR, onsets=onsets) == pytest.approx(p / 2)  # the truth from ref's windows
    assert pan_error(gen, gen, SR) == pytest.approx(0.0)
    assert pan_error(bursts([0.5], gains=[right]), ref, SR) == pytest.approx(p)  # whole clip: one sound, pan p
    assert pan_error(gen[:, :1], ref, SR, onsets=onsets) is None  # mono
    assert pan_error(np.zeros_like(gen), ref, SR, onsets=onsets) is None  # no sound at any event
    with pytest.raises(ValueError, match="pan has 2 values for 3 onsets"):
        pan_error(gen, ref, SR, onsets=onsets, pan=np.zeros(2))


def test_impact_onsets_and_their_confidence():
    sr = 22050  # CondFoleyGen's rate: no resampling
    audio = bursts([0.3, 1.2, 2.0], sr=sr, amps=[1.0, 0.5, 0.25])
    times, confidence = impact_onsets(audio, sr)
    # within two hops of 512: the flux of frame t compares t with t - 1, so it peaks up to a frame late
    np.testing.assert_allclose(times, [0.3, 1.2, 2.0], atol=2 * 512 / sr)
    # peak |x| within +-50 ms, normalised by the clip's peak (its minimum |x| is 0)
    np.testing.assert_allclose(confidence, [1.0, 0.5, 0.25])
    assert [len(a) for a in impact_onsets(np.zeros((sr, 2)), sr)] == [0, 0]


def test_onset_nms_by_hand():
    times, confidence = onset_nms([0.1, 0.13, 0.5, 0.52, 0.56], [0.2, 0.9, 0.7, 0.3, 0.6], window=0.05)
    # 0.13 (0.9) drops 0.1; 0.5 (0.7) drops 0.52; 0.56 is 0.06 from 0.5 and stays
    np.testing.assert_allclose(times, [0.13, 0.5, 0.56])
    np.testing.assert_allclose(confidence, [0.9, 0.7, 0.6])


def test_onset_accuracy_counts_clips_with_the_right_number():
    assert onset_accuracy([3, 4, 5], [3, 2, 5]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        onset_accuracy([1], [1, 2])


def test_onset_ap_by_hand():
    truth = np.array([1.0, 2.0, 3.0])
    times, confidence = np.array([1.05, 2.5, 3.02]), np.array([0.9, 0.8, 0.4])
    # labels/scores: hit 0.9, miss 0 (nothing within 0.1 s of 2.0), hit 0.4, false alarm 0.8. Ranked:
    # 0.9 (P 1, R 1/3), 0.8 (P 1/2), 0.4 (P 2/3, R 2/3), 0 (P 3/4, R 1): AP = 1/3 (1 + 2/3 + 3/4)
    assert onset_ap(times, confidence, truth) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    # a wider window lets 2.5 match 2.0 (the most confident candidate wins): no false alarm left
    assert onset_ap(times, confidence, truth, tolerance=0.6) == pytest.approx(1.0)
    assert onset_ap(np.zeros(0), np.zeros(0), truth) == 0.0
    assert onset_ap(times, confidence, np.zeros(0)) is None


def test_condfoleygen_nms_keeps_the_scripts_skip():
    # 2024 (most confident) removes 1000, which is within 50 ms (1102.5 samples); walking the list it removes
    # from, the script then skips 3048, which escapes and is kept in its own turn. Proper NMS keeps 2024 only.
    kept = condfoleygen_nms(np.array([1000, 2024, 3048]), [0.5, 0.9, 0.4])
    np.testing.assert_array_equal(kept, [2024, 3048])
    np.testing.assert_allclose(onset_nms(np.array([1000, 2024, 3048]) / IMPACT_SR, [0.5, 0.9, 0.4])[0],
                               [2024 / IMPACT_SR])
    np.testing.assert_array_equal(condfoleygen_nms(np.array([0, 5000]), [0.1, 0.2]), [0, 5000])
    assert len(condfoleygen_nms(np.zeros(0, int), [])) == 0


def test_condfoleygen_pair_by_hand():
    ref = bursts([0.3, 1.2], seconds=2.0, sr=IMPACT_SR)[:, 0]
    assert condfoleygen_pair(ref, ref) == {"count_match": 1.0, "ap": 1.0}
    # nothing generated: every target onset is a miss (label 1, score 0), so sklearn's AP is 1.0
    assert condfoleygen_pair(np.zeros_like(ref), ref) == {"count_match": 0.0, "ap": 1.0}
    assert condfoleygen_pair(ref, np.zeros_like(ref)) == {"count_match": 0.0, "ap": None}
    # a false alarm at 1.6 s louder than both hits (confidence = peak |x| / clip peak: 0.5, 0.25 and 1.0).
    # Ranked: 1.0 (false), 0.5 (hit), 0.25 (hit): AP = 1/2 * 1/2 + 1/2 * 2/3
    gen = bursts([0.3, 1.2, 1.6], seconds=2.0, sr=IMPACT_SR, amps=[0.5, 0.25, 1.0])[:, 0]
    assert condfoleygen_pair(gen, ref) == pytest.approx({"count_match": 0.0, "ap": 1 / 4 + 1 / 3})
    # no first-0.1 s rule: a loud burst at 0.05 s (detected at about 0.07 s) is a false alarm that outranks the
    # hit at 1.0 s (AP 1/2); the strict default drops it (AP 1, as many onsets as the truth)
    ref = bursts([1.0], seconds=2.0, sr=IMPACT_SR)
    gen = bursts([0.05, 1.0], seconds=2.0, sr=IMPACT_SR, amps=[1.0, 0.5])
    assert condfoleygen_pair(gen[:, 0], ref[:, 0]) == pytest.approx({"count_match": 0.0, "ap": 0.5})
    strict = audio_metrics(gen, ref, IMPACT_SR, FPS)
    assert strict["onset_acc"] == 1.0 and strict["onset_ap"] == 1.0


def test_condfoleygen_audio_is_moviepy_1_reading_an_ffmpeg_decode():
    sr = 16000
    audio = np.zeros((2 * sr, 2), np.float32)
    audio[:, 0] = 0.5  # constant left channel, silent right one
    y = condfoleygen_audio(audio, sr)
    assert y.shape == (2 * IMPACT_SR,) and y.dtype == np.float64
    # the channel mean of 16-bit samples: 0.25 exactly away from the resampler's edges
    np.testing.assert_array_equal(y[100:-100], 0.25)
    np.testing.assert_array_equal(np.round(y * 65536), y * 65536)  # a mean of two 16-bit values


def test_condfoleygen_scores_window_the_audio_in_2_s_clips():
    ref = bursts([0.5, 1.5, 2.5, 3.5, 4.5], seconds=5.0)
    # first 2 s: both onsets right (count match, AP 1). Next 2 s: one burst at 3.0, 0.5 s from both targets:
    # two misses (score 0) and a false alarm (score 1): AP 2/3. The last second is not a whole clip: left out.
    gen = bursts([0.5, 1.5, 3.0, 4.5], seconds=5.0)
    scores = condfoleygen_scores(gen, ref, SR)
    assert scores == pytest.approx({"onset_acc": 0.5, "onset_ap": (1 + 2 / 3) / 2})
    m = audio_metrics(gen, ref, SR, FPS, onset_metric="condfoleygen")
    assert (m["onset_acc"], m["onset_ap"]) == (scores["onset_acc"], scores["onset_ap"])
    silent = audio_metrics(np.zeros_like(ref), ref, SR, FPS, onset_metric="condfoleygen")
    assert silent["onset_acc"] == 0.0 and silent["onset_ap"] == 1.0  # strict: AP 0.0
    assert condfoleygen_scores(gen[:SR], ref[:SR], SR)["onset_acc"] == 1.0  # shorter than 2 s: one window
    with pytest.raises(ValueError, match="onset_metric"):
        audio_metrics(gen, ref, SR, FPS, onset_metric="loose")


def test_bootstrap_mean():
    assert bootstrap_mean([0.3] * 7) == pytest.approx({"mean": 0.3, "lo": 0.3, "hi": 0.3, "n": 7})
    values = [0.1, 0.4, None, 0.35, 0.9, 0.2]  # None (undefined for that clip) is left out
    b = bootstrap_mean(values, resamples=500, seed=3)
    assert b["n"] == 5 and b["mean"] == pytest.approx(0.39)
    assert 0.1 <= b["lo"] < b["mean"] < b["hi"] <= 0.9
    assert bootstrap_mean(values, resamples=500, seed=3) == b != bootstrap_mean(values, resamples=500, seed=4)
    assert bootstrap_mean(values, confidence=0.5)["hi"] - bootstrap_mean(values, confidence=0.5)["lo"] < \
        bootstrap_mean(values)["hi"] - bootstrap_mean(values)["lo"]
    # two values: the resampled means are a, (a + b) / 2 or b with chances 1/4, 1/2, 1/4
    two = bootstrap_mean([0.0, 1.0], resamples=4000)
    assert (two["lo"], two["hi"]) == (0.0, 1.0)
    assert bootstrap_mean([None, None]) is None
    with pytest.raises(ValueError):
        bootstrap_mean([1.0], confidence=1.0)


def test_audio_metrics_of_the_truth_itself():
    onsets = np.array([0.4, 1.1, 1.9, 2.5])
    pans = np.array([-0.5, 0.0, 0.5, 1.0])
    theta = (pans + 1) * np.pi / 4  # constant-power gains, as synth renders
    ref = bursts(onsets, gains=list(zip(np.cos(theta), np.sin(theta), strict=True)))
    m = audio_metrics(ref, ref, SR, FPS, onsets=onsets, pan=pans)
    assert tuple(m) == METRIC_KEYS and len(METRIC_KEYS) == 17
    for key in ("onset_precision", "onset_recall", "onset_f1", "onset_acc", "onset_ap", "envelope_corr"):
        assert m[key] == pytest.approx(1.0), key
    for key in ("logmel_db", "mrstft", "low_band_db", "high_band_db", "pan_error"):
        assert m[key] == pytest.approx(0.0, abs=1e-9), key
    assert m["f0_cents"] is None
    assert m["dc_offset"] == pytest.approx(float(ref.mean()))
    assert m["rms_db"] == m["ref_rms_db"] == pytest.approx(rms_db(ref))
    assert m["frame_artifact_db"] == m["frame_artifact_ref_db"] is not None


def test_sync_scores_by_hand_and_audio_metrics_agree():
    truth = np.array([0.05, 0.4, 1.1, 1.9, 2.5])
    ref = bursts(truth)
    # at 0.05 s: inside the first 0.1 s, dropped (the edge rule); 0.42: 20 ms late, a hit; 1.1: a hit;
    # 2.2: a false alarm; 2.58: 80 ms late, a miss within one frame (40 ms)
    gen = bursts([0.05, 0.42, 1.1, 2.2, 2.58])
    s = sync_scores(gen, ref, SR, FPS, onsets=truth)
    assert (s["onsets_detected"], s["onsets_true"]) == (4, 5)  # the true 0.05 s counts, a miss
    assert (s["onset_precision"], s["onset_recall"]) == (2 / 4, 2 / 5)
    assert s["onset_f1"] == pytest.approx(2 * 0.5 * 0.4 / 0.9)
    assert s["envelope_corr"] == envelope_correlation(gen, ref, SR, FPS)
    outside = sync_scores(gen, ref, SR, FPS, onsets=np.append(truth, [3.5, -0.2]))  # past the 3 s clip: dropped
    assert outside == s
    m = audio_metrics(gen, ref, SR, FPS, onsets=truth)
    assert {k: m[k] for k in ("onset_precision", "onset_recall", "onset_f1", "envelope_corr")} == \
        {k: s[k] for k in ("onset_precision", "onset_recall", "onset_f1", "envelope_corr")}
    wide = sync_scores(gen, ref, SR, FPS, onsets=truth, tolerance=0.15)  # 2.58 now hits 2.5
    assert (wide["onset_precision"], wide["onset_recall"]) == (3 / 4, 3 / 5)
    at_10_fps = sync_scores(gen, ref, SR, 10, onsets=truth)  # the default tolerance is one frame: 0.1 s
    assert (at_10_fps["onset_precision"], at_10_fps["onset_recall"]) == (3 / 4, 3 / 5)
    detected_truth = sync_scores(gen, ref, SR, FPS)  # the truth detected in ref, its first 0.1 s dropped too
    assert (detected_truth["onsets_true"], detected_truth["onset_precision"], detected_truth["onset_recall"]) == \
        (4, 2 / 4, 2 / 4)
    assert audio_metrics(gen, ref, SR, FPS)["onset_f1"] == detected_truth["onset_f1"] == 0.5
    silent = sync_scores(np.zeros_like(ref), ref, SR, FPS, onsets=truth)
    assert (silent["onset_precision"], silent["onset_recall"], silent["onset_f1"]) == (None, 0.0, 0.0)
    assert sync_scores(gen, ref, SR, FPS, onsets=[])["onset_f1"] is None


def test_audio_metrics_timing_silence_and_mono():
    onsets = np.array([0.4, 1.1, 1.9, 2.5, 7.0, -1.0])  # the last two lie outside the 3 s clip: dropped
    ref = bursts(onsets[:4])
    late = bursts(onsets[:4] + 0.02)  # 20 ms late: within one frame (40 ms)
    assert audio_metrics(late, ref, SR, FPS, onsets=onsets)["onset_f1"] == 1.0
    later = bursts(onsets[:4] + 0.1)  # 100 ms late: all missed, unless the tolerance is widened
    assert audio_metrics(later, ref, SR, FPS, onsets=onsets)["onset_f1"] == 0.0
    assert audio_metrics(later, ref, SR, FPS, tolerance=0.15)["onset_f1"] == 1.0  # truth detected in ref
    silent = audio_metrics(np.zeros_like(ref), ref, SR, FPS, onsets=onsets)
    assert silent["onset_precision"] is None and silent["onset_recall"] == 0.0 and silent["onset_f1"] == 0.0
    assert silent["onset_acc"] == 0.0 and silent["onset_ap"] == 0.0
    assert silent["envelope_corr"] is None and silent["rms_db"] == -80.0 and silent["pan_error"] is None
    mono = audio_metrics(ref[:, :1], ref, SR, FPS)
    assert mono["pan_error"] is None and mono["onset_f1"] == 1.0
    nothing = audio_metrics(ref, np.zeros_like(ref), SR, FPS)  # no onsets in the truth
    assert nothing["onset_recall"] is None and nothing["onset_f1"] is None and nothing["onset_ap"] is None


def test_audio_metrics_f0():
    t = np.arange(2 * SR) / SR
    tone = 0.5 * np.sin(2 * np.pi * 150 * t)
    gen = np.stack([tone, tone], axis=1)
    f0 = np.full(50, 150.0)  # one value per video frame
    assert audio_metrics(gen, gen, SR, FPS, f0=f0)["f0_cents"] == pytest.approx(0.0, abs=PYIN_STEP)
    # 150 Hz up to 0.6 s, then an octave up. A truth of 25 values of 150 Hz covers 0.96 s at 25 per second (mostly
    # right: median 0) and 1.92 s at 12.5 per second (mostly an octave off: median 1200 cents)
    jump = 0.5 * np.sin(2 * np.pi * np.cumsum(np.where(t < 0.6, 150.0, 300.0)) / SR)
    gen = np.stack([jump, jump], axis=1)
    assert audio_metrics(gen, gen, SR, FPS, f0=f0[:25])["f0_cents"] == pytest.approx(0.0, abs=PYIN_STEP)
    assert audio_metrics(gen, gen, SR, FPS, f0=f0[:25], f0_fps=12.5)["f0_cents"] == pytest.approx(1200, abs=PYIN_STEP)
