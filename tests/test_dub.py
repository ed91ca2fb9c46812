"""foley generate: any video in; the video with generated audio out (plus WAV/MP3), streams exactly as long."""
import re
import subprocess

import numpy as np
import pytest
from conftest import make_video
from test_cli import foley

from foleylib.core.config import preset
from foleylib.core.errors import InputError
from foleylib.data import media
from foleylib.data.synth import render_scene
from foleylib.generation.dub import dub_video

SPEC = preset("tiny")  # 8 kHz, 25 fps, 32 x 32


@pytest.fixture(scope="module")
def clap(tmp_path_factory):
    return render_scene("clap", tmp_path_factory.mktemp("scene"), seconds=2.0, seed=1)["video"]


def stream_seconds(path):
    """(video, audio) durations of a file's first streams, by decoding: frames / fps, samples / sr."""
    err = subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-i", str(path), "-map", "0:v:0", "-f", "null", "-"],
                         capture_output=True, text=True).stderr
    frames = int(re.findall(r"frame=\s*(\d+)", err)[-1])
    return frames / media.probe(path).fps, len(media.read_audio(path, sr=16000)) / 16000


def audio_streams(path):
    return subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True,
                          text=True).stderr.count("Audio:")


def test_generate_a_synthetic_clip_to_mp4_wav_mp3(tmp_path, runs, clap):
    out = tmp_path / "clap foley.mp4"  # a space in the name
    proc = foley("generate", clap, "--ckpt", runs / "fusion", "--out", out, "--wav", tmp_path / "g.wav",
                 "--mp3", tmp_path / "g.mp3", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "generated 2.00 s of audio (50 frames)" in proc.stdout and "real-time factor" in proc.stdout
    assert stream_seconds(out) == (2.0, 2.0)
    wav = media.read_audio(tmp_path / "g.wav", sr=SPEC.sr)
    assert wav.shape == (2 * SPEC.sr, 2) and wav.std() > 0.01
    assert len(media.read_audio(tmp_path / "g.mp3", sr=SPEC.sr)) == pytest.approx(2 * SPEC.sr, abs=SPEC.sr // 10)
    assert audio_streams(out) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clap foley.mp4", "g.mp3", "g.wav"]


def test_generate_part_of_a_phone_video_keeping_the_original(tmp_path, runs):
    phone = make_video(tmp_path / "phone.mov", seconds=2, fps=30, size="1920x1080", sr=44100, freq=440)
    out = tmp_path / "part.mp4"
    proc = foley("generate", phone, "--ckpt", runs / "wavenet", "--out", out, "--start", "0.4", "--seconds", "0.6",
                 "--keep-original", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "(cached)" in proc.stdout
    info = media.probe(out)
    assert (info.width, info.height, info.video_codec) == (1920, 1080, "h264")
    assert stream_seconds(out) == pytest.approx((0.6, 0.6), abs=1e-9)
    assert audio_streams(out) == 2
    original = subprocess.run([media.ffmpeg_exe(), "-v", "error", "-i", str(out), "-map", "0:a:1", "-ac", "1",
                               "-ar", "16000", "-f", "f32le", "-"], capture_output=True).stdout
    tone = np.frombuffer(original, np.float32)
    assert len(tone) == pytest.approx(0.6 * 16000, abs=1100)
    assert np.argmax(np.abs(np.fft.rfft(tone))) * 16000 / len(tone) == pytest.approx(440, abs=5)


def test_same_seed_same_audio(tmp_path, runs, clap):
    def wav(seed, name):
        dub_video(clap, runs / "fusion", tmp_path / f"{name}.mp4", wav=tmp_path / f"{name}.wav", seconds=0.4,
                  seed=seed, progress=False)
        return media.read_audio(tmp_path / f"{name}.wav", sr=SPEC.sr)

    a, b, c = wav(3, "a"), wav(3, "b"), wav(4, "c")
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_prime_starts_from_the_videos_own_audio(tmp_path, runs, clap):
    summary = dub_video(clap, runs / "wavenet", tmp_path / "p.mp4", start=1.0, seconds=0.2, prime_seconds=0.5,
                        progress=False)
    assert summary["start_s"] == 1.0 and summary["seconds"] == pytest.approx(0.2)
    with pytest.raises(InputError, match="needs the video's own audio"):
        dub_video(make_video(tmp_path / "mute.mp4", sr=None), runs / "fusion", tmp_path / "m.mp4",
                  prime_seconds=0.5, progress=False)


@pytest.mark.parametrize("case,message", [
    ("exists", "output exists (use --force to replace it)"), ("input", "output would overwrite an input file"),
    ("late", "nothing to generate from 9 s"), ("suffix", "the video output must be an .mp4 file"),
    ("ckpt", "no model.pt"), ("crossfade", "crossfade applies to deep fusion")])
def test_bad_generate_requests_are_one_line_errors(tmp_path, runs, clap, case, message):
    out = tmp_path / "out.mp4"
    args = {"exists": [clap, "--out", out], "input": [clap, "--out", clap], "late": [clap, "--start", "9"],
            "suffix": [clap, "--out", tmp_path / "out.mkv"], "ckpt": [clap, "--ckpt", tmp_path],
            "crossfade": [clap, "--crossfade", "5"]}[case]
    if case == "exists":
        out.write_text("keep me")
    argv = ["generate", *args]
    argv += [] if "--ckpt" in argv else ["--ckpt", runs / "wavenet"]
    argv += [] if "--out" in argv else ["--out", out]
    proc = foley(*argv, "--quiet")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: " + message), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == (["out.mp4"] if case == "exists" else [])
    if case == "exists":
        assert out.read_text() == "keep me"
