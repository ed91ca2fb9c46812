"""Synthetic scenes: the truth in events.json is checked against the sound and the pictures themselves."""
import json
from itertools import pairwise

import librosa
import numpy as np
import pytest
import soundfile as sf

from foleylib.core.config import AVSpec
from foleylib.data import media
from foleylib.data.synth import _WATER_TILT, KINDS, PEAK, WATER_SCENES, make_scene, render_scene

SMALL = dict(width=320, height=180)


def frame_rms(scene) -> np.ndarray:
    """sqrt(mean(L^2 + R^2)) over the samples each frame owns (the definition of events loudness)."""
    spec = AVSpec(sr=scene.sr, fps=scene.fps)
    starts = [spec.frame_start(k) for k in range(scene.n_frames + 1)]
    return np.array([np.sqrt((scene.audio[a:b] ** 2).sum(axis=1).mean()) for a, b in pairwise(starts)])


def frame_slice(scene, ks: np.ndarray) -> np.ndarray:
    """Sample indices owned by frames `ks`."""
    spec = AVSpec(sr=scene.sr, fps=scene.fps)
    return np.concatenate([np.arange(spec.frame_start(k), spec.frame_start(k + 1)) for k in ks])


def hands_gap(img: np.ndarray) -> int:
    """Background pixels between the two hands on the middle row (hands are the only red-bright pixels)."""
    row = img[img.shape[0] // 2, :, 0] > 150
    cols = np.flatnonzero(row)
    return int((~row[cols.min():cols.max() + 1]).sum())


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_per_seed(kind):
    a, b, c = (make_scene(kind, 4, seed, sr=16000, **SMALL) for seed in (7, 7, 8))
    np.testing.assert_array_equal(a.audio, b.audio)
    assert a.events == b.events
    for k in range(3):
        np.testing.assert_array_equal(a.draw(k), b.draw(k))
    assert not np.array_equal(a.audio, c.audio) and a.events != c.events
    json.dumps(a.events)  # JSON-able as is


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_and_levels(kind):
    scene = make_scene(kind, 3.3, 0, fps=30, sr=16000, width=96, height=64)  # 16000 / 30 is not whole
    frames = list(scene.frames())
    assert len(frames) == scene.n_frames == 99
    assert frames[0].shape == (64, 96, 3) and frames[0].dtype == np.uint8
    assert scene.audio.dtype == np.float32 and scene.audio.shape == (AVSpec(sr=16000, fps=30).frame_start(99), 2)
    assert np.abs(scene.audio).max() == pytest.approx(PEAK, rel=1e-6)
    assert scene.events["n_samples"] == len(scene.audio) and scene.events["n_frames"] == 99


def test_clap_onsets_are_heard_on_the_contact_frame():
    scene = make_scene("clap", 8, 1, **SMALL)
    onsets = scene.events["onsets"]
    truth = np.array([o["time"] for o in onsets])
    assert len(onsets) >= 4 and np.diff(truth).min() >= 0.4 - 1 / scene.fps
    spec = AVSpec(sr=scene.sr, fps=scene.fps)
    assert all(o["sample"] == spec.frame_start(o["frame"]) and o["time"] == o["frame"] / scene.fps for o in onsets)
    detected = librosa.onset.onset_detect(y=scene.audio.mean(axis=1), sr=scene.sr, units="time", backtrack=True)
    frame = 1 / scene.fps
    assert len(detected) == len(truth)
    assert all(np.abs(detected - t).min() <= frame for t in truth)
    for o in onsets:
        burst = np.abs(scene.audio[o["sample"]:o["sample"] + round(0.08 * scene.sr)])
        assert not scene.audio[o["sample"] - 200:o["sample"]].any()  # silence right up to the contact
        assert burst[: scene.sr // 1000].max() > 0.1 * burst.max()  # and sound from its first millisecond
        left, right = (scene.audio[o["sample"]:o["sample"] + round(0.08 * scene.sr)] ** 2).sum(axis=0)
        assert np.sign(right - left) == np.sign(o["pan"])
        heard_pan = 4 / np.pi * np.arctan2(np.sqrt(right), np.sqrt(left)) - 1  # inverse of constant-power pan
        assert heard_pan == pytest.approx(o["pan"], abs=1e-3)
        assert o["pan"] == pytest.approx(2 * o["x"] / SMALL["width"] - 1, abs=1e-3)


def test_clap_hands_touch_only_on_contact_frames():
    scene = make_scene("clap", 6, 2, sr=8000, **SMALL)
    contact = {o["frame"] for o in scene.events["onsets"]}
    gaps = np.array([hands_gap(scene.draw(k)) for k in range(scene.n_frames)])
    assert contact and all(gaps[k] == 0 for k in contact)
    assert all(gaps[k] > 0 for k in range(scene.n_frames) if k not in contact)
    touch_x = [np.flatnonzero(scene.draw(o["frame"])[SMALL["height"] // 2, :, 0] > 150) for o in scene.events["onsets"]]
    for o, cols in zip(scene.events["onsets"], touch_x, strict=True):  # the hands meet where the truth says
        assert abs((cols.min() + cols.max()) / 2 - o["x"]) <= 1.5


def test_car_pitch_and_loudness_follow_truth():
    scene = make_scene("car", 4, 3, sr=16000, **SMALL)
    per_frame = scene.events["per_frame"]
    f0 = np.array(per_frame["f0"])
    assert len(f0) == scene.n_frames and f0.max() / f0.min() > 1.3  # the speed really changes
    hop = scene.sr // 25  # one pyin frame per video frame, centred on the frame start
    est, voiced, _ = librosa.pyin(scene.audio.mean(axis=1), fmin=50, fmax=250, sr=scene.sr, frame_length=1024,
                                  hop_length=hop)
    k = np.flatnonzero(voiced[:len(f0)])
    assert len(k) > 0.9 * len(f0)
    error = np.abs(est[k] / f0[k] - 1)
    assert np.median(error) < 0.01 and np.percentile(error, 95) < 0.03
    rms, loud = frame_rms(scene), np.array(per_frame["loudness"])
    assert np.corrcoef(rms, loud)[0, 1] > 0.95 and np.median(rms / loud) == pytest.approx(1, abs=0.05)
    left, right = (scene.audio.reshape(scene.n_frames, -1, 2) ** 2).sum(axis=1).T
    x = np.array(per_frame["x"])
    assert np.corrcoef(np.log(right / left), x)[0, 1] > 0.95  # heard where it is seen


def test_car_scenery_moves_with_the_camera():
    scene = make_scene("car", 2, 0, sr=8000, **SMALL)
    a, b = scene.draw(0), scene.draw(1)
    road = slice(int(0.9 * SMALL["height"]), None)  # lane dashes only: below the car
    assert np.abs(a[road].astype(int) - b[road]).sum() > 0


def test_water_loudness_and_looks_follow_the_scene():
    scene = make_scene("water", 12, 0, sr=16000, width=160, height=90)
    labels = np.array(scene.events["per_frame"]["scene"])
    loud = np.array(scene.events["per_frame"]["loudness"])
    assert set(labels) == set(WATER_SCENES)  # three segments of at most 4.5 s cycle through all scenes
    segments = scene.events["segments"]
    assert segments[0]["start"] == 0 and segments[-1]["end"] == scene.events["seconds"]
    assert all(s["end"] == t["start"] and s["scene"] != t["scene"] for s, t in pairwise(segments))
    for s in segments:
        ks = np.arange(round(s["start"] * scene.fps), round(s["end"] * scene.fps))
        assert set(labels[ks]) == {s["scene"]}
    rms = frame_rms(scene)
    assert np.corrcoef(rms, loud)[0, 1] > 0.8 and np.median(rms / loud) == pytest.approx(1, abs=0.05)
    waves = np.flatnonzero(labels == "waves")
    sea = [(scene.draw(k).sum(axis=2) < 300).mean() for k in waves]  # share of dark sea pixels
    assert np.corrcoef(sea, loud[waves])[0, 1] > 0.9  # louder when the water is visibly higher
    colour, centroid = {}, {}
    for label in WATER_SCENES:
        ks = np.flatnonzero(labels == label)
        colour[label] = np.mean([scene.draw(k).mean(axis=(0, 1)) for k in ks[:3]], axis=0)
        centroid[label] = librosa.feature.spectral_centroid(y=scene.audio[frame_slice(scene, ks), 0], sr=16000).mean()
    by_tilt = [WATER_SCENES[i] for i in np.argsort(_WATER_TILT)]
    assert [centroid[s] for s in by_tilt] == sorted(centroid.values())  # brighter sound where the tilt is higher
    assert min(np.abs(colour[a] - colour[b]).max() for a in WATER_SCENES for b in WATER_SCENES if a < b) > 20


def test_render_scene_writes_video_wav_and_truth(tmp_path):
    paths = render_scene("clap", tmp_path / "out", seconds=3, seed=1, width=160, height=96)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clap.events.json", "clap.mp4", "clap.wav"]
    scene = make_scene("clap", 3, 1, width=160, height=96)
    info = media.probe(paths["video"])
    assert (info.width, info.height, info.fps, info.video_codec) == (160, 96, 25, "h264")
    assert (info.has_audio, info.audio_sr, info.audio_channels) == (True, 44100, 2)
    assert info.duration == pytest.approx(3.0, abs=0.05)
    assert len(media.read_frames(paths["video"], size=None)) == scene.n_frames
    wav, sr = sf.read(paths["wav"], dtype="float32")
    assert sf.info(paths["wav"]).subtype == "FLOAT" and sr == 44100
    np.testing.assert_array_equal(wav, scene.audio)
    assert json.loads(paths["events"].read_text()) == scene.events
    heard = media.read_audio(paths["video"], sr=44100)[: len(wav)]  # AAC is lossy, but the same sound in time
    assert np.corrcoef(heard[:, 0], wav[: len(heard), 0])[0, 1] > 0.9


@pytest.mark.parametrize("call", [lambda: make_scene("rain"), lambda: make_scene("clap", seconds=0),
                                  lambda: make_scene("car", seconds=-1), lambda: make_scene("water", float("nan"))])
def test_bad_arguments(call):
    with pytest.raises(ValueError, match="unknown scene kind 'rain'|seconds must be positive"):
        call()


def test_bad_kind_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="choose one of clap, car, water"):
        render_scene("rain", tmp_path)
    assert not any(tmp_path.iterdir())


def test_count_renders_varied_scenes_for_multi_video_training(tmp_path):
    from foleylib.data.media import read_frames
    from foleylib.interfaces.cli import main

    assert main(["synth", "clap", "--count", "3", "--seconds", "1", "--seed", "5", "--out", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.glob("*.mp4"))
    assert names == ["clap-0.mp4", "clap-1.mp4", "clap-2.mp4"]
    events = [json.loads((tmp_path / f"clap-{k}.events.json").read_text()) for k in range(3)]
    assert len({tuple(e["tint"]) for e in events}) == 3 and all(0.6 <= g <= 1.4 for e in events for g in e["tint"])
    # scene k is the untinted scene of seed 5 + k with its colours scaled: same timing, other colours
    for k, e in enumerate(events):
        plain = make_scene("clap", 1, seed=5 + k, width=640, height=360)
        assert e["onsets"] == plain.events["onsets"]
        expected = np.clip(plain.draw(0) * np.array(e["tint"]), 0, 255)
        first = read_frames(tmp_path / f"clap-{k}.mp4", size=None)[0]
        assert np.abs(first.astype(float) - expected).mean() < 4  # H.264 rounding only
    firsts = [read_frames(tmp_path / f"clap-{k}.mp4", size=8)[0].mean(axis=(0, 1)) for k in range(3)]
    assert np.abs(firsts[0] - firsts[1]).max() > 5 and np.abs(firsts[1] - firsts[2]).max() > 5
