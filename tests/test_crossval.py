"""foley crossval: leave-one-clip-out over groups of clips, with twins, baselines and bootstrap intervals."""
import json

import numpy as np
import pytest
import torch
from test_cli import foley

from foleylib.core.config import AVSpec
from foleylib.core.errors import InputError
from foleylib.data.dataset import load_clip
from foleylib.data.media import read_audio
from foleylib.data.motion import has_cache
from foleylib.data.synth import render_scenes
from foleylib.evaluation import crossval
from foleylib.evaluation.crossval import (
    METRICS,
    SYSTEMS,
    TWINS,
    CrossvalConfig,
    check_train_args,
    clip_groups,
    mean_over_takes,
    train_options,
)
from foleylib.evaluation.evaluate import score_generated
from foleylib.evaluation.notebook import fmt_cell
from foleylib.interfaces.cli import main

TINY = ["--preset", "tiny", "--steps", "2", "--batch-size", "2", "--resamples", "200"]


@pytest.fixture(scope="module")
def claps(tmp_path_factory):
    """Three 2 s clap scenes with their own timing and colours (clap-0 .. clap-2)."""
    out = tmp_path_factory.mktemp("claps")
    return [scene["video"] for scene in render_scenes("clap", out, 3, seconds=2.0)]


def test_clip_groups_by_regex_mapping_or_all(tmp_path):
    names = ["drum-0", "drum-1", "tennis-a", "tennis-b"]
    assert clip_groups(names, "all") == dict.fromkeys(names, "all")
    assert clip_groups(names, r"^([a-z]+)-") == {"drum-0": "drum", "drum-1": "drum", "tennis-a": "tennis",
                                                 "tennis-b": "tennis"}
    assert clip_groups(names, "drum|tennis")["tennis-b"] == "tennis"  # no capture group: the whole match
    mapping = tmp_path / "groups.json"
    mapping.write_text(json.dumps({"drum-0.mp4": "a", "drum-1": "a", "tennis-a": "b", "tennis-b.mov": "b"}))
    assert clip_groups(names, str(mapping)) == {"drum-0": "a", "drum-1": "a", "tennis-a": "b", "tennis-b": "b"}
    rows = tmp_path / "groups.csv"
    rows.write_text("drum-0,x\ndrum-1,x\ntennis-a,x\ntennis-b,y\n")
    with pytest.raises(InputError, match="group 'y' has one clip \\(tennis-b\\)"):
        clip_groups(names, str(rows))
    with pytest.raises(InputError, match="does not match clip 'tennis-a'"):
        clip_groups(names, "drum")
    with pytest.raises(InputError, match="no group for clip 'tennis-b'"):
        mapping.write_text(json.dumps({"drum-0": "a", "drum-1": "a", "tennis-a": "a"}))
        clip_groups(names, str(mapping))
    with pytest.raises(InputError, match="regular expression"):
        clip_groups(names, "(unclosed")


def test_train_options_pass_through_and_are_checked(tmp_path):
    args = train_options("--video-input motion --augment flip", steps=7, arch=None)
    assert args[:2] == ("--arch", "wavenet") and args[args.index("--steps") + 1] == "7"
    assert args[-4:] == ("--video-input", "motion", "--augment", "flip")
    check_train_args(args, tmp_path)
    with pytest.raises(InputError, match="may not set --data"):
        check_train_args(train_options("--data elsewhere"), tmp_path)
    with pytest.raises(InputError, match="unrecognized arguments: --wings"):
        check_train_args(train_options("--wings 2"), tmp_path)
    with pytest.raises(InputError, match="--train-args"):
        train_options("'unclosed")


def test_folds_that_read_motion_ingest_their_videos_with_the_motion_cache(claps, tmp_path):
    assert not CrossvalConfig().reads_motion()
    reading = CrossvalConfig(train_args=train_options("--video-input rgb+motion"))
    assert reading.reads_motion()
    for cached in (False, True):
        clips = crossval.prepare_clips(claps[:1], tmp_path / str(cached), AVSpec(), print, motion_cache=cached)
        clip = next(iter(clips.values()))
        assert has_cache(clip.meta, clip.path) == cached


def _interval_holds_mean(b):
    return b is None or b["lo"] - 1e-12 <= b["mean"] <= b["hi"] + 1e-12


@pytest.mark.slow
def test_foley_crossval_on_three_clips(claps, tmp_path):
    out = tmp_path / "cv"
    args = ["crossval", *claps, "--group-by", "^([a-z]+)-", *TINY, "--out", out]
    proc = foley(*args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((out / "crossval.json").read_text())
    # CondFoleyGen's AP scores silence 1.0 wherever the truth has onsets, the strict one 0.0
    silence = [f["scores"]["silence"] for f in report["folds"]]
    assert all(s["condfoleygen_ap"] in (1.0, None) and s["onset_ap"] in (0.0, None) for s in silence)
    assert report["groups"] == {"clap": ["clap-0", "clap-1", "clap-2"]}
    assert [f["clip"] for f in report["folds"]] == ["clap-0", "clap-1", "clap-2"]
    for fold in report["folds"]:
        assert fold["settings"]["train_clips"] == sorted({"clap-0", "clap-1", "clap-2"} - {fold["clip"]})
        assert fold["seconds"] == pytest.approx(2.0) and fold["start_s"] == 0.0  # the whole held-out clip
        assert set(fold["scores"]) == set(SYSTEMS) and all(set(METRICS) <= set(s) for s in fold["scores"].values())
        assert fold["scores"]["silence"]["rms_db"] == -80.0 and fold["val_loss"] > 0
        assert fold["scores"]["model"]["fad"] > 0  # untrained: nothing like the claps
        for twin in ("model", *TWINS):  # teacher-forced NLL near a uniform guess's ln 256 = 5.55 after 2 steps
            assert 4 < fold["scores"][twin]["nll"] < 7 and 4 < fold["scores"][twin]["onset_nll"] < 7
        assert all(fold["scores"][s]["nll"] is None for s in SYSTEMS if s not in ("model", *TWINS))
        assert sorted(p.name for p in (out / "folds" / fold["clip"] / "audio").iterdir()) == sorted(
            f"{s}.wav" for s in SYSTEMS)
    summary = report["summary"]
    for system in SYSTEMS:
        for metric in METRICS:
            b = summary["means"][system][metric]
            assert _interval_holds_mean(b), (system, metric, b)
            values = [f["scores"][system][metric] for f in report["folds"]]
            if b is not None:
                assert b["n"] == sum(v is not None for v in values)
                assert min(v for v in values if v is not None) <= b["lo"] <= b["hi"] <= max(
                    v for v in values if v is not None)
    assert set(summary["model_minus"]) == set(TWINS)
    assert all(_interval_holds_mean(b) for twin in TWINS for b in summary["model_minus"][twin].values())
    assert set(report["group_fad"]["clap"]) == set(SYSTEMS)
    md = (out / "crossval.md").read_text()
    assert md.count("| clap-1 | clap | 2.00 |") == len(METRICS)  # one row per clip in each per-metric table
    assert "| model - video_shuffled |" in md and "| model - video_zeroed |" in md
    assert md.count("| mean [95%] |") == len(METRICS) and "## FAD over each group" in md
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    # the tables are replaced only with --force; then every fold is reused and the tables come out the same
    same = foley(*args)
    assert same.returncode == 2 and "output exists" in same.stderr
    again = foley(*args, "--force")
    assert again.returncode == 0 and again.stdout.count("reused the finished fold") == 3
    assert json.loads((out / "crossval.json").read_text())["folds"] == report["folds"]
    # folds run with other settings are redone only with --force
    (out / "crossval.md").unlink()
    (out / "crossval.json").unlink()
    other = foley(*args, "--seed", "1")
    assert other.returncode == 2 and "fold clap-0 was run with other settings" in other.stderr


def test_foley_crossval_refuses_bad_input_up_front(claps, tmp_path, capsys):
    out = tmp_path / "cv"

    def refused(*args) -> str:
        assert main(["crossval", *map(str, args), *TINY, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        return err.strip()

    mapping = tmp_path / "groups.json"
    mapping.write_text(json.dumps({"clap-0": "a", "clap-1": "a", "clap-2": "b"}))
    assert refused(*claps, "--group-by", mapping) == (
        f"error: group 'b' has one clip (clap-2); leave-one-clip-out needs two or more ({mapping})")
    assert refused(claps[0], tmp_path / "gone.mp4") == f"error: no such file or folder ({tmp_path / 'gone.mp4'})"
    assert "unrecognized arguments: --wings" in refused(*claps, "--train-args=--wings 2")
    assert not out.exists()  # nothing written


def test_mean_over_takes_by_hand():
    takes = [{"f1": 1.0, "ap": None, "fad": None}, {"f1": 0.0, "ap": 0.5, "fad": None}, {"f1": 0.5, "ap": 1.0,
                                                                                       "fad": None}]
    assert mean_over_takes(takes) == {"f1": 0.5, "ap": 0.75, "fad": None}


def test_takes_score_the_mean_of_their_takes(claps, tmp_path, monkeypatch):
    """With --takes 2, a clip's scores are the mean of its takes' scores: here take 0 (seed 0) is silence and take
    1 the true audio, so every metric lies halfway between the two."""
    def fake_free_running(model, clip, spec, part, n_frames, seed, prior=None, **sampling):
        true = np.asarray(clip.audio[spec.frame_start(part.start):spec.frame_start(part.start + n_frames)])
        return {name: true if seed == 1 else np.zeros_like(true) for name in SYSTEMS}, 1.0

    monkeypatch.setattr(crossval, "free_running", fake_free_running)
    cfg = CrossvalConfig(train_args=train_options(preset="tiny", steps=2, batch_size=2), takes=2, resamples=200)
    threads = torch.get_num_threads()
    report = crossval.run_crossval(claps[:2], tmp_path / "cv", cfg=cfg)
    assert torch.get_num_threads() == threads  # the folds' one thread is not left behind
    assert "scores averaged over 2 takes (seeds 0..1)" in report["header"]
    for fold in report["folds"]:
        assert fold["settings"]["takes"] == 2
        clip = load_clip(tmp_path / "cv" / "data" / "aligned" / fold["clip"])
        one = {"silence": np.zeros_like(np.asarray(clip.audio)), "true": np.asarray(clip.audio)}
        by_take = score_generated(one, clip, clip.spec, 0)[0]
        for metric in ("onset_f1", "logmel_db", "envelope_corr"):
            values = [by_take[k][metric] for k in one if by_take[k][metric] is not None]
            assert fold["scores"]["model"][metric] == pytest.approx(np.mean(values)), metric
        assert by_take["silence"]["onset_f1"] != by_take["true"]["onset_f1"]  # the takes differ


def test_also_train_clips_train_every_fold_and_are_never_held_out(claps, tmp_path, monkeypatch, capsys):
    """Also: the sampling options reach every generation of the folds and are recorded."""
    samplings = []

    def silent(model, clip, spec, part, n_frames, seed, prior=None, **sampling):
        samplings.append(sampling)
        n = spec.frame_start(part.start + n_frames) - spec.frame_start(part.start)
        return {name: np.zeros((n, spec.channels), np.float32) for name in SYSTEMS}, 1.0

    monkeypatch.setattr(crossval, "free_running", silent)
    out = tmp_path / "cv"
    assert main(["crossval", *map(str, claps[:2]), "--also-train", str(claps[2]), *TINY, "--out", str(out),
                 "--guidance", "2", "--temperature", "0.8", "--top-p", "0.9"]) == 0
    report = json.loads((out / "crossval.json").read_text())
    sampling = {"guidance": 2.0, "temperature": 0.8, "top_p": 0.9}
    assert samplings == [sampling, sampling] and [f["settings"] for f in report["folds"]] == [
        f["settings"] | sampling for f in report["folds"]]
    assert "classifier-free guidance 2" in report["header"] and "sampled at temperature 0.8" in report["header"]
    assert "from the nucleus holding 0.9 of the probability" in report["header"]
    assert [f["clip"] for f in report["folds"]] == ["clap-0", "clap-1"] and report["also_train"] == ["clap-2"]
    assert [f["settings"]["train_clips"] for f in report["folds"]] == [["clap-1", "clap-2"], ["clap-0", "clap-2"]]
    assert "1 more clip(s) in every training set" in report["header"]
    assert json.loads((out / "folds" / "clap-0" / "run" / "config.json").read_text())["data"] == [
        str(out / "data" / "aligned" / name) for name in ("clap-1", "clap-2")]
    capsys.readouterr()
    assert main(["crossval", *map(str, claps[:2]), "--also-train", str(claps[1]), *TINY, "--out",
                 str(tmp_path / "clash")]) == 2
    assert "clip 'clap-1' is both held out and in --also-train" in capsys.readouterr().err


def test_a_fold_that_only_generates_otherwise_reuses_its_trained_runs(claps, tmp_path, capsys):
    out = tmp_path / "cv"
    args = ["crossval", *map(str, claps[:2]), "--mode", "finetune", "--segments", "2", "--finetune-steps", "2", *TINY,
            "--out", str(out)]
    assert main(args) == 0
    weights = {path: path.read_bytes() for path in (out / "folds").rglob("model.pt")}
    assert len(weights) == 6  # each fold's pretrained run and its two fine-tuned ones
    first = json.loads((out / "crossval.json").read_text())
    capsys.readouterr()
    assert main([*args, "--temperature", "0.5", "--takes", "2", "--force"]) == 0
    assert capsys.readouterr().out.count("reused its runs") == 2
    assert {path: path.read_bytes() for path in (out / "folds").rglob("model.pt")} == weights
    again = json.loads((out / "crossval.json").read_text())
    for before, after in zip(first["folds"], again["folds"]):
        assert after["reused_runs"] and after["settings"]["temperature"] == 0.5 and after["settings"]["takes"] == 2
        assert after["val_loss"] == before["val_loss"]  # the same runs' records
        assert after["scores"]["model"]["onset_f1"] != before["scores"]["model"]["onset_f1"] or \
            after["scores"]["model"]["logmel_db"] != before["scores"]["model"]["logmel_db"]  # generated anew
    assert main([*args[:-2], "--finetune-steps", "3", "--out", str(out), "--force"]) == 0  # training changed
    assert "reused its runs" not in capsys.readouterr().out
    assert not any(f["reused_runs"] for f in json.loads((out / "crossval.json").read_text())["folds"])


def test_segments_score_the_whole_held_out_clip(claps, tmp_path, capsys):
    """--mode finetune --segments 2: each half of the held-out clip is generated by the pretrained model
    fine-tuned on the other half (with --finetune-args: the audio side frozen), and the clip's scores are the
    mean of its halves'."""
    out = tmp_path / "cv"
    assert main(["crossval", *map(str, claps[:2]), "--mode", "finetune", "--segments", "2", "--finetune-steps",
                 "2", "--finetune-args=--freeze audio", *TINY, "--out", str(out)]) == 0
    report = json.loads((out / "crossval.json").read_text())
    assert "generated whole in 2 segments" in report["header"]
    assert "fine-tuned with `--freeze audio` too" in report["header"]
    for fold in report["folds"]:
        assert fold["settings"]["segments"] == 2 and fold["settings"]["finetune_args"] == ["--freeze", "audio"]
        pretrained = json.loads((out / "folds" / fold["clip"] / "run" / "config.json").read_text())["train"]
        assert pretrained["freeze"] == ""
        assert fold["start_s"] == 0.0 and fold["seconds"] == pytest.approx(2.0)
        assert [s["start_s"] for s in fold["segments"]] == [0.0, 1.0]
        for j, segment in enumerate(fold["segments"]):
            train = json.loads((out / "folds" / fold["clip"] / "finetune" / f"segment{j}" / "config.json")
                               .read_text())["train"]
            assert (train["val_end"], train["val_fraction"]) == (pytest.approx((j + 1) / 2), pytest.approx(0.5))
            assert train["freeze"] == "audio"
            assert segment["seconds"] == pytest.approx(1.0) and segment["val_loss"] > 0
        for metric in ("onset_f1", "logmel_db", "nll"):
            halves = [s["scores"]["model"][metric] for s in fold["segments"]]
            halves = [v for v in halves if v is not None]
            assert fold["scores"]["model"][metric] == pytest.approx(np.mean(halves)), metric
        model = load_clip(out / "data" / "aligned" / fold["clip"])
        audio = read_audio(out / "folds" / fold["clip"] / "audio" / "model.wav", model.spec.sr, 1)
        assert len(audio) == len(model.audio)  # the halves end to end
        scores = [(s["scores"]["model"]["onset_f1"], s["scores"]["video_shuffled"]["onset_f1"])
                  for s in fold["segments"]]
        row = f"| {fold['clip']} | " + " | ".join(f"{fmt_cell(a)} / {fmt_cell(b)}" for a, b in scores)
        assert row in (out / "crossval.md").read_text()
    for args, message in ((["--segments", "2"], "segments apply to mode finetune"),
                          (["--mode", "finetune", "--segments", "2", "--train-args=--val-span 0,0.5"],
                           "--train-args may not set --val-span"),
                          (["--finetune-args=--freeze audio"], "--finetune-args apply to mode finetune"),
                          (["--mode", "finetune", "--finetune-args=--init elsewhere"],
                           "--finetune-args may not set --init"),
                          (["--mode", "finetune", "--finetune-args=--freeze wings"],
                           "foley train refuses these options")):
        assert main(["crossval", *map(str, claps[:2]), *args, *TINY, "--out", str(tmp_path / "bad")]) == 2
        assert message in capsys.readouterr().err


def test_repeats_average_folds_trained_with_each_seed(claps, tmp_path, capsys):
    """--repeats 2: every fold is trained and scored with seeds 0 and 1 (each as --seed alone would), a clip's
    scores are the means over both, and the report keeps each seed's scores and summary."""
    out, alone = tmp_path / "cv", tmp_path / "seed1"
    args = ["crossval", *map(str, claps[:2]), *TINY, "--takes", "2"]
    assert main([*args, "--repeats", "2", "--out", str(out)]) == 0
    assert "above its shuffled-video twin's on" in capsys.readouterr().out
    assert main([*args, "--seed", "1", "--out", str(alone)]) == 0
    report, single = (json.loads((d / "crossval.json").read_text()) for d in (out, alone))
    assert "every fold trained 2 times (seeds 0..1)" in report["header"] and report["config"]["repeats"] == 2
    assert "2 takes (seeds S..S+1 in the repeat of seed S)" in report["header"]
    for fold, one in zip(report["folds"], single["folds"]):
        seeds = [json.loads((out / "folds" / fold["clip"] / f"seed{s}" / "fold.json").read_text()) for s in (0, 1)]
        assert [f["settings"]["seed"] for f in seeds] == [0, 1] and fold["settings"]["seeds"] == [0, 1]
        assert seeds[1]["scores"] == one["scores"]  # the second repeat is the run with --seed 1
        assert [r["scores"] for r in fold["repeats"]] == [f["scores"] for f in seeds]
        for system in SYSTEMS:
            for metric in ("onset_f1", "logmel_db", "fad"):
                values = [f["scores"][system][metric] for f in seeds if f["scores"][system][metric] is not None]
                mean = fold["scores"][system][metric]
                assert mean is None if not values else mean == pytest.approx(np.mean(values)), (system, metric)
    for summary, folds in ((report["summary"], report["folds"]), (report["per_seed"]["1"], single["folds"])):
        pairs = [(f["scores"]["model"]["onset_f1"], f["scores"]["video_shuffled"]["onset_f1"]) for f in folds]
        assert summary["above"]["video_shuffled"] == {"clips": sum(a > b for a, b in pairs),
                                                      "ties": sum(a == b for a, b in pairs), "of": 2}
    assert report["per_seed"]["1"]["means"] == single["summary"]["means"]
    embeddings = [np.load(out / "folds" / c / f"seed{s}" / "embeddings.npz") for c in ("clap-0", "clap-1")
                  for s in (0, 1)]
    pooled = {name: np.concatenate([e[name] for e in embeddings]) for name in ("model", "reference")}
    assert report["group_fad"]["all"]["model"] == pytest.approx(
        crossval.embedding_distance(pooled["model"], pooled["reference"]))
    md = (out / "crossval.md").read_text()
    fold = report["folds"][0]
    cells = [(r["scores"]["model"]["onset_f1"], r["scores"]["video_shuffled"]["onset_f1"]) for r in fold["repeats"]]
    above = sum(a > b for a, b in cells)
    assert (f"| clap-0 | {fmt_cell(cells[0][0])} / {fmt_cell(cells[0][1])} | {fmt_cell(cells[1][0])} / "
            f"{fmt_cell(cells[1][1])} | {above} of 2 | {fmt_cell(fold['scores']['model']['onset_f1'])} / "
            f"{fmt_cell(fold['scores']['video_shuffled']['onset_f1'])} |") in md
    assert "Trained with seed 1 alone, it is above its shuffled twin's on" in md
    assert main([*args, "--repeats", "2", "--out", str(out), "--force"]) == 0  # every fold reused
    assert capsys.readouterr().out.count("reused the finished fold") == 4
