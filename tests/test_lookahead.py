"""--video-lookahead: a model whose video context ends K frames after the frame on screen, the same frames in
training, teacher-forced scoring, generation from a clip, streams and `foley generate`."""
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_models import synthetic_clip

from foleylib.core.config import AVSpec, preset
from foleylib.data import media
from foleylib.data.batches import split_datasets
from foleylib.data.dataset import AdvancedFrames, look_ahead
from foleylib.data.motion import model_clip
from foleylib.evaluation.metrics import per_sample_nll
from foleylib.generation.dub import dub_video
from foleylib.generation.generate import generate, stream
from foleylib.generation.sampling import Sampler
from foleylib.models.config import model_config
from foleylib.models.registry import build_model
from foleylib.training.checkpoint import save_model

SPEC = AVSpec(sr=1000, fps=25, size=16, context_frames=2, context_samples=64)
FRAMES = np.random.default_rng(0).integers(0, 255, (60, 16, 16, 3), dtype=np.uint8)
NUMBERED = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)  # frame j shows j


def tiny(arch, ahead, spec=SPEC, **kw):
    torch.manual_seed(0)  # the lookahead changes no weight: the same seed gives the same weights for every K
    return build_model(model_config(arch, "tiny", spec, video_lookahead=ahead, **kw)).eval()


def shown(frames) -> list[int]:
    return [int(f[0, 0, 0]) for f in frames]


def test_advanced_frames_read_k_ahead_and_repeat_the_last():
    view = AdvancedFrames(NUMBERED, 2)
    assert len(view) == 10 and view.shape == NUMBERED.shape
    assert shown(view[j] for j in range(10)) == [2, 3, 4, 5, 6, 7, 8, 9, 9, 9]
    assert shown(view[3:6]) == [5, 6, 7] and shown(view[-2:]) == [9, 9] and shown(view[8:20]) == [9, 9]
    assert shown(np.asarray(view)) == shown(view[:])


@pytest.mark.parametrize("start", [0, 1, 4, 8, 9])
@pytest.mark.parametrize("ahead", [0, 1, 3])
def test_a_stream_looked_ahead_is_the_whole_clip_looked_ahead(start, ahead):
    past, rest = look_ahead(NUMBERED[:start], iter(NUMBERED[start:]), ahead)
    whole = AdvancedFrames(NUMBERED, ahead)
    assert shown(past) == shown(whole[:start]) and shown(rest) == shown(whole[start:])
    past, rest = look_ahead(None, iter(NUMBERED[start:]), ahead)  # a camera: no past frames
    assert past is None and shown(rest) == shown(AdvancedFrames(NUMBERED[start:], ahead))


@pytest.mark.parametrize("arch,kw", [("wavenet", {}), ("transformer", {}), ("fusion", {})])
@pytest.mark.parametrize("ahead", [0, 1, 2])
def test_a_change_in_frame_f_changes_the_audio_from_frame_f_minus_k_on(arch, kw, ahead):
    model = tiny(arch, ahead, loss="mse", **kw)
    changed = FRAMES.copy()
    changed[30] = 255 - changed[30]
    a, b = (generate(model, SPEC, frames, 20, 15) for frames in (FRAMES, changed))
    first = SPEC.frame_start(30 - ahead) - SPEC.frame_start(20)  # the first sample whose context holds frame 30
    np.testing.assert_array_equal(a[:first], b[:first])
    frame = slice(first, first + SPEC.max_samples_per_frame)
    assert np.abs(a[frame] - b[frame]).max() > 0


@pytest.mark.parametrize("arch,kw", [("wavenet", {}), ("transformer", {}), ("transformer", {"positions": "alibi"})])
def test_looking_ahead_cached_equals_naive_and_a_stream_equals_generate(arch, kw):
    model = tiny(arch, 2, loss="ce", **kw)
    naive = generate(model, SPEC, FRAMES, 10, 12, method="naive", seed=3)
    cached = generate(model, SPEC, FRAMES, 10, 12, method="cached", seed=3)
    np.testing.assert_array_equal(naive, cached)
    pieces = stream(model, SPEC, iter(FRAMES[10:]), sampler=Sampler(seed=3), start_frame=10,
                    past_frames=FRAMES[:10])
    firsts = [next(pieces) for _ in range(12)]
    assert [p.frame for p in firsts] == list(range(10, 22))
    np.testing.assert_array_equal(np.concatenate([p.audio for p in firsts]), cached)
    assert len(list(pieces)) == len(FRAMES) - 22  # as many frames as the video has: the last K repeat its end


def test_training_and_scoring_read_the_frames_ahead():
    """Training examples and the teacher-forced NLL of a model that looks 2 frames ahead are those of the same
    weights looking at no frame ahead of a clip whose frames were moved 2 ahead by hand."""
    spec = SPEC.with_(sr=8000)
    clip = synthetic_clip(spec, frames=40)
    moved = replace(clip, frames=np.concatenate([clip.frames[2:], clip.frames[-1:], clip.frames[-1:]]))
    ahead, plain = tiny("wavenet", 2, spec), tiny("wavenet", 0, spec)
    assert model_clip(clip, "rgb", 2).frames[5:9].tolist() == moved.frames[5:9].tolist()
    for j in (0, 7):
        items = [split_datasets([c], spec, m, 256, 0.2)[0][j] for c, m in ((clip, ahead), (moved, plain))]
        np.testing.assert_array_equal(items[0]["video"], items[1]["video"])
        assert not np.array_equal(items[0]["video"], split_datasets([clip], spec, plain, 256, 0.2)[0][j]["video"])
    tail = range(30, 40)
    np.testing.assert_allclose(per_sample_nll(ahead, clip, spec, tail), per_sample_nll(plain, moved, spec, tail))


def test_looking_ahead_needs_rgb_input():
    with pytest.raises(ValueError, match="looking ahead needs --video-input rgb"):
        model_config("wavenet", "tiny", SPEC, video_lookahead=1, video_input="rgb+motion").check()
    with pytest.raises(ValueError, match=r"video_lookahead must be in \[0, 1024\]"):
        model_config("wavenet", "tiny", SPEC, video_lookahead=-1).check()


def test_foley_generate_with_a_run_that_looks_ahead(tmp_path):
    """Decoding a video from frame 5 on as the model reads it: the audio generate() makes from the whole clip's
    frames, for the run that looks 2 frames ahead and for its weights looking at none (other audio)."""
    from conftest import make_video

    spec = preset("tiny")  # 8 kHz, 25 fps, 32 x 32
    video = make_video(tmp_path / "pattern.mp4", seconds=0.6, size="64x48", sr=None)
    wavs = {}
    for ahead in (0, 2):
        save_model(tiny("wavenet", ahead, spec, loss="mse"), spec, tmp_path / f"k{ahead}" / "model.pt")
        dub_video(video, tmp_path / f"k{ahead}", tmp_path / f"k{ahead}.mp4", wav=tmp_path / f"k{ahead}.wav",
                  start=0.2, seconds=0.2, progress=False)
        wavs[ahead] = media.read_audio(tmp_path / f"k{ahead}.wav", sr=spec.sr)
    frames = np.stack(list(media.iter_frames(video, fps=spec.fps_exact, size=spec.size)))
    step = 2 ** -15  # a 16-bit WAV's step
    for ahead in (0, 2):
        expected = generate(tiny("wavenet", ahead, spec, loss="mse"), spec, frames, 5, 5)
        assert wavs[ahead].shape == expected.shape == (1600, 2)
        assert np.abs(wavs[ahead] - expected).max() <= step
    assert np.abs(wavs[2] - wavs[0]).max() > 3 * step  # untrained: the picture moves the output a little
