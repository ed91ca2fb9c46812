"""The paper's generation loop for every architecture, and cached WaveNet generation equal to it."""
import numpy as np
import pytest
import torch

from foleylib.config import AVSpec
from foleylib.generate import generate, pick_sample
from foleylib.losses import mulaw_decode
from foleylib.models import build_model, model_config
from foleylib.models.wavenet import WaveNetStepper

SPEC = AVSpec(sr=1000, fps=25, size=16, context_frames=2, context_samples=64)
FRAMES = np.random.default_rng(0).integers(0, 255, (30, 16, 16, 3), dtype=np.uint8)
PRIME = np.random.default_rng(1).uniform(-0.5, 0.5, (200, 2)).astype(np.float32)


def tiny(arch, **kw):
    torch.manual_seed(0)
    return build_model(model_config(arch, "tiny", SPEC, **kw)).eval()


@pytest.mark.parametrize("arch,kw", [("fusion", {}), ("wavenet", {"mode": "paper"}), ("wavenet", {}),
                                     ("transformer", {"mode": "paper", "variant": "strided"}),
                                     ("transformer", {})])
def test_generates_whole_frames_in_range(arch, kw):
    audio = generate(tiny(arch, loss="mse", **kw), SPEC, FRAMES, start_frame=5, n_frames=3, prime=PRIME)
    assert audio.shape == (120, 2) and audio.dtype == np.float32
    assert np.abs(audio).max() <= 1 and np.abs(audio).max() > 0


def test_cached_equals_naive_continuous():
    model = tiny("wavenet", loss="mse", kernel_size=3)
    naive = generate(model, SPEC, FRAMES, 5, 10, prime=PRIME, method="naive")
    cached = generate(model, SPEC, FRAMES, 5, 10, prime=PRIME, method="cached")
    assert np.abs(naive - cached).max() < 1e-4


def test_cached_equals_naive_mulaw_same_seed():
    model = tiny("wavenet", loss="ce")
    naive = generate(model, SPEC, FRAMES, 5, 8, prime=PRIME, method="naive", seed=4)
    cached = generate(model, SPEC, FRAMES, 5, 8, prime=PRIME, method="cached", seed=4)
    np.testing.assert_array_equal(naive, cached)
    assert not np.array_equal(cached, generate(model, SPEC, FRAMES, 5, 8, prime=PRIME, seed=5))


def test_stepper_matches_full_forward_position_by_position():
    model = tiny("wavenet", loss="ce", kernel_size=3)
    stepper = WaveNetStepper(model)
    audio_in = torch.from_numpy(PRIME[:150])[None]
    frame_index = torch.full((1, 150), 1)
    video = torch.from_numpy(FRAMES[:3])[None]
    full = model({"audio_in": audio_in, "video": video, "frame_index": frame_index})[0]
    stepper.set_frame(model.frames(video)[:, 0])
    steps = torch.stack([stepper.step(audio_in[:, t])[0] for t in range(150)])
    assert (steps - full).abs().max() < 1e-4


def test_cached_refuses_other_models():
    with pytest.raises(ValueError, match="cached generation needs a causal WaveNet"):
        generate(tiny("transformer"), SPEC, FRAMES, 5, 1, method="cached")


def test_nucleus_sampling_keeps_the_likeliest_classes():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05] + [1e-9] * 252]))
    g = torch.Generator().manual_seed(0)
    draws = {round(float(pick_sample(logits, 1.0, g, top_p=0.7)), 6) for _ in range(200)}
    assert draws == {round(float(mulaw_decode(torch.tensor(k))), 6) for k in (0, 1)}  # 0.5 + 0.3 >= 0.7
    assert float(pick_sample(logits, 1.0, g, top_p=0.01)) == float(mulaw_decode(torch.tensor(0)))
