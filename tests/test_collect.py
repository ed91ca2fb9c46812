import json
import shutil
import socket
import subprocess
import sys

import pytest
from conftest import make_video

from foleylib.core.errors import InputError
from foleylib.core.fsutil import sha256_file
from foleylib.data.collect import collect


def test_local_files_and_folders(tmp_path, good_video):
    phone = tmp_path / "phone"
    (phone / "day 1").mkdir(parents=True)
    mov = make_video(phone / "day 1" / "IMG_0001.MOV", seconds=1)
    shutil.copy(good_video, phone / "Clap täke.mp4")
    (phone / "notes.txt").write_text("not a video")
    out = tmp_path / "raw"
    items, errors = collect([str(phone), str(good_video)], out)
    assert errors == []
    names = sorted(i.name for i in items)
    # the folder's two videos, then good.mp4; the same bytes under another name are stored once more
    assert names == ["Clap_take.mp4", "IMG_0001.mov", "good.mp4"]
    manifest = {i["name"]: i for i in json.loads((out / "manifest.json").read_text())["items"]}
    assert manifest["IMG_0001.mov"]["sha256"] == sha256_file(mov)
    assert manifest["IMG_0001.mov"]["origin"] == str(mov.resolve())
    assert sha256_file(out / "IMG_0001.mov") == sha256_file(mov)


def test_collecting_again_is_unchanged_and_never_clobbers(tmp_path, good_video):
    out = tmp_path / "raw"
    collect([str(good_video)], out)
    again, _ = collect([str(good_video)], out)
    assert again[0].status == "unchanged"
    (tmp_path / "x").mkdir()
    other = make_video(tmp_path / "x" / "good.mp4", freq=900)
    items, _ = collect([str(other)], out)
    assert items[0].name.startswith("good-") and sha256_file(out / "good.mp4") == sha256_file(good_video)
    assert len(json.loads((out / "manifest.json").read_text())["items"]) == 2


def test_bad_sources_are_reported_and_skipped(tmp_path, good_video, bad_files):
    items, errors = collect([str(bad_files["text"]), str(tmp_path / "missing.mp4"), str(good_video)],
                            tmp_path / "raw")
    assert [i.name for i in items] == ["good.mp4"]
    assert [e.reason for e in errors][1] == "no such file or folder"
    assert all(isinstance(e, InputError) for e in errors) and len(errors) == 2


def test_url_without_yt_dlp(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "yt_dlp", None)  # import fails as if not installed
    _, errors = collect(["https://www.youtube.com/watch?v=abc"], tmp_path / "raw")
    assert "needs yt-dlp" in errors[0].reason and errors[0].path == "https://www.youtube.com/watch?v=abc"


def test_url_download_failure_is_one_line(tmp_path):
    pytest.importorskip("yt_dlp")
    with socket.socket() as s:  # a port nobody listens on: the download fails fast, offline
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/video.mp4"
    proc = subprocess.run([sys.executable, "-m", "foleylib", "collect", url, "--out", str(tmp_path / "raw")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    line, = proc.stderr.strip().splitlines()
    assert line.startswith("error: download failed") and line.endswith(f"({url})")
    assert [p.name for p in (tmp_path / "raw").iterdir()] == ["manifest.json"]
