"""Augmentation keeps every example's sound on its frames: positions, frame indices and time never move."""
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from foleylib.core.config import AVSpec
from foleylib.data.augment import (
    AUGMENTATIONS,
    augment,
    augment_step,
    draw,
    drop_video,
    parse_augment,
    step_generator,
)
from foleylib.data.dataset import AlignedClip, FrameDataset, SampleDataset, WindowDataset

SPEC = AVSpec(sr=800, fps=25, size=16, channels=2, context_frames=2, context_samples=64)  # 32 samples per frame
FRAMES = 50


def grey_of(k):
    return 20 + 3 * k  # frame k is a uniform grey that encodes k


def marked_clip() -> AlignedClip:
    """Frame k: uniform grey 20 + 3k. Its samples: +(k + 1) / 100 on the left channel, -(k + 1) / 100 on the right."""
    frames = np.repeat(np.array([grey_of(k) for k in range(FRAMES)], np.uint8), SPEC.size * SPEC.size * 3)
    owner = SPEC.frames_of_samples(np.arange(SPEC.frame_start(FRAMES)))
    audio = ((owner + 1) / 100)[:, None] * np.array([[1.0, -1.0]])
    meta = {"frames": FRAMES, "samples": len(audio), "sr": SPEC.sr, "fps": SPEC.fps, "size": SPEC.size,
            "channels": 2}
    return AlignedClip(Path("marked"), frames.reshape(FRAMES, SPEC.size, SPEC.size, 3), audio.astype(np.float32),
                       meta)


def batch_of(kind: str, n: int = 12) -> dict[str, torch.Tensor]:
    clip, frames = marked_clip(), range(5, 45)
    ds = {"causal": lambda: WindowDataset(clip, SPEC, frames, window=64, warmup=16, stride=48),
          "paper": lambda: SampleDataset(clip, SPEC, frames, stride=97),
          "fusion": lambda: FrameDataset(clip, SPEC, frames)}[kind]()
    return default_collate([ds[j] for j in np.linspace(0, len(ds) - 1, n).round().astype(int)])


def sound_and_picture(batch: dict[str, torch.Tensor], kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Each scored position's target sample [B, P, C] and the frame on screen there [B, P, S, S, 3]."""
    video = batch["video"]
    if kind == "causal":
        return batch["target"], torch.stack([v[i] for v, i in zip(video, batch["frame_index"])])
    if kind == "paper":
        return batch["target"][:, None], video[:, -1:]
    return batch["target"][:, :32], video[:, -1:].expand(-1, 32, -1, -1, -1)  # fusion: the 32 samples of frame k


@pytest.mark.parametrize("kind", ["causal", "paper", "fusion"])
def test_every_sample_stays_with_its_frame_under_all_augmentations(kind):
    batch = batch_of(kind)
    d = draw(AUGMENTATIONS, len(batch["video"]), step_generator(seed=3, step=1))
    assert d.flip.any() and not d.flip.all() and (d.scale < 1).all() and (d.gain != 1).all()
    out = augment(batch, d)
    for key in batch.keys() - {"video", "audio", "audio_in", "target"}:  # indices, warm-up, lengths
        assert torch.equal(out[key], batch[key])
    sound, picture = sound_and_picture(out, kind)
    gain = sound.abs().amax((1, 2)) / sound_and_picture(batch, kind)[0].abs().amax((1, 2))  # applied per example
    left = sound[..., 0] / gain[:, None]
    assert torch.equal(left < 0, d.flip[:, None].expand_as(left))  # mirrored picture, mirrored stereo
    from_sound = (left.abs() * 100).round() - 1
    from_picture = ((picture.float().mean((2, 3, 4)) / d.brightness[:, None] - 20) / 3).round()
    assert torch.equal(from_sound, from_picture)  # the same frame k, at every position
    assert len(from_sound.unique()) > 10


def test_flip_mirrors_every_frame_and_swaps_the_stereo_channels():
    batch = batch_of("causal", 8)
    batch["video"] = torch.randint(0, 256, batch["video"].shape, dtype=torch.uint8, generator=torch.Generator())
    d = draw(("flip",), 8, step_generator(0, 0))
    out = augment(batch, d)
    for b, flipped in enumerate(d.flip.tolist()):
        assert torch.equal(out["video"][b], batch["video"][b].flip(2) if flipped else batch["video"][b])  # exact
        for key in ("audio_in", "target"):
            assert torch.equal(out[key][b], batch[key][b].flip(-1) if flipped else batch[key][b])
    mono = {k: v[..., :1] if k in ("audio_in", "target") else v for k, v in batch.items()}
    assert torch.equal(augment(mono, d)["target"], mono["target"])  # one channel: nothing to swap


def test_one_crop_per_example_and_no_mixing_across_frames():
    batch = batch_of("causal", 4)
    g = torch.Generator().manual_seed(1)
    batch["video"] = torch.randint(0, 256, batch["video"].shape, dtype=torch.uint8, generator=g)
    d = draw(("crop", "jitter"), 4, step_generator(0, 0))
    out = augment(batch, d)
    assert not torch.equal(out["video"], batch["video"])
    changed = {**batch, "video": batch["video"].clone()}
    changed["video"][0, 3] = 255 - changed["video"][0, 3]
    differs = (augment(changed, d)["video"] != out["video"]).flatten(2).any(2)  # [B, F]: which frames moved
    assert differs[0, 3] and differs.sum() == 1
    still = {**batch, "video": batch["video"][:, :1].expand_as(batch["video"]).contiguous()}
    frames = augment(still, d)["video"]
    assert all(torch.equal(frames[:, 0], frames[:, f]) for f in range(frames.shape[1]))  # one crop for all frames


def test_gain_scales_the_audio_only_and_never_past_full_scale():
    batch = batch_of("causal", 6)
    batch["target"][5] *= 1.9  # a loud example (peak 0.95): a gain above 1 may not clip it
    batch["audio_in"][5] *= 1.9
    d = draw(("gain",), 6, step_generator(5, 2))
    d = type(d)(**{**d.__dict__, "gain": torch.tensor([0.25, 0.5, 1.0, 1.5, 2.0, 2.0])})
    out = augment(batch, d)
    assert torch.equal(out["video"], batch["video"])
    expected = torch.tensor([0.25, 0.5, 1.0, 1.5, 2.0, 1 / batch["target"][5].abs().max().item()])
    for key in ("audio_in", "target"):
        assert torch.allclose(out[key], batch[key] * expected[:, None, None])
    assert out["target"].abs().max() <= 1.0


def test_draws_are_deterministic_and_each_process_gets_its_rows_of_the_global_batch():
    batch = batch_of("causal", 4)
    first = augment_step(batch, AUGMENTATIONS, seed=1, step=7, global_batch=4)
    assert all(torch.equal(first[k], augment_step(batch, AUGMENTATIONS, 1, 7, 4)[k]) for k in first)
    assert not torch.equal(first["video"], augment_step(batch, AUGMENTATIONS, 1, 8, 4)["video"])
    assert not torch.equal(first["video"], augment_step(batch, AUGMENTATIONS, 2, 7, 4)["video"])
    half = {k: v[2:] for k, v in batch.items()}
    second = augment_step(half, AUGMENTATIONS, 1, 7, global_batch=4, rank=1)
    assert all(torch.equal(second[k], first[k][2:]) for k in first)
    assert augment_step(batch, (), 1, 7, 4) is batch


def test_draws_of_one_augmentation_do_not_depend_on_the_others():
    alone, together = (draw(options, 5, step_generator(0, 3)) for options in (("gain",), AUGMENTATIONS))
    assert torch.equal(alone.gain, together.gain) and not alone.flip.any() and (alone.scale == 1).all()


def test_video_dropout_blacks_out_whole_examples_and_leaves_their_audio():
    batch = batch_of("causal", 400)
    out = drop_video(batch, 0.25, seed=3, step=5, global_batch=400)
    dropped = out["video"].flatten(1).amax(1) == 0
    assert 70 < dropped.sum() < 130  # about a quarter of 400
    assert torch.equal(out["video"][~dropped], batch["video"][~dropped])  # the others untouched
    assert batch["video"][dropped].flatten(1).amax(1).min() > 0  # they had a picture before
    assert all(torch.equal(out[k], batch[k]) for k in batch if k != "video")
    again = drop_video({k: v[100:200] for k, v in batch.items()}, 0.25, 3, 5, global_batch=400, rank=1)
    assert torch.equal(again["video"], out["video"][100:200])  # each process gets its rows of the global draw
    assert not torch.equal(drop_video(batch, 0.25, 3, 6, 400)["video"], out["video"])
    assert drop_video(batch, 0.0, 3, 5, 400) is batch


def test_option_names():
    assert parse_augment("") == parse_augment("none") == ()
    assert parse_augment("crop, flip,gain") == ("crop", "flip", "gain")
    with pytest.raises(ValueError, match="unknown augmentation blur; choose from crop, flip, jitter, gain"):
        parse_augment("crop,blur")


def test_motion_channels_follow_the_picture_and_keep_their_colour():
    """rgb+motion frames [B, F, S, S, 3 + 6]: a mirror swaps right and left flow, a 2x zoom doubles it, colour
    jitter leaves the motion channels as they were."""
    from foleylib.data.augment import Draw, augment_video
    from foleylib.data.motion import MOTION_CHANNELS

    right, left = (3 + MOTION_CHANNELS.index(name) for name in ("right", "left"))
    video = torch.zeros(1, 2, 8, 8, 3 + len(MOTION_CHANNELS), dtype=torch.uint8)
    video[..., :3], video[..., right], video[..., 3] = 100, 40, 7  # grey picture, 40 levels of rightward flow, diff 7
    one, no = torch.ones(1), torch.zeros(1)

    def with_(**values) -> torch.Tensor:
        base = dict(scale=one, shift_x=no, shift_y=no, flip=torch.zeros(1, dtype=torch.bool), brightness=one,
                    contrast=one, saturation=one, gain=one)
        return augment_video(video, Draw(**(base | values)))

    mirrored = with_(flip=torch.ones(1, dtype=torch.bool))
    assert (mirrored[..., left] == 40).all() and (mirrored[..., right] == 0).all() and (mirrored[..., 3] == 7).all()
    zoomed = with_(scale=torch.full((1,), 0.5))
    assert (zoomed[..., right] == 80).all() and (zoomed[..., 3] == 7).all()
    brighter = with_(brightness=torch.full((1,), 1.2))
    assert (brighter[..., :3] == 120).all() and torch.equal(brighter[..., 3:], video[..., 3:])
    motion_only = augment_video(video[..., 3:], Draw(one, no, no, torch.ones(1, dtype=torch.bool), one * 1.2, one,
                                                     one, one))
    assert (motion_only[..., left - 3] == 40).all() and (motion_only[..., 0] == 7).all()  # no colour to jitter
