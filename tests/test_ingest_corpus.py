"""Ingest of a corpus: `--jobs` (worker threads) makes the clips one at a time makes, and `--fast-resize` (ffmpeg's
area scaler) stays near cv2's INTER_AREA. Media made on the spot (synthetic scenes, test patterns)."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_video

from foleylib.core.config import AVSpec
from foleylib.data.align import ingest, ingest_file
from foleylib.data.dataset import load_clip
from foleylib.data.media import iter_frames
from foleylib.data.synth import render_scene

SPEC = AVSpec(size=32)  # the CLI's defaults but the size
FAST_MEAN_LEVELS, FAST_MAX_LEVELS = 0.05, 2  # fast vs exact resize of a synthetic scene, uint8 levels (README)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Three small synthetic scenes (clap, car, water) of 1.5 s."""
    out = tmp_path_factory.mktemp("scenes")
    return [render_scene(kind, out, seconds=1.5, seed=k, width=320, height=180)["video"]
            for k, kind in enumerate(("clap", "car", "water"))]


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_jobs_2_makes_the_clips_of_jobs_1_and_reports_a_bad_file_in_order(tmp_path, scenes):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video\n")
    sources = [scenes[0], bad, scenes[1], scenes[2]]
    one, two = tmp_path / "one", tmp_path / "two"
    results, errors = ingest(sources, one, SPEC, motion_cache=True)  # the motion's flows on worker threads too
    assert [r.source for r in results] == [scenes[0], scenes[1], scenes[2]] and len(errors) == 1
    proc = subprocess.run([sys.executable, "-m", "foleylib", "ingest", *map(str, sources), "--out", str(two),
                           "--size", "32", "--jobs", "2", "--motion"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {errors[0]}"]  # one line, the same as one at a time
    reported = [line.split(" -> ")[0] for line in proc.stdout.splitlines() if line.startswith("ingested: ")]
    assert reported == [f"ingested: {s}" for s in (scenes[0], scenes[1], scenes[2])]  # in input order
    assert sorted(p.name for p in two.iterdir()) == ["car", "clap", "manifest.json", "water"]  # no temp leftovers
    assert (two / "car" / "motion.npy").exists() and _files(two) == _files(one)  # byte for byte, meta.json too


def test_jobs_name_sources_of_one_stem_as_one_at_a_time(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    a = make_video(tmp_path / "a" / "take.mp4", seconds=1.0, freq=300)
    b = make_video(tmp_path / "b" / "take.mp4", seconds=1.0, freq=600)
    serial = [r.clip_dir.name for r in ingest([a, b, a], tmp_path / "one", SPEC)[0]]
    parallel = [r.clip_dir.name for r in ingest([a, b, a], tmp_path / "two", SPEC, jobs=0)[0]]
    assert parallel == serial and serial[0] == serial[2] == "take" and serial[1].startswith("take-")
    assert [r.status for r in ingest([a, b], tmp_path / "two", SPEC, jobs=2)[0]] == ["skipped", "skipped"]


def test_ctrl_c_stops_every_job_and_leaves_whole_clips_or_none(tmp_path):
    """The command runs as from a terminal, SIGINT at its default whatever the suite inherited (a suite started in
    the background by a shell without job control ignores SIGINT, and so would the command)."""
    first = make_video(tmp_path / "long0.mp4", seconds=8.0, size="320x240")
    videos = [first] + [Path(shutil.copy(first, tmp_path / f"long{k}.mp4")) for k in range(1, 4)]
    out = tmp_path / "aligned"
    proc = subprocess.Popen([sys.executable, "-m", "foleylib", "ingest", *map(str, videos), "--out", str(out),
                             "--size", "32", "--jobs", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not list(out.glob(".*.tmp")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the command and its workers
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and stderr.strip() == "error: interrupted"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp folders left
    assert not (out / "manifest.json").exists()  # as one at a time: no manifest of a stopped batch
    for clip in out.iterdir():  # a clip finished before the interrupt is whole
        assert load_clip(clip).meta["frames"] == 200


def test_fast_resize_is_near_the_exact_one(tmp_path):
    video = render_scene("clap", tmp_path, seconds=2.0, seed=3)["video"]  # 640x360 to 64x64, as ingest does
    exact = np.stack(list(iter_frames(video, fps=25, size=64)))
    fast = np.stack(list(iter_frames(video, fps=25, size=64, resize="ffmpeg")))
    assert fast.shape == exact.shape == (50, 64, 64, 3)
    diff = np.abs(fast.astype(int) - exact)
    assert 0 < diff.mean() < FAST_MEAN_LEVELS and diff.max() <= FAST_MAX_LEVELS  # near, yet not cv2 under a new name


def test_meta_records_the_resize_and_another_resize_re_ingests(tmp_path, good_video):
    out = tmp_path / "aligned"
    exact = ingest_file(good_video, out, SPEC)
    assert exact.meta["resize"] == "cv2"
    fast = ingest_file(good_video, out, SPEC, resize="ffmpeg")
    assert fast.status == "ingested" and load_clip(fast.clip_dir).meta["resize"] == "ffmpeg"
    assert ingest_file(good_video, out, SPEC, resize="ffmpeg").status == "skipped"
    assert ingest_file(good_video, out, SPEC).status == "ingested"
