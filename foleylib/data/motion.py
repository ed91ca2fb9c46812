"""Explicit, causal motion input for the video context embedding (`ModelConfig.video_input`).

A few raw 64x64 frames are too few examples for a 3D ResNet to discover motion on its own, so the model can be
given it: `motion_channels` turns RGB frames into M = 6 uint8 channels per frame, each 0 where nothing moves
(so the black zero padding before a clip's first frame reads as "no motion", and frame 0 has none):

  diff                        |luminance of frame k - luminance of frame k-1| (0..255)
  right, left, down, up       dense optical flow (cv2 Farneback on grayscale) of the pixel now at (x, y): how
                              far it moved since frame k-1, split by direction, FLOW_SCALE levels per pixel
                              (saturates at 255 / FLOW_SCALE ~ 16 px per frame; under MIN_FLOW: none)
  stop                        the sub-frame impact cue, on frame k-1's pixels: where the motion a pixel had
                              into frame k-1 (from k-2) does not carry on out of it (to k), the fraction of
                              the period k-1 .. k since it ended (255 = stopped or turned back right after
                              frame k-1, ~0 = kept going): moving at constant speed v and stopping at t within
                              the period leaves a displacement v * t. It times an impact inside the period,
                              which a 15 fps video can put anywhere within its 67 ms.

Motion for frame k uses frames k-2, k-1 and k only (causal): a stream (`MotionTracker`, live generation) and a
whole clip (`motion_channels`, ingest) give the same values. `model_frames` stacks what `video_input` asks for:
"rgb" (the paper, 3 channels), "rgb+motion" (3 + 6) or "motion" (6). `ingest --motion` caches a clip's motion in
motion.npy; `model_clip` reads it (or computes it for clips ingested without it) for the datasets.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from numba import njit

if TYPE_CHECKING:  # dataset imports torch, which `foley` must load only after choosing its threads
    from foleylib.data.dataset import AlignedClip

VIDEO_INPUTS = ("rgb", "rgb+motion", "motion")
MOTION_CHANNELS = ("diff", "right", "left", "down", "up", "stop")
FLOW_SCALE = 16.0  # uint8 levels per pixel of displacement per frame
MIN_FLOW = 0.25  # px per frame: slower flow reads as none (Farneback finds up to ~0.2 px between equal frames)
MIN_SPEED = 1.0  # px per frame: slower previous motion gives no stop cue (flow noise on still scenes)
HISTORY = 2  # frames before frame k that its motion depends on
MOTION_FILE = "motion.npy"  # the cache next to frames.npy
# Farneback on 64 x 64 frames: pyramid scale, levels, window, iterations, poly_n, poly_sigma (a 9 px window keeps
# the flow of a moving object within a few pixels of it)
FARNEBACK = (0.5, 3, 9, 3, 5, 1.1)
# recorded in meta.json by ingest --motion; a motion.npy made with other settings is recomputed
CACHE_INFO = {"channels": list(MOTION_CHANNELS), "flow": "farneback", "farneback": list(FARNEBACK),
              "flow_scale": FLOW_SCALE, "min_flow": MIN_FLOW, "min_speed": MIN_SPEED}


def input_channels(video_input: str) -> int:
    """Channels of the model's input frames for a `video_input` value."""
    if video_input not in VIDEO_INPUTS:
        raise ValueError(f"unknown video_input {video_input!r}; choose one of {', '.join(VIDEO_INPUTS)}")
    return {"rgb": 3, "rgb+motion": 3 + len(MOTION_CHANNELS), "motion": len(MOTION_CHANNELS)}[video_input]


class MotionTracker:
    """Motion channels of frames pushed in order (a live stream one at a time, ingest in chunks); keeps the
    previous frame and its motion. A chunk's flows are computed frame pair by frame pair (cv2 releases the GIL
    meanwhile), its channels for all its frames at once, the same values as one frame at a time."""

    def __init__(self):
        self.gray: np.ndarray | None = None  # luminance of the previous frame
        self.velocity: np.ndarray | None = None  # its per-pixel velocity [S, S, 2] (px per frame)

    def push(self, frame: np.ndarray) -> np.ndarray:
        """RGB uint8 [S, S, 3] -> motion uint8 [S, S, M] of this frame relative to those pushed before."""
        return self.extend(np.asarray(frame)[None])[0]

    def extend(self, frames: np.ndarray) -> np.ndarray:
        """RGB uint8 [T, S, S, 3] following the frames pushed before -> motion uint8 [T, S, S, M]."""
        out = np.zeros((*np.shape(frames)[:3], len(MOTION_CHANNELS)), np.uint8)
        gray = [cv2.cvtColor(np.ascontiguousarray(f, np.uint8), cv2.COLOR_RGB2GRAY) for f in frames]
        if self.gray is None and gray:  # the first frame: nothing to move from (its motion stays zero)
            self.gray, self.velocity = gray[0], np.zeros((*gray[0].shape, 2), np.float32)
            gray = gray[1:]
        if gray:
            gray = np.stack(gray)
            previous = np.concatenate([self.gray[None], gray[:-1]])
            velocity = -np.stack([flow(now, then) for now, then in zip(gray, previous)])  # how each pixel got there
            onward = np.stack([flow(then, now) for now, then in zip(gray, previous)])  # where k-1's pixels go next
            _channels_into(gray, previous, velocity, onward, self.velocity, out[len(out) - len(gray):])
            self.gray, self.velocity = gray[-1], velocity[-1]
        return out


def flow(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Dense optical flow (Farneback) of grayscale uint8 frames: [S, S, 2] float32, (dx, dy) px from each pixel of
    `source` to where it is in `target`."""
    return cv2.calcOpticalFlowFarneback(source, target, None, *FARNEBACK, 0)


def stop_fraction(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Per pixel of frame k-1: its velocity into k-1 (`before`) and out of it (`after`), [S, S, 2] each -> the
    fraction of the period k-1 .. k since its motion ended: 1 - the share of `before` carried on, 0 where
    `before` is slower than MIN_SPEED. [S, S] float in [0, 1]"""
    speed2 = (before ** 2).sum(axis=-1)
    carried = (after * before).sum(axis=-1) / np.maximum(speed2, 1e-6)
    return np.where(speed2 >= MIN_SPEED ** 2, 1.0 - carried.clip(0, 1), 0.0)


@njit(cache=True, nogil=True)
def _channels_into(gray, previous, velocity, onward, first_before, out):  # pragma: no cover - compiled
    """The channels of frames [T, S, S] (luminance `gray`, that of the frame before each in `previous`; their
    velocities [T, S, S, 2], flows to the next frame `onward`; `first_before` the velocity of the frame before the
    first) into out [T, S, S, M]. Zeroes velocities slower than MIN_FLOW in place (the flow of identical frames).
    float32 arithmetic as numpy's on these arrays, no contraction: the values do not depend on the chunking."""
    flow_scale, full = np.float32(FLOW_SCALE), np.float32(255.0)
    min_speed2, zero, one = np.float32(MIN_SPEED ** 2), np.float32(0.0), np.float32(1.0)
    T, S = gray.shape[0], gray.shape[1]
    for t in range(T):
        for y in range(S):
            for x in range(S):
                vx, vy = velocity[t, y, x, 0], velocity[t, y, x, 1]
                if np.hypot(vx, vy) < MIN_FLOW:
                    vx = vy = velocity[t, y, x, 0] = velocity[t, y, x, 1] = zero
                o = out[t, y, x]
                o[0] = abs(np.int16(gray[t, y, x]) - np.int16(previous[t, y, x]))
                o[1], o[2] = _level(max(vx, zero) * flow_scale), _level(max(-vx, zero) * flow_scale)
                o[3], o[4] = _level(max(vy, zero) * flow_scale), _level(max(-vy, zero) * flow_scale)
                # the sub-frame stop cue on frame t-1's pixels: its velocity then (bx, by), its flow onward (ax, ay)
                bx, by = (first_before[y, x, 0], first_before[y, x, 1]) if t == 0 else \
                    (velocity[t - 1, y, x, 0], velocity[t - 1, y, x, 1])
                speed2 = bx * bx + by * by
                carried = (onward[t, y, x, 0] * bx + onward[t, y, x, 1] * by) / max(speed2, np.float32(1e-6))
                o[5] = _level((one - min(max(carried, zero), one)) * full) if speed2 >= min_speed2 else 0


@njit(cache=True, inline="always")
def _level(value):  # pragma: no cover - compiled
    """A non-negative float32 rounded (half to even) and saturated to uint8."""
    return np.uint8(min(np.rint(value), np.float32(255.0)))


def motion_channels(frames: np.ndarray) -> np.ndarray:
    """RGB uint8 [T, S, S, 3] -> motion uint8 [T, S, S, M] (see the module docstring); frame 0 has none."""
    return MotionTracker().extend(frames)


class FrameInput:
    """Model input frames made from RGB frames pushed one at a time, causally (`generate`, `stream`)."""

    def __init__(self, video_input: str):
        input_channels(video_input)  # refuses unknown values
        self.video_input = video_input
        self.tracker = MotionTracker()

    def push(self, frame: np.ndarray) -> np.ndarray:
        """RGB uint8 [S, S, 3] -> the model's input frame uint8 [S, S, C]."""
        return self.extend(np.asarray(frame, np.uint8)[None])[0]

    def last(self, frames: np.ndarray, count: int) -> np.ndarray:
        """The input frames of the last `count` (>= 1) of RGB frames [T, S, S, 3], equal to those of the whole
        sequence (only the frames their motion depends on are read); the stream goes on after `frames`."""
        return self.extend(np.asarray(frames, np.uint8)[-(count + HISTORY):])[-count:]

    def extend(self, frames: np.ndarray) -> np.ndarray:
        """RGB uint8 [T, S, S, 3] following those pushed before -> model input frames uint8 [T, S, S, C]."""
        if self.video_input == "rgb":
            return frames
        motion = self.tracker.extend(frames)
        return motion if self.video_input == "motion" else np.concatenate([frames, motion], axis=-1)


def model_frames(frames: np.ndarray, video_input: str) -> np.ndarray:
    """A clip's RGB frames [T, S, S, 3] as the model's input frames [T, S, S, C] (motion of frame 0: none)."""
    return FrameInput(video_input).extend(np.asarray(frames, np.uint8))


class StackedFrames:
    """RGB frames [T, S, S, 3] and their motion [T, S, S, M] read as one array [T, S, S, 3 + M]; both stay
    memory-mapped and only the rows asked for are joined (what the datasets read: len, shape, slices)."""

    def __init__(self, frames: np.ndarray, motion: np.ndarray):
        self.frames, self.motion = frames, motion
        self.dtype = np.dtype(np.uint8)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def shape(self) -> tuple[int, ...]:
        return (*self.frames.shape[:3], self.frames.shape[3] + self.motion.shape[3])

    def __getitem__(self, index) -> np.ndarray:
        return np.concatenate([self.frames[index], self.motion[index]], axis=-1)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self[:] if dtype is None else self[:].astype(dtype)


def has_cache(meta: dict, clip_dir: str | Path) -> bool:
    """Whether the clip folder holds a motion.npy that ingest made with these settings (meta: its meta.json)."""
    return meta.get("motion") == CACHE_INFO and (Path(clip_dir) / MOTION_FILE).exists()


def clip_motion(clip: AlignedClip) -> np.ndarray:
    """A clip's motion [T, S, S, M]: its motion.npy (memory-mapped) when ingest made one with these settings,
    else computed from its frames (clips ingested without --motion); the same values either way."""
    path = Path(clip.path) / MOTION_FILE
    if has_cache(clip.meta, clip.path):
        try:
            motion = np.load(path, mmap_mode="r")
        except Exception:  # noqa: BLE001 - a damaged cache (np.load raises many kinds) is recomputed
            motion = None
        if motion is not None and motion.dtype == np.uint8 and motion.shape == (*clip.frames.shape[:3],
                                                                                len(MOTION_CHANNELS)):
            return motion
    return motion_channels(np.asarray(clip.frames))


def model_clip(clip: AlignedClip, video_input: str, lookahead: int = 0) -> AlignedClip:
    """The clip as a model with `video_input` and `lookahead` (ModelConfig.video_lookahead) reads it: its frames
    replaced by the model's input frames (the motion cache memory-mapped, the RGB frames not copied; frames
    `lookahead` ahead: dataset.AdvancedFrames); the clip itself for "rgb" without lookahead."""
    input_channels(video_input)
    if lookahead:
        if video_input != "rgb":
            raise ValueError("looking ahead needs video_input 'rgb'")
        from foleylib.data.dataset import AdvancedFrames

        return replace(clip, frames=AdvancedFrames(clip.frames, lookahead))
    if video_input == "rgb":
        return clip
    motion = clip_motion(clip)
    return replace(clip, frames=motion if video_input == "motion" else StackedFrames(clip.frames, motion))
