"""Synthetic scenes with known ground truth: analogues of the paper's three test videos (Sec. IV).

- clap: two hands meet at irregular times; each contact starts a short decaying burst on that very frame,
  panned by where the hands meet. Truth: onset time, frame, sample and pan of every clap.
- car: a car drives with changing speed while the camera pans; the engine's f0 follows the speed, its loudness
  the car's size on screen (distance), its pan the car's position. Truth per frame: f0, loudness, x, speed.
- water: waterfall / river / waves scenes; broadband noise whose level and spectral tilt follow the scene, and
  for waves the visible wave height. Truth per frame: scene label and loudness.

Everything is drawn from `numpy.random.default_rng(seed)`, so a scene is the same for the same arguments.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import soundfile as sf
from scipy.signal import butter, lfilter

from .config import AVSpec
from .fsutil import atomic_path, write_json
from .media import write_video

SceneKind = Literal["clap", "car", "water"]
KINDS: tuple[str, ...] = ("clap", "car", "water")
NOISE_FLOOR = 0.002  # a faint hiss under every scene, so silence is never exactly zero


@dataclass
class Scene:
    """A rendered scene: audio and truth in memory, frames drawn on demand (30 s never sit in RAM)."""

    kind: str
    fps: float
    sr: int
    n_frames: int
    audio: np.ndarray  # float32 [N, 2] in [-1, 1], N = the first sample of frame n_frames
    events: dict
    draw: Callable[[int], np.ndarray]  # frame index -> uint8 [H, W, 3]

    def frames(self) -> Iterator[np.ndarray]:
        return (self.draw(k) for k in range(self.n_frames))


def constant_power_pan(mono: np.ndarray, pan: np.ndarray | float) -> np.ndarray:
    """[N] -> [N, 2]; pan -1 = left, +1 = right, equal power at every position."""
    angle = (np.asarray(pan) + 1) * np.pi / 4
    return np.stack([mono * np.cos(angle), mono * np.sin(angle)], axis=-1)


def per_sample(values: np.ndarray, spec: AVSpec, n_samples: int) -> np.ndarray:
    """Per-frame values -> per-sample values, linear between frame centres (smooth, no zipper noise)."""
    centres = (np.arange(len(values)) + 0.5) * float(spec.samples_per_frame)
    return np.interp(np.arange(n_samples), centres, values)


def smooth_random(rng: np.random.Generator, n: int, knots: int) -> np.ndarray:
    """A smooth random curve in [0, 1] over n points (cosine-interpolated random knots)."""
    values = rng.uniform(0, 1, knots + 1)
    pos = np.linspace(0, knots, n)
    i = np.minimum(pos.astype(int), knots - 1)
    w = (1 - np.cos(np.pi * (pos - i))) / 2
    return values[i] * (1 - w) + values[i + 1] * w


# --------------------------------------------------------------------------------------------------- clap
def clap_scene(rng: np.random.Generator, spec: AVSpec, n_frames: int, width: int, height: int) -> Scene:
    n = spec.frame_start(n_frames)
    fps = float(spec.fps_exact)
    onsets, t = [], rng.uniform(0.3, 0.8)
    while round(t * fps) < n_frames - 2:
        onsets.append(round(t * fps))
        t += rng.uniform(0.4, 1.5)
    xs = rng.uniform(0.2, 0.8, len(onsets)) * width
    audio = NOISE_FLOOR * rng.standard_normal((n, 2))
    burst_len = int(0.08 * spec.sr)
    clap_band = butter(2, [400, 4000], btype="bandpass", fs=spec.sr)
    decay = np.exp(-np.arange(burst_len) / (rng.uniform(0.010, 0.020) * spec.sr))
    events = []
    for k, x in zip(onsets, xs, strict=True):
        start = spec.frame_start(k)
        noise = lfilter(*clap_band, rng.standard_normal(burst_len))  # slap-like band noise, 0.4-4 kHz
        burst = rng.uniform(0.5, 0.8) * decay * noise / np.abs(noise).max()
        pan = 2 * x / width - 1
        stop = min(n, start + burst_len)
        audio[start:stop] += constant_power_pan(burst[:stop - start], pan)
        events.append({"time": start / spec.sr, "frame": k, "sample": start, "pan": round(float(pan), 4),
                       "x": round(float(x), 1)})

    frames = np.arange(n_frames)
    onset_arr = np.array(onsets) if onsets else np.array([-10**6])
    nearest = np.abs(frames[:, None] - onset_arr[None, :]).argmin(axis=1)
    distance = np.abs(frames - onset_arr[nearest])
    gap = 0.25 * width * np.minimum(1.0, distance / max(2.0, 0.2 * fps))  # 0 only on the contact frame
    centre_x = np.interp(frames, onset_arr, xs) if onsets else np.full(n_frames, width / 2)
    background = np.full((height, width, 3), (40, 60, 90), np.uint8)
    hand_w, hand_h, skin = int(0.06 * width), int(0.3 * height), (230, 180, 150)

    def draw(k: int) -> np.ndarray:
        img = background.copy()
        cx, g, cy = int(centre_x[k]), int(gap[k] / 2), height // 2
        cv2.rectangle(img, (cx - g - hand_w, cy - hand_h // 2), (cx - g, cy + hand_h // 2), skin, -1)
        cv2.rectangle(img, (cx + g, cy - hand_h // 2), (cx + g + hand_w, cy + hand_h // 2), skin, -1)
        return img

    truth = {"onsets": events}
    return Scene("clap", spec.fps, spec.sr, n_frames, audio.astype(np.float32), truth, draw)


# --------------------------------------------------------------------------------------------------- car
def car_scene(rng: np.random.Generator, spec: AVSpec, n_frames: int, width: int, height: int) -> Scene:
    n = spec.frame_start(n_frames)
    seconds = n_frames / float(spec.fps_exact)
    knots = max(2, int(seconds / 2))
    speed = 0.15 + 0.85 * smooth_random(rng, n_frames, knots)  # 0..1
    f0 = 60.0 + 140.0 * speed
    scale = 0.5 + 0.5 * smooth_random(rng, n_frames, knots)  # car size on screen: near = big
    x = width * (0.5 + 0.3 * np.sin(2 * np.pi * np.arange(n_frames) / (rng.uniform(4, 8) * float(spec.fps_exact))
                                    + rng.uniform(0, 2 * np.pi)))
    loudness = 0.2 + 0.6 * scale ** 2
    camera = np.cumsum(speed) * 0.02 * width  # the camera pans with the car: the world scrolls by

    f0_s, loud_s, pan_s = (per_sample(v, spec, n) for v in (f0, loudness, 2 * x / width - 1))
    phase = 2 * np.pi * np.cumsum(f0_s) / spec.sr
    engine = sum(np.sin(h * phase + h) / h for h in range(1, 9))
    rumble = lfilter([0.05], [1, -0.95], rng.standard_normal(n))
    mono = loud_s * (engine / 2.2 + rumble)
    audio = constant_power_pan(mono / max(1.0, np.abs(mono).max() / 0.9), pan_s) + NOISE_FLOOR * rng.standard_normal(
        (n, 2))

    sky, ground = int(0.55 * height), np.array([70, 70, 70], np.uint8)
    background = np.zeros((height, width, 3), np.uint8)
    background[:sky] = (135, 180, 230)
    background[sky:] = ground
    tree_x = rng.uniform(0, 4 * width, 12)

    def draw(k: int) -> np.ndarray:
        img = background.copy()
        offset = camera[k]
        for tx in tree_x:  # trees and lane marks scroll with the camera pan
            px = int((tx - 0.5 * offset) % (4 * width) - width)
            cv2.rectangle(img, (px, sky - 60), (px + 12, sky), (60, 40, 20), -1)
            cv2.circle(img, (px + 6, sky - 70), 25, (40, 120, 40), -1)
        for lane in range(-1, width // 80 + 2):
            lx = int(lane * 80 - offset % 80)
            cv2.rectangle(img, (lx, int(0.8 * height)), (lx + 40, int(0.8 * height) + 6), (230, 230, 230), -1)
        s, cx, cy = scale[k], int(x[k]), int(0.72 * height)
        w, h = int(160 * s), int(45 * s)
        cv2.rectangle(img, (cx - w // 2, cy - h), (cx + w // 2, cy), (200, 30, 30), -1)
        cv2.rectangle(img, (cx - w // 4, cy - int(1.7 * h)), (cx + w // 5, cy - h), (170, 20, 20), -1)
        for wx in (cx - w // 3, cx + w // 3):
            cv2.circle(img, (wx, cy), max(3, int(16 * s)), (20, 20, 20), -1)
        return img

    truth = {"per_frame": {"f0": np.round(f0, 3).tolist(), "loudness": np.round(loudness, 4).tolist(),
                           "x": np.round(x, 1).tolist(), "speed": np.round(speed, 4).tolist()}}
    return Scene("car", spec.fps, spec.sr, n_frames, audio.astype(np.float32), truth, draw)


# --------------------------------------------------------------------------------------------------- water
WATER = {  # scene -> (level, brightness of the noise: 1 = white, 0 = dark rumble)
    "waterfall": (0.55, 1.0),
    "river": (0.25, 0.1),
    "waves": (0.45, 0.5),
}


def water_scene(rng: np.random.Generator, spec: AVSpec, n_frames: int, width: int, height: int) -> Scene:
    n = spec.frame_start(n_frames)
    fps = float(spec.fps_exact)
    labels, segments, k = [], [], 0
    order = list(rng.permutation(list(WATER)))
    while k < n_frames:
        scene = order[len(segments) % len(order)]
        length = min(n_frames - k, int(rng.uniform(2.0, 4.0) * fps))
        segments.append({"scene": scene, "start": k / fps, "end": (k + length) / fps})
        labels += [scene] * length
        k += length
    t = np.arange(n_frames) / fps
    wave_height = 0.5 + 0.5 * np.sin(2 * np.pi * t / rng.uniform(2.5, 4.0))
    level = np.array([WATER[s][0] for s in labels])
    loudness = np.where(np.array(labels) == "waves", level * (0.3 + 0.7 * wave_height), level)
    brightness = np.array([WATER[s][1] for s in labels])

    white = rng.standard_normal(n)
    dark = lfilter([0.1], [1, -0.9], rng.standard_normal(n))
    dark *= white.std() / dark.std()
    b, g = per_sample(brightness, spec, n), per_sample(loudness, spec, n)
    mono = 0.6 * g * (b * white + (1 - b) * dark)
    pan = 0.3 * np.sin(2 * np.pi * np.arange(n) / (spec.sr * 5.0))  # a slow drift, not tied to an object
    audio = np.clip(constant_power_pan(mono, pan), -0.95, 0.95)

    yy, xx = np.ogrid[0:height, 0:width]  # broadcast [H, 1] x [1, W]
    yy, xx = yy.astype(np.float32), xx.astype(np.float32)
    streaks = rng.uniform(0, 1, (1, width)).astype(np.float32)

    def draw(k: int) -> np.ndarray:
        scene = labels[k]
        if scene == "waterfall":  # bright vertical streaks falling down
            v = 150 + 100 * (streaks * np.sin((yy - 12 * k) / 7.0 + streaks * 20) > 0.3)
            img = np.stack([v * 0.8, v * 0.9, v], -1)
        elif scene == "river":  # dark water with ripples flowing right
            v = 60 + 30 * np.sin((xx - 6 * k) / 15.0 + np.sin(yy / 9.0))
            img = np.stack([v * 0.4, v * 0.8, v * 1.5], -1)
        else:  # the sea: the crest line rises and falls with the wave height
            crest = height * (0.75 - 0.4 * wave_height[k]) + 8 * np.sin(xx / 30.0 + k / 3.0)
            img = np.where((yy > crest)[..., None], np.array([20, 80, 160], np.float32),
                           np.array([170, 200, 235], np.float32))
            img = np.where((np.abs(yy - crest) < 6)[..., None], np.float32(255), img)
        return np.clip(img, 0, 255).astype(np.uint8)

    truth = {"per_frame": {"scene": labels, "loudness": np.round(loudness, 4).tolist()}, "segments": segments}
    return Scene("water", spec.fps, spec.sr, n_frames, audio.astype(np.float32), truth, draw)


BUILDERS = {"clap": clap_scene, "car": car_scene, "water": water_scene}


def make_scene(kind: SceneKind, seconds: float = 10.0, seed: int = 0, fps: float = 25.0, width: int = 640,
               height: int = 360, sr: int = 44100) -> Scene:
    """A scene in memory (no I/O). Its audio holds exactly the samples of its whole frames."""
    if kind not in BUILDERS:
        raise ValueError(f"unknown scene {kind!r}; choose one of {', '.join(KINDS)}")
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    spec = AVSpec(sr=sr, fps=fps)
    n_frames = max(1, round(seconds * float(spec.fps_exact)))
    scene = BUILDERS[kind](np.random.default_rng(seed), spec, n_frames, width, height)
    np.clip(scene.audio, -1, 1, out=scene.audio)
    scene.events = {"kind": kind, "fps": fps, "sr": sr, "seconds": n_frames / float(spec.fps_exact),
                    "frames": n_frames, "samples": len(scene.audio), "seed": seed, **scene.events}
    return scene


def render_scene(kind: SceneKind, out_dir: str | Path, seconds: float = 10.0, seed: int = 0, fps: float = 25.0,
                 width: int = 640, height: int = 360, sr: int = 44100) -> dict[str, Path]:
    """Write out_dir/<kind>.mp4 (H.264 + AAC), <kind>.wav (lossless float truth), <kind>.events.json."""
    scene = make_scene(kind, seconds, seed, fps, width, height, sr)
    out_dir = Path(out_dir)
    paths = {"video": out_dir / f"{kind}.mp4", "wav": out_dir / f"{kind}.wav",
             "events": out_dir / f"{kind}.events.json"}
    write_video(paths["video"], scene.frames(), fps=fps, audio=scene.audio, sr=sr)
    with atomic_path(paths["wav"]) as tmp:
        sf.write(tmp, scene.audio, sr, subtype="FLOAT")
    write_json(paths["events"], scene.events)
    return paths
