"""foley demo: the embedded default end to end (scene, alignment, training, generation, metrics), shrunk."""
import json

import numpy as np
import pytest
from test_cli import foley
from test_dub import audio_streams, stream_seconds

from foleylib.data import media

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
    for key in ("onsets", "onsets_of_true_audio"):
        assert set(metrics[key]) == {"precision", "recall", "f1", "detected", "true"}
        assert 0 <= metrics[key]["f1"] <= 1
    events = json.loads((out / "work" / "scene" / "clap.events.json").read_text())
    assert metrics["onsets"]["true"] == sum(4.8 <= o["time"] < 5.2 for o in events["onsets"])
    assert stream_seconds(out / "demo.mp4") == pytest.approx((0.4, 0.4), abs=1e-9)
    assert audio_streams(out / "demo.mp4") == 2  # generated, then the true audio
    wav = media.read_audio(out / "demo.wav", sr=16000)
    assert wav.shape == (6400, 2) and np.abs(wav).max() > 0
    assert (out / "waveform.png").stat().st_size > 10_000
    assert "onsets: F1" in proc.stdout
