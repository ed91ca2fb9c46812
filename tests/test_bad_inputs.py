"""Every CLI command that takes a file against a corpus of bad, odd and hostile inputs made here (nothing
downloaded): each (input, command) pair either works (odd but valid input) or prints one line
`error: <reason> (<path>)`, exits 2 and leaves no output behind."""
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_vfr_video, make_video

from foleylib.data.media import ffmpeg_exe, probe
from foleylib.interfaces.cli import main

OK, ERROR = "ok", "error"


def _ffmpeg(*args) -> None:
    subprocess.run([ffmpeg_exe(), "-y", "-v", "error", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, good_video) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("corpus")
    files = {"zero-byte": d / "zero.mp4", "random bytes": d / "random.mp4", "truncated": d / "truncated.mp4",
             "text": d / "notes.txt"}
    files["zero-byte"].write_bytes(b"")
    files["random bytes"].write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    data = good_video.read_bytes()
    files["truncated"].write_bytes(data[:len(data) // 2])
    files["text"].write_text("not a video\n" * 50)
    files["no audio"] = make_video(d / "silent.mp4", sr=None)
    files["audio only"] = d / "tone.m4a"
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", files["audio only"])
    files["still image"] = d / "still.png"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=1", "-frames:v", "1", files["still image"])
    files["one frame"] = make_video(d / "one_frame.mp4", seconds=0.04)
    files["0.2 s"] = make_video(d / "short.mp4", seconds=0.2)
    files["6 channels"] = make_video(d / "surround.mp4", channels=6)
    files["8 kHz"] = make_video(d / "low_rate.mp4", sr=8000)
    files["96 kHz"] = make_video(d / "high_rate.mp4", sr=96000)
    files["4000x4000"] = make_video(d / "huge.mp4", seconds=0.2, size="4000x4000")
    files["variable frame rate"] = make_vfr_video(d / "vfr.mp4")
    files["spaces and non-ASCII"] = d / "my clip été 日本.mp4"
    shutil.copy(good_video, files["spaces and non-ASCII"])
    files["a folder"] = d / "folder.mp4"
    files["a folder"].mkdir()
    files["missing"] = d / "missing.mp4"
    return files


# input -> (ingest, generate): odd but valid inputs work; a silent video is what generation is for
EXPECTED = {
    "zero-byte": (ERROR, ERROR), "random bytes": (ERROR, ERROR), "truncated": (ERROR, ERROR), "text": (ERROR, ERROR),
    "no audio": (ERROR, OK), "audio only": (ERROR, ERROR), "still image": (ERROR, ERROR), "one frame": (OK, OK),
    "0.2 s": (OK, OK), "6 channels": (OK, OK), "8 kHz": (OK, OK), "96 kHz": (OK, OK), "4000x4000": (OK, OK),
    "variable frame rate": (OK, OK), "spaces and non-ASCII": (OK, OK), "a folder": (ERROR, ERROR),
    "missing": (ERROR, ERROR),
}


def _assert_one_line_error(code: int, err: str, path: Path) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and lines[0].endswith(f"({path})"), err
    assert "Traceback" not in err


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith(".") or ".tmp" in p.name)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_ingest(name, corpus, tmp_path, capsys):
    path, out = corpus[name], tmp_path / "aligned"
    code = main(["ingest", str(path), "--out", str(out), "--sr", "8000", "--size", "16"])
    captured = capsys.readouterr()
    clips = [p for p in out.iterdir() if p.is_dir()] if out.exists() else []
    if EXPECTED[name][0] == ERROR:
        _assert_one_line_error(code, captured.err, path)
        assert clips == []
    else:
        assert code == 0, captured.err
        meta = json.loads((clips[0] / "meta.json").read_text())
        assert meta["frames"] >= 1 and meta["samples"] == meta["frames"] * 320 and meta["channels"] == 2
        assert np.load(clips[0] / "frames.npy", mmap_mode="r").shape[1:] == (16, 16, 3)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("name", list(EXPECTED))
def test_generate(name, corpus, runs, tmp_path, capsys):
    path, out = corpus[name], tmp_path / "out" / "dubbed.mp4"
    code = main(["generate", str(path), "--ckpt", str(runs / "wavenet"), "--out", str(out), "--wav",
                 str(tmp_path / "out" / "dubbed.wav"), "--seconds", "0.4", "--quiet"])
    captured = capsys.readouterr()
    if EXPECTED[name][1] == ERROR:
        _assert_one_line_error(code, captured.err, path)
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    else:
        assert code == 0, captured.err
        info = probe(out)
        assert info.has_video and info.has_audio and 0 < info.duration <= 0.45
        assert probe(tmp_path / "out" / "dubbed.wav").has_audio
    assert _leftovers(tmp_path) == []


def _broken_runs(runs: Path, root: Path) -> dict[str, tuple[Path, Path]]:
    """Run folders that must be refused, with the path the error names."""
    truncated = root / "truncated"
    truncated.mkdir()
    data = (runs / "wavenet" / "model.pt").read_bytes()
    (truncated / "model.pt").write_bytes(data[:len(data) // 2])
    other = root / "other_arch"
    other.mkdir()
    ckpt = torch.load(runs / "wavenet" / "model.pt", weights_only=True)
    fusion = torch.load(runs / "fusion" / "model.pt", weights_only=True)
    torch.save({**ckpt, "state_dict": fusion["state_dict"]}, other / "model.pt")  # a fusion model's weights
    empty = root / "empty"
    empty.mkdir()
    return {"truncated checkpoint": (truncated, truncated / "model.pt"),
            "weights of another architecture": (other, other / "model.pt"), "no model.pt": (empty, empty)}


def test_generate_refuses_broken_checkpoints(runs, good_video, tmp_path, capsys):
    for name, (run, named) in _broken_runs(runs, tmp_path).items():
        out = tmp_path / "out" / f"{name}.mp4"
        code = main(["generate", str(good_video), "--ckpt", str(run), "--out", str(out), "--quiet"])
        _assert_one_line_error(code, capsys.readouterr().err, named)
        assert not out.exists()


@pytest.fixture
def aligned(good_video, tmp_path) -> Path:
    assert main(["ingest", str(good_video), "--out", str(tmp_path / "aligned"), "--sr", "8000", "--size", "32"]) == 0
    return next(p for p in (tmp_path / "aligned").iterdir() if p.is_dir())


def test_train_and_evaluate_refuse_broken_clip_folders_and_configs(aligned, runs, tmp_path, capsys):
    capsys.readouterr()
    missing, mismatched = tmp_path / "missing_npy", tmp_path / "mismatched_npy"
    shutil.copytree(aligned, missing)
    (missing / "audio.npy").unlink()
    shutil.copytree(aligned, mismatched)
    np.save(mismatched / "frames.npy", np.zeros((3, 32, 32, 3), np.uint8))
    for clip in (missing, mismatched):
        code = main(["train", "--arch", "wavenet", "--preset", "tiny", "--data", str(clip), "--steps", "1",
                     "--quiet", "--out", str(tmp_path / "run")])
        _assert_one_line_error(code, capsys.readouterr().err, clip)
        assert not (tmp_path / "run" / "model.pt").exists()
    bad_config = tmp_path / "bad_config"
    shutil.copytree(runs / "wavenet", bad_config)
    (bad_config / "config.json").write_text(json.dumps({"train": {"steps": "many"}, "data": 3}))
    report = tmp_path / "report.json"
    code = main(["evaluate", "--ckpt", str(bad_config), "--data", str(aligned), "--out", str(report), "--quiet"])
    _assert_one_line_error(code, capsys.readouterr().err, bad_config / "config.json")
    assert not report.exists()


def test_limits_on_length_and_frame_size_are_clear_errors(good_video, tmp_path, capsys, monkeypatch):
    out = tmp_path / "aligned"
    code = main(["ingest", str(good_video), "--out", str(out), "--max-seconds", "1.5"])
    err = capsys.readouterr().err
    _assert_one_line_error(code, err, good_video)
    assert "more than the limit of 1.5 s (--max-seconds)" in err
    monkeypatch.setattr("foleylib.data.media.MAX_PIXELS", 160 * 119)  # the video's frames are 160x120
    code = main(["ingest", str(good_video), "--out", str(out)])
    err = capsys.readouterr().err
    _assert_one_line_error(code, err, good_video)
    assert "frames of 160x120 are over the limit" in err
    assert not any(p.is_dir() for p in out.iterdir())
