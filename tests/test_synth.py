"""Synthetic truth is checked against the sound and the pictures themselves."""
import json

import librosa
import numpy as np
import pytest
import soundfile as sf

from foleylib import media
from foleylib.synth import make_scene, render_scene

SMALL = dict(width=320, height=180)


def test_deterministic_per_seed():
    a, b, c = (make_scene("clap", 3, seed, **SMALL) for seed in (4, 4, 5))
    np.testing.assert_array_equal(a.audio, b.audio)
    assert a.events == b.events and a.events != c.events
    np.testing.assert_array_equal(a.draw(10), b.draw(10))
    assert not np.array_equal(a.audio, c.audio)


def test_whole_frames_of_audio():
    scene = make_scene("car", 2.0, 0, fps=30, sr=16000, **SMALL)
    assert scene.n_frames == 60 and len(scene.audio) == 32000 and scene.audio.shape[1] == 2
    assert 0.3 < np.abs(scene.audio).max() <= 1.0


def test_clap_onsets_heard_on_the_contact_frame():
    scene = make_scene("clap", 8, 1, **SMALL)
    onsets = scene.events["onsets"]
    assert len(onsets) >= 4
    mono = scene.audio.mean(axis=1)
    detected = librosa.onset.onset_detect(y=mono, sr=scene.sr, units="time", backtrack=True)
    detected = detected[detected > 0.1]  # the detector's start-up transient at t = 0
    truth = np.array([o["time"] for o in onsets])
    frame = 1 / scene.fps
    assert all(np.abs(detected - t).min() <= frame for t in truth)  # every clap is heard within one frame
    assert all(np.abs(truth - d).min() <= frame for d in detected)  # and nothing else
    for o in onsets:  # the burst is louder on the side where the hands meet
        seg = scene.audio[o["sample"]:o["sample"] + 1000]
        left, right = np.sqrt((seg ** 2).mean(axis=0))
        assert np.sign(right - left) == np.sign(o["pan"]) or abs(o["pan"]) < 0.05
        assert np.sqrt((scene.audio[o["sample"] - 200:o["sample"]] ** 2).mean()) < 0.01  # silence just before


def hands_gap(img: np.ndarray) -> int:
    """Background pixels between the two hands on the middle row."""
    row = img[img.shape[0] // 2, :, 0] > 150
    cols = np.flatnonzero(row)
    return int((~row[cols.min():cols.max() + 1]).sum())


def test_clap_hands_touch_only_on_contact_frames():
    scene = make_scene("clap", 6, 2, **SMALL)
    contact = {o["frame"] for o in scene.events["onsets"]}
    gaps = np.array([hands_gap(scene.draw(k)) for k in range(scene.n_frames)])
    assert all(gaps[k] == 0 for k in contact)
    assert all(gaps[k] > 0 for k in range(scene.n_frames) if k not in contact)


def test_car_pitch_follows_truth():
    scene = make_scene("car", 4, 3, sr=16000, **SMALL)
    f0 = np.array(scene.events["per_frame"]["f0"])
    est, voiced, _ = librosa.pyin(scene.audio.mean(axis=1), fmin=50, fmax=250, sr=scene.sr, frame_length=2048,
                                  hop_length=640, center=True)
    k = np.flatnonzero(voiced[:len(f0)])
    assert len(k) > 0.8 * len(f0)
    error = np.abs(est[k] / f0[k] - 1)
    assert np.median(error) < 0.02 and np.percentile(error, 95) < 0.05


def test_loudness_follows_truth():
    for kind in ("car", "water"):
        scene = make_scene(kind, 10, 0, sr=16000, **SMALL)
        loud = np.array(scene.events["per_frame"]["loudness"])
        rms = np.sqrt((scene.audio.reshape(scene.n_frames, -1) ** 2).mean(axis=1))
        assert np.corrcoef(rms, loud)[0, 1] > 0.8, kind


def test_water_scenes_look_and_sound_different():
    scene = make_scene("water", 12, 0, sr=16000, **SMALL)
    labels = scene.events["per_frame"]["scene"]
    assert set(labels) == {"waterfall", "river", "waves"}
    spf = 640
    mean_colour = {}
    centroid = {}
    for label in set(labels):
        ks = [k for k, s in enumerate(labels) if s == label]
        mean_colour[label] = np.mean([scene.draw(k).mean(axis=(0, 1)) for k in ks[:5]], axis=0)
        seg = np.concatenate([scene.audio[k * spf:(k + 1) * spf, 0] for k in ks])
        centroid[label] = librosa.feature.spectral_centroid(y=seg, sr=16000).mean()
    assert centroid["waterfall"] > 1.5 * centroid["river"]  # a bright roar vs a dark murmur
    assert np.abs(mean_colour["waterfall"] - mean_colour["river"]).max() > 30


def test_render_scene_writes_video_wav_and_truth(tmp_path):
    paths = render_scene("clap", tmp_path, seconds=2, seed=0)
    info = media.probe(paths["video"])
    assert (info.width, info.height, info.fps, info.audio_channels) == (640, 360, 25, 2)
    assert info.duration == pytest.approx(2.0, abs=0.05)
    wav, sr = sf.read(paths["wav"], dtype="float32")
    events = json.loads(paths["events"].read_text())
    assert sr == 44100 and wav.shape == (88200, 2) and events["samples"] == 88200
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clap.events.json", "clap.mp4", "clap.wav"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown scene 'rain'"):
        make_scene("rain")
    with pytest.raises(ValueError, match="seconds must be positive"):
        make_scene("clap", seconds=0)
