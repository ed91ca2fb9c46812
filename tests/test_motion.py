"""Motion input for the video context embedding: the motion channels, their cache, and every model fed with them."""
import json

import numpy as np
import pytest
import torch
from test_models import COMBOS, synthetic_clip, tiny
from torch.utils.data import DataLoader

from foleylib.core.config import AVSpec, preset
from foleylib.data.align import ingest_file
from foleylib.data.batches import make_dataset
from foleylib.data.dataset import load_clip
from foleylib.data.motion import (
    FLOW_SCALE,
    MOTION_CHANNELS,
    MOTION_FILE,
    VIDEO_INPUTS,
    FrameInput,
    MotionTracker,
    input_channels,
    model_clip,
    model_frames,
    motion_channels,
)
from foleylib.data.synth import render_scene
from foleylib.generation.generate import FoleyEngine, generate
from foleylib.interfaces.cli import main
from foleylib.models.config import ModelConfig, model_config
from foleylib.models.registry import build_model
from foleylib.training.checkpoint import load_model, save_model

S = 64
CH = {name: i for i, name in enumerate(MOTION_CHANNELS)}


def square_at(x: int, y: int) -> np.ndarray:
    """A 64 x 64 RGB frame: a light 12 x 12 square with its top left corner at (x, y) on a dark background."""
    frame = np.full((S, S, 3), 40, np.uint8)
    frame[y:y + 12, x:x + 12] = (220, 200, 180)
    return frame


def squares(positions: list[tuple[int, int]]) -> np.ndarray:
    return np.stack([square_at(x, y) for x, y in positions])


@pytest.mark.parametrize("step,channel", [((3, 0), "right"), ((-3, 0), "left"), ((0, 3), "down"), ((0, -3), "up")])
def test_moving_square_has_flow_where_and_when_it_moves(step, channel):
    positions = [(26 + step[0] * min(k, 4), 26 + step[1] * min(k, 4)) for k in range(9)]  # moves in 1..4, then still
    motion = motion_channels(squares(positions))
    assert motion.shape == (9, S, S, len(MOTION_CHANNELS)) and motion.dtype == np.uint8
    for k in range(1, 5):
        x, y = positions[k]
        inside = motion[k, y:y + 12, x:x + 12]
        assert (inside[..., CH[channel]] == 3 * FLOW_SCALE).all()  # 3 px per frame, on every pixel of the square
        others = [CH[c] for c in ("right", "left", "down", "up") if c != channel]
        assert inside[..., others].max() == 0
        assert motion[k, ..., CH["diff"]].max() == round(0.299 * 220 + 0.587 * 200 + 0.114 * 180) - 40  # its edges
        far = np.ones((S, S), bool)
        far[max(0, y - 12):y + 24, max(0, x - 12):x + 24] = False  # more than 12 px away from the square
        assert motion[k][far].max() == 0
    assert motion[0].max() == 0  # frame 0: nothing to move from
    assert motion[6:].max() == 0  # still again (frame 5 still holds the stop cue of the halt after frame 4)


def test_still_frames_have_no_motion():
    texture = np.random.default_rng(0).integers(0, 256, (S, S, 3), dtype=np.uint8)
    assert motion_channels(np.stack([texture] * 5)).max() == 0


@pytest.mark.parametrize("moved,expected", [(0, 255), (1, 191), (2, 128), (3, 64), (4, 0)])
def test_stop_cue_times_the_halt_within_the_frame_period(moved, expected):
    """4 px per frame, then only `moved` px into frame 4: it stopped after moved/4 of the period 3 .. 4, so the
    cue on the square's pixels of frame 3 is (1 - moved / 4) * 255 at frame 4, and nothing while it kept going."""
    xs = [10, 14, 18, 22, 22 + moved, 22 + moved]
    motion = motion_channels(squares([(x, 20) for x in xs]))
    square_in_frame_3 = motion[4, 21:31, 23:33, CH["stop"]]
    assert np.abs(square_in_frame_3.astype(int) - expected).max() <= 1
    assert motion[:4, ..., CH["stop"]].max() <= 1


def test_motion_is_causal():
    frames = np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    changed = frames.copy()
    changed[5] = 255 - changed[5]
    before, after = motion_channels(frames), motion_channels(changed)
    np.testing.assert_array_equal(before[:5], after[:5])  # frames before the change do not see it
    assert (before[5] != after[5]).any()


def test_model_frames_stack_the_channels_the_input_asks_for():
    frames = squares([(10 + 2 * k, 20) for k in range(4)])
    motion = motion_channels(frames)
    assert model_frames(frames, "rgb") is frames
    np.testing.assert_array_equal(model_frames(frames, "rgb+motion"), np.concatenate([frames, motion], axis=-1))
    np.testing.assert_array_equal(model_frames(frames, "motion"), motion)
    assert [input_channels(v) for v in VIDEO_INPUTS] == [3, 9, 6]
    with pytest.raises(ValueError, match="unknown video_input 'depth'"):
        input_channels("depth")


def test_a_stream_started_late_equals_the_whole_clip():
    frames = np.random.default_rng(2).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    whole = model_frames(frames, "rgb+motion")
    stream = FrameInput("rgb+motion")
    np.testing.assert_array_equal(stream.last(frames[:7], 3), whole[4:7])  # reads only frames 2 .. 6
    np.testing.assert_array_equal(np.stack([stream.push(f) for f in frames[7:]]), whole[7:])
    tracker = MotionTracker()  # ingest's chunks, of any sizes, give the same channels
    chunks = [tracker.extend(frames[a:b]) for a, b in ((0, 1), (1, 6), (6, 6), (6, 12))]
    np.testing.assert_array_equal(np.concatenate(chunks), whole[..., 3:])


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("motion")
    video = render_scene("clap", root / "synth", seconds=3, seed=1, width=160, height=90)["video"]
    return ingest_file(video, root / "aligned", AVSpec(sr=8000, fps=25, size=32), motion_cache=True).clip_dir


def test_ingest_caches_motion_and_old_clips_compute_the_same(clip_dir):
    """3 s at 25 fps: 75 frames, ingested in chunks of 64 frames."""
    clip = load_clip(clip_dir)
    cached = np.load(clip_dir / MOTION_FILE)
    expected = motion_channels(np.asarray(clip.frames))
    assert cached.shape == (*clip.frames.shape[:3], len(MOTION_CHANNELS)) and expected.max() > 0
    np.testing.assert_array_equal(cached, expected)
    read = model_clip(clip, "rgb+motion").frames
    assert isinstance(read.motion, np.memmap) and read.shape == (len(clip.frames), 32, 32, 9)
    np.testing.assert_array_equal(read[3:7], np.concatenate([clip.frames[3:7], expected[3:7]], axis=-1))
    old = load_clip(clip_dir)
    del old.meta["motion"]  # ingested before motion existed: no (valid) cache
    on_the_fly = model_clip(old, "motion").frames
    assert not isinstance(on_the_fly, np.memmap)
    np.testing.assert_array_equal(on_the_fly, expected)
    assert model_clip(clip, "rgb") is clip


def test_ingest_caches_motion_only_when_asked_and_models_read_the_same(clip_dir, tmp_path, capsys):
    source = json.loads((clip_dir / "meta.json").read_text())["source"]
    args = ["ingest", source, "--out", str(tmp_path), "--sr", "8000", "--fps", "25", "--size", "32"]
    assert main(args) == 0 and "1 aligned" in capsys.readouterr().out
    bare = next(tmp_path.glob("*/meta.json")).parent
    assert not (bare / MOTION_FILE).exists() and load_clip(bare).meta["motion"] is None
    np.testing.assert_array_equal(np.load(bare / "frames.npy"), np.load(clip_dir / "frames.npy"))
    np.testing.assert_array_equal(np.asarray(model_clip(load_clip(bare), "rgb+motion").frames),
                                  np.asarray(model_clip(load_clip(clip_dir), "rgb+motion").frames))
    assert main([*args, "--motion"]) == 0 and "1 aligned" in capsys.readouterr().out  # not current without the cache
    np.testing.assert_array_equal(np.load(bare / MOTION_FILE), np.load(clip_dir / MOTION_FILE))
    assert main(args) == 0 and "1 unchanged" in capsys.readouterr().out  # a clip with the cache stays current


@pytest.mark.parametrize("video_input", VIDEO_INPUTS)
@pytest.mark.parametrize("arch,mode,variant", COMBOS)
def test_every_architecture_runs_on_every_video_input(arch, mode, variant, video_input):
    spec = preset("tiny")
    torch.manual_seed(0)
    model = build_model(tiny(arch, mode, variant, video_input=video_input)).eval()
    stem = next(m for m in model.modules() if isinstance(m, torch.nn.Conv3d))
    assert stem.in_channels == input_channels(video_input)
    clip = model_clip(synthetic_clip(spec), video_input)
    dataset = make_dataset(clip, spec, model.cfg.arch, model.cfg.mode, range(4, 12), 48, 0)
    batch = next(iter(DataLoader(dataset, batch_size=2)))
    assert batch["video"].shape[-1] == input_channels(video_input)
    with torch.no_grad():
        out = model(batch)
        moved = model({**batch, "video": 255 - batch["video"]})
    assert torch.isfinite(out).all() and (out - moved).abs().max() > 0  # the input channels reach the output


@pytest.mark.parametrize("video_input", ["rgb+motion", "motion"])
def test_generation_feeds_the_same_motion_frames_cached_and_naive(video_input):
    spec = AVSpec(sr=1000, fps=25, size=16, context_frames=2, context_samples=64)
    texture = np.random.default_rng(3).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    frames = np.stack([np.roll(texture, k % 5, axis=1) for k in range(30)])  # moving right, jumping back
    torch.manual_seed(0)
    model = build_model(model_config("wavenet", "tiny", spec, loss="mse", video_input=video_input)).eval()
    engine = FoleyEngine(model, spec, start_frame=10, past_frames=frames[:10])
    for frame in frames[10:14]:
        engine.push(frame)
    np.testing.assert_array_equal(engine.frames[4:14], model_frames(frames, video_input)[4:14])
    for start in (0, 10):  # from the zero padding before frame 0, and primed by the frames before
        naive = generate(model, spec, frames, start, 6, method="naive")
        cached = generate(model, spec, frames, start, 6, method="cached")
        assert np.abs(naive - cached).max() < 1e-4


def test_a_run_without_video_input_loads_as_rgb(tmp_path):
    spec = preset("tiny")
    model = build_model(model_config("wavenet", "tiny", spec))
    save_model(model, spec, tmp_path / "model.pt")
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    del saved["model_config"]["video_input"]  # a run from before motion input
    torch.save(saved, tmp_path / "model.pt")
    loaded, _ = load_model(tmp_path)
    assert loaded.cfg.video_input == "rgb"
    assert ModelConfig.from_dict(saved["model_config"]).video_input == "rgb"
    with pytest.raises(ValueError, match="unknown video_input 'flow'"):
        build_model(model_config("wavenet", "tiny", spec, video_input="flow"))


def test_cli_records_the_video_input(tmp_path, clip_dir, capsys):
    run = tmp_path / "run"
    code = main(["train", "--arch", "wavenet", "--video-input", "motion", "--data", str(clip_dir), "--steps", "1",
                 "--batch-size", "2", "--window", "64", "--preset", "tiny", "--quiet", "--out", str(run)])
    assert code == 0, capsys.readouterr().err
    assert json.loads((run / "config.json").read_text())["model"]["video_input"] == "motion"
    model, _ = load_model(run)
    assert model.cfg.video_input == "motion" and model.frames.encoder.stem[0].in_channels == len(MOTION_CHANNELS)
