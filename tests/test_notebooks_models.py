"""The model notebooks (03 video context, 04 deep fusion, 06 transformer) run with the tiny preset and promise numbers.

Parameter counts are recomputed here from the same configs, independently of the notebooks.
"""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from test_notebooks import images, run_notebook

from foleylib.core.config import AVSpec
from foleylib.data.dataset import load_clip
from foleylib.evaluation.evaluate import BASELINES, scene_truth, uses_video
from foleylib.evaluation.metrics import sync_scores
from foleylib.models.config import model_config
from foleylib.models.registry import build_model
from foleylib.models.video import VideoEncoder, VideoToAudio

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

SIZE, SECONDS, FPS = 32, 3.0, 25
FRAMES = round(SECONDS * FPS)  # 75 frames; the held-out tail (VAL_FRACTION 0.2) starts at frame 60
VAL_START = FRAMES - round(FRAMES * 0.2)
SYNC_KEYS = ("onset_precision", "onset_recall", "onset_f1", "envelope_corr")


def numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def has_audio_player(nb: dict) -> bool:
    return any("<audio" in json.dumps(out.get("data", {})) for c in nb["cells"] for out in c.get("outputs", []))


def check_run(run_dir: Path, steps: int, parameters: int) -> None:
    """A complete run folder whose config and metrics agree with the notebook's numbers."""
    assert {"config.json", "model.pt", "metrics.jsonl"} <= {p.name for p in run_dir.iterdir()}
    assert json.loads((run_dir / "config.json").read_text())["parameters"] == parameters
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(1, steps + 1))
    assert "val_loss" in metrics[-1]


def test_03_video_context(tmp_path):
    nb, results = run_notebook("03_video_context.ipynb", tmp_path, SECONDS=SECONDS, SIZE=SIZE, CONTEXT_FRAMES=3,
                               CONTEXT_SAMPLES=256, PRESET="tiny")
    spec = AVSpec(size=SIZE, context_frames=3, context_samples=256)
    cfg = model_config("wavenet", "tiny", spec, mode="paper")
    c_vid, blocks = cfg.video_channels, cfg.video_blocks  # 4 channels, 1 block: 32 -> 16 (stem) -> 8
    side = SIZE // 2 ** (1 + blocks)
    assert results["video_shape"] == [1, 3, SIZE, SIZE, 3]
    assert list(results["stages"].values()) == [[1, 3, 3, SIZE, SIZE], [1, c_vid, 3, SIZE // 2, SIZE // 2],
                                                [1, c_vid, 3, side, side]]
    assert results["encoder_out"] == [1, c_vid, 3, side, side]
    encoder = VideoEncoder(SIZE, c_vid, blocks, cfg.norm)
    assert results["encoder_parameters"] == numel(encoder)
    assert results["block_parameters"] == numel(encoder.blocks[0])
    assert results["embedding_shape"] == [1, 2, 256]
    assert results["projection_parameters"] == numel(VideoToAudio(c_vid, 3, side * side, 256, 2))
    assert results["audio_to_video_shape"] == results["encoder_out"]
    streams = results["fusion_streams"]
    assert [row["audio"] for row in streams] == [[1, 8, 64], [1, 8, 16]]  # 256 / 4, / 4 again (fusion_stride 4)
    assert [row["video"] for row in streams] == [[1, c_vid, 3, 8, 8], [1, c_vid, 3, 4, 4]]
    assert all(row["v2a"] == row["audio"] for row in streams)
    assert streams[0]["a2v"] == streams[0]["video"] and streams[-1]["a2v"] is None
    for arch in ("fusion", "wavenet", "transformer"):
        model = build_model(model_config(arch, "tiny", spec, mode="paper"))
        assert results["parameters"][arch]["total"] == numel(model), arch
        assert 0 < results["parameters"][arch]["video"] < numel(model), arch
    assert results["frames_differ"] and results["reversed_change"] > 1e-4  # frame order reaches the embedding
    assert images(nb) >= 4  # context window, feature maps, embedding image, in order vs reversed


def test_04_deep_fusion(tmp_path):
    steps = 15
    nb, results = run_notebook("04_deep_fusion.ipynb", tmp_path, SECONDS=SECONDS, SIZE=SIZE, CONTEXT_FRAMES=3,
                               CONTEXT_SAMPLES=256, PRESET="tiny", STEPS=steps, BATCH_SIZE=8, VAL_EVERY=5,
                               GEN_SECONDS=0.2)
    spec = AVSpec(size=SIZE, context_frames=3, context_samples=256)
    assert results["parameters"] == numel(build_model(model_config("fusion", "tiny", spec, loss="mse")))
    assert math.isfinite(results["train_loss"]) and math.isfinite(results["val_loss"])
    assert [step for step, _ in results["val_curve"]] == [5, 10, 15]
    check_run(Path(results["run_dir"]), steps, results["parameters"])
    assert results["start_frame"] == VAL_START and results["generated_frames"] == 5
    assert results["generated_samples"] == spec.frame_start(VAL_START + 5) - spec.frame_start(VAL_START) == 5 * 640
    assert results["generated_shape"] == [5 * 640, 2]
    jumps = results["jumps"]
    assert jumps["plain"]["count"] == jumps["true"]["count"] == 4  # 4 frame boundaries in 5 frames
    assert results["crossfade_samples"] == 80  # 5 ms at 16 kHz: segments every 640 - 80 samples
    assert jumps["crossfade"]["count"] == (5 * 640 - 1) // 560
    assert all(jumps[name]["inside"] > 0 and jumps[name]["boundary"] >= 0 for name in ("plain", "crossfade"))
    assert images(nb) >= 3  # loss curves, waveform vs true, zoom
    assert has_audio_player(nb)


def test_06_transformer(tmp_path):
    steps = 10
    nb, results = run_notebook("06_transformer.ipynb", tmp_path, SECONDS=SECONDS, SR=8000, SIZE=SIZE,
                               CONTEXT_FRAMES=2, CONTEXT_SAMPLES=256, PRESET="tiny", STEPS=steps, BATCH_SIZE=4,
                               WINDOW=64, VAL_EVERY=5, GEN_SECONDS=0.12, TIMING_SECONDS=0.08)
    spec = AVSpec(sr=8000, size=SIZE, context_frames=2, context_samples=256)
    expected = {"strided": ("paper", "strided", "absolute"), "raw": ("paper", "raw", "absolute"),
                "causal": ("causal", "raw", "absolute"), "sliding": ("causal", "raw", "alibi")}
    assert set(results["runs"]) == set(expected)
    for name, (mode, variant, positions) in expected.items():
        run = results["runs"][name]
        model = build_model(model_config("transformer", "tiny", spec, loss="ce", mode=mode, variant=variant,
                                         positions=positions))
        assert (run["mode"], run["variant"], run["positions"]) == (mode, variant, positions)
        assert run["parameters"] == numel(model), name
        assert math.isfinite(run["train_loss"]) and math.isfinite(run["val_loss"]), name
        assert 0 < run["val_loss"] < 2 * math.log(256), name  # nats per sample: near ln 256 after 10 steps
        check_run(Path(run["run_dir"]), steps, run["parameters"])
    start, n = results["start_frame"], results["generated_frames"]
    assert n == 3 and VAL_START <= start <= FRAMES - n
    assert results["generated_samples"] == spec.frame_start(start + n) - spec.frame_start(start) == 3 * 320
    assert results["generated_shape"] == [3 * 320, 2]
    assert results["cached_equals_naive"] == {"causal": True, "sliding": True}
    timed = {f"{name}_{method}" for name in ("causal", "sliding") for method in ("naive", "cached")}
    assert set(results["rtf"]) == timed
    assert all(v > 0 for v in results["rtf"].values())
    assert images(nb) >= 2  # loss curves, generated waveform
    assert has_audio_player(nb)


def test_07_evaluation_runs_the_batch_when_the_table_is_empty(tmp_path):
    nb, results = run_notebook("07_evaluation.ipynb", tmp_path, TABLE_DIR=str(tmp_path / "table"), SCENES="clap",
                               ARCHS="transformer", PRESET="tiny", STEPS=2, GEN_SECONDS=0.6, SCENE_SECONDS=3.0,
                               HYPOTHESIS_STEPS=2, HYPOTHESIS_SECONDS=0.08)
    cell = results["cell"]  # section 1: one cell step by step, on the clap scene with the first architecture
    assert cell["arch"] == "transformer" and 0 < cell["teacher_forced"]["val_loss"] < 2 * math.log(256)
    assert cell["rtf"] > 0
    assert cell["teacher_forced"]["histogram_nll_nats"] > 0 and set(cell["metrics"]) == {"model", *BASELINES}
    assert cell["uses_video"] == uses_video(cell["metrics"])
    batch = json.loads((tmp_path / "table" / "runs" / "clap_transformer" / "results.json").read_text())
    assert (cell["teacher_forced"], cell["metrics"]) == (batch["teacher_forced"], batch["metrics"])  # the same cell
    # its onset figures are metrics.sync_scores' of the audio it generated, against the scene's clap times
    assert cell["tail_start_s"] == pytest.approx(2.4)  # the held-out last 20 % of 3 s
    clip = load_clip(cell["clip"])
    truth = scene_truth(clip, 2.4, 0.6)["onsets"]
    true = np.asarray(clip.audio[38400:38400 + 9600])  # 2.4 .. 3.0 s at 16 kHz
    audio = np.load(tmp_path / "out" / "cell" / "audio.npz")
    assert set(audio.files) == set(cell["metrics"]) and len(truth) == 1  # the clap at 2.8 s
    for name in audio.files:
        sync = sync_scores(audio[name], true, 16000, 25, onsets=truth)
        assert {k: cell["metrics"][name][k] for k in SYNC_KEYS} == {k: sync[k] for k in SYNC_KEYS}, name
    assert results["cells"] == results["done"] == 1 and results["failed"] == []
    table = tmp_path / "table"
    assert (table / "table1.md").exists() and (table / "runs" / "clap_transformer.ipynb").exists()
    assert {row["metric"] for row in results["winners"]} >= {"val_loss", "logmel_db"}
    assert all(row["best"] == "transformer" for row in results["winners"])
    assert set(results["dc_offsets"]) == {"paper_ce", "mse"}
    assert isinstance(results["hypothesis_supported"], bool)
    assert images(nb) >= 2  # Fig. 11 (clap/transformer; the car figures are skipped), a spectrogram
