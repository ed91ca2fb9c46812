import json

import numpy as np
import pytest

from foleylib.core.config import AVSpec
from foleylib.core.errors import InputError
from foleylib.core.fsutil import write_json
from foleylib.data.dataset import (
    FrameDataset,
    SampleDataset,
    WindowDataset,
    audio_context,
    load_clip,
    split_by_time,
    video_context,
)


def write_clip(folder, frames=10, spf=40, channels=2, size=8):
    """A tiny aligned clip: audio sample i holds value i (channel c: -i), frame k is filled with k."""
    folder.mkdir(parents=True)
    n = frames * spf
    audio = np.stack([np.arange(n), -np.arange(n)][:channels], axis=1).astype(np.float32)
    video = np.repeat(np.arange(frames, dtype=np.uint8), size * size * 3).reshape(frames, size, size, 3)
    np.save(folder / "audio.npy", audio)
    np.save(folder / "frames.npy", video)
    write_json(folder / "meta.json", {"source": "x.mp4", "sha256": "0" * 64, "sr": spf * 25, "fps": 25,
                                      "size": size, "channels": channels, "frames": frames, "samples": n})
    return folder


def test_audio_context_zero_pads_in_front():
    audio = np.arange(1, 11, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(audio_context(audio, 3, 5)[:, 0], [0, 0, 1, 2, 3])
    np.testing.assert_array_equal(audio_context(audio, 0, 4)[:, 0], [0, 0, 0, 0])
    np.testing.assert_array_equal(audio_context(audio, 10, 3)[:, 0], [8, 9, 10])


def test_video_context_black_frames_in_front():
    frames = (np.arange(1, 6, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8))
    assert video_context(frames, 0, 3)[:, 0, 0, 0].tolist() == [0, 0, 1]
    assert video_context(frames, 4, 3)[:, 0, 0, 0].tolist() == [3, 4, 5]


def test_sample_dataset_contexts(tmp_path):
    clip = load_clip(write_clip(tmp_path / "c"))
    spec = AVSpec(sr=1000, fps=25, size=8, context_frames=3, context_samples=50)
    ds = SampleDataset(clip, spec)
    assert len(ds) == 400
    first = ds[0]
    assert first["audio"].shape == (50, 2) and float(first["audio"].abs().sum()) == 0
    assert first["video"][:, 0, 0, 0].tolist() == [0, 0, 0]  # frame 0 is black too (value 0)
    assert first["target"].tolist() == [0.0, -0.0]
    ex = ds[85]  # sample 85 plays during frame 2 (samples 80..119)
    assert ex["audio"][:, 0].tolist() == list(range(35, 85))
    assert ex["video"][:, 0, 0, 0].tolist() == [0, 1, 2]
    assert ex["target"].tolist() == [85.0, -85.0]
    assert len(SampleDataset(clip, spec, frames=range(2, 4), stride=4)) == 20


def test_frame_dataset_targets_whole_frames(tmp_path):
    clip = load_clip(write_clip(tmp_path / "c"))
    spec = AVSpec(sr=1000, fps=25, size=8, context_frames=2, context_samples=60)
    ex = FrameDataset(clip, spec)[1]
    assert ex["target"].shape == (40, 2) and ex["target"][:, 0].tolist() == list(range(40, 80))
    assert ex["audio"][:20].abs().sum() == 0 and ex["audio"][20:, 0].tolist() == list(range(40))
    assert ex["video"][:, 0, 0, 0].tolist() == [0, 1] and int(ex["length"]) == 40


def test_frame_dataset_fractional_rate_pads_target(tmp_path):
    clip = load_clip(write_clip(tmp_path / "c", frames=6, spf=40))
    spec = AVSpec(sr=1000, fps=30, size=8, context_frames=1, context_samples=10)  # 33.3 samples per frame
    lengths = [int(FrameDataset(clip, spec)[k]["length"]) for k in range(3)]
    assert lengths == [34, 33, 33] and FrameDataset(clip, spec)[0]["target"].shape == (34, 2)


def test_split_by_time(tmp_path):
    clip = load_clip(write_clip(tmp_path / "c", frames=10))
    assert split_by_time(clip, 0.2) == ([range(0, 8)], range(8, 10))
    assert split_by_time(clip, 0.3, val_end=0.5) == ([range(0, 2), range(5, 10)], range(2, 5))
    assert split_by_time(clip, 0.2, val_end=0.2) == ([range(2, 10)], range(0, 2))
    with pytest.raises(ValueError):
        split_by_time(clip, 1.5)
    with pytest.raises(ValueError):
        split_by_time(clip, 0.5, val_end=0.4)


def test_split_by_time_segments_tile_the_clip(tmp_path):
    """K spans of 1/K ending at (j + 1)/K (foley crossval --segments) cover every frame once."""
    for frames, k in ((139, 5), (150, 5), (250, 4), (13, 3)):
        clip = load_clip(write_clip(tmp_path / f"c{frames}", frames=frames))
        held = [split_by_time(clip, 1 / k, (j + 1) / k)[1] for j in range(k)]
        assert [f for part in held for f in part] == list(range(frames))


def test_load_clip_names_the_problem(tmp_path):
    folder = write_clip(tmp_path / "broken")
    (folder / "audio.npy").unlink()
    with pytest.raises(InputError, match="cannot read audio.npy") as err:
        load_clip(folder)
    assert err.value.path == str(folder)
    folder = write_clip(tmp_path / "mismatch")
    meta = json.loads((folder / "meta.json").read_text())
    write_json(folder / "meta.json", {**meta, "samples": 7})
    with pytest.raises(InputError, match=r"audio.npy is float32\[400, 2\], meta.json expects float32\[7, 2\]"):
        load_clip(folder)
    with pytest.raises(InputError, match="not an aligned clip folder"):
        load_clip(tmp_path / "nothing")


def test_window_dataset_teacher_forcing_layout(tmp_path):
    clip = load_clip(write_clip(tmp_path / "c", frames=10, spf=40))
    spec = AVSpec(sr=1000, fps=25, size=8, context_frames=3, context_samples=50)
    ds = WindowDataset(clip, spec, window=60, warmup=30, stride=20)
    assert list(ds.starts[:3]) == [0, 20, 40] and ds.n_video == 3 + 1 + 2
    ex = ds[2]  # window starts at sample 40, warm-up from sample 10
    assert ex["audio_in"][:, 0].tolist() == list(range(9, 99))
    assert ex["target"][:, 0].tolist() == list(range(10, 100))
    # position j sits in frame (10 + j) // 40; video[0] holds frame -2 (black), video[2] frame 0
    assert ex["video"][:, 0, 0, 0].tolist() == [0, 0, 0, 1, 2, 3]  # a spare frame fills the fixed size
    idx = ex["frame_index"]
    assert idx[0] == 2 and idx[29] == 2 and idx[30] == 3 and idx[-1] == 4
    for j in (0, 45, 89):
        assert ex["video"][idx[j], 0, 0, 0] == (10 + j) // 40
    first = ds[0]  # window at 0: warm-up reaches before the clip: zeros
    assert first["audio_in"][:31].abs().sum() == 0 and first["target"][:30].abs().sum() == 0
    assert first["target"][30:, 0].tolist() == list(range(60))
    assert first["frame_index"][30] == first["frame_index"][0] + 1  # sample -30 is in frame -1


def test_window_dataset_refuses_short_ranges(tmp_path):
    clip = load_clip(write_clip(tmp_path / "c", frames=2, spf=40))
    with pytest.raises(InputError, match="fewer than one window"):
        WindowDataset(clip, AVSpec(sr=1000, fps=25, size=8), window=100)
