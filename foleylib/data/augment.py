"""Training augmentation for learning from few clips, applied to collated batches; none of it moves time.

Each example of a batch gets its own draw, and the same draw applies to every frame of its video context and to
all of its audio (input and target alike), so the sound of frame k stays with frame k:

    crop    a random square crop (75-100% of the side, anywhere in the frame), resized back to S x S
    flip    a horizontal mirror, half the time; stereo audio swaps its channels with it (a source on the left of
            the picture is then on the right, in the picture and in the sound)
    jitter  colour: brightness, contrast (around each frame's mean) and saturation, each times 0.8 .. 1.2;
            black frames (the zero padding before a clip starts) stay black
    gain    the audio times a gain of -12 .. +6 dB, capped so that no sample exceeds full scale: the model
            then predicts the scaled target from the scaled context (mu-law classes included, since they are
            computed from the scaled target)

`drop_video` is conditioning dropout (`--video-dropout`): a share of the examples see black frames (no motion),
so the model also learns to predict without the picture, which classifier-free guidance at generation subtracts
(FoleyEngine's `guidance`).

Draws come from a generator seeded by (training seed, step): a run is deterministic, resumes exactly and
draws the same per-example values whichever process of a data-parallel run holds the example.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import torch
import torch.nn.functional as F

from foleylib.data.motion import MOTION_CHANNELS

AUGMENTATIONS = ("crop", "flip", "jitter", "gain")
AUDIO_KEYS = ("audio", "audio_in", "target")  # every audio tensor of a batch: [B, L, C] or [B, C]
MIN_CROP, JITTER, GAIN_DB = 0.75, 0.2, (-12.0, 6.0)
LUMA = torch.tensor([0.299, 0.587, 0.114])


def parse_augment(text: str) -> tuple[str, ...]:
    """'crop,flip' -> ('crop', 'flip'); '' or 'none' -> (); ValueError naming the known ones for others."""
    names = tuple(n.strip() for n in text.split(",") if n.strip() and n.strip() != "none")
    unknown = sorted(set(names) - set(AUGMENTATIONS))
    if unknown:
        raise ValueError(f"unknown augmentation {', '.join(unknown)}; choose from {', '.join(AUGMENTATIONS)} or none")
    return names


@dataclass(frozen=True)
class Draw:
    """Per-example augmentation values, [B] each (identity values for the augmentations that are off)."""

    scale: torch.Tensor  # crop side / frame side
    shift_x: torch.Tensor  # crop centre, in [-(1 - scale), 1 - scale] (grid coordinates)
    shift_y: torch.Tensor
    flip: torch.Tensor  # bool
    brightness: torch.Tensor
    contrast: torch.Tensor
    saturation: torch.Tensor
    gain: torch.Tensor  # before the cap to full scale

    def rows(self, part: slice) -> Draw:
        """The draws of some examples (a data-parallel process's slice of the global batch)."""
        return replace(self, **{f.name: getattr(self, f.name)[part] for f in fields(self)})


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """The generator of one training step's draws, from the run's seed and the step (resume-safe); another
    `stream` gives draws independent of stream 0's (the augmentations')."""
    entropy = [seed, step] + ([stream] if stream else [])
    return torch.Generator().manual_seed(int(np.random.SeedSequence(entropy).generate_state(1)[0]))


def draw(options: tuple[str, ...], n: int, generator: torch.Generator) -> Draw:
    """Values for n examples. Every value is drawn whatever the options, so turning one augmentation on or off
    leaves the draws of the others unchanged."""
    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=generator)

    scale = uniform(MIN_CROP, 1.0)
    shift_x, shift_y = ((1 - scale) * uniform(-1.0, 1.0) for _ in range(2))
    flip = torch.rand(n, generator=generator) < 0.5
    colour = [uniform(1 - JITTER, 1 + JITTER) for _ in range(3)]
    gain = 10 ** (uniform(*GAIN_DB) / 20)
    one, no = torch.ones(n), torch.zeros(n)
    if "crop" not in options:
        scale, shift_x, shift_y = one, no, no
    if "jitter" not in options:
        colour = [one, one, one]
    return Draw(scale, shift_x, shift_y, flip & ("flip" in options), *colour,
                gain if "gain" in options else one)


def augment(batch: dict[str, torch.Tensor], d: Draw) -> dict[str, torch.Tensor]:
    """The batch with example b's video and audio transformed by d's row b; every other entry (frame indices,
    sample indices, warm-up, lengths) unchanged."""
    out = dict(batch)
    out["video"] = augment_video(batch["video"], d)
    gains = capped_gains(batch, d.gain)
    for key in AUDIO_KEYS:
        if key in batch:
            out[key] = augment_audio(batch[key], gains, d.flip)
    return out


def capped_gains(batch: dict[str, torch.Tensor], gain: torch.Tensor) -> torch.Tensor:
    """Each example's gain; a gain above 1 is lowered (not below 1) where it would push a sample of the example's
    audio past full scale. [B]"""
    peak = torch.stack([batch[k].abs().flatten(1).amax(1) for k in AUDIO_KEYS if k in batch]).amax(0)
    gain = gain.to(peak)
    return torch.where(gain > 1, torch.minimum(gain, 1 / peak.clamp_min(1e-8)).clamp_min(1.0), gain)


def augment_audio(audio: torch.Tensor, gains: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """[B, ..., C] audio scaled per example; stereo channels swapped where the picture is mirrored."""
    scaled = audio * gains.view(-1, *[1] * (audio.dim() - 1)).to(audio)
    if audio.shape[-1] != 2:
        return scaled
    return torch.where(flip.view(-1, *[1] * (audio.dim() - 1)).to(audio.device), scaled.flip(-1), scaled)


def augment_video(video: torch.Tensor, d: Draw) -> torch.Tensor:
    """uint8 frames [B, F, S, S, C] -> the same shape, each example's frames cropped/mirrored/colour-shifted alike.
    C is 3 (RGB), 3 + M (RGB, then the motion channels of foleylib.data.motion) or M (motion only): colour jitter
    touches RGB only; the optical flow follows the picture (a mirror swaps right and left motion, a crop's zoom
    scales every displacement). Untouched when the draw is the identity (no resampling, bit-exact)."""
    geometric = bool((d.scale != 1).any() or (d.shift_x != 0).any() or (d.shift_y != 0).any() or d.flip.any())
    coloured = bool(torch.stack([d.brightness, d.contrast, d.saturation]).ne(1).any())
    if not (geometric or coloured):
        return video
    B, n, S, _, C = video.shape
    has_rgb, motion_at = C != len(MOTION_CHANNELS), (C - len(MOTION_CHANNELS) if C != 3 else None)
    x = video.permute(0, 1, 4, 2, 3).reshape(B * n, C, S, S).float()  # [B*F, C, S, S]
    per_frame = {f.name: getattr(d, f.name).to(video.device).repeat_interleave(n) for f in fields(d)}
    if geometric:
        x = crop_and_flip(x, per_frame["scale"], per_frame["shift_x"], per_frame["shift_y"], per_frame["flip"])
        if motion_at is not None:
            x = follow_flow(x, motion_at, per_frame["scale"], per_frame["flip"])
    if coloured and has_rgb:
        x[:, :3] = jitter_colour(x[:, :3], per_frame["brightness"], per_frame["contrast"], per_frame["saturation"])
    x = x.round().clamp(0, 255).to(torch.uint8)
    return x.view(B, n, C, S, S).permute(0, 1, 3, 4, 2).contiguous()


def follow_flow(x: torch.Tensor, at: int, scale: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Images [N, C, S, S] whose motion channels start at `at`, after crop_and_flip: each flow channel scaled by the
    zoom (1 / scale), and right and left motion swapped where the image was mirrored."""
    flow = [at + MOTION_CHANNELS.index(name) for name in ("right", "left", "down", "up")]
    x = x.clone()
    x[:, flow] = x[:, flow] / scale.view(-1, 1, 1, 1)
    right, left = flow[:2]
    mirrored = flip.view(-1, 1, 1)
    x[:, right], x[:, left] = torch.where(mirrored, x[:, left], x[:, right]), torch.where(mirrored, x[:, right],
                                                                                         x[:, left])
    return x


def crop_and_flip(x: torch.Tensor, scale: torch.Tensor, shift_x: torch.Tensor, shift_y: torch.Tensor,
                  flip: torch.Tensor) -> torch.Tensor:
    """Images [N, C, S, S] -> the square crop (side `scale`, centre `shift`) resized to S x S, mirrored where
    `flip` (bilinear; a mirror alone samples pixel centres, so it is exact)."""
    sign = 1.0 - 2.0 * flip.float()
    zero = torch.zeros_like(scale)
    theta = torch.stack([torch.stack([sign * scale, zero, shift_x], -1),
                         torch.stack([zero, scale, shift_y], -1)], 1)  # [N, 2, 3]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def jitter_colour(x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor,
                  saturation: torch.Tensor) -> torch.Tensor:
    """Images [N, 3, S, S] in 0..255: brightness (times), contrast (around the image's mean grey), saturation
    (around each pixel's grey). Each maps a black image to black."""
    def grey(images: torch.Tensor) -> torch.Tensor:
        return (images * LUMA.to(images).view(1, 3, 1, 1)).sum(1, keepdim=True)  # [N, 1, S, S]

    def blend(centre: torch.Tensor, images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        return centre + factor.view(-1, 1, 1, 1) * (images - centre)

    x = x * brightness.view(-1, 1, 1, 1)
    x = blend(grey(x).mean((2, 3), keepdim=True), x, contrast)
    return blend(grey(x), x, saturation)


def augment_step(batch: dict[str, torch.Tensor], options: tuple[str, ...], seed: int, step: int,
                 global_batch: int, rank: int = 0) -> dict[str, torch.Tensor]:
    """A training step's batch augmented: the draws of the global batch for (seed, step), the rows of process
    `rank` (which holds examples rank * b .. (rank + 1) * b - 1 of it, b = its batch size)."""
    if not options:
        return batch
    b = len(batch["video"])
    return augment(batch, draw(options, global_batch, step_generator(seed, step)).rows(slice(rank * b, (rank + 1) * b)))


def drop_video(batch: dict[str, torch.Tensor], rate: float, seed: int, step: int, global_batch: int,
               rank: int = 0) -> dict[str, torch.Tensor]:
    """The batch with the whole video context of each example zeroed (black frames, no motion: what the model
    sees on zeroed video) with probability `rate`, drawn for the global batch of (seed, step) on a stream of its
    own, the rows of process `rank`; its audio unchanged."""
    if not rate:
        return batch
    b = len(batch["video"])
    dropped = (torch.rand(global_batch, generator=step_generator(seed, step, stream=1)) < rate)[rank * b:(rank + 1) * b]
    video = batch["video"].clone()
    video[dropped.to(video.device)] = 0
    return {**batch, "video": video}
