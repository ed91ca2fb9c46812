"""Training through the CLI for every architecture x loss x mode, run folders, determinism."""
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from foleylib.core.config import AVSpec
from foleylib.core.errors import InputError
from foleylib.core.fsutil import sha256_file, write_json
from foleylib.data.align import ingest_file
from foleylib.data.batches import evenly_spaced, onset_weights, position_weights, split_datasets
from foleylib.data.dataset import find_clips, load_clip
from foleylib.data.synth import render_scene
from foleylib.interfaces.cli import main
from foleylib.models.config import model_config
from foleylib.models.registry import build_model
from foleylib.training.checkpoint import init_from, load_model
from foleylib.training.config import TrainConfig
from foleylib.training.trainer import evaluate, train

SPEC = AVSpec(sr=8000, fps=25, size=16, context_frames=2, context_samples=128)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    video = render_scene("clap", root / "synth", seconds=3, seed=1, width=160, height=90)["video"]
    return ingest_file(video, root / "aligned", SPEC).clip_dir


COMBOS = [(arch, mode, variant, loss)
          for arch, mode, variant in [("fusion", "paper", "raw"), ("wavenet", "paper", "raw"),
                                      ("wavenet", "causal", "raw"), ("transformer", "paper", "strided"),
                                      ("transformer", "paper", "raw"), ("transformer", "causal", "raw")]
          for loss in ("mse", "mae", "ce", "paper_ce")]


@pytest.mark.parametrize("arch,mode,variant,loss", COMBOS)
def test_every_combination_trains_through_the_cli(tmp_path, clip_dir, arch, mode, variant, loss, capsys):
    run = tmp_path / "run"
    code = main(["train", "--arch", arch, "--mode", mode, "--variant", variant, "--loss", loss, "--data",
                 str(clip_dir), "--steps", "2", "--batch-size", "2", "--window", "64", "--preset", "tiny",
                 "--val-every", "1", "--quiet", "--out", str(run)])
    assert code == 0, capsys.readouterr().err
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2] and all("val_loss" in r for r in lines)
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in lines)
    config = json.loads((run / "config.json").read_text())
    assert (config["model"]["arch"], config["model"]["mode"], config["model"]["loss"]) == (arch, mode, loss)
    model, spec = load_model(run)
    assert model.cfg.to_dict() == config["model"] and spec.sr == 8000


def test_sliding_transformer_trains_through_the_cli_and_loads_as_trained(tmp_path, clip_dir, capsys):
    run = tmp_path / "run"
    code = main(["train", "--arch", "transformer", "--positions", "alibi", "--data", str(clip_dir), "--steps", "2",
                 "--batch-size", "2", "--window", "64", "--preset", "tiny", "--quiet", "--out", str(run)])
    assert code == 0, capsys.readouterr().err
    model, _ = load_model(run)
    assert model.cfg.positions == "alibi" and model.sliding and "pos" not in model.state_dict()


@pytest.mark.parametrize("argv,message", [(["--arch", "fusion", "--mode", "causal"], "fusion predicts whole frames"),
                                          (["--arch", "transformer", "--mode", "paper", "--positions", "alibi"],
                                           "alibi positions are for the causal transformer")])
def test_bad_combination_is_one_line_exit_2(tmp_path, clip_dir, capsys, argv, message):
    code = main(["train", *argv, "--data", str(clip_dir), "--steps", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"error: {message}") and len(err.splitlines()) == 1


def test_same_seed_same_weights(tmp_path, clip_dir):
    clip = load_clip(clip_dir)
    cfg = model_config("wavenet", "tiny", SPEC, loss="ce")
    tc = TrainConfig(steps=3, batch_size=2, window=64, val_every=3, seed=7)
    states = []
    for name in ("a", "b"):
        train([clip], cfg, tc, tmp_path / name, progress=False)
        states.append(torch.load(tmp_path / name / "model.pt", weights_only=True)["state_dict"])
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    train([clip], cfg, TrainConfig(steps=3, batch_size=2, window=64, val_every=3, seed=8), tmp_path / "c",
          progress=False)
    other = torch.load(tmp_path / "c" / "model.pt", weights_only=True)["state_dict"]
    assert not all(torch.equal(states[0][k], other[k]) for k in other)


def test_loss_falls_on_a_clip(tmp_path, clip_dir):
    clip = load_clip(clip_dir)
    cfg = model_config("wavenet", "tiny", SPEC, loss="ce")
    train([clip], cfg, TrainConfig(steps=40, batch_size=4, window=256, val_every=40, lr=5e-3), tmp_path / "r",
          progress=False)
    lines = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["val_loss"] < lines[0]["train_loss"] - 1.0  # from ~log(256) towards the clip's entropy


def test_find_clips_accepts_folders_of_clips(tmp_path, clip_dir):
    assert [c.name for c in find_clips([clip_dir.parent])] == ["clap"]
    assert find_clips([clip_dir])[0].path == clip_dir
    with pytest.raises(Exception, match="no aligned clips here"):
        find_clips([tmp_path])


ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}  # no OpenMP spinning against whatever else runs


def _train_command(clip_dir, out, *extra):
    return [sys.executable, "-m", "foleylib", "train", "--arch", "wavenet", "--data", str(clip_dir), "--steps", "60",
            "--batch-size", "2", "--window", "64", "--preset", "tiny", "--val-every", "10", "--checkpoint-every", "5",
            "--seed", "3", "--quiet", "--out", str(out), *extra]


def _stop_after(proc, metrics, lines, sig):
    """Send `sig` to a training process once its metrics.jsonl has `lines` records; its exit code."""
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= lines:
            proc.send_signal(sig)
            break
        time.sleep(0.01)
    return proc.wait()


def test_killed_and_interrupted_runs_resume_to_the_weights_of_an_unbroken_run(tmp_path, clip_dir):
    assert subprocess.run(_train_command(clip_dir, tmp_path / "whole"), capture_output=True,
                          env=ONE_THREAD).returncode == 0
    run, metrics = tmp_path / "broken", tmp_path / "broken" / "metrics.jsonl"
    assert _stop_after(subprocess.Popen(_train_command(clip_dir, run), env=ONE_THREAD), metrics, 12,
                       signal.SIGKILL) == -9
    assert not (run / "model.pt").exists()
    killed_at = torch.load(run / "checkpoint.pt", weights_only=True)["step"]
    assert killed_at % 5 == 0 and 10 <= killed_at < 60
    resumed = subprocess.Popen(_train_command(clip_dir, run, "--resume"), stderr=subprocess.PIPE, text=True,
                               env=ONE_THREAD)
    assert _stop_after(resumed, metrics, 30, signal.SIGINT) == 130
    stopped_at = torch.load(run / "checkpoint.pt", weights_only=True)["step"]
    assert json.loads(metrics.read_text().splitlines()[-1])["step"] == stopped_at  # saved where it stopped
    assert "--resume" in resumed.stderr.read() and not (run / "model.pt").exists()
    assert subprocess.run(_train_command(clip_dir, run, "--resume"), capture_output=True,
                          env=ONE_THREAD).returncode == 0

    whole = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)["state_dict"]
    broken = torch.load(run / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(whole[k], broken[k]) for k in whole)
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    unbroken = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 61))  # the loss curve goes on where it stopped
    assert [r["train_loss"] for r in records] == [r["train_loss"] for r in unbroken]


def test_a_run_folder_is_continued_or_replaced_only_on_request(tmp_path, clip_dir, capsys):
    run = tmp_path / "run"
    args = ["train", "--arch", "wavenet", "--data", str(clip_dir), "--steps", "2", "--batch-size", "2", "--window",
            "64", "--preset", "tiny", "--quiet", "--out", str(run)]
    assert main(args) == 0
    before = (run / "model.pt").read_bytes()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: the run folder holds a run already (--resume continues it, --force starts over) ({run})"
    assert (run / "model.pt").read_bytes() == before
    assert main([*args, "--lr", "0.01", "--resume"]) == 2  # other settings than the run was started with
    assert "started with other train settings" in capsys.readouterr().err
    good = (run / "checkpoint.pt").read_bytes()
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    damaged = {"zeroed": good[:200] + bytes(400) + good[600:], "cut": good[:len(good) // 2],
               "no optimizer": state | {"optimizer": {"state": 3}}, "no step": state | {"step": "many"}}
    for name, content in damaged.items():  # each refused in one line, the run folder left as it was
        if isinstance(content, bytes):
            (run / "checkpoint.pt").write_bytes(content)
        else:
            torch.save(content, run / "checkpoint.pt")
        assert main([*args, "--resume"]) == 2, name
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: not a valid checkpoint: ") and err.endswith(f"({run / 'checkpoint.pt'})")
        assert "\n" not in err and (run / "model.pt").read_bytes() == before
    assert main([*args, "--force"]) == 0


def test_held_out_clips_validate_whole_and_train_clips_train_whole(tmp_path, clip_dir):
    other = ingest_file(render_scene("clap", tmp_path / "synth", seconds=2, seed=9, width=160, height=90)["video"],
                        tmp_path / "aligned", SPEC).clip_dir
    clip, unseen = load_clip(clip_dir), load_clip(other)
    cfg = model_config("fusion", "tiny", SPEC, loss="mse")
    model = build_model(cfg)
    tc = TrainConfig(window=64)
    by_time = split_datasets([clip], SPEC, model, tc.window, tc.val_fraction)
    by_clip = split_datasets([clip], SPEC, model, tc.window, tc.val_fraction, val_clips=[unseen])
    assert len(by_clip[0]) == clip.meta["frames"] == len(by_time[0]) + len(by_time[1])  # one example per frame
    assert len(by_clip[1]) == unseen.meta["frames"]
    run = tmp_path / "run"
    final = train([clip], cfg, TrainConfig(steps=2, batch_size=2, val_every=2), run, progress=False,
                  val_clips=[unseen])
    config = json.loads((run / "config.json").read_text())
    assert config["val_data"] == [str(unseen.path)] and config["data"] == [str(clip.path)]
    model, _ = load_model(run)
    expected = evaluate(model, DataLoader(evenly_spaced(by_clip[1], 64), batch_size=2), "mse", torch.device("cpu"))
    assert abs(final["val_loss"] - expected) < 1e-5  # validated on the unseen clip
    with pytest.raises(InputError, match="also a training clip"):
        train([clip], cfg, TrainConfig(steps=1), tmp_path / "bad", progress=False, val_clips=[clip])


def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path, clip_dir):
    common = ["--arch", "wavenet", "--data", str(clip_dir), "--steps", "6", "--batch-size", "4", "--window", "64",
              "--preset", "tiny", "--norm", "group", "--val-every", "3", "--seed", "2", "--quiet"]
    for name, extra in (("one", []), ("two", ["--nproc", "2"])):
        proc = subprocess.run([sys.executable, "-m", "foleylib", "train", *common, *extra, "--out", tmp_path / name],
                              capture_output=True, text=True, env=ONE_THREAD)
        assert proc.returncode == 0, proc.stderr[-2000:]
    one, two = (torch.load(tmp_path / n / "model.pt", weights_only=True)["state_dict"] for n in ("one", "two"))
    assert all(torch.allclose(one[k].float(), two[k].float(), atol=1e-5) for k in one)
    final = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=True)["model"]  # written by process 0
    assert all(torch.equal(two[k], final[k]) for k in two)
    losses = [[json.loads(ln)["train_loss"] for ln in (tmp_path / n / "metrics.jsonl").read_text().splitlines()]
              for n in ("one", "two")]
    assert len(losses[1]) == 6 and max(abs(a - b) for a, b in zip(*losses)) < 1e-4
    assert json.loads((tmp_path / "two" / "config.json").read_text())["processes"] == 2


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak RSS from /proc")
def test_ten_hours_of_audio_train_in_bounded_memory(tmp_path):
    """10 h at 16 kHz (a 2.3 GB memory-mapped audio.npy, 900,000 frames of 8x8): training reads only the windows
    it draws, so the process stays far below the data's size."""
    spec = AVSpec(sr=16000, fps=25, size=8, channels=1, context_frames=2, context_samples=256)
    clip = tmp_path / "ten_hours"
    clip.mkdir()
    n_frames = 10 * 3600 * 25
    n_samples = spec.frame_start(n_frames)
    audio = np.lib.format.open_memmap(clip / "audio.npy", "w+", np.float32, (n_samples, 1))
    block = np.random.default_rng(0).uniform(-0.5, 0.5, (1 << 22, 1)).astype(np.float32)
    for start in range(0, n_samples, len(block)):
        audio[start:start + len(block)] = block[:n_samples - start]
    audio.flush()
    frames = np.lib.format.open_memmap(clip / "frames.npy", "w+", np.uint8, (n_frames, 8, 8, 3))
    frames[:] = 90
    frames.flush()
    del audio, frames
    (clip / "meta.json").write_text(json.dumps({"source": "generated", "sha256": "-", "sr": 16000, "fps": 25,
                                                "size": 8, "channels": 1, "frames": n_frames,
                                                "samples": n_samples}))
    peak_of_main = ("import sys; from foleylib.interfaces.cli import main; code = main(sys.argv[1:]); "
                    "print(next(ln for ln in open('/proc/self/status') if ln.startswith('VmHWM'))); sys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", peak_of_main, "train", "--arch", "wavenet", "--data", str(clip),
                           "--steps", "4", "--batch-size", "4", "--preset", "tiny", "--val-every", "4", "--quiet",
                           "--context-samples", "256", "--context-frames", "2", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, env=ONE_THREAD)
    assert proc.returncode == 0, proc.stderr[-2000:]
    peak_kib = int(proc.stdout.split("VmHWM:")[1].split()[0])  # the training process's peak resident memory
    assert peak_kib < 4 * 1024 ** 2 and (clip / "audio.npy").stat().st_size > 2 * 1024 ** 3
    print(f"peak RSS {peak_kib / 1024:.0f} MiB for {n_samples / 16000 / 3600:.0f} h of audio")


def test_gpu_options_keep_training_correct_on_cpu(tmp_path, clip_dir):
    clip = load_clip(clip_dir)
    cfg = model_config("wavenet", "tiny", SPEC, loss="ce")

    def weights(name, **options):
        tc = TrainConfig(steps=4, batch_size=2, window=64, val_every=4, seed=5, **options)
        train([clip], cfg, tc, tmp_path / name, progress=False)
        return torch.load(tmp_path / name / "model.pt", weights_only=True)["state_dict"]

    eager = weights("eager")
    workers = weights("workers", workers=2)
    assert all(torch.equal(eager[k], workers[k]) for k in eager)  # workers only fetch; the sampler orders
    bf16 = weights("bf16", precision="bf16")
    drift = max((eager[k].float() - bf16[k].float()).abs().max().item() for k in eager)
    assert 0 < drift < 0.05  # other rounding, the same training
    compiled = weights("compiled", compile=True)
    assert all(torch.allclose(eager[k].float(), compiled[k].float(), atol=1e-4) for k in eager)


def _video_keys(net) -> set[str]:
    """state_dict keys (weights and norm statistics) of the video context embedding, by module type."""
    from foleylib.models.video import FrameEmbedding, VideoEncoder, VideoToAudio

    prefixes = [f"{n}." for n, m in net.named_modules() if isinstance(m, (FrameEmbedding, VideoEncoder, VideoToAudio))]
    return {k for k in net.state_dict() if any(k.startswith(p) for p in prefixes)}


def _weights(run):
    return torch.load(run / "model.pt", weights_only=True)["state_dict"]


FINE_TUNE = [("wavenet", "causal"), ("transformer", "causal"), ("fusion", "paper")]


@pytest.mark.parametrize("arch,mode", FINE_TUNE)
def test_init_copies_a_runs_weights_and_freeze_keeps_one_side_unchanged(tmp_path, clip_dir, arch, mode):
    clip = load_clip(clip_dir)
    cfg = model_config(arch, "tiny", SPEC, loss="ce", mode=mode)
    tc = TrainConfig(steps=3, batch_size=4, window=64, val_every=3, lr=1e-2, seed=1)
    train([clip], cfg, tc, tmp_path / "pre", progress=False)
    pretrained = _weights(tmp_path / "pre")
    net = build_model(cfg)
    record = init_from(net, tmp_path / "pre", SPEC)
    assert all(torch.equal(net.state_dict()[k], pretrained[k]) for k in pretrained)
    assert record == {"run": str(tmp_path / "pre" / "model.pt"), "sha256": sha256_file(tmp_path / "pre" / "model.pt")}
    video = _video_keys(net)
    assert video and set(pretrained) - video and any("running_mean" in k for k in video)
    for part in ("video", "audio"):
        run = tmp_path / part
        train([clip], cfg, replace(tc, freeze=part, seed=2), run, progress=False, init=tmp_path / "pre")
        tuned, frozen = _weights(run), video if part == "video" else set(pretrained) - video
        assert all(torch.equal(tuned[k], pretrained[k]) for k in frozen)  # weights and BatchNorm statistics
        assert any(not torch.equal(tuned[k], pretrained[k]) for k in set(pretrained) - frozen if "weight" in k)
        assert json.loads((run / "config.json").read_text())["init"] == record


def test_resumed_run_keeps_its_freeze_and_augmentation(tmp_path, clip_dir):
    clip = load_clip(clip_dir)
    cfg = model_config("wavenet", "tiny", SPEC, loss="ce")
    train([clip], cfg, TrainConfig(steps=2, batch_size=2, window=64, val_every=2), tmp_path / "pre", progress=False)
    tc = TrainConfig(steps=4, batch_size=4, window=64, val_every=2, checkpoint_every=2, freeze="video",
                     augment="crop,flip,jitter,gain", onset_weight=2.0, lr=1e-2)

    def stop_at_2(record):
        if record["step"] == 2:
            raise RuntimeError("stopped")

    train([clip], cfg, tc, tmp_path / "whole", progress=False, init=tmp_path / "pre")
    with pytest.raises(RuntimeError, match="stopped"):
        train([clip], cfg, tc, tmp_path / "broken", progress=False, init=tmp_path / "pre", log=stop_at_2)
    train([clip], cfg, tc, tmp_path / "broken", progress=False, init=tmp_path / "pre", resume=True)
    whole, broken, pretrained = (_weights(tmp_path / n) for n in ("whole", "broken", "pre"))
    assert all(torch.equal(whole[k], broken[k]) for k in whole)
    assert all(torch.equal(broken[k], pretrained[k]) for k in _video_keys(build_model(cfg)))
    with pytest.raises(InputError, match="started with other train settings"):
        train([clip], cfg, replace(tc, freeze=""), tmp_path / "broken", progress=False, init=tmp_path / "pre",
              resume=True)


def test_video_lookahead_is_recorded_and_needs_rgb_input(tmp_path, clip_dir, capsys):
    def run(out, *extra):
        return main(["train", "--arch", "wavenet", "--data", str(clip_dir), "--steps", "1", "--batch-size", "2",
                     "--window", "64", "--preset", "tiny", "--quiet", "--out", str(tmp_path / out), *extra])

    assert run("ahead", "--video-lookahead", "2") == 0
    assert json.loads((tmp_path / "ahead" / "config.json").read_text())["model"]["video_lookahead"] == 2
    assert load_model(tmp_path / "ahead", "cpu")[0].cfg.video_lookahead == 2
    capsys.readouterr()
    assert run("motion", "--video-lookahead", "1", "--video-input", "rgb+motion") == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: looking ahead needs --video-input rgb (motion is computed causally, frame by frame) " \
                  f"({tmp_path / 'motion'})"
    assert not (tmp_path / "motion" / "config.json").exists()


def test_an_incompatible_or_missing_init_run_is_one_line_exit_2(tmp_path, clip_dir, capsys):
    def run(out, *extra):
        return main(["train", "--arch", "wavenet", "--data", str(clip_dir), "--steps", "1", "--batch-size", "2",
                     "--window", "64", "--preset", "tiny", "--quiet", "--out", str(tmp_path / out), *extra])

    assert run("pre") == 0
    capsys.readouterr()
    for out, extra, reason in [
            ("small", ["--preset", "small"], "cannot start from this run: its model has context_frames 2 (here 3)"),
            ("transformer", ["--arch", "transformer"], "cannot start from this run: its model has arch wavenet"),
            ("mse", ["--loss", "mse"], "cannot start from this run: its model has loss ce (here mse)")]:
        assert run(out, "--init", str(tmp_path / "pre"), *extra) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {reason}") and err.endswith(f"({tmp_path / 'pre' / 'model.pt'})")
        assert len(err.splitlines()) == 1 and not (tmp_path / out / "config.json").exists()
    assert run("nothing", "--init", str(tmp_path)) == 2
    assert capsys.readouterr().err.strip() == f"error: no model.pt (not a run folder?) ({tmp_path})"
    assert run("blur", "--augment", "crop,blur") == 2
    assert capsys.readouterr().err.strip().startswith("error: unknown augmentation blur")
    assert run("same", "--init", str(tmp_path / "pre"), "--loss", "ce", "--seed", "4") == 0  # same model: fine


def test_augmented_training_is_recorded_and_reproducible(tmp_path, clip_dir):
    args = ["train", "--arch", "fusion", "--data", str(clip_dir), "--steps", "2", "--batch-size", "2", "--preset",
            "tiny", "--quiet", "--augment", "crop,flip,jitter,gain", "--onset-weight", "3"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0 and main([*args, "--out", str(tmp_path / "b")]) == 0
    train_config = json.loads((tmp_path / "a" / "config.json").read_text())["train"]
    assert (train_config["augment"], train_config["onset_weight"], train_config["freeze"]) == \
        ("crop,flip,jitter,gain", 3.0, "")
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert main([*args[:-4], "--out", str(tmp_path / "plain")]) == 0
    plain = _weights(tmp_path / "plain")
    assert not all(torch.equal(a[k], plain[k]) for k in a)


def test_video_dropout_is_recorded_changes_training_and_is_refused_out_of_range(tmp_path, clip_dir, capsys):
    args = ["train", "--arch", "wavenet", "--data", str(clip_dir), "--steps", "3", "--batch-size", "4", "--window",
            "64", "--preset", "tiny", "--loss", "ce", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "plain")]) == 0
    assert main([*args, "--video-dropout", "0.5", "--out", str(tmp_path / "dropout")]) == 0
    assert json.loads((tmp_path / "dropout" / "config.json").read_text())["train"]["video_dropout"] == 0.5
    plain, dropout = _weights(tmp_path / "plain"), _weights(tmp_path / "dropout")
    assert not all(torch.equal(plain[k], dropout[k]) for k in plain)
    with pytest.raises(SystemExit) as stop:
        main([*args, "--video-dropout", "1", "--out", str(tmp_path / "bad")])
    assert stop.value.code == 2 and "must be in [0, 1)" in capsys.readouterr().err
    with pytest.raises(ValueError, match="train.video_dropout is out of range"):
        TrainConfig.from_dict({"video_dropout": 1.0})


def test_onset_weights_mark_where_a_sound_starts():
    sr = 8000
    audio = torch.zeros(2, 4000, 2)
    audio[0, 1000:1400] = 0.5  # a burst at 125 ms
    audio[1] = 0.3 * torch.sign(torch.sin(torch.arange(4000.0)))[:, None]  # steady from the start: no onset
    weights = onset_weights(audio, sr, 3.0)
    assert weights.shape == (2, 4000) and set(weights.unique().tolist()) == {1.0, 4.0}
    starts = torch.nonzero(weights[0] > 1).flatten()
    assert 980 <= starts.min() <= 1000 and 1100 < starts.max() < 1400  # the attack and tens of ms after it
    assert (weights[1] == 1).all()
    assert (onset_weights(audio, sr, 0.0) == 1).all()


def test_onset_weights_see_the_same_position_in_every_mode():
    audio = torch.zeros(1, 3000, 1)
    audio[0, 2000:] = 0.4
    causal = position_weights({"target": audio, "warmup": torch.tensor([0])}, 8000, 2.0)
    paper = position_weights({"audio": audio[:, 1000:2001], "target": audio[:, 2001]}, 8000, 2.0)
    fusion = position_weights({"audio": audio[:, 1000:2000], "target": audio[:, 2000:2320]}, 8000, 2.0)
    assert paper.shape == (1,) and paper[0] == causal[0, 2001] == 3.0
    assert torch.equal(fusion, causal[:, 2000:2320])
    assert position_weights({"target": audio}, 8000, 0.0) is None


@pytest.mark.slow
def test_two_processes_fine_tune_like_one_with_freeze_and_augmentation(tmp_path, clip_dir):
    common = ["--arch", "wavenet", "--data", str(clip_dir), "--batch-size", "4", "--window", "64", "--preset", "tiny",
              "--norm", "group", "--val-every", "3", "--quiet"]
    assert main(["train", *common, "--steps", "2", "--out", str(tmp_path / "pre")]) == 0
    tune = [*common, "--steps", "4", "--init", str(tmp_path / "pre"), "--freeze", "video", "--augment",
            "crop,flip,jitter,gain", "--seed", "5"]
    for name, extra in (("one", []), ("two", ["--nproc", "2"])):
        proc = subprocess.run([sys.executable, "-m", "foleylib", "train", *tune, *extra, "--out", tmp_path / name],
                              capture_output=True, text=True, env=ONE_THREAD)
        assert proc.returncode == 0, proc.stderr[-2000:]
    one, two, pretrained = (_weights(tmp_path / n) for n in ("one", "two", "pre"))
    assert all(torch.allclose(one[k], two[k], atol=1e-5) for k in one)  # each process augments its rows alike
    video = _video_keys(build_model(model_config("wavenet", "tiny", SPEC, norm="group")))
    assert all(torch.equal(two[k], pretrained[k]) for k in video)
    assert not all(torch.equal(two[k], pretrained[k]) for k in set(two) - video)


@pytest.mark.parametrize("arch, mode", [("wavenet", "causal"), ("transformer", "paper"), ("fusion", "paper")])
def test_a_held_out_span_is_never_read_by_training_examples(tmp_path, arch, mode):
    """--val-span: frames before and after the span train, and no training example reads (as target, audio
    history or video context) a sample or frame of the span; the span's examples validate."""
    spec = AVSpec(sr=1000, fps=25, size=8, context_frames=2, context_samples=24)  # 40 samples per frame
    frames, spf = 60, 40
    folder = tmp_path / "clip"
    folder.mkdir()
    np.save(folder / "audio.npy", (np.arange(frames * spf, dtype=np.float32) / 4096)[:, None])  # sample i: i/4096
    np.save(folder / "frames.npy", np.repeat(np.arange(1, frames + 1, dtype=np.uint8), 8 * 8 * 3).reshape(
        frames, 8, 8, 3))  # frame k: k + 1 (black padding reads 0)
    write_json(folder / "meta.json", {"source": "x.mp4", "sha256": "0" * 64, "sr": 1000, "fps": 25, "size": 8,
                                      "channels": 1, "frames": frames, "samples": frames * spf})
    clip = load_clip(folder)
    model = build_model(model_config(arch, "tiny", spec, mode=mode, loss="mse"))
    train_ds, val_ds = split_datasets([clip], spec, model, 64, 0.25, val_end=0.5)  # frames 15 .. 29 validate
    span_samples, span_frames = range(15 * spf, 30 * spf), range(16, 31)
    read_after = []
    for item in (train_ds[j] for j in range(len(train_ds))):
        samples = {round(float(v) * 4096) for key in ("audio", "audio_in", "target") if key in item
                   for v in item[key].flatten()}
        video, index = item["video"], item.get("frame_index")
        seen = video if index is None else video[max(0, int(index.min()) - 1):int(index.max()) + 1]  # n = 2
        pictures = set(seen.flatten().tolist())
        assert not samples & set(span_samples) and not pictures & set(span_frames), arch
        read_after.append(min(samples) >= span_samples.stop)
    assert any(read_after) and not all(read_after)  # both sides of the span train
    scored = [val_ds[j]["target"][int(val_ds[j].get("warmup", 0)):] for j in range(len(val_ds))]
    targets = {round(float(v) * 4096) for target in scored for v in target.flatten()}
    assert targets <= set(span_samples) and len(targets) > spf


def test_val_span_through_the_cli(tmp_path, clip_dir, capsys):
    common = ["train", "--arch", "wavenet", "--preset", "tiny", "--data", str(clip_dir), "--steps", "1",
              "--batch-size", "2", "--window", "64", "--quiet"]
    assert main([*common, "--val-span", "0.4,0.6", "--out", str(tmp_path / "run")]) == 0
    train_cfg = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert train_cfg["val_end"] == 0.6 and train_cfg["val_fraction"] == pytest.approx(0.2)
    capsys.readouterr()
    for span in ("0.6,0.4", "0,1", "half"):
        with pytest.raises(SystemExit) as stop:
            main([*common, "--val-span", span, "--out", str(tmp_path / "bad")])
        assert stop.value.code == 2 and "--val-span" in capsys.readouterr().err
    assert main([*common, "--val-span", "0.2,0.4", "--val-data", str(clip_dir), "--out", str(tmp_path / "bad")]) == 2
    assert "--val-span holds out part of each --data clip" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_a_run_config_with_a_span_outside_the_clip_is_refused():
    assert TrainConfig.from_dict({"val_fraction": 0.2, "val_end": 0.6}).val_end == 0.6
    for end in (0.1, 1.5):
        with pytest.raises(ValueError, match="train.val_end is out of range"):
            TrainConfig.from_dict({"val_fraction": 0.2, "val_end": end})
