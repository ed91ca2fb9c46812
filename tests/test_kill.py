"""SIGKILL at seeded points of ingest, train, a resumed train, generate and a `foley table` batch (20 kills in all):
every output either exists whole and valid or does not exist (outputs are written under temporary names, hidden
dot-files, and renamed), and a run killed again and again resumes to the very weights of an unbroken one."""
import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from conftest import make_video

from foleylib.core.errors import InputError
from foleylib.data.dataset import load_clip
from foleylib.data.media import probe, read_audio

KILLS_PER_COMMAND = 4
TINY_TRAIN = ["train", "--arch", "wavenet", "--preset", "tiny", "--batch-size", "2", "--window", "64",
              "--checkpoint-every", "3", "--quiet"]


def foley_killed_after(args, seconds):
    """Run `foley ARGS` and SIGKILL it after `seconds` (it may finish before)."""
    proc = subprocess.Popen([sys.executable, "-m", "foleylib", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return proc.returncode


def kill_points(total, seed):
    return np.random.default_rng(seed).uniform(0.3, total, KILLS_PER_COMMAND)


def _check_media(path: Path) -> None:
    try:
        info = probe(path)
    except InputError as err:
        pytest.fail(f"a broken {path.name}: {err}")
    assert info.has_audio


CHECKS = {  # suffix -> a reader that fails on a partial file
    ".json": lambda p: json.loads(p.read_text()),
    ".jsonl": lambda p: [json.loads(ln) for ln in p.read_text().splitlines()],
    ".ipynb": lambda p: nbformat.validate(nbformat.read(p, as_version=4)),
    ".csv": lambda p: list(csv.DictReader(p.open())),
    ".md": lambda p: p.read_text().startswith("#") or pytest.fail(f"{p} is not whole"),
    ".npy": lambda p: np.load(p, mmap_mode="r"),
    ".pt": lambda p: torch.load(p, weights_only=True),
    ".mp4": _check_media,
    ".wav": _check_media,
}


def assert_outputs_whole(root: Path) -> int:
    """Read back every visible file under `root` by its kind, and every aligned clip folder; returns the count."""
    files = [p for p in root.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.parts)]
    for path in files:
        CHECKS.get(path.suffix, lambda p: None)(path)
        if path.name == "meta.json":
            load_clip(path.parent)  # meta.json and both arrays, consistent
    return len(files)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("kill") / "long.mp4", seconds=8, size="320x240")


@pytest.fixture(scope="module")
def long_clip(long_video, tmp_path_factory):
    aligned = tmp_path_factory.mktemp("kill_aligned")
    assert foley_killed_after(["ingest", long_video, "--out", aligned, "--sr", "8000", "--size", "32"], 120) == 0
    return aligned / "long"


def test_killed_ingest_leaves_a_whole_clip_or_none(long_video, tmp_path):
    for k, at in enumerate(kill_points(6.0, 1)):
        out = tmp_path / f"aligned{k}"
        foley_killed_after(["ingest", long_video, "--out", out, "--sr", "8000", "--size", "32"], at)
        if (out / "long").exists():
            clip = load_clip(out / "long")
            assert clip.meta["frames"] == 200 and len(clip.audio) == 64000
        if out.exists():
            assert_outputs_whole(out)


def test_killed_training_leaves_loadable_checkpoints_or_none(long_clip, tmp_path):
    for k, at in enumerate(kill_points(10.0, 2)):
        run = tmp_path / f"run{k}"
        foley_killed_after([*TINY_TRAIN, "--steps", "400", "--data", long_clip, "--out", run], at)
        if run.exists():
            assert_outputs_whole(run)
        if (run / "config.json").exists():
            assert json.loads((run / "config.json").read_text())["model"]["arch"] == "wavenet"


@pytest.mark.slow
def test_killed_resumes_end_with_the_weights_of_an_unbroken_run(long_clip, tmp_path):
    args = [*TINY_TRAIN, "--steps", "1000", "--data", long_clip]
    run = tmp_path / "killed"
    codes = []
    for k, at in enumerate(kill_points(9.0, 4) + 3.0):  # past start-up: most kills land inside training
        codes.append(foley_killed_after([*args, "--out", run, *(["--resume"] if k else [])], at))
        if run.exists():
            assert_outputs_whole(run)
    assert -signal.SIGKILL in codes, "every run finished before its kill: the test checked nothing"
    assert foley_killed_after([*args, "--out", run, "--resume"], 600) == 0
    assert foley_killed_after([*args, "--out", tmp_path / "unbroken"], 600) == 0
    killed = torch.load(run / "model.pt", weights_only=True)["state_dict"]
    unbroken = torch.load(tmp_path / "unbroken" / "model.pt", weights_only=True)["state_dict"]
    assert killed.keys() == unbroken.keys()
    assert all(torch.equal(killed[name], unbroken[name]) for name in killed)


def test_killed_generation_leaves_whole_media_or_none(long_video, tmp_path, runs):
    for k, at in enumerate(kill_points(8.0, 3)):
        out, wav = tmp_path / f"dub{k}.mp4", tmp_path / f"dub{k}.wav"
        t0 = time.monotonic()
        code = foley_killed_after(["generate", long_video, "--ckpt", runs / "wavenet", "--out", out, "--wav", wav,
                                   "--quiet", "--method", "naive"], at)
        if code == 0:
            continue  # finished in time: nothing to check here (test_dub checks whole runs)
        for path in (out, wav):
            if path.exists():
                _check_media(path)
                assert probe(path).duration > 7.5, f"killed after {time.monotonic() - t0:.1f} s"
        if wav.exists():
            assert len(read_audio(wav, 8000, 2)) == 64000


@pytest.mark.slow
def test_killed_table_batch_leaves_whole_tables_and_notebooks_or_none(tmp_path):
    args = ["table", "--scenes", "clap", "--archs", "fusion", "--preset", "tiny", "--steps", "2", "--gen-seconds",
            "0.2", "--seconds", "3"]
    codes = []
    for k, at in enumerate(kill_points(25.0, 5)):
        out = tmp_path / f"table{k}"
        codes.append(code := foley_killed_after([*args, "--out", out], at))
        if out.exists():
            assert_outputs_whole(out)
        if code == 0:
            assert (out / "table1.csv").exists() and (out / "runs" / "clap_fusion.ipynb").exists()
    assert -signal.SIGKILL in codes, "every batch finished before its kill: the test checked nothing"
