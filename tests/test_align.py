import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import make_video

from foleylib.core.config import AVSpec
from foleylib.core.errors import InputError
from foleylib.data.align import ingest, ingest_file
from foleylib.data.dataset import load_clip

SPEC = AVSpec(sr=16000, fps=25, size=32)


@pytest.mark.parametrize("name,kwargs", [
    ("phone.mov", dict(size="1920x1080", sr=44100, channels=2, seconds=1.5)),
    ("mono48k.mp4", dict(sr=48000, channels=1)),
    ("ntsc.mp4", dict(fps="30000/1001")),
    ("clip.mkv", dict()),
])
def test_hand_made_inputs_align(tmp_path, name, kwargs):
    source = make_video(tmp_path / name, **kwargs)
    result = ingest_file(source, tmp_path / "aligned", SPEC)
    clip = load_clip(result.clip_dir)
    meta = clip.meta
    for key in ("source", "sha256", "sr", "fps", "size", "channels", "frames", "samples"):
        assert key in meta
    assert clip.frames.shape == (meta["frames"], 32, 32, 3)
    assert clip.audio.shape == (meta["samples"], 2)
    # the paper's rule: whole frames of audio, and as many frames as the audio covers
    assert meta["samples"] == meta["frames"] * 640
    decoded = meta["clipped"]
    assert meta["frames"] == min(decoded["frames_decoded"], decoded["samples_decoded"] // 640)
    seconds = kwargs.get("seconds", 2.0)
    assert meta["seconds"] == pytest.approx(seconds, abs=0.08)


def test_fractional_samples_per_frame(tmp_path):
    source = make_video(tmp_path / "a.mp4", seconds=1.0)
    meta = ingest_file(source, tmp_path / "out", AVSpec(sr=16000, fps=30, size=16)).meta
    assert meta["samples_per_frame"] == "1600/3"
    assert meta["samples"] == -(-meta["frames"] * 1600 // 3)  # ceil(frames * 1600 / 3)


def test_unchanged_sources_are_skipped(tmp_path, good_video):
    out = tmp_path / "aligned"
    first = ingest_file(good_video, out, SPEC)
    mtime = (first.clip_dir / "audio.npy").stat().st_mtime_ns
    assert ingest_file(good_video, out, SPEC).status == "skipped"
    assert (first.clip_dir / "audio.npy").stat().st_mtime_ns == mtime
    assert ingest_file(good_video, out, SPEC, force=True).status == "ingested"
    changed = ingest_file(good_video, out, SPEC.with_(size=16))
    assert changed.status == "ingested" and changed.clip_dir == first.clip_dir
    assert load_clip(changed.clip_dir).frames.shape[1] == 16


def test_same_stem_from_another_source_gets_its_own_folder(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    a, b = make_video(tmp_path / "a" / "take.mp4", freq=300), make_video(tmp_path / "b" / "take.mp4", freq=600)
    ra, rb = ingest_file(a, tmp_path / "out", SPEC), ingest_file(b, tmp_path / "out", SPEC)
    assert ra.clip_dir != rb.clip_dir and rb.clip_dir.name.startswith("take-")


def test_batch_keeps_good_files_and_reports_bad_ones(tmp_path, good_video, bad_files):
    out = tmp_path / "aligned"
    seen = []
    results, errors = ingest([bad_files["zero"], good_video, bad_files["text"], bad_files["truncated"],
                              bad_files["silent"]], out, SPEC, on_error=seen.append)
    assert [r.source for r in results] == [good_video]
    assert len(errors) == 4 and seen == errors
    assert all(isinstance(e, InputError) for e in errors)
    assert sorted(p.name for p in out.iterdir()) == ["good", "manifest.json"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert [c["name"] for c in manifest["clips"]] == ["good"]


def test_cli_batch_prints_one_line_per_bad_file(tmp_path, good_video, bad_files):
    out = tmp_path / "aligned"
    bad = [bad_files[k] for k in ("silent", "truncated", "zero", "text")]
    proc = subprocess.run([sys.executable, "-m", "foleylib", "ingest", *map(str, bad), str(good_video),
                           "--out", str(out), "--size", "16"], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("error: ") for line in lines)
    for line, path in zip(lines, bad, strict=True):
        assert line.endswith(f"({path})")
    assert "Traceback" not in proc.stderr
    assert "no audio track" in lines[0] and "empty file" in lines[2]
    assert (out / "good" / "frames.npy").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_too_short_clip(tmp_path):
    source = make_video(tmp_path / "blip.mp4", seconds=0.5, fps=25)
    with pytest.raises(InputError, match="too short"):  # one frame at 1 fps needs 1 s of audio
        ingest_file(source, tmp_path / "out", AVSpec(sr=16000, fps=1, size=8))
    assert not (tmp_path / "out" / "blip").exists()


def test_aligned_audio_matches_source(tmp_path):
    source = make_video(tmp_path / "tone.mp4", freq=1000, seconds=1.0)
    clip = load_clip(ingest_file(source, tmp_path / "out", SPEC).clip_dir)
    spectrum = np.abs(np.fft.rfft(clip.audio[2000:12000, 0]))
    assert np.fft.rfftfreq(10000, 1 / 16000)[spectrum.argmax()] == pytest.approx(1000, abs=3)
