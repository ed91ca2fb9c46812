"""Figures: waveforms with frame markers and thumbnails, the model's context window, frames, motion, spectrograms.

Every function returns a matplotlib `Figure` (headless-safe, never shown). Audio is float [N, C] (or [N])
in [-1, 1]; frames are uint8 [T, H, W, 3], frame k shown from k / fps seconds.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Literal

import numpy as np
from matplotlib.figure import Figure
from matplotlib.offsetbox import AnnotationBbox, OffsetImage, TextArea, VPacker

from foleylib.core.config import AVSpec, as_fraction

MAX_MARKERS = 200  # more frame boundaries than this in a window are thinned to every m-th frame
MARKER_STYLE = {"color": "tab:orange", "linewidth": 0.6, "alpha": 0.5}
PAD_COLOR = "0.85"


def _as_2d(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    return audio[:, None] if audio.ndim == 1 else audio


def frame_marker_times(i0: int, i1: int, sr: int, fps: float) -> tuple[np.ndarray, int]:
    """Start times k / fps (s) of the frames k that begin within samples [i0, i1], exactly, and the step m.

    When more than MAX_MARKERS frames begin there, only every m-th frame (k % m == 0) is kept.
    """
    fps_exact = as_fraction(fps)
    spf = Fraction(sr) / fps_exact
    first, last = math.ceil(i0 / spf), math.floor(i1 / spf)
    step = max(1, math.ceil((last - first + 1) / MAX_MARKERS))
    ks = [k for k in range(first, last + 1) if k % step == 0]
    return np.array([float(k / fps_exact) for k in ks]), step


def _draw_frame_markers(ax, times: np.ndarray, step: int, label: bool, **style) -> None:
    """Vertical lines over the full height of `ax` at `times` (one LineCollection, gid "frame_markers")."""
    text = "frame start" if step == 1 else f"frame start (every {step} frames)"
    ax.vlines(times, 0, 1, transform=ax.get_xaxis_transform(), gid="frame_markers",
              label=text if label else None, **(MARKER_STYLE | style))


def _strip_height(frames: np.ndarray, count: int, width_in: float = 7.75) -> float:
    """Inches for a row of `count` thumbnails across `width_in` inches of axes, caption included.

    7.75 in is the axes width of plot_waveform's 10 in figure (default margins 0.125 .. 0.9).
    """
    h, w = frames.shape[1:3]
    return min(1.8, 0.9 * width_in / max(count, 1) * h / w + 0.3)


def _add_thumbnails(strip, wave_ax, frames: np.ndarray, ks: Sequence[int], fps: float) -> None:
    """A row of captioned frame thumbnails in `strip`, each joined by a thin line to its time on `wave_ax`."""
    h, w = frames.shape[1:3]
    strip_w, strip_h = (strip.get_position().size * strip.figure.get_size_inches()) * 72  # points
    zoom = min((strip_h - 16) / h, 0.9 * strip_w / max(len(ks), 1) / w)
    for j, k in enumerate(ks):
        caption = TextArea(f"#{k}  {k / fps:.2f} s", textprops={"fontsize": 8})
        thumb = VPacker(children=[caption, OffsetImage(frames[k], zoom=zoom)], align="center", pad=0, sep=2)
        box = AnnotationBbox(thumb, (k / fps, 1.0), xycoords=wave_ax.get_xaxis_transform(),
                             xybox=((j + 0.5) / len(ks), 0.0), boxcoords=strip.transAxes,
                             box_alignment=(0.5, 0.0), frameon=False, gid="thumbnail",
                             arrowprops={"arrowstyle": "-", "color": "0.3", "linewidth": 0.6})
        strip.add_artist(box)
        box.set_clip_on(False)
    strip.axis("off")


def plot_waveform(audio: np.ndarray, sr: int, fps: float, *, start_s: float = 0.0,
                  seconds: float | None = None, frames: np.ndarray | None = None, thumbnails: int = 6,
                  title: str | None = None, reference: np.ndarray | None = None,
                  labels: tuple[str, str] = ("generated", "reference")) -> Figure:
    """Each channel over time (s) with orange marks at every video-frame start (paper Fig. 8/10/11).

    `reference` [N, C] is drawn over it in translucent black (both stay visible); `frames` adds a row of
    `thumbnails` frames above, each linked to its time. The window is [start_s, start_s + seconds) (to the end
    when None).
    """
    audio = _as_2d(audio)
    if reference is not None and _as_2d(reference).shape != audio.shape:
        raise ValueError(f"reference shape {np.shape(reference)} differs from audio shape {audio.shape}")
    i0 = max(0, round(start_s * sr))
    i1 = len(audio) if seconds is None else min(len(audio), i0 + round(seconds * sr))
    t = np.arange(i0, i1) / sr
    n_ch = audio.shape[1]
    strip_rows = [_strip_height(frames, thumbnails)] if frames is not None else []
    height = 1.8 * n_ch + sum(strip_rows) + 0.6
    fig = Figure(figsize=(10, height))
    grid = {"height_ratios": strip_rows + [1.8] * n_ch, "hspace": 0.15,
            "top": 1 - 0.45 / height, "bottom": 0.6 / height}
    axes = fig.subplots(len(strip_rows) + n_ch, 1, sharex=True, squeeze=False, gridspec_kw=grid)[:, 0]
    wave_axes = axes[len(strip_rows):]
    times, step = frame_marker_times(i0, i1, sr, fps)
    for c, ax in enumerate(wave_axes):
        ax.plot(t, audio[i0:i1, c], color="tab:blue", linewidth=0.8, label=labels[0])
        if reference is not None:
            ax.plot(t, _as_2d(reference)[i0:i1, c], color="black", alpha=0.45, linewidth=0.7, label=labels[1],
                    zorder=3)
        _draw_frame_markers(ax, times, step, label=c == 0)
        ax.set_ylim(-1, 1)
        ax.set_ylabel(f"ch {c}")
    wave_axes[0].legend(loc="upper right", fontsize=8, framealpha=0.8)
    wave_axes[-1].set_xlim(i0 / sr, max(i1, i0 + 1) / sr)
    wave_axes[-1].set_xlabel("time (s)")
    if frames is not None:
        spec = AVSpec(sr=sr, fps=fps)
        last = min(len(frames) - 1, spec.frame_of_sample(max(i0, i1 - 1)))
        first = min(last, spec.frame_of_sample(i0))
        ks = np.unique(np.linspace(first, last, thumbnails).round().astype(int))
        _add_thumbnails(axes[0], wave_axes[0], frames, ks, fps)
    fig.suptitle(title or "waveform with video-frame starts")
    return fig


def _context_span(spec: AVSpec, index: int, mode: str) -> tuple[int, int, int]:
    """(context start, target start, target end) in samples; context start may be negative (padding)."""
    if mode == "sample":
        return index - spec.context_samples, index, index + 1
    k = spec.frame_of_sample(index)
    start = spec.frame_start(k)
    return start - spec.context_samples, start, spec.frame_start(k + 1)


def _draw_context_frames(axes, frames: np.ndarray, k: int, lookahead: int = 0) -> None:
    """The last len(axes) frames up to frame k + lookahead (the last frame past the end); frames before 0 are
    black zero-padding squares."""
    for j, ax in enumerate(axes):
        at = k + lookahead - len(axes) + 1 + j  # the context's position: frame at, or the last one past the end
        f = min(at, len(frames) - 1)
        ax.imshow(frames[f] if f >= 0 else np.zeros_like(frames[0]))
        ax.set_title(f"frame {f}" + (" (current)" if at == k else " (ahead)" if at > k else ""), fontsize=9)
        if f < 0:
            ax.text(0.5, 0.5, "zero padding", color="white", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([]), ax.set_yticks([])


def _draw_audio_context(ax, audio: np.ndarray, c0: int, t0: int, t1: int) -> None:
    """Context [c0, t0) with its zero-padded part shaded, and the target [t0, t1) highlighted."""
    if c0 < 0:
        ax.axvspan(c0, 0, color=PAD_COLOR, gid="zero_padding", label=f"zero padding ({-c0} samples)")
        ax.text(c0 / 2, 0.5, "zero padding", ha="center", color="0.35")
        ax.plot([c0, 0], [0, 0], color="0.4", linewidth=0.8, linestyle="--")
    target_label = "target" if t1 - t0 == 1 else f"target ({t1 - t0} samples)"
    ax.axvspan(t0, t1, color="tab:red", alpha=0.2, gid="target", label=target_label)
    ctx, target = np.arange(max(c0, 0), t0), np.arange(t0, t1)
    for c in range(audio.shape[1]):
        line, = ax.plot(ctx, audio[ctx, c], linewidth=0.8, label=f"ch {c}")
        ax.plot(target, audio[target, c], color=line.get_color(), linewidth=0.8,
                marker="o" if len(target) == 1 else None, markeredgecolor="k")
    ax.set_xlim(c0, t1 + 0.03 * (t1 - c0))
    ax.set_ylim(-1, 1)
    ax.set_xlabel("sample index")
    ax.legend(loc="upper left", fontsize=8)


def plot_context_window(audio: np.ndarray, frames: np.ndarray, spec: AVSpec, index: int, *,
                        mode: Literal["sample", "frame"] = "sample", lookahead: int = 0) -> Figure:
    """What a model sees to predict audio at `index` (paper Sec. III-B): zero-padded audio and video context.

    mode "sample": the target is sample `index`; mode "frame": the whole segment of the frame holding
    `index`. Shows the `spec.context_samples` samples before the target and the last
    `spec.context_frames` frames (current one included); positions before 0 are zero padding. With `lookahead`
    K (a run trained with --video-lookahead K) the frames end K after the current one, the last frame repeated
    past the end, as the model reads them.
    """
    if mode not in ("sample", "frame"):
        raise ValueError(f"mode must be 'sample' or 'frame', got {mode!r}")
    audio = _as_2d(audio)
    if not 0 <= index < len(audio):
        raise ValueError(f"index {index} outside the audio (0..{len(audio) - 1})")
    c0, t0, t1 = _context_span(spec, index, mode)
    t1 = min(t1, len(audio))
    k, n = spec.frame_of_sample(index), spec.context_frames
    fig = Figure(figsize=(max(8.0, 1.8 * n), 5.5), layout="constrained")
    grid = fig.add_gridspec(2, n, height_ratios=[1, 1.4])
    _draw_context_frames([fig.add_subplot(grid[0, j]) for j in range(n)], frames, k, lookahead)
    _draw_audio_context(fig.add_subplot(grid[1, :]), audio, c0, t0, t1)
    what = f"sample {index}" if mode == "sample" else f"the samples of frame {k}"
    ahead = f" ({lookahead} ahead)" if lookahead else ""
    fig.suptitle(f"context for predicting {what}: {spec.context_samples} samples, {n} frames{ahead}")
    return fig


def plot_frames(frames: np.ndarray, fps: float, *, count: int = 8, start: int = 0) -> Figure:
    """Frames start .. start + count - 1 in rows of up to 8, titled with index and time."""
    ks = range(start, min(start + count, len(frames)))
    if not ks:
        raise ValueError(f"no frames to show: start {start}, count {count}, {len(frames)} frames")
    cols = min(len(ks), 8)
    rows = math.ceil(len(ks) / cols)
    fig = Figure(figsize=(1.6 * cols, 1.8 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, k in zip(axes, ks):
        ax.imshow(frames[k])
        ax.set_title(f"#{k}  {k / fps:.2f} s", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    for ax in axes[len(ks):]:
        fig.delaxes(ax)
    return fig


def plot_spectrogram(audio: np.ndarray, sr: int, *, fps: float | None = None, ax=None) -> Figure:
    """Log-mel spectrogram (dB) of the channel mean; white frame-start marks when `fps` is given.

    Draws into `ax` when given (a colorbar is added beside it) and returns its figure.
    """
    from foleylib.core.audio import mel_filters, power_spectrogram, specshow_mel, to_db

    mono = _as_2d(audio).mean(axis=1)
    n_fft = min(1024, 1 << max(5, (len(mono) - 1).bit_length()))
    mel = mel_filters(sr, n_fft, 64, norm="slaney") @ power_spectrogram(mono, n_fft, n_fft // 4)
    if ax is None:
        ax = Figure(figsize=(10, 3.5), layout="constrained").subplots()
    img = specshow_mel(to_db(mel, ref=max(float(mel.max()), 1e-20)), sr, n_fft // 4, ax)  # 80 dB below the peak
    ax.figure.colorbar(img, ax=ax, format="%+.0f dB")
    if fps is not None:
        _draw_frame_markers(ax, *frame_marker_times(0, len(mono), sr, fps), label=True, color="white")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_title("log-mel spectrogram (channel mean)")
    return ax.figure


def plot_context_scaling(rows: Sequence[dict]) -> Figure:
    """Real-time factor of naive and cached generation against the receptive field (rows of `foley bench`'s
    context_scaling): naive work grows with the context a step re-reads, cached work with the layers only."""
    fig = Figure(figsize=(6, 3.6), layout="constrained")
    ax = fig.add_subplot()
    fields = [r["receptive_field"] for r in rows]
    for key, label, style in (("rtf_cached", "cached (fused queues)", "o-"), ("rtf_naive", "naive (the paper)", "s--")):
        ax.plot(fields, [r[key] for r in rows], style, label=label)
    ax.axhline(1.0, color="0.5", lw=0.8, ls=":", label="real time")
    ax.set(xscale="log", yscale="log", xlabel="receptive field (samples)",
           ylabel="seconds of audio per wall second", title="WaveNet generation, one stream, 16 kHz stereo")
    ax.set_xticks(fields, [str(f) for f in fields])
    ax.legend()
    return fig


def plot_motion(frames: np.ndarray, motion: np.ndarray, ks: Sequence[int], fps: float, *, step: int = 4) -> Figure:
    """The motion input drawn over its frames (`motion.motion_channels`), one column per frame k: on top the frame,
    its difference from frame k-1 in red and the optical flow as arrows (every `step` px, drawn 3x long); below,
    the stop cue in yellow over the grey frame (where motion into frame k-1 ended before frame k, and how early)."""
    from foleylib.data.motion import FLOW_SCALE, MOTION_CHANNELS

    if motion.shape[:3] != frames.shape[:3] or motion.shape[-1] != len(MOTION_CHANNELS):
        raise ValueError(f"motion {motion.shape} does not belong to frames {frames.shape}")
    if not ks or min(ks) < 0 or max(ks) >= len(frames):
        raise ValueError(f"frames to show {list(ks)} are not within the {len(frames)} frames")
    ch = {name: i for i, name in enumerate(MOTION_CHANNELS)}
    size = frames.shape[1]
    ys, xs = np.mgrid[step // 2:size:step, step // 2:size:step]
    fig = Figure(figsize=(2.2 * len(ks), 4.8), layout="constrained")
    axes = fig.subplots(2, len(ks), squeeze=False)
    for col, k in enumerate(ks):
        m = motion[k].astype(np.float32)
        dx = (m[..., ch["right"]] - m[..., ch["left"]]) / FLOW_SCALE
        dy = (m[..., ch["down"]] - m[..., ch["up"]]) / FLOW_SCALE
        top, bottom = axes[0, col], axes[1, col]
        top.imshow(frames[k])
        top.imshow(_overlay(m[..., ch["diff"]], (1.0, 0.1, 0.1)))
        moving = np.hypot(dx[ys, xs], dy[ys, xs]) > 0
        if moving.any():
            top.quiver(xs[moving], ys[moving], dx[ys, xs][moving], dy[ys, xs][moving], color="cyan", angles="xy",
                       scale_units="xy", scale=1 / 3, width=0.012)
        top.set_title(f"#{k}  {k / fps:.2f} s\nflow, difference", fontsize=9)
        bottom.imshow(frames[k].mean(axis=-1), cmap="gray", vmin=0, vmax=255)
        bottom.imshow(_overlay(m[..., ch["stop"]], (1.0, 0.85, 0.0)))
        bottom.set_title(f"stop cue (motion into #{k - 1}\nended before #{k})", fontsize=8)
        for ax in (top, bottom):
            ax.set_xticks([]), ax.set_yticks([])
    return fig


def _overlay(level: np.ndarray, rgb: tuple[float, float, float]) -> np.ndarray:
    """An RGBA image of one colour whose opacity follows a uint8 level (0: clear, 255: 85% opaque)."""
    image = np.empty((*level.shape, 4), np.float32)
    image[..., :3] = rgb
    image[..., 3] = 0.85 * np.asarray(level, np.float32) / 255
    return image
