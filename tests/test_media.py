import subprocess

import numpy as np
import pytest
from conftest import make_vfr_video, make_video

from foleylib.core.errors import InputError
from foleylib.data import media


def dominant_freq(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / sr)[spectrum.argmax()]


def test_probe_reports_streams(good_video):
    info = media.probe(good_video)
    assert (info.width, info.height, info.fps) == (160, 120, 25)
    assert info.has_video and info.has_audio
    assert (info.audio_sr, info.audio_channels) == (44100, 2)
    assert info.duration == pytest.approx(2.0, abs=0.05)


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv", ".webm", ".avi"])
def test_decode_every_container(tmp_path, suffix):
    path = make_video(tmp_path / f"clip{suffix}", seconds=1.0, fps=25, freq=500)
    frames = media.read_frames(path, fps=25, size=32)
    audio = media.read_audio(path, sr=16000, channels=2)
    assert frames.shape[1:] == (32, 32, 3) and frames.dtype == np.uint8
    assert len(frames) == pytest.approx(25, abs=1)  # AVI/MPEG-4 timestamps start one frame late
    assert audio.dtype == np.float32 and audio.shape[1] == 2
    assert len(audio) == pytest.approx(16000, abs=1200)  # codec padding differs per container
    assert dominant_freq(audio[2000:14000, 0], 16000) == pytest.approx(500, abs=5)


def test_frame_rate_resampling(tmp_path):
    path = make_video(tmp_path / "ntsc.mp4", seconds=2.0, fps="30000/1001")
    assert media.probe(path).fps == pytest.approx(29.97, abs=0.01)
    assert len(media.read_frames(path, fps=25, size=16)) == 50
    assert len(media.read_frames(path, fps=None, size=16)) == 60


def test_variable_frame_rate_is_resampled_by_time(tmp_path):
    path = make_vfr_video(tmp_path / "vfr.mp4")
    frames = media.read_frames(path, fps=20, size=16)
    assert len(frames) == pytest.approx(40, abs=1)


def test_native_size_and_resize(good_video):
    assert media.read_frames(good_video, size=None).shape[1:] == (120, 160, 3)
    # squashed to a square like the paper's cv2.resize; the test pattern's mean colour survives
    full, small = media.read_frames(good_video, size=None), media.read_frames(good_video, size=64)
    assert np.abs(full.mean(axis=(1, 2)) - small.mean(axis=(1, 2))).max() < 3


@pytest.mark.parametrize("resize", ["cv2", "ffmpeg"])
def test_one_pass_decodes_the_frames_and_audio_of_two(tmp_path, good_video, resize):
    info, raw = media.probe(good_video), tmp_path / "audio.raw"
    frames = np.stack(list(media.iter_frames(good_video, fps=15, size=32, resize=resize, threads=1, audio_out=raw,
                                             sr=8000, channels=1)))
    np.testing.assert_array_equal(frames, np.stack(list(media.iter_frames(good_video, fps=15, size=32,
                                                                          resize=resize))))
    audio = media.read_raw_audio(raw, 8000, 1, info, good_video)
    assert audio.shape == (16000, 1)  # the 2 s at 8 kHz, mono
    np.testing.assert_array_equal(audio, media.read_audio(good_video, sr=8000, channels=1))


def test_mono_is_duplicated_and_surround_downmixed(tmp_path):
    mono = make_video(tmp_path / "mono.mp4", sr=48000, channels=1, seconds=1)
    audio = media.read_audio(mono, sr=16000, channels=2)
    assert media.probe(mono).audio_channels == 1
    np.testing.assert_array_equal(audio[:, 0], audio[:, 1])
    assert np.abs(audio).max() > 0.05
    surround = make_video(tmp_path / "surround.mkv", channels=6, seconds=1)
    assert media.probe(surround).audio_channels == 6
    down = media.read_audio(surround, sr=16000, channels=2)
    assert down.shape[1] == 2 and np.abs(down).max() > 0.05
    assert media.read_audio(surround, sr=8000, channels=1).shape[1] == 1


def test_write_video_and_mux_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (25, 90, 160, 3), dtype=np.uint8)
    t = np.arange(16000) / 16000
    tone = 0.5 * np.stack([np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 700 * t)], axis=1).astype(np.float32)
    video = media.write_video(tmp_path / "v.mp4", frames, fps=25, audio=tone, sr=16000)
    info = media.probe(video)
    assert (info.width, info.height, info.video_codec) == (160, 90, "h264")
    back = media.read_audio(video, sr=16000)
    assert dominant_freq(back[2000:14000, 0], 16000) == pytest.approx(300, abs=3)
    assert dominant_freq(back[2000:14000, 1], 16000) == pytest.approx(700, abs=3)

    # a short array is zero-padded to the video's length; a long one trimmed
    for n in (4000, 40000):
        out = media.mux_audio(video, tone[:n] if n < 16000 else np.tile(tone, (3, 1)), 16000,
                              tmp_path / f"muxed{n}.mp4")
        info = media.probe(out)
        assert info.duration == pytest.approx(1.0, abs=0.05)
        assert len(media.read_audio(out, sr=16000)) == pytest.approx(16000, abs=1100)
    both = media.mux_audio(video, -tone, 16000, tmp_path / "both.mp4", keep_original=True)
    streams = subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-i", str(both)], capture_output=True,
                             text=True).stderr.count("Audio:")
    assert streams == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["both.mp4", "muxed4000.mp4", "muxed40000.mp4", "v.mp4"]


@pytest.mark.parametrize("kind,message", [("zero", "empty file"), ("text", "not a readable media file"),
                                          ("truncated", "not a readable media file")])
def test_bad_files_raise_input_error(bad_files, kind, message):
    with pytest.raises(InputError, match=message) as err:
        media.read_frames(bad_files[kind])
    assert err.value.path == str(bad_files[kind])


def test_missing_folder_and_no_audio(tmp_path, bad_files):
    with pytest.raises(InputError, match="no such file"):
        media.probe(tmp_path / "nope.mp4")
    with pytest.raises(InputError, match="is a folder"):
        media.probe(tmp_path)
    with pytest.raises(InputError, match="no audio stream"):
        media.read_audio(bad_files["silent"])
