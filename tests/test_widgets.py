"""The studio's callbacks, driven without a browser: generate, play, scrub, and one-line errors."""
import io
import wave

import numpy as np
import pytest
from conftest import make_video

from foleylib.core.config import preset
from foleylib.core.fsutil import write_json
from foleylib.data.align import ingest_file
from foleylib.data.dataset import load_clip
from foleylib.data.synth import render_scene
from foleylib.generation.generate import generate
from foleylib.interfaces.widgets import Studio, find_runs, find_videos, png_bytes, run_choices, video_choices, wav_bytes
from foleylib.models.config import model_config
from foleylib.models.registry import build_model
from foleylib.training.checkpoint import load_model, save_model

SPEC = preset("tiny")  # 8 kHz, 25 fps, 32 x 32
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    render_scene("clap", root, seconds=2.0, seed=1)
    (root / "silent").mkdir()
    make_video(root / "silent" / "silent.mov", seconds=1.0, sr=None)
    (root / "notes.txt").write_text("not a video\n")
    return root


@pytest.fixture(scope="module")
def studio(runs, videos):
    """A studio that has generated 0.4 s of the clap scene from 1.2 s (its one clap is at 1.44 s) with the tiny
    WaveNet."""
    s = Studio(videos, runs, video=str(videos / "clap.mp4"), run=str(runs / "wavenet"), start=1.2, seconds=0.4)
    s.generate_button.click()
    assert s.message.value == ""
    return s


def wav_info(data) -> tuple[float, int]:
    """(seconds, channels) of WAV file bytes."""
    with wave.open(io.BytesIO(bytes(data))) as f:
        return f.getnframes() / f.getframerate(), f.getnchannels()


def test_choices_are_found_in_their_folders(runs, videos):
    assert find_videos(videos) == [str(videos / "clap.mp4"), str(videos / "silent" / "silent.mov")]
    assert find_runs(runs) == [str(runs / "fusion"), str(runs / "wavenet")]
    assert find_videos(videos / "missing") == find_runs(videos) == []
    s = Studio(videos, runs)
    assert [v for _, v in s.video.options] == find_videos(videos) and s.video.value == str(videos / "clap.mp4")
    assert [v for _, v in s.run.options] == find_runs(runs) and s.run.value == str(runs / "fusion")
    assert s.results.layout.display == "none" and s.result is None


def test_lists_name_aligned_clips_and_describe_runs(runs, videos, tmp_path):
    clip_dir = ingest_file(videos / "clap.mp4", tmp_path / "aligned", SPEC).clip_dir
    (tmp_path / "aligned" / "broken").mkdir()
    (tmp_path / "aligned" / "broken" / "meta.json").write_text("{not json")
    odd = tmp_path / "aligned" / "odd"  # a clip whose meta.json holds values of the wrong types
    odd.mkdir()
    (odd / "frames.npy").touch()
    write_json(odd / "meta.json", {"source": str(videos / "clap.mp4"), "seconds": "x", "sr": None})
    assert video_choices(tmp_path) == [("clap (aligned clip, 2.0 s, 8000 Hz, 25 fps): clap.mp4",
                                        str(videos / "clap.mp4")),
                                       ("odd (aligned clip): clap.mp4", str(videos / "clap.mp4"))]
    run = tmp_path / "runs" / "mine"
    save_model(build_model(model_config("wavenet", "tiny", SPEC)), SPEC, run / "model.pt")
    write_json(run / "config.json", {"model": {"arch": "wavenet", "loss": "ce", "video_input": "rgb+motion"},
                                     "train": {"steps": 300}, "data": [str(clip_dir)]})
    assert run_choices(tmp_path / "runs") == [("mine (wavenet, ce, rgb+motion, 300 steps, on clap)", str(run))]
    write_json(run / "config.json", {"model": "wavenet", "train": [], "data": {"x": 1}})  # wrong types: path only
    assert run_choices(tmp_path / "runs") == [("mine", str(run))]
    write_json(run / "config.json", {"model": {"arch": "wavenet", "loss": "ce", "video_input": "rgb+motion"},
                                     "train": {"steps": 300}, "data": [str(clip_dir)]})
    s = Studio(tmp_path, tmp_path / "runs", video=str(videos / "silent" / "silent.mov"))
    assert s.video.options[-1] == (str(videos / "silent" / "silent.mov"),) * 2  # a path given by hand joins
    assert s.video.value == str(videos / "silent" / "silent.mov") and s.run.value == str(run)


def test_key_widgets_carry_stable_css_classes(runs, videos):
    s = Studio(videos, runs)
    classes = {name: getattr(s, name)._dom_classes for name in (
        "generate_button", "progress", "original_audio", "generated_audio", "waveform", "frame_slider",
        "frame_image", "message", "takes", "take", "precision", "guidance", "top_p", "ui")}
    assert classes == {"generate_button": ("foley-generate",), "progress": ("foley-progress",),
                       "original_audio": ("foley-original-audio",), "generated_audio": ("foley-generated-audio",),
                       "waveform": ("foley-waveform",), "frame_slider": ("foley-frame-slider",),
                       "frame_image": ("foley-frame",), "message": ("foley-message",), "takes": ("foley-takes",),
                       "take": ("foley-take",), "precision": ("foley-precision",), "guidance": ("foley-guidance",),
                       "top_p": ("foley-top-p",), "ui": ("foley-studio",)}


def test_helpers_make_wav_and_png_bytes():
    seconds, channels = wav_info(wav_bytes(np.full((800, 2), 3.0, np.float32), 8000))  # clipped, not refused
    assert (seconds, channels) == (0.1, 2)
    assert png_bytes(np.zeros((8, 12, 3), np.uint8)).startswith(PNG)


def test_generate_fills_progress_players_and_waveform(studio):
    r = studio.result
    assert (r["start_s"], r["seconds"], r["frames"], r["method"]) == (1.2, 0.4, 10, "cached")
    assert r["has_original"] and r["rtf"] > 0
    assert studio.progress.value == studio.progress.max == 0.4 * SPEC.sr
    assert "real-time factor" in studio.status.value
    assert wav_info(studio.generated_audio.value) == wav_info(studio.original_audio.value) == (0.4, 2)
    assert studio.audio.shape == studio.original.shape == (0.4 * SPEC.sr, 2)
    clap = np.abs(studio.original).max(axis=1)
    assert clap.max() > 0.05 and clap.argmax() / SPEC.sr == pytest.approx(0.24, abs=0.02)  # the video's own clap
    assert bytes(studio.waveform.value).startswith(PNG)
    assert studio.frames.shape == (10, 160, 160, 3)  # display size, not the model's 32 px
    assert (studio.frame_slider.min, studio.frame_slider.max, studio.frame_slider.value) == (30, 39, 30)
    assert studio.results.layout.display == "flex" and not studio.generate_button.disabled
    assert (studio.frame_image.width, studio.frame_image.height) == ("284", "160")  # 640 x 360 shown as 16:9


def test_frame_slider_moves_the_cursor_and_the_frame(studio):
    studio.frame_slider.value = 30
    frame, wave_png, marker = bytes(studio.frame_image.value), bytes(studio.waveform.value), studio.marker_s
    studio.frame_slider.value = 37
    assert bytes(studio.frame_image.value) != frame and bytes(studio.frame_image.value).startswith(PNG)
    assert bytes(studio.waveform.value) != wave_png
    assert (marker, studio.marker_s) == (0.0, pytest.approx(7 / 25))
    assert all(line.get_xdata()[0] == pytest.approx(0.28) for line in studio.cursors)
    assert "frame #37" in studio.frame_label.value


def test_a_video_without_audio_gets_no_original_player(runs, videos):
    s = Studio(videos, runs, video=str(videos / "silent" / "silent.mov"), run=str(runs / "fusion"), seconds=0.2)
    assert s.generate()["has_original"] is False and s.message.value == ""
    assert wav_info(s.generated_audio.value) == (0.2, 2) and bytes(s.original_audio.value) == b""
    assert "no audio track" in s.original_label.value


@pytest.mark.parametrize("video, run, start, method, reason", [
    ("missing.mp4", "wavenet", 0.0, "auto", "no such file"),
    ("notes.txt", "wavenet", 0.0, "auto", "not a readable media file"),
    ("clap.mp4", "", 0.0, "auto", "choose a run folder"),  # no runs found, none given
    ("clap.mp4", "nowhere", 0.0, "auto", "no model.pt"),
    ("clap.mp4", "wavenet", 5.0, "auto", "nothing to generate from 5 s"),
    ("clap.mp4", "fusion", 0.0, "cached", "cached generation needs a causal wavenet"),
    ("clap.mp4", "wavenet", 0.0, "naive-int8", "int8 weights need cached generation"),
])
def test_bad_inputs_show_one_line(runs, videos, video, run, start, method, reason):
    method, _, precision = method.partition("-")
    s = Studio(videos, runs if run else videos, video=str(videos / video), run=str(runs / run) if run else "",
               start=start, seconds=0.2, method=method, precision=precision or "fp32")
    s.generate_button.click()
    assert s.result is None and s.results.layout.display == "none" and not s.generate_button.disabled
    assert reason in s.message.value and "error: " in s.message.value
    assert "\n" not in s.message.value and "Traceback" not in s.message.value


def test_takes_are_made_at_once_and_each_is_the_take_of_its_seed(runs, videos):
    s = Studio(videos, runs, video=str(videos / "clap.mp4"), run=str(runs / "wavenet"), start=1.2, seconds=0.2,
               seed=5, takes=3)
    assert s.generate()["takes"] == 3 and s.message.value == ""
    assert s.all_takes.shape == (3, 0.2 * SPEC.sr, 2) and s.take.layout.display == "flex"
    assert [label for label, _ in s.take.options] == ["take 1 (seed 5)", "take 2 (seed 6)", "take 3 (seed 7)"]
    first = bytes(s.generated_audio.value)
    s.take.value = 2
    assert np.array_equal(s.audio, s.all_takes[2]) and bytes(s.generated_audio.value) != first
    alone = Studio(videos, runs, video=str(videos / "clap.mp4"), run=str(runs / "wavenet"), start=1.2, seconds=0.2,
                   seed=7)
    alone.generate()
    assert np.array_equal(alone.audio, s.all_takes[2]) and alone.take.layout.display == "none"
    naive = Studio(videos, runs, video=str(videos / "clap.mp4"), run=str(runs / "wavenet"), seconds=0.2,
                   method="naive", takes=2)
    assert naive.generate() is None and "takes in lockstep need cached generation" in naive.message.value


def test_int8_weights_are_a_choice_of_cached_generation(runs, videos):
    s = Studio(videos, runs, video=str(videos / "clap.mp4"), run=str(runs / "wavenet"), start=1.2, seconds=0.2,
               precision="int8")
    assert s.generate()["precision"] == "int8" and s.message.value == ""
    assert "(cached, int8 weights)" in s.status.value and wav_info(s.generated_audio.value) == (0.2, 2)


def test_guidance_and_nucleus_sampling_are_choices_of_mu_law_runs(runs, videos):
    s = Studio(videos, runs, video=str(videos / "clap.mp4"), run=str(runs / "wavenet"), start=1.2, seconds=0.2,
               seed=3, guidance=2.0, takes=2, top_p=0.5)
    result = s.generate()
    assert (result["guidance"], result["top_p"], result["temperature"]) == (2.0, 0.5, 1.0) and s.message.value == ""
    assert "(cached, top-p 0.5, guidance 2, 2 takes)" in s.status.value
    spec = preset("tiny")
    clip = load_clip(ingest_file(videos / "clap.mp4", videos.parent / "guided-clip", spec).clip_dir)
    model, _ = load_model(runs / "wavenet", "cpu")
    first = round(1.2 * spec.fps)
    frames, n = np.asarray(clip.frames), round(0.2 * spec.fps)
    np.testing.assert_array_equal(s.all_takes[1], generate(model, spec, frames, first, n, seed=4, guidance=2.0,
                                                           top_p=0.5))
    assert not np.array_equal(s.all_takes[1], generate(model, spec, frames, first, n, seed=4, guidance=2.0))
    assert not np.array_equal(s.all_takes[1], generate(model, spec, frames, first, n, seed=4, top_p=0.5))
