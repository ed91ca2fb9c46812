"""Plots are checked headless: the artists they draw (frame markers, thumbnails, zero padding), not pixels."""
import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.offsetbox import AnnotationBbox

from foleylib.core.config import AVSpec
from foleylib.evaluation.plots import (
    MAX_MARKERS,
    frame_marker_times,
    plot_context_window,
    plot_frames,
    plot_spectrogram,
    plot_waveform,
)

SR, FPS = 8000, 25


def clip(seconds: float, channels: int = 2) -> np.ndarray:
    t = np.arange(round(seconds * SR)) / SR
    return np.stack([0.5 * np.sin(2 * np.pi * (110 + 55 * c) * t) for c in range(channels)], axis=1)


def video(n: int, h: int = 24, w: int = 32) -> np.ndarray:
    return (np.arange(n)[:, None, None, None] * 10 + np.zeros((n, h, w, 3))).astype(np.uint8) % 255


def markers(ax) -> np.ndarray:
    """x positions of the frame-marker lines drawn on ax."""
    (coll,) = [c for c in ax.collections if c.get_gid() == "frame_markers"]
    return np.array([seg[0][0] for seg in coll.get_segments()])


def test_waveform_marks_every_frame_start_of_one_second():
    fig = plot_waveform(clip(1.0), SR, FPS)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    for ax in fig.axes:
        np.testing.assert_allclose(markers(ax), np.arange(26) / 25)  # frames 0..24 and the end (frame 25)
        assert ax.get_ylim() == (-1, 1)


def test_waveform_window_shows_only_its_frames():
    fig = plot_waveform(clip(1.0, channels=1), SR, FPS, start_s=0.2, seconds=0.2)
    assert len(fig.axes) == 1
    np.testing.assert_allclose(markers(fig.axes[0]), np.arange(5, 11) / 25)
    np.testing.assert_allclose(fig.axes[0].get_xlim(), (0.2, 0.4))


def test_waveform_thins_markers_past_the_limit_and_says_so():
    fig = plot_waveform(clip(10.0), SR, FPS)  # 251 frame starts > MAX_MARKERS
    x = markers(fig.axes[0])
    assert len(x) <= MAX_MARKERS
    np.testing.assert_allclose(x, np.arange(0, 251, 2) / 25)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "frame start (every 2 frames)" in labels


def test_frame_marker_times_non_integer_samples_per_frame():
    times, step = frame_marker_times(0, 16000, 16000, 30)  # 1600/3 samples per frame
    assert step == 1
    np.testing.assert_allclose(times, np.arange(31) / 30)


def test_waveform_reference_drawn_translucent_over_generated():
    audio = clip(0.5)
    fig = plot_waveform(audio, SR, FPS, reference=0.5 * audio, labels=("model", "truth"))
    model, truth = fig.axes[0].get_lines()[:2]
    assert (model.get_label(), truth.get_label()) == ("model", "truth")
    assert truth.get_zorder() > model.get_zorder() and truth.get_alpha() < 1  # both stay visible
    np.testing.assert_allclose(truth.get_ydata(), 0.5 * audio[:, 0])
    with pytest.raises(ValueError, match="reference shape"):
        plot_waveform(audio, SR, FPS, reference=audio[:10])


def test_waveform_thumbnails_at_their_frame_times():
    fig = plot_waveform(clip(1.0), SR, FPS, frames=video(25), thumbnails=6)
    assert len(fig.axes) == 3  # thumbnail strip + two channels
    boxes = [a for a in fig.axes[0].artists if isinstance(a, AnnotationBbox)]
    assert len(boxes) == 6
    ks = np.array([box.xy[0] for box in boxes]) * FPS
    np.testing.assert_allclose(ks, ks.round(), atol=1e-9)
    assert ks[0] == 0 and ks[-1] == 24 and np.all(np.diff(ks) > 0)


def test_context_window_pads_audio_and_frames_at_the_start():
    spec = AVSpec(sr=16000, fps=25, context_frames=4, context_samples=1024)
    fig = plot_context_window(clip(0.5), video(12), spec, 100)
    assert len(fig.axes) == spec.context_frames + 1
    audio_ax = fig.axes[-1]
    (pad,) = [p for p in audio_ax.patches if p.get_gid() == "zero_padding"]
    assert (pad.get_x(), pad.get_x() + pad.get_width()) == (-924, 0)
    padded = [ax for ax in fig.axes[:-1] if any(t.get_text() == "zero padding" for t in ax.texts)]
    assert len(padded) == spec.context_frames - 1


def test_context_window_frame_mode_targets_the_whole_frame():
    spec = AVSpec(sr=16000, fps=25, context_frames=3, context_samples=1024)  # 640 samples per frame
    fig = plot_context_window(clip(0.5), video(12), spec, 700, mode="frame")  # frame 1: [640, 1280)
    audio_ax = fig.axes[-1]
    (target,) = [p for p in audio_ax.patches if p.get_gid() == "target"]
    assert (target.get_x(), target.get_x() + target.get_width()) == (640, 1280)
    (pad,) = [p for p in audio_ax.patches if p.get_gid() == "zero_padding"]
    assert (pad.get_x(), pad.get_width()) == (-384, 384)
    assert sum(any(t.get_text() == "zero padding" for t in ax.texts) for ax in fig.axes[:-1]) == 1


def test_context_window_needs_no_padding_later_and_refuses_bad_input():
    spec = AVSpec(sr=16000, fps=25, context_frames=2, context_samples=256)
    fig = plot_context_window(clip(0.5), video(12), spec, 3000)
    assert not [p for p in fig.axes[-1].patches if p.get_gid() == "zero_padding"]
    with pytest.raises(ValueError, match="outside the audio"):
        plot_context_window(clip(0.1), video(3), spec, 10_000)
    with pytest.raises(ValueError, match="mode"):
        plot_context_window(clip(0.1), video(3), spec, 0, mode="window")


def test_plot_frames_titles_and_counts():
    fig = plot_frames(video(25), FPS, count=12, start=2)
    assert len(fig.axes) == 12
    assert fig.axes[0].get_title() == "#2  0.08 s"
    assert len(plot_frames(video(25), FPS, count=8, start=20).axes) == 5  # clipped at the last frame
    with pytest.raises(ValueError, match="no frames"):
        plot_frames(video(3), FPS, start=5)


def test_spectrogram_with_markers_and_into_given_axes():
    fig = plot_spectrogram(clip(1.0), SR, fps=FPS)
    assert len(fig.axes) == 2  # spectrogram + colorbar
    np.testing.assert_allclose(markers(fig.axes[0]), np.arange(26) / 25)
    host = Figure()
    ax = host.subplots()
    assert plot_spectrogram(clip(0.2)[:, 0], SR, ax=ax) is host


def test_every_figure_saves_as_png(tmp_path):
    spec = AVSpec(sr=SR, fps=FPS, context_frames=3, context_samples=512)
    figures = {
        "waveform": plot_waveform(clip(1.0), SR, FPS, frames=video(25), reference=clip(1.0) * 0.5),
        "context": plot_context_window(clip(1.0), video(25), spec, 100),
        "frames": plot_frames(video(25), FPS),
        "spectrogram": plot_spectrogram(clip(1.0), SR, fps=FPS),
    }
    for name, fig in figures.items():
        path = tmp_path / f"{name}.png"
        fig.savefig(path, dpi=60)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def moving_square(count: int = 6, size: int = 32, stop_at: int = 3) -> np.ndarray:
    """A white 8 px square on black moving 2 px right per frame until frame `stop_at`, then still."""
    frames = np.zeros((count, size, size, 3), np.uint8)
    for k in range(count):
        x = 6 + 2 * min(k, stop_at)
        frames[k, 12:20, x:x + 8] = 255
    return frames


def test_motion_drawn_over_frames_arrows_only_where_it_moves():
    from matplotlib.quiver import Quiver

    from foleylib.data.motion import motion_channels
    from foleylib.evaluation.plots import plot_motion

    frames = moving_square()
    fig = plot_motion(frames, motion_channels(frames), [0, 2, 5], fps=25)
    top = [ax for ax in fig.axes if "flow" in ax.get_title()]
    quivers = [[c for c in ax.collections if isinstance(c, Quiver)] for ax in top]
    assert [len(q) for q in quivers] == [0, 1, 0]  # frame 0: nothing before it; frame 5: the square stands still
    u = quivers[1][0].U
    assert len(u) >= 1 and np.all(np.asarray(u) > 0)  # every arrow points right, as the square moves
    assert top[1].get_title().startswith("#2  0.08 s")
    with pytest.raises(ValueError, match="not within"):
        plot_motion(frames, motion_channels(frames), [6], fps=25)
    with pytest.raises(ValueError, match="does not belong"):
        plot_motion(frames, motion_channels(frames)[:3], [0], fps=25)


def test_context_window_looking_ahead_shows_the_frames_the_model_reads():
    """--video-lookahead K: the frames end K after the current one, the last frame repeated past the end (as
    dataset.AdvancedFrames reads them)."""
    spec = AVSpec(sr=SR, fps=25, context_frames=3, context_samples=256)  # 320 samples per frame: 12 frames
    titles = [ax.get_title() for ax in plot_context_window(clip(0.48), video(12), spec, 5 * 320, lookahead=2).axes[:-1]]
    assert titles == ["frame 5 (current)", "frame 6 (ahead)", "frame 7 (ahead)"]
    fig = plot_context_window(clip(0.48), video(12), spec, 11 * 320 + 5, lookahead=2)  # frame 11, the last
    assert [ax.get_title() for ax in fig.axes[:-1]] == ["frame 11 (current)", "frame 11 (ahead)", "frame 11 (ahead)"]
    assert [ax.get_images()[0].get_array().tolist() for ax in fig.axes[:-1]] == [video(12)[11].tolist()] * 3
    assert "(2 ahead)" in fig._suptitle.get_text()
    behind = plot_context_window(clip(0.48), video(12), spec, 5 * 320)
    assert [ax.get_title() for ax in behind.axes[:-1]] == ["frame 3", "frame 4", "frame 5 (current)"]
