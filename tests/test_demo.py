"""foley demo: the embedded default end to end (scene, alignment, training, generation, metrics), shrunk."""
import json

import numpy as np
import pytest
from test_cli import foley
from test_dub import audio_streams, stream_seconds

from foleylib.data import media
from foleylib.data.dataset import load_clip
from foleylib.evaluation.metrics import audio_metrics, sync_scores

pytestmark = pytest.mark.slow


def test_demo_writes_the_promised_files_and_numbers(tmp_path):
    out = tmp_path / "demo"
    proc = foley("demo", "--out", out, "--seconds", "6", "--steps", "4", "--gen-seconds", "0.4", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in out.iterdir()} == {"demo.mp4", "demo.wav", "waveform.png", "metrics.json", "work"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["seconds_generated"] == pytest.approx(0.4)
    assert metrics["method"] == "cached" and metrics["realtime_factor"] > 0
    assert metrics["generated_start_s"] == pytest.approx(4.8)  # the held-out last 20 % of 6 s
    assert metrics["train"]["steps"] == 4 and 0 < metrics["train"]["val_nll_nats"] < 6
    events = json.loads((out / "work" / "scene" / "clap.events.json").read_text())
    truth = np.array([o["time"] - 4.8 for o in events["onsets"] if 4.8 <= o["time"] < 5.2])  # none: F1 is None
    # the figures are metrics.sync_scores': evaluate's audio_metrics gives the same for the same audio and truth
    generated = media.read_audio(out / "demo.wav", sr=16000)
    clip = load_clip(next((out / "work" / "aligned").iterdir()))
    true = np.asarray(clip.audio[76800:76800 + 6400])  # 4.8 .. 5.2 s at 16 kHz
    for key, audio in (("sync", generated), ("sync_of_true_audio", true)):
        assert metrics[key]["onsets_true"] == len(truth)
        assert metrics[key] == sync_scores(audio, true, 16000, 25, onsets=truth)
        assert metrics[key]["onset_f1"] == audio_metrics(audio, true, 16000, 25, onsets=truth)["onset_f1"]
    assert stream_seconds(out / "demo.mp4") == pytest.approx((0.4, 0.4), abs=1e-9)
    assert audio_streams(out / "demo.mp4") == 2  # generated, then the true audio
    assert generated.shape == (6400, 2) and np.abs(generated).max() > 0
    assert (out / "waveform.png").stat().st_size > 10_000
    assert "onsets: F1" in proc.stdout
