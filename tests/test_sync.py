"""The sync loss (foley train --sync-weight): a read-out of each frame's video embedding learns where sounds start."""
import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from foleylib.core.config import AVSpec
from foleylib.core.errors import InputError
from foleylib.data.align import ingest_file
from foleylib.data.batches import sound_starts, split_datasets
from foleylib.data.dataset import load_clip
from foleylib.data.synth import render_scene
from foleylib.generation.generate import generate
from foleylib.interfaces.cli import main
from foleylib.models.config import model_config
from foleylib.models.registry import build_model
from foleylib.training.checkpoint import load_model
from foleylib.training.config import TrainConfig
from foleylib.training.sync import frame_embeddings, sync_loss
from foleylib.training.trainer import train

SPEC = AVSpec(sr=8000, fps=25, size=16, context_frames=2, context_samples=128)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("sync")
    video = render_scene("clap", root / "synth", seconds=4, seed=3, width=160, height=90)["video"]
    return load_clip(ingest_file(video, root / "aligned", SPEC).clip_dir)


@pytest.mark.parametrize("arch", ["wavenet", "transformer"])
def test_sync_loss_by_hand(clip, arch):
    torch.manual_seed(0)
    net = build_model(model_config(arch, "tiny", SPEC, loss="ce", sync_head=True)).eval()
    batch = next(iter(DataLoader(split_datasets([clip], SPEC, net, 256, 0.2)[0], batch_size=3)))
    with torch.no_grad():
        with frame_embeddings(net) as seen:
            net(batch)
        loss = float(sync_loss(net, seen[-1], batch, SPEC.sr))
        e = net.frames(batch["video"])  # [B, W, d]
    assert len(seen) == 1
    expected, count = 0.0, 0
    for b in range(3):
        starts = sound_starts(batch["target"][b:b + 1], SPEC.sr)[0]
        for j in range(int(batch["warmup"][b]), batch["target"].shape[1]):
            z = float(net.frames.sync(e[b, int(batch["frame_index"][b, j]) - 1]))  # row = frame index - (n - 1)
            p = 1 / (1 + np.exp(-z))
            expected -= np.log(p) if starts[j] else np.log(1 - p)
            count += 1
    assert loss == pytest.approx(expected / count, rel=1e-4)


def test_the_read_out_learns_where_the_claps_start(clip, tmp_path):
    """Trained with a heavy sync loss, the read-out is higher on the frames where claps start than elsewhere."""
    cfg = model_config("wavenet", "tiny", SPEC, loss="ce", sync_head=True)
    tc = TrainConfig(steps=60, batch_size=4, window=512, val_every=60, lr=5e-3, sync_weight=10.0)
    train([clip], cfg, tc, tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    first, last = np.mean([r["sync_loss"] for r in records[:5]]), np.mean([r["sync_loss"] for r in records[-5:]])
    assert last < 0.7 * first
    model, _ = load_model(tmp_path / "run")
    frames = torch.from_numpy(np.array(clip.frames))[None]
    with torch.no_grad():
        read_out = model.frames.sync(model.frames(frames))[0, :, 0].numpy()  # row r: frame r + 1
    audio = torch.from_numpy(np.asarray(clip.audio))[None]
    starts = sound_starts(audio, SPEC.sr)[0].numpy()
    spf = SPEC.sr // SPEC.fps
    has_start = np.array([starts[(r + 1) * spf:(r + 2) * spf].any() for r in range(len(read_out))])
    assert 0 < has_start.sum() < len(has_start) / 2
    assert read_out[has_start].mean() > read_out[~has_start].mean() + 1.0


def test_the_sync_head_changes_nothing_the_model_generates(clip):
    """A model with a sync head generates what the same weights without it generate (cached and naive)."""
    torch.manual_seed(1)
    with_head = build_model(model_config("wavenet", "tiny", SPEC, loss="ce", sync_head=True)).eval()
    without = build_model(model_config("wavenet", "tiny", SPEC, loss="ce")).eval()
    state = {k: v for k, v in with_head.state_dict().items() if ".sync." not in k}
    without.load_state_dict(state)
    frames = np.asarray(clip.frames)
    for method in ("cached", "naive"):
        a = generate(with_head, SPEC, frames, 10, 2, seed=4, method=method)
        b = generate(without, SPEC, frames, 10, 2, seed=4, method=method)
        assert np.array_equal(a, b), method


def test_the_sync_loss_is_refused_where_there_is_no_frame_embedding(clip, tmp_path, capsys):
    with pytest.raises(InputError, match="sync head"):
        train([clip], model_config("wavenet", "tiny", SPEC, loss="ce"), TrainConfig(steps=1, sync_weight=1.0),
              tmp_path / "run", progress=False)
    for argv in (["--arch", "fusion"], ["--arch", "wavenet", "--mode", "paper"]):
        code = main(["train", *argv, "--sync-weight", "1", "--data", str(clip.path), "--steps", "1", "--out",
                     str(tmp_path / "cli")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.startswith("error: the sync loss reads the per-frame video embedding") and \
            len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists() and not (tmp_path / "cli").exists()
