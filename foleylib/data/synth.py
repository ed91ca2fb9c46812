"""Synthetic scenes with known truth: clap, car and water videos whose sound is caused by what is seen.

Every scene is deterministic for a seed (numpy.random.default_rng(seed) is its only randomness) and any
duration. Audio is float32 stereo [N, 2]; sample `AVSpec.frame_start(k)` is the first sound of video frame k,
so a sound caused on frame k starts exactly there. Frames are drawn one at a time (cv2 primitives, numpy).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from foleylib.core.config import AVSpec
from foleylib.core.fsutil import atomic_path, write_json

SceneKind = Literal["clap", "car", "water"]
KINDS: tuple[str, ...] = ("clap", "car", "water")
WATER_SCENES = ("waterfall", "river", "waves")
PEAK = 0.8  # every scene's audio is scaled to this absolute peak

# water: relative level, how much the wave height modulates it, amplitude-spectrum slope (|X(f)| ~ f**tilt)
_WATER_LEVEL = np.array([1.0, 0.45, 0.8])
_WATER_DEPTH = np.array([0.0, 0.0, 0.8])
_WATER_TILT = (0.0, 0.5, -0.8)

Draw = Callable[[int], np.ndarray]  # frame index -> uint8 RGB [H, W, 3]
Built = tuple[np.ndarray, dict, Draw]  # audio [N, 2], truth, frame drawer


@dataclass
class Scene:
    """A scene: its audio and truth in memory, its frames drawn on demand by `draw(k)`."""

    kind: str
    fps: float
    sr: int
    n_frames: int
    audio: np.ndarray  # float32 [N, 2] in [-1, 1], N = AVSpec.frame_start(n_frames)
    events: dict  # JSON-able truth (see render_scene)
    draw: Draw  # frame index -> uint8 RGB [H, W, 3]

    def frames(self) -> Iterator[np.ndarray]:
        """All frames in order, drawn lazily (one in memory at a time)."""
        return (self.draw(k) for k in range(self.n_frames))


@dataclass(frozen=True)
class _Grid:
    """The frame/sample grid a scene is built on."""

    fps: float
    sr: int
    width: int
    height: int
    starts: np.ndarray  # int [n_frames + 1]: first sample of each frame, then the total sample count

    @property
    def n_frames(self) -> int:
        return len(self.starts) - 1

    @property
    def n_samples(self) -> int:
        return int(self.starts[-1])

    def per_sample(self, per_frame: np.ndarray) -> np.ndarray:
        """Per-frame values (taken at frame starts) linearly interpolated to every sample."""
        return np.interp(np.arange(self.n_samples), self.starts[:-1], per_frame)

    def frame_of_sample(self) -> np.ndarray:
        """int [N]: the frame on screen while each sample plays."""
        return np.searchsorted(self.starts, np.arange(self.n_samples), side="right") - 1


def _stereo(mono: np.ndarray, pan: np.ndarray | float) -> np.ndarray:
    """Constant-power pan (-1 left .. +1 right) of mono [N] to [N, 2]; L^2 + R^2 == mono^2."""
    theta = (np.asarray(pan) + 1) * np.pi / 4
    return np.stack([mono * np.cos(theta), mono * np.sin(theta)], axis=1)


def _normalise(audio: np.ndarray) -> tuple[np.ndarray, float]:
    """Audio scaled to PEAK as float32, and the gain applied."""
    gain = PEAK / max(float(np.abs(audio).max()), 1e-9)
    return (audio * gain).astype(np.float32), gain


def _wander(rng: np.random.Generator, g: _Grid, every_s: float, lo: float, hi: float) -> np.ndarray:
    """[n_frames] values wandering smoothly in [lo, hi]: random knots every `every_s`, cosine-interpolated."""
    step = max(1.0, every_s * g.fps)
    knots = rng.uniform(lo, hi, int(g.n_frames / step) + 2)
    pos = np.arange(g.n_frames) / step
    i = pos.astype(int)
    u = (1 - np.cos(np.pi * (pos - i))) / 2
    return knots[i] + (knots[i + 1] - knots[i]) * u


def _floats(values: np.ndarray) -> list[float]:
    """JSON-able floats, 5 decimals."""
    return [round(float(v), 5) for v in values]


def _clap(rng: np.random.Generator, g: _Grid) -> Built:
    """Two hands meet at irregular frames; each contact is a bandpassed noise burst panned by where it happens."""
    w, h = g.width, g.height
    min_gap = max(2, round(0.4 * g.fps))
    gaps = np.maximum(min_gap, np.round(rng.uniform(0.4, 1.5, g.n_frames // min_gap + 2) * g.fps)).astype(int)
    anchors = np.concatenate([[-gaps[0]], np.cumsum(gaps[1:])])  # contact frames; the first is before frame 0
    meet_x = rng.uniform(0.15, 0.85, len(anchors)) * w
    amps = rng.uniform(0.5, 1.0, len(anchors))
    decay_s = rng.uniform(0.03, 0.08, len(anchors))
    length = round(0.08 * g.sr)
    noise = np.fft.rfft(rng.standard_normal((len(anchors), length)), axis=1)
    freqs = np.fft.rfftfreq(length, 1 / g.sr)
    band = (freqs >= 800) & (freqs <= 5000)
    bursts = np.fft.irfft(noise * band, length, axis=1) * np.exp(-5 * np.arange(length) / g.sr / decay_s[:, None])
    bursts *= amps[:, None] / np.abs(bursts).max(axis=1, keepdims=True)

    k = np.arange(g.n_frames)
    j = np.searchsorted(anchors, k, side="right") - 1  # the last contact at or before each frame
    u = (k - anchors[j]) / (anchors[j + 1] - anchors[j])  # 0 on a contact frame, ->1 towards the next
    gap = 0.25 * w * np.sin(np.pi * u)  # hands apart between contacts, touching exactly on them
    centre = meet_x[j] + (meet_x[j + 1] - meet_x[j]) * (1 - np.cos(np.pi * u)) / 2

    audio = np.zeros((g.n_samples, 2))
    onsets = []
    for i in np.flatnonzero((anchors >= 0) & (anchors < g.n_frames)):
        s, pan = int(g.starts[anchors[i]]), 2 * meet_x[i] / w - 1
        n = min(length, g.n_samples - s)
        audio[s:s + n] += _stereo(bursts[i, :n], pan)
        onsets.append({"time": round(float(anchors[i] / g.fps), 6), "frame": int(anchors[i]), "sample": s,
                       "pan": round(float(pan), 5), "x": round(float(meet_x[i]), 2)})

    background = np.full((h, w, 3), (52, 60, 78), np.uint8)
    rx, ry, cy = max(2, round(0.06 * w)), max(2, round(0.13 * h)), h // 2

    def draw(f: int) -> np.ndarray:
        img = background.copy()
        mid, half = round(centre[f]), round(gap[f] / 2)
        for hx in (mid - half - rx, mid + half + rx):  # ellipses span hx +- rx: they touch when half == 0
            cv2.rectangle(img, (hx - rx // 2, cy + ry // 2), (hx + rx // 2, h), (70, 110, 170), -1)  # sleeve
            cv2.ellipse(img, (hx, cy), (rx, ry), 0, 0, 360, (230, 185, 150), -1)  # hand
        return img

    return _normalise(audio)[0], {"onsets": onsets}, draw


def _car(rng: np.random.Generator, g: _Grid) -> Built:
    """A car with a wandering speed, followed by a panning camera; engine f0 follows speed, level its distance."""
    w, h = g.width, g.height
    speed = _wander(rng, g, 1.5, 0.0, 1.0)  # 0..1
    x = _wander(rng, g, 2.5, 0.2, 0.8) * w  # car centre on screen, px
    f0 = 60.0 + 140.0 * speed  # Hz
    world = np.cumsum((0.5 + 2.0 * speed) * w / g.fps)  # car position along the road, px
    camera = world - x  # the camera pans so that the car is seen at x
    near = 1.0 / (1.0 + ((x - w / 2) / (0.25 * w)) ** 2)  # 1 at the centre of the frame
    weights = np.concatenate([[1.0], rng.uniform(0.3, 0.8, 5) / np.arange(2, 7)])  # harmonics 1..6
    offsets = rng.uniform(0, 2 * np.pi, len(weights))
    tree_sizes = rng.uniform(0.6, 1.0, 16)

    phase = 2 * np.pi * np.cumsum(g.per_sample(f0)) / g.sr  # integrated f0: continuous phase
    tone = sum(a * np.sin((i + 1) * phase + o) for i, (a, o) in enumerate(zip(weights, offsets, strict=True)))
    audio, gain = _normalise(_stereo(tone * g.per_sample(near), g.per_sample(2 * x / w - 1)))
    loudness = near * gain * np.sqrt(np.sum(weights**2) / 2)  # expected sqrt(mean(L^2 + R^2)) per frame

    background = np.empty((h, w, 3), np.uint8)
    background[:] = (135, 190, 235)  # sky
    background[int(0.55 * h):] = (70, 140, 60)  # grass
    background[int(0.65 * h):] = (80, 80, 85)  # road
    spacing, cw, ch, r = 0.25 * w, round(0.22 * w), round(0.07 * h), max(2, round(0.035 * w))
    yb = int(0.85 * h)

    def draw(f: int) -> np.ndarray:
        img = background.copy()
        far = camera[f] * 0.5  # trees at half the road's parallax
        for t in range(int(far // spacing) - 1, int((far + w) // spacing) + 2):
            tx, th = round(t * spacing - far), tree_sizes[t % 16] * 0.3 * h
            cv2.rectangle(img, (tx - 3, int(0.56 * h - th)), (tx + 3, int(0.56 * h)), (90, 60, 30), -1)
            cv2.circle(img, (tx, int(0.56 * h - th)), max(3, round(0.35 * th)), (30, 110, 40), -1)
        dash = 0.15 * w
        for d in np.arange(-(camera[f] % dash), w, dash):
            cv2.rectangle(img, (round(d), int(0.92 * h)), (round(d + 0.06 * w), int(0.93 * h) + 1), (240,) * 3, -1)
        cx = round(x[f])
        cv2.rectangle(img, (cx - cw // 4, yb - 2 * ch), (cx + cw // 4, yb - ch), (170, 30, 30), -1)  # cabin
        cv2.rectangle(img, (cx - cw // 2, yb - ch), (cx + cw // 2, yb), (200, 35, 35), -1)  # body
        angle = world[f] / r  # wheels roll with the distance driven
        for wx in (cx - round(0.3 * cw), cx + round(0.3 * cw)):
            cv2.circle(img, (wx, yb), r, (25, 25, 25), -1)
            tip = (round(wx + r * np.cos(angle)), round(yb + r * np.sin(angle)))
            cv2.line(img, (wx, yb), tip, (220, 220, 220), 2)
        return img

    per_frame = {"f0": _floats(f0), "loudness": _floats(loudness), "x": _floats(x), "speed": _floats(speed)}
    return audio, {"per_frame": per_frame}, draw


def _tilted_noise(rng: np.random.Generator, n: int, sr: int, tilt: float) -> np.ndarray:
    """[n, 2] independent noise with |X(f)| ~ f**tilt (nothing below 30 Hz), mean(L^2 + R^2) == 1."""
    freqs = np.fft.rfftfreq(n, 1 / sr)
    shape = (np.maximum(freqs, 100.0) / 1000.0) ** tilt * (freqs >= 30)
    x = np.fft.irfft(np.fft.rfft(rng.standard_normal((n, 2)), axis=0) * shape[:, None], n, axis=0)
    return x / np.sqrt(2 * np.mean(x**2) + 1e-20)


def _streaks(rng: np.random.Generator, length: int, across: int, knots: int, lo, hi) -> np.ndarray:
    """uint8 RGB [length, across, 3] streaks along axis 0, periodic in `length` so it scrolls without a seam."""
    coarse = cv2.resize(rng.random((knots, max(2, across // 4))), (across, knots), interpolation=cv2.INTER_LINEAR)
    pos = np.arange(length) * knots / length
    i, frac = pos.astype(int), (pos % 1)[:, None]
    t = coarse[i] * (1 - frac) + coarse[(i + 1) % knots] * frac  # wraps from the last knot to the first
    t = (0.8 * t + 0.2 * rng.random((length, across)))[..., None]
    return (np.array(lo) + t * (np.array(hi) - np.array(lo))).astype(np.uint8)


def _water_level(scene: np.ndarray, height: np.ndarray) -> np.ndarray:
    """Relative level of the water sound for scene indices and wave heights (0..1) of the same shape."""
    return _WATER_LEVEL[scene] * (1 - _WATER_DEPTH[scene] + _WATER_DEPTH[scene] * height)


def _water(rng: np.random.Generator, g: _Grid) -> Built:
    """Waterfall / river / waves segments; noise level and tilt follow the scene, and the wave height."""
    w, h, fps = g.width, g.height, g.fps
    lengths = np.maximum(1, np.round(rng.uniform(2.5, 4.5, g.n_frames // max(1, round(2.5 * fps)) + 2) * fps))
    bounds = np.concatenate([[0], np.cumsum(lengths).astype(int)])
    bounds = np.append(bounds[bounds < g.n_frames], g.n_frames)  # frame boundaries of the segments
    order = rng.permutation(len(WATER_SCENES))
    seg_scene = order[np.arange(len(bounds) - 1) % len(order)]  # a cycle: any three segments show all scenes
    scene = np.repeat(seg_scene, np.diff(bounds))  # per frame
    period, phase0 = rng.uniform(2.0, 4.0), rng.uniform(0, 2 * np.pi)
    height = 0.5 + 0.5 * np.sin(2 * np.pi * np.arange(g.n_frames) / fps / period + phase0)  # waves, 0..1
    level = _water_level(scene, height)

    noise = np.concatenate([_tilted_noise(rng, int(g.starts[b] - g.starts[a]), g.sr, _WATER_TILT[s])
                            for a, b, s in zip(bounds[:-1], bounds[1:], seg_scene, strict=True)])
    level_s = _water_level(scene[g.frame_of_sample()], g.per_sample(height))
    audio, gain = _normalise(noise * level_s[:, None])

    fall = _streaks(rng, 2 * h, w, 8, (40, 90, 150), (235, 245, 255))  # [2h, w, 3], falls down
    river = _streaks(rng, 2 * w, h, 6, (30, 100, 95), (150, 205, 195)).transpose(1, 0, 2)  # [h, 2w, 3], flows
    rows, cols = np.arange(h), np.arange(w)

    def draw(f: int) -> np.ndarray:
        kind = WATER_SCENES[scene[f]]
        if kind == "waterfall":  # streaks falling between rock walls
            img = fall[(rows - round(0.08 * h * f)) % (2 * h)]
            img[:, : w // 6] = img[:, w - w // 6:] = (85, 80, 75)
        elif kind == "river":  # streaks flowing sideways between green banks
            img = river[:, (cols - round(0.02 * w * f)) % (2 * w)]
            img[: h // 5] = (60, 120, 50)
        else:  # the sea rises and falls with `height`; ripples travel along it
            crest = h * (0.75 - 0.35 * height[f]) + 0.02 * h * np.sin(6 * np.pi * cols / w - 2 * f / fps)
            img = np.where((rows[:, None] >= crest)[..., None], np.uint8([25, 70, 120]), np.uint8([170, 205, 235]))
            cv2.polylines(img, [np.stack([cols, crest], 1).round().astype(np.int32)], False, (240, 245, 250), 2)
        return np.ascontiguousarray(img)

    labels = [WATER_SCENES[s] for s in scene]
    segments = [{"scene": WATER_SCENES[s], "start": round(float(a / fps), 6), "end": round(float(b / fps), 6)}
                for a, b, s in zip(bounds[:-1], bounds[1:], seg_scene, strict=True)]
    return audio, {"per_frame": {"scene": labels, "loudness": _floats(level * gain)}, "segments": segments}, draw


_BUILDERS: dict[str, Callable[[np.random.Generator, _Grid], Built]] = {"clap": _clap, "car": _car, "water": _water}


def make_scene(kind: SceneKind, seconds: float = 10.0, seed: int = 0, fps: float = 25.0,
               width: int = 640, height: int = 360, sr: int = 44100) -> Scene:
    """Build a scene in memory (no I/O): round(seconds * fps) frames and their exactly aligned audio."""
    if kind not in KINDS:
        raise ValueError(f"unknown scene kind {kind!r}; choose one of {', '.join(KINDS)}")
    if not np.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"seconds must be positive and finite, got {seconds}")
    if width < 16 or height < 16:
        raise ValueError(f"frame size must be at least 16x16, got {width}x{height}")
    spec = AVSpec(sr=sr, fps=fps)
    n_frames = max(1, round(seconds * fps))
    g = _Grid(fps, sr, width, height, np.array([spec.frame_start(k) for k in range(n_frames + 1)]))
    audio, truth, draw = _BUILDERS[kind](np.random.default_rng(seed), g)
    events = {"kind": kind, "fps": fps, "sr": sr, "seconds": n_frames / fps, "n_frames": n_frames,
              "n_samples": g.n_samples, **truth}
    return Scene(kind, fps, sr, n_frames, audio, events, draw)


def tinted(scene: Scene, seed: int) -> Scene:
    """The scene with its colours changed: per-channel gains in [0.6, 1.4] drawn from `seed` (recorded in
    events["tint"]), so that scenes of one kind differ in colour as well as in timing and positions."""
    gains = np.random.default_rng([seed, 1]).uniform(0.6, 1.4, 3)
    draw = scene.draw

    def tinted_draw(k: int) -> np.ndarray:
        return np.clip(draw(k) * gains, 0, 255).astype(np.uint8)

    return replace(scene, draw=tinted_draw, events={**scene.events, "tint": _floats(gains)})


def render_scene(kind: SceneKind, out_dir: str | Path, seconds: float = 10.0, seed: int = 0,
                 fps: float = 25.0, width: int = 640, height: int = 360, sr: int = 44100,
                 name: str | None = None, tint: bool = False) -> dict[str, Path]:
    """Write out_dir/<name>.mp4 (H.264 + AAC stereo), <name>.wav (float32 truth) and <name>.events.json; the
    name is the kind unless given; `tint` varies the colours by the seed (see tinted).

    events.json holds kind, fps, sr, seconds, n_frames, n_samples and the truth: clap `onsets` (time, frame,
    sample, pan, x); car `per_frame` f0 (Hz), loudness, x (px), speed (0..1); water `per_frame` scene and
    loudness, and `segments`. Loudness is the expected sqrt(mean(L^2 + R^2)) of the frame's samples.
    """
    from foleylib.core.audio import write_wav  # librosa and moviepy: loaded when a scene is written, not for KINDS
    from foleylib.data.media import write_video

    scene = make_scene(kind, seconds, seed, fps, width, height, sr)
    scene = tinted(scene, seed) if tint else scene
    out, name = Path(out_dir), name or kind
    paths = {"video": out / f"{name}.mp4", "wav": out / f"{name}.wav", "events": out / f"{name}.events.json"}
    write_video(paths["video"], scene.frames(), scene.fps, scene.audio, scene.sr)
    with atomic_path(paths["wav"]) as tmp:
        write_wav(tmp, scene.audio, scene.sr, subtype="FLOAT")
    write_json(paths["events"], scene.events)
    return paths


def render_scenes(kind: SceneKind, out_dir: str | Path, count: int, seconds: float = 10.0, seed: int = 0,
                  **render_args) -> list[dict[str, Path]]:
    """`count` varied scenes of one kind for multi-video training: <kind>-<k> rendered with seed + k (its own
    event timing, speeds and positions) and tinted by it (its own colours). render_args go to render_scene."""
    return [render_scene(kind, out_dir, seconds, seed + k, name=f"{kind}-{k}", tint=True, **render_args)
            for k in range(count)]
