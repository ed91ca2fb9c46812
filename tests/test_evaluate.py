"""Evaluation: Table I's validation loss equals training's, baselines built as documented, foley evaluate."""
import json
import math

import numpy as np
import pytest
import torch
from test_cli import foley
from test_metrics import bursts

from foleylib.core.config import AVSpec, preset
from foleylib.core.errors import InputError
from foleylib.data.align import ingest_file
from foleylib.data.dataset import AlignedClip, load_clip
from foleylib.data.synth import render_scene
from foleylib.evaluation.evaluate import (
    BASELINES,
    evaluate_run,
    histogram_nll,
    motion_bursts,
    point_prediction,
    scene_truth,
    score_generated,
    teacher_forced,
    uses_video,
)
from foleylib.evaluation.metrics import sync_scores
from foleylib.models.config import model_config
from foleylib.models.losses import mulaw_decode, mulaw_encode
from foleylib.models.registry import build_model
from foleylib.training.checkpoint import load_model
from foleylib.training.config import TrainConfig
from foleylib.training.trainer import train

SPEC = preset("tiny")


@pytest.fixture(scope="module")
def clap(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    scene = render_scene("clap", root / "synth", seconds=4.0, seed=2)
    clip = load_clip(ingest_file(scene["video"], root / "aligned", SPEC.with_()).clip_dir)
    return root, scene, clip


@pytest.fixture(scope="module")
def run(clap):
    root, _, clip = clap
    cfg = model_config("wavenet", "tiny", clip.spec, loss="ce")
    tc = TrainConfig(steps=3, batch_size=2, window=256, val_every=3, val_examples=6, seed=0)
    train([clip], cfg, tc, root / "run", progress=False)
    return root / "run"


def test_point_prediction_is_the_mulaw_mean_or_the_tanh_value():
    logits = torch.full((2, 256), -1e9)
    logits[0, 10], logits[1, 200] = 0.0, 0.0  # all mass on one class each
    np.testing.assert_allclose(point_prediction(logits, True).numpy(), mulaw_decode(torch.tensor([10, 200])).numpy(),
                               atol=1e-7)
    half = torch.full((256,), -1e9)
    half[[0, 255]] = 0.0  # half on -1, half on +1: mean 0
    assert float(point_prediction(half, True)) == pytest.approx(0.0, abs=1e-9)
    tanh = torch.tensor([[0.3, -0.2]])
    assert torch.equal(point_prediction(tanh, False), tanh)


def test_histogram_nll_by_hand():
    audio = np.zeros((3000, 2), np.float32)
    audio[:1000] = 0.5  # the head: 1000 frames... only its first 1000 samples are 0.5
    clip = AlignedClip(None, np.zeros((30, 4, 4, 3), np.uint8), audio, {})
    spec = AVSpec(sr=2500, fps=25)  # 100 samples per frame
    head, tail = range(0, 20), range(20, 30)  # head: 1000 x 0.5 and 1000 x 0.0 per channel; tail: zeros
    zero, half = int(mulaw_encode(torch.tensor(0.0))), int(mulaw_encode(torch.tensor(0.5)))
    assert zero != half
    p_zero = (2000 + 1) / (4000 + 256)  # add-one smoothing over 256 classes
    assert histogram_nll(clip, [head], tail, spec) == pytest.approx(-math.log(p_zero))
    two_parts = [range(0, 5), range(15, 20)]  # 500 x 0.5 and 500 x 0.0 per channel
    assert histogram_nll(clip, two_parts, tail, spec) == pytest.approx(-math.log(1001 / (2000 + 256)))


def test_motion_bursts_fire_on_sudden_changes_only():
    frames = np.zeros((30, 8, 8, 3), np.uint8)
    frames[10:] = 200  # a cut at frame 10
    frames[20:, :4] = 0  # a smaller change at frame 20
    spec = AVSpec(sr=1000, fps=25)  # 40 samples per frame
    audio = motion_bursts(frames, spec, 1200, level=0.5, rng=np.random.default_rng(0))
    loud = np.flatnonzero(np.abs(audio).max(axis=1) > 0)
    assert audio.shape == (1200, 2)
    assert loud.min() == 400 and set(loud // 40) == {10, 20}  # 30 ms bursts = 30 samples from each frame start
    assert np.abs(audio).max() <= 0.5


def test_scene_truth_of_a_clap_scene(clap):
    _, scene, clip = clap
    onsets = [o for o in json.loads(scene["events"].read_text())["onsets"] if 1.0 <= o["time"] < 3.0]
    truth = scene_truth(clip, 1.0, 2.0)
    np.testing.assert_allclose(truth["onsets"], [o["time"] - 1.0 for o in onsets])
    np.testing.assert_allclose(truth["pan"], [o["pan"] for o in onsets])


def test_uses_video_needs_every_defined_sync_metric():
    row = lambda f1, env: {"onset_f1": f1, "envelope_corr": env}  # noqa: E731
    assert uses_video({"model": row(0.9, 0.5), "video_shuffled": row(0.2, 0.1)}) is True
    assert uses_video({"model": row(0.9, 0.05), "video_shuffled": row(0.2, 0.1)}) is False
    assert uses_video({"model": row(0.0, 0.9), "video_shuffled": row(0.0, -0.5)}) is True  # no onsets either way
    assert uses_video({"model": row(0.5, 0.5), "video_shuffled": row(0.5, 0.5)}) is False
    assert uses_video({"model": row(None, 0.5), "video_shuffled": row(None, 0.1)}) is True
    assert uses_video({"model": row(None, None), "video_shuffled": row(None, None)}) is None


def test_teacher_forced_loss_equals_the_training_validation(run, clap):
    model, spec = load_model(run)
    config = json.loads((run / "config.json").read_text())
    tf = teacher_forced(model, [clap[2]], spec, TrainConfig(**config["train"]))
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert tf["val_loss"] == pytest.approx(last["val_loss"], rel=1e-5)
    assert tf["val_nll_bits"] == pytest.approx(tf["val_ce"] / math.log(2))
    assert 0 < tf["val_mse"] < 1 and 0 < tf["val_mae"] < 1


@pytest.mark.slow
def test_foley_evaluate_reports_the_model_and_every_baseline(run, tmp_path):
    out = tmp_path / "m.json"
    proc = foley("evaluate", "--ckpt", run, "--out", out, "--seconds", "0.4", "--quiet")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert set(report["metrics"]) == {"model", *BASELINES}
    assert report["truth"] == "scene events" and report["generated_seconds"] == pytest.approx(0.4)
    assert report["teacher_forced"]["histogram_nll_nats"] > 0 and report["rtf"] > 0
    silence = report["metrics"]["silence"]
    assert silence["onset_precision"] is None and silence["onset_f1"] in (0.0, None)  # None: no clap in the tail
    assert silence["rms_db"] <= -80 < report["metrics"]["model"]["rms_db"] and silence["logmel_db"] > 0
    assert report["uses_video"] in (True, False, None)
    assert "uses the video" in proc.stdout
    again = foley("evaluate", "--ckpt", run, "--out", out, "--seconds", "0.4", "--quiet")
    assert again.returncode == 2 and "output exists" in again.stderr


def test_guided_evaluation_guides_the_model_and_its_shuffled_twin_not_the_zeroed_one(run, clap, tmp_path):
    plain, plain_audio = evaluate_run(run, seconds=0.4)
    guided, guided_audio = evaluate_run(run, seconds=0.4, guidance=3.0)
    assert (plain["guidance"], guided["guidance"]) == (1.0, 3.0)
    np.testing.assert_array_equal(guided_audio["video_zeroed"], plain_audio["video_zeroed"])
    assert not np.array_equal(guided_audio["model"], plain_audio["model"])
    assert not np.array_equal(guided_audio["video_shuffled"], plain_audio["video_shuffled"])
    _, _, clip = clap
    continuous = tmp_path / "mse"
    train([clip], model_config("wavenet", "tiny", clip.spec, loss="mse"),
          TrainConfig(steps=1, batch_size=2, window=256, val_every=1, val_examples=2), continuous, progress=False)
    with pytest.raises(InputError, match="guidance mixes logits"):
        evaluate_run(continuous, seconds=0.4, guidance=2.0)


def test_evaluation_draws_at_the_temperature_it_is_given(run):
    """At temperature 0, and from a nucleus so small it holds only the likeliest class, every video's take is its
    argmax path, whatever the seed; at temperature 1 the seed changes it."""
    cold, cold_audio = evaluate_run(run, seconds=0.4, temperature=0.0, seed=1)
    narrow, narrow_audio = evaluate_run(run, seconds=0.4, top_p=1e-6, seed=2)
    _, warm_audio = evaluate_run(run, seconds=0.4, seed=1)
    _, warm_other_seed = evaluate_run(run, seconds=0.4, seed=2)
    assert (cold["temperature"], cold["top_p"], narrow["temperature"], narrow["top_p"]) == (0.0, 1.0, 1.0, 1e-6)
    for name in ("model", "video_zeroed", "video_shuffled"):
        np.testing.assert_array_equal(cold_audio[name], narrow_audio[name])
        assert not np.array_equal(warm_audio[name], warm_other_seed[name])


def test_reports_table_rows_and_differences():
    from foleylib.evaluation.ablation import reports_table

    def report(f1, shuffled):
        metrics = {name: {"onset_f1": 0.5, "logmel_db": 20.0, "envelope_corr": None}
                   for name in ("video_zeroed", "motion_bursts", "histogram", "silence")}
        metrics |= {"model": {"onset_f1": f1, "logmel_db": 12.25, "envelope_corr": 0.5},
                    "video_shuffled": {"onset_f1": shuffled}}
        return {"teacher_forced": {"val_loss": 3.5}, "metrics": metrics}

    lines = reports_table({"rgb": report(0.75, 0.5), "motion": report(None, 0.5)}).splitlines()
    assert lines[2] == "| rgb | 3.500 | 0.75 | 0.50 | 0.50 | +0.25 | 12.2 | 0.50 |"
    assert lines[3] == "| motion | 3.500 | - | 0.50 | 0.50 | - | 12.2 | 0.50 |"
    assert lines[4:] == [f"| baseline: {name} | - | 0.50 | - | - | - | 20.0 | - |"
                         for name in ("motion_bursts", "histogram", "silence")]


def test_evaluate_and_sync_scores_give_the_same_onset_figures(clap):
    _, _, clip = clap  # claps at 0.72, 2.0, 2.52 and 3.6 s
    spec, fps = clip.spec, float(clip.spec.fps_exact)
    start, n_frames = 25, 75  # 1.0 .. 4.0 s: claps at 1.0, 1.52 and 2.6 s into it
    first = spec.frame_start(start)
    ref = np.asarray(clip.audio[first:spec.frame_start(start + n_frames)])
    truth = scene_truth(clip, start / fps, len(ref) / spec.sr)["onsets"]
    np.testing.assert_allclose(truth, [1.0, 1.52, 2.6])
    gen = bursts([0.5, 1.53, 2.61], seconds=len(ref) / spec.sr, sr=spec.sr)  # 1 false alarm, 2 hits, 1 miss
    scores, _ = score_generated({"model": gen}, clip, spec, start)
    sync = sync_scores(gen, ref, spec.sr, fps, onsets=truth)
    assert (sync["onset_precision"], sync["onset_recall"]) == (2 / 3, 2 / 3)
    for key in ("onset_precision", "onset_recall", "onset_f1", "envelope_corr"):
        assert scores["model"][key] == sync[key], key


def test_event_nll_by_hand():
    from foleylib.evaluation.ablation import event_nll

    sr = 1000
    nll = np.full(500, 1.0)
    nll[95:200] = 3.0  # -5 .. +100 ms around the onset at 0.1 s
    nll[100:110] = 5.0  # its first 10 ms
    nll[400:] = np.nan  # unscored
    # the onset at 1.1 s is 0.1 s into a signal starting at 1.0 s; the one at 1.45 s has no scored samples
    r = event_nll(nll, sr, np.array([1.1, 1.45]), offset=1.0)
    assert r["nll_first_10ms"] == 5.0
    assert r["nll_event_windows"] == pytest.approx((15 * 1.0 + 95 * 3.0 + 10 * 5.0) / 120)  # 80 .. 200 ms
    assert r["nll_nats"] == pytest.approx((295 * 1.0 + 95 * 3.0 + 10 * 5.0) / 400)


def test_twin_nll_scores_the_true_audio_under_each_video(run, clap):
    from foleylib.evaluation.ablation import twin_nll
    from foleylib.evaluation.metrics import per_sample_nll

    _, _, clip = clap
    model, spec = load_model(run)
    tail = range(60, 100)  # the last 1.6 s of the 4 s scene: a clap in it
    twins = twin_nll(model, clip, spec, tail)
    assert twins["model"]["nll"] == pytest.approx(np.nanmean(per_sample_nll(model, clip, spec, tail)))
    assert twins["video_zeroed"]["nll"] == pytest.approx(
        np.nanmean(per_sample_nll(model, clip, spec, tail, zero_video=True)))
    assert twins["video_shuffled"]["nll"] != twins["model"]["nll"]  # other frames, other likelihood
    assert all(4 < t["onset_nll"] < 7 for t in twins.values())  # 3 steps: near ln 256 = 5.55
    continuous = build_model(model_config("wavenet", "tiny", clip.spec, loss="mse"))
    assert all(v is None for t in twin_nll(continuous, clip, spec, tail).values() for v in t.values())
