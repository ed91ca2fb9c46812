"""Classifier-free guidance: the guided draw of every generation path, and the conditioning dropout that trains
the unconditional model it subtracts."""
import numpy as np
import pytest
import torch
from test_generate import FRAMES, PRIME, SLIDING, SPEC, cold_start, tiny  # noqa: F401 - cold_start: a fixture

from foleylib.generation.generate import FoleyEngine, generate, generate_takes, make_stepper
from foleylib.interfaces.cli import main

CAUSAL = [("wavenet", {}), ("transformer", {}), ("transformer", SLIDING)]


@pytest.mark.parametrize("arch,kw", CAUSAL)
def test_guided_steps_draw_from_unconditional_plus_weight_times_the_difference(arch, kw):
    """Three steppers fed the same samples: the frame's, the black window's, and the guided one holding both."""
    model = tiny(arch, loss="ce", **kw)
    with torch.no_grad():
        frame = model.frames(torch.from_numpy(FRAMES[3:5])[None])[:, 0]
        black = model.frames(torch.zeros((1, 2, *FRAMES.shape[1:]), dtype=torch.uint8))[:, 0]
    conditional, unconditional, guided = (make_stepper(model) for _ in range(3))
    guided.guide(2.5, black)
    for stepper, e in ((conditional, frame), (unconditional, black), (guided, frame)):
        stepper.start_padded(black)
        stepper.set_frame(e)
    previous = np.zeros(2, np.float32)
    for given in PRIME[:70]:  # past the tiny transformer's 32-token window: re-encodes in both states
        outs = []
        for stepper in (conditional, unconditional, guided):
            stepper.run(previous, 1, given=given[None])
            outs.append(stepper.state.out.copy())
        c, u, g = outs
        np.testing.assert_allclose(g, u + 2.5 * (c - u), rtol=1e-5, atol=1e-5)
        previous = given
    assert np.abs(c - u).max() > 1e-3  # the frame matters to this model, so the test tells the two apart


@pytest.mark.parametrize("arch,kw", CAUSAL)
def test_guided_generation_cached_equals_naive_and_takes_equal_single_takes(arch, kw):
    model = tiny(arch, loss="ce", **kw)
    naive = generate(model, SPEC, FRAMES, 5, 8, prime=PRIME, method="naive", seed=4, guidance=3.0)
    cached = generate(model, SPEC, FRAMES, 5, 8, prime=PRIME, method="cached", seed=4, guidance=3.0)
    np.testing.assert_array_equal(naive, cached)
    assert not np.array_equal(cached, generate(model, SPEC, FRAMES, 5, 8, prime=PRIME, seed=4))
    takes = generate_takes(model, SPEC, FRAMES, 5, 8, seeds=[4, 6, 7], workers=2, prime=PRIME, guidance=3.0)
    np.testing.assert_array_equal(takes[0], cached)
    np.testing.assert_array_equal(takes[2], generate(model, SPEC, FRAMES, 5, 8, prime=PRIME, seed=7, guidance=3.0))


@pytest.mark.parametrize("method", ["naive", "cached"])
def test_guidance_changes_nothing_on_black_frames(method):
    """On zeroed video the model's logits are the unconditional ones: the zeroed twin is the same with guidance."""
    model = tiny("wavenet", loss="ce")
    black = np.zeros_like(FRAMES)
    np.testing.assert_array_equal(generate(model, SPEC, black, 5, 6, prime=PRIME, method=method, guidance=4.0),
                                  generate(model, SPEC, black, 5, 6, prime=PRIME, method=method))


def test_deep_fusion_generates_with_guidance_from_its_segments_logits():
    model = tiny("fusion", loss="ce")  # untrained, its frames move its logits by ~1e-3: a large weight shows it
    guided = generate(model, SPEC, FRAMES, 5, 4, prime=PRIME, guidance=300.0, seed=1)
    assert guided.shape == (160, 2)
    assert not np.array_equal(guided, generate(model, SPEC, FRAMES, 5, 4, prime=PRIME, seed=1))


def test_guidance_is_refused_for_models_without_logits(tmp_path, capsys, cold_start):  # noqa: F811
    with pytest.raises(ValueError, match="guidance mixes logits"):
        FoleyEngine(tiny("wavenet", loss="mse"), SPEC, guidance=2.0)
    root, video = cold_start
    args = ["generate", str(video), "--seconds", "0.04", "--quiet", "--guidance", "2"]
    assert main([*args, "--ckpt", str(root / "wavenet-mse"), "--out", str(tmp_path / "mse.mp4")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: guidance mixes logits") and len(err.splitlines()) == 1
    assert not (tmp_path / "mse.mp4").exists()
    assert main([*args, "--ckpt", str(root / "transformer-ce"), "--out", str(tmp_path / "ce.mp4")]) == 0
    assert (tmp_path / "ce.mp4").exists()
