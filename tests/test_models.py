"""The three architectures and the video context embedding: shapes, causality, receptive field, overfitting."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset

from foleylib.core.config import AVSpec, preset
from foleylib.data.dataset import AlignedClip, FrameDataset, SampleDataset, WindowDataset
from foleylib.models.config import ModelConfig, model_config
from foleylib.models.losses import compute_loss
from foleylib.models.registry import build_model
from foleylib.models.transformer import alibi_slopes, sliding_bias, window_start
from foleylib.models.video import (
    AudioToVideo,
    Conv3d,
    FrameEmbedding,
    ResBlock1d,
    ResBlock3d,
    VideoEncoder,
    VideoToAudio,
)

TINY = preset("tiny")  # 8 kHz, 25 fps (320 samples per frame), 32 x 32, n = 2, 256 samples of context
COMBOS = [("fusion", "paper", "raw"), ("wavenet", "paper", "raw"), ("wavenet", "causal", "raw"),
          ("transformer", "paper", "strided"), ("transformer", "paper", "raw"), ("transformer", "causal", "raw")]


def synthetic_clip(spec: AVSpec, frames: int = 12, seed: int = 0) -> AlignedClip:
    """An in-memory aligned clip: a sine per channel (220 / 330 Hz) and random frames."""
    rng = np.random.default_rng(seed)
    n = spec.frame_start(frames)
    t = np.arange(n) / spec.sr
    audio = 0.5 * np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t + 1)], axis=1)
    video = rng.integers(0, 256, (frames, spec.size, spec.size, 3), dtype=np.uint8)
    meta = {"source": "synthetic", "sha256": "0" * 64, "sr": spec.sr, "fps": spec.fps, "size": spec.size,
            "channels": spec.channels, "frames": frames, "samples": n}
    return AlignedClip(Path("synthetic"), video, audio[:, :spec.channels].astype(np.float32), meta)


def batch_of(cfg: ModelConfig, spec: AVSpec, count: int, window: int = 48, warmup: int = 0, seed: int = 0) -> dict:
    """A collated batch from the real dataset of the model's arch and mode (examples spread over the clip)."""
    clip = synthetic_clip(spec, seed=seed)
    if cfg.arch == "fusion":
        ds = FrameDataset(clip, spec)
    elif cfg.mode == "paper":
        ds = SampleDataset(clip, spec)
    else:
        ds = WindowDataset(clip, spec, window=window, warmup=warmup, stride=window)
    picks = np.linspace(len(ds) // 3, len(ds) - 1, count).astype(int).tolist()
    return next(iter(DataLoader(Subset(ds, picks), batch_size=count)))


def tiny(arch: str, mode: str = "paper", variant: str = "raw", spec: AVSpec = TINY, **kw) -> ModelConfig:
    return model_config(arch, "tiny", spec, mode=mode, variant=variant, **kw)


# ---------------------------------------------------------------------------------------------- blocks


@pytest.mark.parametrize("size", [32, 48])
def test_resblock3d_shapes(size):
    x = torch.randn(2, 4, 3, size, size)
    down = ResBlock3d(4, 8, stride=2)
    assert down(x).shape == (2, 8, 3, size // 2, size // 2)
    assert down.skip is not None  # 1x1 conv when channels and stride change
    same = ResBlock3d(4, 4)
    assert same.skip is None and same(x).shape == x.shape
    assert (same(x) >= 0).all()  # the block ends with a ReLU


@pytest.mark.parametrize("length,stride,out", [(1000, 4, 250), (1001, 4, 251), (534, 2, 267), (7, 3, 3)])
def test_resblock1d_shapes(length, stride, out):
    assert ResBlock1d(2, 8, stride)(torch.randn(3, 2, length)).shape == (3, 8, out)


@pytest.mark.parametrize("size,blocks,side", [(32, 1, 8), (48, 2, 6), (48, 0, 24), (50, 2, 7)])
def test_video_encoder_shapes(size, blocks, side):
    enc = VideoEncoder(size, channels=4, blocks=blocks)
    assert enc.out_size == side
    video = torch.randint(0, 256, (2, 3, size, size, 3), dtype=torch.uint8)
    assert enc(video).shape == (2, 4, 3, side, side)


def test_projections_shapes():
    v = torch.randn(2, 4, 3, 6, 6)  # [B, c_vid, n, h, w]
    assert VideoToAudio(4, 3, 36, n_aud=1000, c_aud=2)(v).shape == (2, 2, 1000)
    assert VideoToAudio(4, 3, 36, n_aud=1, c_aud=16)(v).shape == (2, 16, 1)
    a = torch.randn(2, 8, 250)  # [B, c_aud, n_aud]
    assert AudioToVideo(8, 250, 4, 3, 36)(a).shape == (2, 4, 3, 6, 6)


def test_conv3d_inference_runs_through_onednn_with_the_same_result():
    torch.manual_seed(0)
    conv, plain = Conv3d(3, 16, 3, stride=(1, 2, 2), padding=1, bias=False), nn.Conv3d(3, 16, 3, stride=(1, 2, 2),
                                                                                      padding=1, bias=False)
    plain.load_state_dict(conv.state_dict())
    x = torch.randn(1, 3, 4, 32, 32)  # one frame window: PyTorch's own choice is slow_conv3d

    def ops(grad: bool) -> set[str]:
        with torch.set_grad_enabled(grad), torch.profiler.profile() as prof:
            out = conv(x)
        torch.testing.assert_close(out, plain(x), rtol=0, atol=1e-5)
        return {event.key for event in prof.key_averages()}

    assert "aten::mkldnn_convolution" in ops(grad=False)
    assert "aten::mkldnn_convolution" not in ops(grad=True)  # training keeps PyTorch's choice


def test_video_time_axis_is_folded_not_averaged():
    """Reversing the frame order changes the video -> audio projection (time is folded into the channels)."""
    torch.manual_seed(0)
    proj = VideoToAudio(4, 3, 36, n_aud=10, c_aud=2)
    v = torch.randn(1, 4, 3, 6, 6)
    assert not torch.allclose(proj(v), proj(v.flip(2)))


@pytest.mark.parametrize("size", [32, 48])
def test_frame_embedding_one_vector_per_full_window(size):
    cfg = tiny("wavenet", "causal", spec=TINY.with_(size=size, context_frames=3))
    e = FrameEmbedding(cfg, dim=5)
    video = torch.randint(0, 256, (2, 7, size, size, 3), dtype=torch.uint8)
    assert e(video).shape == (2, 5, 5)  # F - n + 1 = 7 - 3 + 1 windows


# ------------------------------------------------------------------------------------------ model shapes

SPEC_30FPS = AVSpec(sr=16000, fps=30, size=48, channels=2, context_frames=3, context_samples=1000)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("size", [32, 48])
@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_fusion_shapes(channels, size, loss):
    spec = SPEC_30FPS.with_(channels=channels, size=size)
    cfg = tiny("fusion", spec=spec, loss=loss)
    assert cfg.samples_per_frame == 534  # ceil(16000 / 30)
    model = build_model(cfg)
    assert model.lengths == [250, 63] and model.sides == [size // 4, size // 8]  # ceil(1000/4), ceil(250/4)
    out = model(batch_of(cfg, spec, 2))
    assert out.shape == ((2, 534, channels) if loss == "mse" else (2, 534, channels, 256))


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("size", [32, 48])
@pytest.mark.parametrize("arch,variant", [("wavenet", "raw"), ("transformer", "strided"), ("transformer", "raw")])
def test_paper_mode_shapes(arch, variant, channels, size):
    spec = SPEC_30FPS.with_(channels=channels, size=size)
    batch = batch_of(tiny(arch, spec=spec), spec, 3)
    for loss, shape in (("mse", (3, channels)), ("ce", (3, channels, 256))):
        assert build_model(tiny(arch, variant=variant, spec=spec, loss=loss))(batch).shape == shape


def test_transformer_token_counts():
    spec = SPEC_30FPS
    strided = build_model(tiny("transformer", variant="strided", spec=spec, strides=(4, 4)))
    assert strided.max_context == 63  # ceil(1000 / 16): the context is zero-padded in front to 1008
    assert strided.audio_tokens(torch.randn(2, 1000, 2)).shape == (2, 63, 16)
    raw = build_model(tiny("transformer", variant="raw", spec=spec, raw_context=100))
    assert raw.max_context == 100 and raw.audio_tokens(torch.randn(2, 1000, 2)).shape == (2, 100, 16)
    short = build_model(tiny("transformer", variant="raw", spec=spec.with_(context_samples=20), raw_context=32))
    assert short.audio_tokens(torch.randn(2, 20, 2)).shape == (2, 32, 16)  # zero-padded in front
    n_params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    small = preset("small")
    assert n_params(build_model(model_config("transformer", "small", small, mode="paper", variant="raw"))) < \
        n_params(build_model(model_config("transformer", "small", small, mode="paper", variant="strided")))


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("arch", ["wavenet", "transformer"])
@pytest.mark.parametrize("window", [20, 75])  # shorter and longer than the transformer's attention window (32)
def test_causal_mode_shapes(arch, channels, window):
    spec = TINY.with_(channels=channels)
    cfg = tiny(arch, "causal", spec=spec)
    batch = batch_of(cfg, spec, 2, window=window, warmup=5)
    assert build_model(cfg)(batch).shape == (2, window + 5, channels, 256)
    assert build_model(tiny(arch, "causal", spec=spec, loss="mae"))(batch).shape == (2, window + 5, channels)


def test_causal_mode_refuses_missing_frame_context():
    cfg = tiny("wavenet", "causal")
    batch = batch_of(cfg, TINY, 1)
    batch["frame_index"] = batch["frame_index"] - 1  # would need a frame before the first one given
    with pytest.raises(ValueError, match="frame_index"):
        build_model(cfg)(batch)


def test_paper_mode_refuses_wrong_context_length():
    batch = batch_of(tiny("wavenet"), TINY, 1)
    batch["audio"] = batch["audio"][:, 1:]
    with pytest.raises(ValueError, match="255 samples"):
        build_model(tiny("wavenet"))(batch)


@pytest.mark.parametrize("arch,mode,variant", COMBOS)
def test_every_parameter_gets_a_gradient(arch, mode, variant):
    """No unused parameters (DDP needs none), outputs finite."""
    torch.manual_seed(0)
    cfg = tiny(arch, mode, variant, loss="mse")
    model = build_model(cfg)
    batch = batch_of(cfg, TINY, 2)
    out = model(batch)
    assert torch.isfinite(out).all() and out.abs().max() <= 1
    compute_loss("mse", out, batch["target"]).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


# ----------------------------------------------------------------------------- receptive field, causality


@pytest.mark.parametrize("k,cycle,stacks,expected", [(2, 5, 1, 33), (3, 3, 2, 31), (2, 10, 2, 2048)])
def test_wavenet_receptive_field(k, cycle, stacks, expected):
    # 1 (current sample) + (k - 1) (input conv) + (k - 1) * sum of dilations (1 + 2 + ... + 2^(cycle-1), x stacks)
    assert 1 + (k - 1) + (k - 1) * stacks * (2 ** cycle - 1) == expected
    model = build_model(tiny("wavenet", "causal", kernel_size=k, dilation_cycle=cycle, stacks=stacks))
    assert model.receptive_field == expected


def jacobian_rows(model, batch, positions):
    """For each position t: which audio_in positions have a nonzero gradient of output[:, t]."""
    audio = batch["audio_in"].clone().requires_grad_(True)
    out = model({**batch, "audio_in": audio})
    rows = []
    for t in positions:
        (grad,) = torch.autograd.grad(out[:, t].sum(), audio, retain_graph=True)
        rows.append(grad.abs().sum(dim=(0, 2)) > 0)  # [L]
    return rows


@pytest.mark.parametrize("arch", ["wavenet", "transformer"])
def test_causality_by_gradients(arch):
    """d output[t] / d audio_in[t'] is exactly zero for t' > t, nonzero for some t' <= t (train mode)."""
    torch.manual_seed(0)
    cfg = tiny(arch, "causal", kernel_size=3, dilation_cycle=3, stacks=1, raw_context=16)
    model = build_model(cfg)
    batch = batch_of(cfg, TINY, 2, window=60)
    span = model.receptive_field  # wavenet: 1 + 2 + 2 * 7 = 17; transformer: attention window 16
    positions = [0, 7, 15, 16, 30, 31, 32, 47, 59]
    for t, nonzero in zip(positions, jacobian_rows(model, batch, positions), strict=True):
        assert not nonzero[t + 1:].any(), f"output {t} depends on later audio"
        assert nonzero[t], f"output {t} ignores its own input position (the sample before its target)"
        if arch == "wavenet":  # exactly the receptive field
            assert nonzero.nonzero().flatten().tolist() == list(range(max(0, t - span + 1), t + 1))
        else:  # the window that outputs t starts at a multiple of hop = 8 and holds at most 16 tokens
            first = 0 if t < span else (t - span) // model.hop * model.hop + model.hop
            assert nonzero.nonzero().flatten().tolist() == list(range(first, t + 1))


@pytest.mark.parametrize("arch", ["wavenet", "transformer"])
@pytest.mark.parametrize("norm,train", [("batch", False), ("group", True), ("group", False)])
def test_future_frames_change_no_earlier_output(arch, norm, train):
    """Changing the frames after frame_index[t] changes no output at or before t (and does change later ones).

    BatchNorm in train mode mixes statistics over all frames of the batch, so there it holds only in eval mode.
    """
    torch.manual_seed(0)
    cfg = tiny(arch, "causal", norm=norm)
    model = build_model(cfg).train(train)
    batch = batch_of(cfg, TINY, 2, window=700)  # spans 3-4 frames of 320 samples
    t = 400
    changed = batch["video"].clone()
    for b, last in enumerate(batch["frame_index"][:, t].tolist()):  # frames 1..2 (example 0), 1..3 (example 1)
        changed[b, last + 1:] = torch.randint(0, 256, changed[b, last + 1:].shape, dtype=torch.uint8)
    with torch.no_grad():
        before, after = model(batch), model({**batch, "video": changed})
    torch.testing.assert_close(before[:, :t + 1], after[:, :t + 1], rtol=0, atol=1e-6)
    assert not torch.allclose(before[:, -1], after[:, -1])


def test_wavenet_paper_mode_reads_the_last_receptive_field():
    torch.manual_seed(0)
    cfg = tiny("wavenet", "paper")
    model = build_model(cfg)
    batch = batch_of(cfg, TINY, 2)
    audio = batch["audio"].clone().requires_grad_(True)
    model({**batch, "audio": audio}).sum().backward()
    used = (audio.grad.abs().sum(dim=(0, 2)) > 0).nonzero().flatten().tolist()
    assert used == list(range(256 - 33, 256))  # the last 33 of the 256 context samples


def causal_transformer(examples: int) -> tuple[torch.nn.Module, dict]:
    """A tiny causal transformer with 32-token windows and a batch of 80-position windows."""
    torch.manual_seed(0)
    cfg = tiny("transformer", "causal", raw_context=32)
    return build_model(cfg).eval(), batch_of(cfg, TINY, examples, window=80)


def test_transformer_causal_matches_one_window():
    """For L <= max_context the windowed forward equals a single causal pass; longer input keeps its prefix."""
    model, batch = causal_transformer(2)
    with torch.no_grad():
        full = model(batch)
        prefix = model({k: (v[:, :32] if k in ("audio_in", "frame_index") else v) for k, v in batch.items()})
    torch.testing.assert_close(full[:, :32], prefix, rtol=0, atol=1e-5)


def test_window_start_by_hand():
    # M 32, hop 16: window 0 outputs 0 .. 31, window k >= 1 (starting at 16k) outputs 16k + 16 .. 16k + 31
    assert [window_start(p, 0, 32, 16) for p in (0, 31, 32, 47, 48, 63, 64, 79)] == [0, 0, 16, 16, 32, 32, 48, 48]
    assert [window_start(p, 5, 32, 16) for p in (5, 36, 37, 52, 53)] == [5, 5, 21, 21, 37]  # counted from origin 5
    assert [window_start(p, 0, 5, 2) for p in range(10)] == [0, 0, 0, 0, 0, 2, 2, 4, 4, 6]  # M 5, hop 2


def test_transformer_causal_output_is_that_of_its_window():
    """Position j of a long causal pass equals the last output of one pass over tokens window_start(j) .. j."""
    model, batch = causal_transformer(1)
    with torch.no_grad():
        full = model(batch)
        for j in (31, 32, 47, 48, 70, 79):
            start = window_start(j, 0, model.max_context, model.hop)
            assert j - start < model.max_context  # one window: the part runs in a single causal pass
            part = {k: (v[:, start:j + 1] if k in ("audio_in", "frame_index") else v) for k, v in batch.items()}
            torch.testing.assert_close(full[:, j], model(part)[:, -1], rtol=0, atol=1e-5)


def sliding_transformer(layers: int, context: int = 32) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(tiny("transformer", "causal", raw_context=context, n_layers=layers, positions="alibi"))


def test_alibi_slopes_and_sliding_bias_by_hand():
    assert alibi_slopes(2).tolist() == [2 ** -4, 2 ** -8] and alibi_slopes(4).tolist()[-1] == 2 ** -8
    inf = float("-inf")  # span 3: queries at positions 3 .. 5 of the pair of blocks, keys at 0 .. 5
    assert sliding_bias(torch.tensor([0.5]), 3)[0].tolist() == [[inf, -1.0, -0.5, 0.0, inf, inf],
                                                                [inf, inf, -1.0, -0.5, 0.0, inf],
                                                                [inf, inf, inf, -1.0, -0.5, 0.0]]


def test_sliding_transformer_equals_one_pass_with_a_banded_mask():
    """The blocked attention (queries in blocks of M against two blocks of keys) equals plain attention over the
    whole sequence with ALiBi's bias and each position seeing the M tokens ending at it; 150 = 4 blocks + 22."""
    model = sliding_transformer(layers=2).eval()
    assert not hasattr(model, "pos") and model.receptive_field == 2 * 31 + 1
    x = torch.randn(2, 150, model.cfg.d_model)
    distance = torch.arange(150)[:, None] - torch.arange(150)[None]
    bias = (-model.slopes[:, None, None] * distance).masked_fill((distance < 0) | (distance >= 32), float("-inf"))
    h = x
    for layer in model.encoder.layers:
        attn = layer.self_attn
        q, k, v = (t.unflatten(-1, (attn.num_heads, -1)).transpose(1, 2)
                   for t in F.linear(layer.norm1(h), attn.in_proj_weight, attn.in_proj_bias).chunk(3, -1))
        h = h + attn.out_proj(F.scaled_dot_product_attention(q, k, v, attn_mask=bias).transpose(1, 2).flatten(2))
        h = h + layer.linear2(F.relu(layer.linear1(layer.norm2(h))))
    with torch.no_grad():
        torch.testing.assert_close(model.encode_sliding(x), model.encoder.norm(h), rtol=0, atol=1e-5)


def test_sliding_transformer_sees_exactly_its_receptive_field():
    """Each layer reaches M - 1 = 15 positions further back: 2 layers see t - 30 .. t, wherever t lies."""
    model = sliding_transformer(layers=2, context=16)
    batch = batch_of(model.cfg, TINY, 2, window=90)
    positions = [0, 15, 16, 30, 31, 47, 89]
    for t, nonzero in zip(positions, jacobian_rows(model, batch, positions), strict=True):
        assert nonzero.nonzero().flatten().tolist() == list(range(max(0, t - 30), t + 1))


# ------------------------------------------------------------------------------------------- config


def test_build_model_refuses_bad_combinations():
    with pytest.raises(ValueError, match="mode must be 'paper'"):
        build_model(ModelConfig(arch="fusion", mode="causal"))
    with pytest.raises(ValueError, match="variant must be 'raw'"):
        build_model(ModelConfig(arch="transformer", mode="causal", variant="strided"))
    with pytest.raises(ValueError, match="choose one of fusion, wavenet, transformer"):
        build_model(ModelConfig(arch="rnn"))
    with pytest.raises(ValueError, match="choose one of mse, mae, ce, paper_ce"):
        build_model(ModelConfig(arch="wavenet", loss="l2"))
    with pytest.raises(ValueError, match="choose one of paper, causal"):
        build_model(ModelConfig(arch="wavenet", mode="online"))
    with pytest.raises(ValueError, match="alibi positions are for the causal transformer"):
        build_model(ModelConfig(arch="transformer", mode="paper", positions="alibi"))
    with pytest.raises(ValueError, match="choose one of absolute, alibi"):
        build_model(ModelConfig(arch="transformer", positions="rope"))
    with pytest.raises(ValueError, match="divisible"):
        build_model(ModelConfig(arch="transformer", d_model=30, n_heads=4))
    with pytest.raises(ValueError, match="unknown model preset"):
        model_config("wavenet", "huge", TINY)
    with pytest.raises(ValueError, match="unknown ModelConfig fields: depth"):
        model_config("wavenet", "tiny", TINY, depth=3)


def test_model_config_json_round_trip():
    cfg = model_config("transformer", "small", preset("small"), mode="paper", variant="strided", strides=(2, 4, 4))
    back = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and back.strides == (2, 4, 4)
    assert build_model(back).cfg == cfg
    with pytest.raises(ValueError, match="unknown ModelConfig keys: colour"):
        ModelConfig.from_dict({**cfg.to_dict(), "colour": "red"})


def test_model_config_from_spec():
    spec = AVSpec(sr=16000, fps=30, size=48, channels=1, context_frames=5, context_samples=700)
    cfg = model_config("fusion", "small", spec)
    assert (cfg.channels, cfg.size, cfg.context_frames, cfg.context_samples, cfg.samples_per_frame) == \
        (1, 48, 5, 700, 534)
    assert cfg.mode == "paper" and model_config("wavenet", "small", spec).mode == "causal"
    assert cfg.output == "mulaw" and model_config("fusion", "tiny", spec, loss="paper_ce").output == "continuous"


def test_spec_for_gives_the_data_rates_with_the_models_context():
    spec = AVSpec(sr=16000, fps=30, size=48, channels=1, context_frames=5, context_samples=700)
    cfg = model_config("wavenet", "tiny", spec)
    other = AVSpec(sr=8000, fps=25, size=32, channels=1)  # the default context lengths: 4 frames, 1024 samples
    assert cfg.spec_for(other) == AVSpec(sr=8000, fps=25, size=32, channels=1, context_frames=5, context_samples=700)
    assert cfg.spec_for(spec) == spec  # the spec it was sized from comes back unchanged
    assert model_config("wavenet", "tiny", cfg.spec_for(spec)) == cfg
    assert ModelConfig.spec_fields(spec) == {"channels": 1, "size": 48, "context_frames": 5, "context_samples": 700,
                                             "samples_per_frame": 534}


# --------------------------------------------------------------------------------------------- overfit

OVERFIT = [  # arch, mode, variant, loss, steps, lr, other fields
    ("fusion", "paper", "raw", "mse", 200, 1e-2, {}),
    ("wavenet", "paper", "raw", "mse", 200, 3e-3, {}),
    ("wavenet", "causal", "raw", "ce", 200, 1e-2, {}),
    ("transformer", "paper", "strided", "mse", 200, 3e-3, {}),
    ("transformer", "paper", "raw", "mae", 200, 3e-3, {}),
    ("transformer", "causal", "raw", "mse", 200, 3e-3, {}),
    ("transformer", "causal", "raw", "mse", 200, 3e-3, {"positions": "alibi"}),
]


@pytest.mark.parametrize("arch,mode,variant,loss,steps,lr,kw", OVERFIT)
def test_overfits_one_batch(arch, mode, variant, loss, steps, lr, kw):
    """Adam on one fixed batch: the loss falls by at least 10x."""
    torch.manual_seed(0)
    cfg = tiny(arch, mode, variant, loss=loss, **kw)
    model = build_model(cfg)
    batch = batch_of(cfg, TINY, 4 if arch == "fusion" else 8, window=64, warmup=16)
    mask = None
    if mode == "causal":
        mask = torch.arange(batch["target"].shape[1])[None, :] >= batch["warmup"][:, None]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss_value = compute_loss(loss, model(batch), batch["target"], mask)
        opt.zero_grad()
        loss_value.backward()
        opt.step()
        losses.append(loss_value.item())
    assert min(losses[-10:]) < losses[0] / 10, (losses[0], losses[-10:])
    assert math.isfinite(losses[-1])
