import numpy as np
import pytest

from foleylib.metrics import boundary_jumps, detect_onsets, match_onsets, onset_scores, window_mask


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
