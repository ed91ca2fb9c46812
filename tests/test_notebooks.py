"""Every notebook runs under papermill with small parameters and produces the files and numbers it promises."""
import json
import wave
from pathlib import Path

import numpy as np
import papermill as pm
import pytest

from foleylib.data.dataset import load_clip
from foleylib.evaluation.evaluate import scene_truth
from foleylib.evaluation.metrics import sync_scores

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
pytestmark = [pytest.mark.notebook, pytest.mark.slow]


def run_notebook(name: str, tmp_path: Path, **parameters) -> tuple[dict, dict]:
    """Execute notebooks/<name> into tmp_path; return (executed notebook JSON, its results.json)."""
    out_dir = tmp_path / "out"
    parameters = {"DATA_DIR": str(tmp_path / "data"), "OUT_DIR": str(out_dir), **parameters}
    executed = tmp_path / name
    pm.execute_notebook(str(NOTEBOOKS / name), str(executed), parameters=parameters, cwd=str(NOTEBOOKS),
                        kernel_name="python3", progress_bar=False)
    return json.loads(executed.read_text()), json.loads((out_dir / "results.json").read_text())


def images(nb: dict) -> int:
    return sum("image/png" in out.get("data", {}) for cell in nb["cells"] for out in cell.get("outputs", []))


def test_01_data_collection(tmp_path, good_video, bad_files):
    nb, results = run_notebook("01_data_collection.ipynb", tmp_path, SOURCES=[str(good_video), str(bad_files["text"])],
                               SCENES=["clap", "water"], SECONDS=2.0, SHOW="clap")
    assert results["collected"] == ["good.mp4"]
    assert len(results["failed"]) == 1 and "not a readable media file" in results["failed"][0]
    assert (tmp_path / "data" / "raw" / "good.mp4").exists()
    clap = results["scenes"]["clap"]
    assert (clap["width"], clap["height"], clap["fps"], clap["sr"], clap["channels"]) == (640, 360, 25, 44100, 2)
    assert clap["seconds"] == pytest.approx(2.0, abs=0.05)
    events = json.loads((tmp_path / "data" / "synth" / "clap.events.json").read_text())
    assert clap["onsets"] == len(events["onsets"]) >= 1
    assert results["shown"]["frames"] == 50
    assert images(nb) >= 3  # frames, waveform, spectrogram
    assert any("audio" in json.dumps(out.get("data", {})) for c in nb["cells"] for out in c.get("outputs", []))


def test_02_alignment(tmp_path):
    nb, results = run_notebook("02_alignment.ipynb", tmp_path, SECONDS=3.0, SIZE=32, CONTEXT_SAMPLES=512,
                               CONTEXT_FRAMES=3)
    assert results["samples"] == results["frames"] * 640 and results["samples_per_frame"] == "640"
    assert results["frames"] == 75
    assert results["train_frames"] + results["val_frames"] == results["frames"]
    assert results["val_frames"] == 15
    assert results["padding_samples"] == 512 - results["early_index"] == 212
    assert results["padding_frames"] == 2
    assert results["padding_is_zero"] and results["context_is_real_audio"]
    clip = Path(results["clip_dir"])
    assert (clip / "frames.npy").exists() and json.loads((clip / "meta.json").read_text())["size"] == 32
    assert images(nb) >= 3


def test_05_wavenet(tmp_path):
    nb, results = run_notebook("05_wavenet.ipynb", tmp_path, SECONDS=3.0, PRESET="tiny", STEPS=3, BATCH_SIZE=2,
                               WINDOW=256, THROUGHPUT_STEPS=2, GEN_SECONDS=0.6, TIMING_SECONDS=0.04,
                               LIVE_SECONDS=0.12, SIZE=32, CONTEXT_FRAMES=2, CONTEXT_SAMPLES=128)
    assert results["receptive_field"] == 33  # tiny: kernel 2, dilations 1..16: 1 + 1 + 31
    assert results["cached_equals_naive"] is True
    assert set(results["rtf"]) == {"naive", "cached"} and all(v > 0 for v in results["rtf"].values())
    ablation = results["ablation"]
    for name in ("video", "audio_only"):
        r = ablation[name]
        assert 0 < r["nll_nats"] < 6 and 0 < r["nll_event_windows"] < 6 and 0 < r["nll_first_10ms"] < 6
        assert r["generated_seconds"] == pytest.approx(0.6)
        assert (tmp_path / "out" / "runs" / "ablation" / name / "model.pt").exists()
    # every onset figure is metrics.sync_scores' of the generated tail against the scene's clap times
    assert results["tail_start_s"] == pytest.approx(2.4)  # the held-out last 20 % of 3 s
    clip = load_clip(results["clip_dir"])
    truth = scene_truth(clip, 2.4, 0.6)["onsets"]
    true = np.asarray(clip.audio[38400:38400 + 9600])  # 2.4 .. 3.0 s at 16 kHz
    generated = np.load(tmp_path / "out" / "generated.npz")
    assert set(generated.files) == set(ablation) - {"f1_gain"} == {"video", "audio_only", "video_shuffled",
                                                                   "motion_bursts"}
    for name in generated.files:
        assert generated[name].shape == (9600, 2)
        assert ablation[name]["sync"] == sync_scores(generated[name], true, 16000, 25, onsets=truth), name
        assert ablation[name]["sync"]["onsets_true"] == len(truth) == 1  # the clap at 2.8 s
        assert 0 <= ablation[name]["sync"]["onset_f1"] <= 1
    assert ablation["f1_gain"] == pytest.approx(
        ablation["video"]["sync"]["onset_f1"] - ablation["audio_only"]["sync"]["onset_f1"])
    assert results["causal_over_paper"] > 1
    assert results["live_frames"] == 3 and results["live_latency_ms_median"] > 0
    assert images(nb) >= 3


def test_08_studio(tmp_path):
    nb, results = run_notebook("08_studio.ipynb", tmp_path, SCENE_SECONDS=3.0, PRESET="tiny", TRAIN_STEPS=2,
                               SECONDS=0.4, TOP_P=0.9)
    assert (results["start_s"], results["seconds"], results["frames"]) == (2.4, 0.4, 10)  # the held-out tail
    assert results["method"] == "cached" and results["has_original"] and results["rtf"] > 0
    assert (results["temperature"], results["top_p"]) == (1.0, 0.9)
    assert results["progress"] == [3200, 3200]  # 0.4 s at 8 kHz: the bar reached its end
    assert results["frame_shown"] == 69 and results["marker_s"] == pytest.approx(0.36)
    out = tmp_path / "out"
    assert (out / "run" / "model.pt").exists() and (out / "waveform.png").read_bytes().startswith(b"\x89PNG")
    with wave.open(str(out / "generated.wav")) as f:
        assert (f.getnframes() / f.getframerate(), f.getnchannels()) == (0.4, 2)
    outputs = [o for c in nb["cells"] for o in c.get("outputs", [])]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    assert not any(o["output_type"] == "error" for o in outputs)


def test_09_real_footage(tmp_path):
    nb, results = run_notebook("09_real_footage.ipynb", tmp_path, STANDINS=3, STANDIN_SECONDS=3.0, PRESET="tiny",
                               STEPS=2, PRETRAIN_STEPS=2, CROSSVAL_STEPS=2, GEN_SECONDS=0.4, BATCH_SIZE=2, WINDOW=128)
    assert results["clips"] == ["clap-0", "clap-1", "clap-2"] and results["held_out"] == "clap-2"
    assert results["motion_shape"] == [75, 32, 32, 6] and results["motion_channels"][-1] == "stop"
    assert list(results["ablation"]) == ["rgb", "rgb+motion", "rgb+motion, augmented", "rgb+motion, sync loss",
                                         "rgb+motion, guided", "rgb, looking ahead", "pretrained + fine-tuned"]
    for row in results["ablation"].values():
        assert 0 < row["val_loss"] < 6 and 0 <= row["onset_f1"] <= 1 and row["logmel_db"] > 0
    out = tmp_path / "out"
    finetuned = json.loads((out / "ablation" / "finetuned" / "config.json").read_text())
    assert results["finetune_init"] == str(out / "ablation" / "pretrained")
    assert finetuned["init"]["run"] == str(out / "ablation" / "pretrained" / "model.pt")
    assert json.loads((out / "ablation" / "rgb_motion_aug" / "config.json").read_text())["train"]["augment"]
    synced = json.loads((out / "ablation" / "rgb_motion_sync" / "config.json").read_text())
    assert synced["train"]["sync_weight"] == 5.0 and synced["model"]["sync_head"]
    guided = json.loads((out / "ablation" / "rgb_motion_guided" / "config.json").read_text())
    assert guided["train"]["video_dropout"] == 0.2 and results["ablation"]["rgb+motion, guided"]["guidance"] == 2.0
    ahead = json.loads((out / "ablation" / "rgb_ahead" / "config.json").read_text())["model"]
    assert (ahead["video_lookahead"], ahead["video_input"]) == (1, "rgb")
    assert results["crossval"]["folds"] == 3
    assert "Leave-one-clip-out" in (out / "crossval" / "crossval.md").read_text()
    for clip in results["clips"]:
        assert (out / "crossval" / "folds" / clip / "audio" / "model.wav").exists()
    assert images(nb) >= 4  # waveforms with frames, the motion over frames, motion against sound
    players = sum("<audio" in "".join(o.get("data", {}).get("text/html", "")) for c in nb["cells"]
                  for o in c.get("outputs", []))
    assert players == 9  # true, generated, shuffled for each held-out clip
