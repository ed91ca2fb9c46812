"""Shared fixtures: media files made on the spot by ffmpeg's test sources (nothing downloaded)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import matplotlib
import pytest
import torch

from foleylib.core.config import preset
from foleylib.data.media import ffmpeg_exe
from foleylib.models.config import model_config
from foleylib.models.registry import build_model
from foleylib.training.checkpoint import save_model

matplotlib.use("Agg")

CODECS = {  # container -> (video codec args, audio codec args)
    ".mp4": (["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"], ["-c:a", "aac"]),
    ".mov": (["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"], ["-c:a", "aac"]),
    ".mkv": (["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"], ["-c:a", "libvorbis"]),
    ".webm": (["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"], ["-c:a", "libopus"]),
    ".avi": (["-c:v", "mpeg4"], ["-c:a", "libmp3lame"]),
}


# the same bytes on every run and machine: no version strings, dates or random ids, one encoder thread
BITEXACT = ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact", "-threads", "1"]


def make_video(path: Path, seconds: float = 2.0, fps: float | str = 25, size: str = "160x120",
               sr: int | None = 44100, channels: int = 2, freq: float = 440.0) -> Path:
    """A test-pattern video with a sine tone (sr None: no audio track), byte-identical on every run (the fuzz
    recipes rely on it). Container from the suffix."""
    video_codec, audio_codec = CODECS[path.suffix.lower()]
    cmd = [ffmpeg_exe(), "-y", "-v", "error", "-f", "lavfi", "-i", f"testsrc=size={size}:rate={fps}:duration={seconds}"]
    if sr:
        layout = {1: "mono", 2: "stereo", 6: "5.1"}[channels]
        cmd += ["-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate={sr}:duration={seconds}",
                "-af", f"aformat=channel_layouts={layout}"]
    cmd += video_codec + (audio_codec if sr else ["-an"]) + BITEXACT + [str(path)]
    subprocess.run(cmd, check=True)
    return path


def make_vfr_video(path: Path, sr: int = 44100) -> Path:
    """2 s of video whose first second runs at 10 fps and second at 30 fps (variable frame rate)."""
    cmd = [ffmpeg_exe(), "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=30:duration=2",
           "-f", "lavfi", "-i", f"sine=frequency=330:sample_rate={sr}:duration=2",
           "-vf", "select='if(lt(t,1),not(mod(n,3)),1)'", "-fps_mode", "vfr",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)]
    subprocess.run(cmd, check=True)
    return path


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def good_video(media_dir) -> Path:
    """2 s, 25 fps, 160x120, 44.1 kHz stereo MP4."""
    return make_video(media_dir / "good.mp4")


@pytest.fixture(scope="session")
def bad_files(media_dir, good_video) -> dict[str, Path]:
    """The inputs every entry point must refuse with one line."""
    zero = media_dir / "zero.mp4"
    zero.write_bytes(b"")
    text = media_dir / "text.mp4"
    text.write_text("this is not a video\n" * 20)
    truncated = media_dir / "truncated.mp4"
    data = good_video.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    silent = make_video(media_dir / "silent.mp4", sr=None)
    return {"zero": zero, "text": text, "truncated": truncated, "silent": silent}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A folder of two run folders, wavenet/ and fusion/: untrained tiny mu-law models saved as `foley train` does,
    at the tiny preset (8 kHz, 25 fps, 32 x 32)."""
    root = tmp_path_factory.mktemp("runs")
    torch.manual_seed(0)
    for arch in ("wavenet", "fusion"):
        save_model(build_model(model_config(arch, "tiny", preset("tiny"), loss="ce")), preset("tiny"),
                   root / arch / "model.pt")
    return root
