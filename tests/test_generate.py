"""The paper's generation loop for every architecture, cached generation equal to it, streaming, crossfade."""
import threading

import numpy as np
import pytest
import torch
from conftest import make_video
from numba import njit

from foleylib.core.config import AVSpec, preset
from foleylib.data.media import read_audio
from foleylib.generation import fastgen
from foleylib.generation.fastgen import FastTransformerStepper, FastWaveNetStepper
from foleylib.generation.generate import (
    FoleyEngine,
    Tape,
    crossfade_weights,
    generate,
    generate_takes,
    run_frames,
    stream,
)
from foleylib.generation.kernels import FAST, blocked
from foleylib.generation.sampling import BINADES, RADIX, Sampler, keep_nucleus, pick_sample, sort_high_halves
from foleylib.interfaces.cli import main
from foleylib.models.config import model_config
from foleylib.models.losses import mulaw_decode
from foleylib.models.registry import build_model
from foleylib.training.checkpoint import save_model

SPEC = AVSpec(sr=1000, fps=25, size=16, context_frames=2, context_samples=64)
FRAMES = np.random.default_rng(0).integers(0, 255, (60, 16, 16, 3), dtype=np.uint8)
PRIME = np.random.default_rng(1).uniform(-0.5, 0.5, (200, 2)).astype(np.float32)
THREADS = torch.get_num_threads()


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


SLIDING = {"positions": "alibi", "n_layers": 2}  # receptive field 2 * 31 + 1: the second layer reaches further


@pytest.mark.parametrize("arch,kw", [("wavenet", {"kernel_size": 3}), ("transformer", {}), ("transformer", SLIDING)])
def test_cached_equals_naive_continuous_over_two_seconds(arch, kw):
    model = tiny(arch, loss="mse", **kw)  # tiny transformer: 32-token windows, so 2 s cross ~120 window slides
    naive = generate(model, SPEC, FRAMES, 5, 50, prime=PRIME, method="naive")
    cached = generate(model, SPEC, FRAMES, 5, 50, prime=PRIME, method="cached")
    assert naive.shape == (2 * SPEC.sr, 2)
    assert np.abs(naive - cached).max() < 1e-4
    assert naive.std() > 0.01  # not a trivially constant output


@pytest.mark.parametrize("arch,kw", [("wavenet", {}), ("transformer", {}), ("transformer", SLIDING)])
def test_cached_equals_naive_mulaw_same_seed(arch, kw):
    model = tiny(arch, loss="ce", **kw)
    naive = generate(model, SPEC, FRAMES, 5, 8, prime=PRIME, method="naive", seed=4)
    cached = generate(model, SPEC, FRAMES, 5, 8, prime=PRIME, method="cached", seed=4)
    np.testing.assert_array_equal(naive, cached)
    assert not np.array_equal(cached, generate(model, SPEC, FRAMES, 5, 8, prime=PRIME, seed=5))


@pytest.fixture(scope="module")
def cold_start(tmp_path_factory):
    """A 0.2 s test-pattern video without audio and untrained tiny causal runs {arch}-{loss}, saved as foley train
    does (tiny preset: 8 kHz, 25 fps, 32 x 32)."""
    root = tmp_path_factory.mktemp("cold")
    for arch, kw in (("wavenet", {}), ("transformer", {}), ("transformer-alibi", {"positions": "alibi"})):
        for loss in ("mse", "ce"):
            torch.manual_seed(0)
            cfg = model_config(arch.split("-")[0], "tiny", preset("tiny"), loss=loss, **kw)
            save_model(build_model(cfg), preset("tiny"), root / f"{arch}-{loss}" / "model.pt")
    return root, make_video(root / "pattern.mp4", seconds=0.2, size="64x48", sr=None)


@pytest.mark.parametrize("arch", ["wavenet", "transformer", "transformer-alibi"])
@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_cli_cached_equals_naive_from_zero_padding(tmp_path, capsys, cold_start, arch, loss):
    """Without --prime the first samples' windows reach into the zero padding before sample 0, whose activations
    biases and the black frames' conditioning make non-zero: the caches must start as the naive path sees them.
    The CLI runs in this process (foley generate's parser and command, without a second torch import)."""
    root, video = cold_start
    wavs = {}
    for method in ("naive", "cached"):
        code = main(["generate", str(video), "--ckpt", str(root / f"{arch}-{loss}"), "--out", str(tmp_path / "v.mp4"),
                     "--wav", str(tmp_path / f"{method}.wav"), "--seconds", "0.04", "--method", method, "--seed", "3",
                     "--force", "--quiet"])
        assert code == 0 and f"({method})" in capsys.readouterr().out
        wavs[method] = read_audio(tmp_path / f"{method}.wav", sr=8000)
    naive, cached = wavs["naive"], wavs["cached"]
    assert naive.shape == (320, 2) and naive[:40].std() > 1e-3  # one frame; the padded start is not silent
    if loss == "mse":
        assert np.abs(naive - cached).max() < 1e-4  # the WAV's 16-bit steps are 3e-5
    else:
        np.testing.assert_array_equal(naive, cached)


def test_cli_generates_with_int8_weights_and_refuses_them_without_the_cache(tmp_path, capsys, cold_start):
    root, video = cold_start
    args = ["generate", str(video), "--ckpt", str(root / "wavenet-mse"), "--seconds", "0.04", "--force", "--quiet"]
    for precision in ("fp32", "int8"):
        assert main([*args, "--out", str(tmp_path / f"{precision}.mp4"), "--wav", str(tmp_path / f"{precision}.wav"),
                     "--precision", precision]) == 0
    wavs = [read_audio(tmp_path / f"{precision}.wav", sr=8000) for precision in ("fp32", "int8")]
    assert 1e-4 < np.abs(wavs[0] - wavs[1]).max() < 0.02
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "naive.mp4"), "--method", "naive", "--precision", "int8"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "int8 weights need cached generation" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "naive.mp4").exists()


@pytest.mark.parametrize("arch,kw", [("wavenet", {}), ("transformer", {}), ("transformer", SLIDING)])
def test_cold_stream_and_takes_equal_naive(arch, kw):
    model = tiny(arch, loss="ce", **kw)
    naive = [generate(model, SPEC, FRAMES, 0, 4, method="naive", seed=seed) for seed in (3, 4)]
    takes = generate_takes(model, SPEC, FRAMES, 0, 4, seeds=[3, 4], workers=2, method="cached")
    pieces = stream(model, SPEC, iter(FRAMES[:4]), method="cached", sampler=Sampler(seed=3))
    np.testing.assert_array_equal(np.concatenate([p.audio for p in pieces]), naive[0])
    for take, expected in zip(takes, naive, strict=True):
        np.testing.assert_array_equal(take, expected)
    continuous = tiny(arch, loss="mse", **kw)
    cached = generate(continuous, SPEC, FRAMES, 0, 4, method="cached")
    assert np.abs(generate(continuous, SPEC, FRAMES, 0, 4, method="naive") - cached).max() < 1e-4


def test_cached_equals_naive_when_the_history_before_the_start_is_shorter_than_the_receptive_field():
    model = tiny("wavenet", loss="mse", kernel_size=3)  # receptive field 65 > the 40 samples before frame 1
    assert model.receptive_field > SPEC.frame_start(1)
    for prime in (None, PRIME):  # zeros or real audio at 0 .. 39, zero padding before 0
        naive = generate(model, SPEC, FRAMES, 1, 2, prime=prime, method="naive")
        assert np.abs(naive - generate(model, SPEC, FRAMES, 1, 2, prime=prime, method="cached")).max() < 1e-4


def test_argmax_sampling_is_deterministic_and_seed_free():
    model = tiny("wavenet", loss="ce")
    a = generate(model, SPEC, FRAMES, 5, 4, prime=PRIME, temperature=0, seed=1)
    np.testing.assert_array_equal(a, generate(model, SPEC, FRAMES, 5, 4, prime=PRIME, temperature=0, seed=2))


def test_stepper_matches_full_forward_position_by_position():
    model = tiny("wavenet", loss="ce", kernel_size=3)
    stepper = FastWaveNetStepper(model)
    audio_in = torch.from_numpy(PRIME[:150])[None]
    frame_index = torch.full((1, 150), 1)
    video = torch.from_numpy(FRAMES[:3])[None]
    full = model({"audio_in": audio_in, "video": video, "frame_index": frame_index})[0]
    stepper.set_frame(model.frames(video)[:, 0])
    steps = torch.stack([stepper.step(audio_in[:, t])[0] for t in range(150)])
    assert (steps - full).abs().max() < 1e-4


@pytest.mark.parametrize("arch,kw", [("wavenet", {"kernel_size": 3}), ("transformer", {}), ("transformer", SLIDING)])
def test_int8_steps_compute_what_float32_steps_of_the_dequantized_weights_compute(arch, kw):
    """int8 products: b + scale x (q . x), x rounded to 16-bit steps; a float32 stepper given the weights scale x q
    (its blocked products and, for re-encodes, its transposed ones) must agree within that rounding (1e-3), through
    150 steps (the tiny transformer's window slides 8 times) and the re-encodes between them, and far closer than
    the float32 weights' stepper does."""
    model = tiny(arch, loss="ce", **kw)
    stepper_type = FastWaveNetStepper if arch == "wavenet" else FastTransformerStepper
    int8, reference = stepper_type(model, precision="int8"), stepper_type(model)
    products = int8.scales._fields
    assert all(getattr(int8.kernel_weights, name).dtype == np.int8 for name in products)
    reference.kernel_weights = reference.kernel_weights._replace(
        **{name: blocked(getattr(int8.weights, name)) for name in products})
    if arch == "transformer":
        reference.transposed = int8.transposed
    e = model.frames(torch.from_numpy(FRAMES[:3])[None])[:, 0]
    audio_in = torch.from_numpy(PRIME[:150])
    outputs = {}
    for name, stepper in (("int8", int8), ("reference", reference)):
        stepper.start_padded(e)
        outputs[name] = torch.stack([stepper.step(audio_in[t:t + 1])[0] for t in range(150)])
    rounding = (outputs["int8"] - outputs["reference"]).abs().max()
    assert rounding < 1e-3
    exact = FastWaveNetStepper(model) if arch == "wavenet" else FastTransformerStepper(model)
    exact.start_padded(e)
    fp32 = torch.stack([exact.step(audio_in[t:t + 1])[0] for t in range(150)])
    assert (outputs["int8"] - fp32).abs().max() > 10 * rounding  # the weights were quantized


@pytest.mark.parametrize("arch,kw", [("wavenet", {}), ("transformer", {}), ("transformer", SLIDING)])
def test_int8_generation_stays_within_its_stated_tolerance_of_fp32(arch, kw):
    """The stated tolerance of int8 weights: continuous output (fed back for 1 s) within 0.02 of fp32's."""
    model = tiny(arch, loss="mse", **kw)
    fp32 = generate(model, SPEC, FRAMES, 5, 25, prime=PRIME)
    int8 = generate(model, SPEC, FRAMES, 5, 25, prime=PRIME, precision="int8")
    assert 1e-5 < np.abs(fp32 - int8).max() < 0.02 and fp32.std() > 0.05
    takes = generate_takes(model, SPEC, FRAMES, 5, 5, seeds=[0, 1], workers=1, prime=PRIME, precision="int8")
    np.testing.assert_array_equal(takes[0], int8[:200])  # takes in lockstep: the same arithmetic
    with pytest.raises(ValueError, match="int8 weights need cached generation"):
        FoleyEngine(model, SPEC, "naive", precision="int8")
    with pytest.raises(ValueError, match="unknown precision 'bf16'"):
        FoleyEngine(model, SPEC, precision="bf16")


def test_cached_refuses_other_models():
    with pytest.raises(ValueError, match="cached generation needs a causal wavenet or transformer"):
        generate(tiny("fusion"), SPEC, FRAMES, 5, 1, method="cached")


def test_nucleus_sampling_keeps_the_likeliest_classes():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05] + [1e-9] * 252], np.float32))
    g = np.random.default_rng(0)
    draws = {round(float(pick_sample(logits, 1.0, g, top_p=0.7)[0]), 6) for _ in range(200)}
    assert draws == {round(float(mulaw_decode(torch.tensor(k))), 6) for k in (0, 1)}  # 0.5 + 0.3 >= 0.7
    assert float(pick_sample(logits, 1.0, g, top_p=0.01)[0]) == float(mulaw_decode(torch.tensor(0)))


def nucleus(p: np.ndarray, top_p: float) -> np.ndarray:
    """keep_nucleus on a copy of p, with its scratch."""
    kept, keys, spare = p.copy(), np.empty(len(p), np.int64), np.empty(len(p), np.int64)
    keep_nucleus(kept, top_p, keys, np.empty(BINADES), spare, np.empty(RADIX, np.int64))
    return kept


def test_radix_sort_orders_by_the_high_halves_and_keeps_the_order_of_equal_ones():
    rng = np.random.default_rng(0)
    for high in (rng.integers(0, 1 << 31, 300), rng.integers(0, 4, 300), rng.integers(0, 1 << 31, 1), np.full(5, 7)):
        keys = (high.astype(np.int64) << 32) | np.arange(len(high))  # low halves: the order they came in
        expected = keys[np.argsort(high, kind="stable")]
        ordered = sort_high_halves(keys.copy(), np.empty_like(keys), np.empty(RADIX, np.int64))
        np.testing.assert_array_equal(ordered, expected)


def test_nucleus_keeps_the_likeliest_classes_ties_by_index():
    p = np.array([0.1, 0.4, 0.4, 0.1], np.float32)
    np.testing.assert_array_equal(nucleus(p, 0.5), p * [0, 1, 1, 0])  # 0.4 before the second 0.4 is under 0.5
    np.testing.assert_array_equal(nucleus(p, 0.3), p * [0, 1, 0, 0])  # the tie goes to the lower index
    np.testing.assert_array_equal(nucleus(p, 0.95), p)


def test_nucleus_keeps_what_a_full_stable_sort_keeps():
    """Against the plain rule (every class sorted by probability, ties by index; kept while the sum before it is
    under top_p of the total), on probabilities of 16-bit steps over 17 binades: every sum of them is exact in any
    order, so the two must agree class for class. Peaky, flat, tied and spread rows; top_p from tiny to near 1."""
    rng = np.random.default_rng(0)
    rows = [rng.integers(1, 1 << 16, 256),  # flat-ish: most in the top binades
            np.round(2.0 ** rng.uniform(0, 16, 256)),  # spread over all 17 binades
            rng.choice([1, 3, 256, 4096, 1 << 16], 256),  # ties
            np.where(rng.random(256) < 0.03, 1 << 16, rng.integers(1, 64, 256)),  # peaky: a few likely classes
            np.full(256, 1 << 16)]  # all equal
    for steps in rows:
        p = (steps / 2.0 ** 16).astype(np.float32)
        for top_p in (1e-6, 0.01, 0.3, 0.5, 0.9, 0.99, 0.999999):
            kept, before = np.zeros_like(p), 0.0
            for k in np.argsort(-p, kind="stable"):
                if before < top_p * float(p.sum(dtype=np.float64)):
                    kept[k], before = p[k], before + p[k]
            np.testing.assert_array_equal(nucleus(p, top_p), kept)


def test_sampling_follows_the_distribution_and_the_temperature():
    logits = np.log(np.array([[0.7, 0.2, 0.1] + [1e-12] * 253] * 4000, np.float32))  # 4000 draws at once
    values = pick_sample(logits, 1.0, np.random.default_rng(1))
    share = [np.mean(values == float(mulaw_decode(torch.tensor(k)))) for k in range(3)]
    np.testing.assert_allclose(share, [0.7, 0.2, 0.1], atol=0.025)
    cold = pick_sample(logits, 0.25, np.random.default_rng(1))  # p^4 renormalised: 0.9966, 0.0034, 0.0002
    assert np.mean(cold == float(mulaw_decode(torch.tensor(0)))) > 0.99
    np.testing.assert_array_equal(pick_sample(logits[:2], 0, None), [float(mulaw_decode(torch.tensor(0)))] * 2)


@pytest.mark.parametrize("kw", [{}, SLIDING])
def test_transformer_stepper_matches_full_forward_across_window_slides(kw):
    model = tiny("transformer", loss="ce", **kw)  # max_context 32: absolute windows slide by 16, alibi's rings by 1
    audio_in = torch.from_numpy(PRIME[:150])[None]
    video = torch.from_numpy(FRAMES[:3])[None]
    full = model({"audio_in": audio_in, "video": video, "frame_index": torch.full((1, 150), 1)})[0]
    stepper = FastTransformerStepper(model)
    stepper.set_frame(model.frames(video)[:, 0])
    steps = torch.stack([stepper.step(audio_in[:, t])[0] for t in range(150)])
    assert (steps - full).abs().max() < 1e-4


def test_a_sliding_transformer_never_compiles_the_reencode(monkeypatch):
    """A sliding model's stepper has no re-encode projections (None), and numba prunes the branch that a None
    rules out before typing it: its step compiles and runs with the re-encode (_block) made uncallable, and steps
    as the stepper does."""
    model = tiny("transformer", loss="ce", **SLIDING)
    stepper, reference = FastTransformerStepper(model), FastTransformerStepper(model)
    assert stepper.transposed is None
    monkeypatch.setattr(fastgen, "_block", None)  # a call to it would fail to type
    step = njit(**{**FAST, "cache": False})(fastgen._transformer_step.py_func)  # compiled afresh, without _block
    e = model.frames(torch.from_numpy(FRAMES[:3])[None])[:, 0]
    for s in (stepper, reference):
        s.set_frame(e)
    for x in PRIME[:40]:  # past the ring's 32 slots
        step(x, stepper.state, stepper.kernel_weights, stepper.scales, stepper.transposed)
        reference.run(x, 1, given=x[None])
        np.testing.assert_array_equal(stepper.state.out, reference.state.out)


@pytest.mark.parametrize("arch,kw", [("wavenet", {}), ("transformer", {}), ("fusion", {})])
def test_streaming_equals_generate_frame_by_frame(arch, kw):
    model = tiny(arch, loss="ce", **kw)
    whole = generate(model, SPEC, FRAMES, 10, 12, prime=PRIME, seed=3)
    pieces = list(stream(model, SPEC, iter(FRAMES[10:22]), sampler=Sampler(seed=3), start_frame=10,
                         past_frames=FRAMES[:10], prime=PRIME))
    assert [p.frame for p in pieces] == list(range(10, 22))
    assert all(len(p.audio) == 40 and p.latency > 0 for p in pieces)
    np.testing.assert_array_equal(np.concatenate([p.audio for p in pieces]), whole)


@pytest.mark.parametrize("video_input", ["rgb", "rgb+motion"])
def test_run_frames_embeds_each_next_frame_on_a_second_thread_with_the_same_result(video_input, monkeypatch):
    model = tiny("wavenet", loss="ce", video_input=video_input)
    threads = []
    embed = FoleyEngine._embed

    def recording(engine, window):
        threads.append(threading.current_thread() is threading.main_thread())
        return embed(engine, window)

    monkeypatch.setattr(FoleyEngine, "_embed", recording)
    engine = FoleyEngine(model, SPEC, "cached", Sampler(seed=2), 5, past_frames=FRAMES[:5], prime=PRIME)
    threads.clear()  # the warm-up's embeddings
    audio, _ = run_frames(engine, FRAMES[5:11])
    assert sorted(threads) == [False] * 5 + [True]  # frame 5 here, 6 .. 10 ahead while the one before is made
    alone = FoleyEngine(model, SPEC, "cached", Sampler(seed=2), 5, past_frames=FRAMES[:5], prime=PRIME)
    np.testing.assert_array_equal(audio, np.concatenate([alone.push(f).audio for f in FRAMES[5:11]]))
    engine.push(FRAMES[11], upcoming=FRAMES[12])
    with pytest.raises(ValueError, match="frame 12 is not the `upcoming` frame pushed with frame 11"):
        engine.push(FRAMES[13])


def test_streaming_memory_stays_bounded():
    engine = FoleyEngine(tiny("wavenet", loss="mse"), SPEC)
    for k in range(200):  # 8 s of audio
        engine.push(FRAMES[k % len(FRAMES)])
    assert len(engine.audio) == SPEC.frame_start(200)
    assert len(engine.audio.data) <= 2 * engine.audio.keep < 1000
    assert len(engine.frames.data) <= 2 * engine.frames.keep < 20


def test_tape_reads_by_global_index_and_refuses_forgotten_rows():
    tape = Tape(np.zeros((0, 1)), offset=0, keep=3)
    for v in range(10):
        tape.extend(np.array([[v]]))
    assert len(tape) == 10 and tape.shape == (10, 1)
    assert tape[9][0] == 9 and tape[7:10][:, 0].tolist() == [7, 8, 9]
    with pytest.raises(IndexError, match="no longer kept"):
        tape[2:5]


class ConstantSegments(torch.nn.Module):
    """A stand-in deep-fusion model whose k-th call returns the constant k (for hand-checked crossfades)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg, self.receptive_field, self.calls = cfg, cfg.context_samples, 0
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, batch):
        self.calls += 1
        return torch.full((1, self.cfg.samples_per_frame, self.cfg.channels), float(self.calls))


def test_crossfade_blends_overlapping_segments():
    model = ConstantSegments(model_config("fusion", "tiny", SPEC, loss="mse"))  # segments of 40 samples
    audio = generate(model, SPEC, FRAMES, 0, 3, crossfade=10)  # calls every 30 samples: t = 0, 30, 60, 90
    assert model.calls == 4 and audio.shape == (120, 2)
    w = crossfade_weights(10)[:, 0]
    np.testing.assert_allclose(audio[:30, 0], 1)
    np.testing.assert_allclose(audio[30:40, 0], (1 - w) * 1 + w * 2, atol=1e-6)  # call 1 fades into call 2
    np.testing.assert_allclose(audio[40:60, 0], 2)
    np.testing.assert_allclose(audio[60:70, 0], (1 - w) * 2 + w * 3, atol=1e-6)
    plain = ConstantSegments(model.cfg)
    np.testing.assert_array_equal(generate(plain, SPEC, FRAMES, 0, 3)[:, 0], np.repeat([1, 2, 3], 40))


def test_generation_refuses_frames_outside_the_clip_and_bad_crossfade():
    with pytest.raises(ValueError, match="not all in the clip"):
        generate(tiny("wavenet"), SPEC, FRAMES, 55, 10)
    with pytest.raises(ValueError, match="crossfade applies to deep fusion"):
        generate(tiny("wavenet"), SPEC, FRAMES, 5, 1, crossfade=4)
    with pytest.raises(ValueError, match="crossfade must be in"):
        generate(tiny("fusion"), SPEC, FRAMES, 5, 1, crossfade=39)


def test_takes_run_at_once_and_equal_one_by_one_generation():
    model = tiny("wavenet", loss="ce")
    takes = generate_takes(model, SPEC, FRAMES, 5, 6, seeds=[3, 4, 3], workers=2, prime=PRIME)
    for seed, take in zip([3, 4, 3], takes):
        np.testing.assert_array_equal(take, generate(model, SPEC, FRAMES, 5, 6, prime=PRIME, seed=seed))
    assert not np.array_equal(takes[0], takes[1])
    assert torch.get_num_threads() == THREADS  # the pool's single-thread setting is restored


@pytest.mark.parametrize("arch,kw", [("wavenet", {}), ("transformer", {}), ("transformer", SLIDING)])
@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_takes_in_lockstep_on_one_thread_equal_single_generation_bit_for_bit(arch, kw, loss):
    model = tiny(arch, loss=loss, **kw)  # the transformer's 32-token window slides 5 times in these 200 samples
    takes = generate_takes(model, SPEC, FRAMES, 5, 5, seeds=[0, 1, 2], workers=1, prime=PRIME, temperature=0.9)
    for seed, take in enumerate(takes):
        np.testing.assert_array_equal(take, generate(model, SPEC, FRAMES, 5, 5, prime=PRIME, seed=seed,
                                                     temperature=0.9))
    with pytest.raises(ValueError, match="takes in lockstep need cached generation"):
        FoleyEngine(model, SPEC, "naive", [Sampler(seed=0), Sampler(seed=1)])


def test_flops_per_step_counts_every_product_by_hand():
    # tiny WaveNet (r 8, s 16, k 2, 5 layers, 2 channels x 256 classes): input 8*2*2, dilated 5*16*16, residual
    # 4*8*8 (the last layer has none), summed skips 16*40, head 16*16 + 512*16 multiply-adds
    wavenet = FastWaveNetStepper(tiny("wavenet", loss="ce"))
    assert wavenet.flops_per_step() == 2 * (32 + 1280 + 256 + 640 + 256 + 8192)
    # tiny transformer (d 16, 1 layer, d_ff 32, window M 32, hop 16): embed 16*2, dense 3*16*16 + 16*16 + 2*16*32
    # per token, attention 2*16 per attended token (24 on average), decoder 512*16; 16 tokens re-encoded every
    # 16 steps attending to 8.5 on average
    transformer = FastTransformerStepper(tiny("transformer", loss="ce"))
    token = 2048 + 2 * 16 * 24
    reencode = 2048 + 2 * 16 * 8.5
    assert transformer.flops_per_step() == 2 * (32 + token + 8192 + reencode)
    # alibi, 2 layers: each attends to all 32 cached tokens, nothing is re-encoded
    sliding = FastTransformerStepper(tiny("transformer", loss="ce", **SLIDING))
    assert sliding.flops_per_step() == 2 * (32 + 2 * (2048 + 2 * 16 * 32) + 8192)


def test_bytes_per_step_counts_every_matrix_as_laid_out_by_hand():
    # matvec_into's layout pads each product's outputs to blocks of 64: tiny WaveNet input 64*4, dilated 5*64*16,
    # residual 4*64*8 (the last layer has none), summed skips 64*40, head 64*16 + 512*16 weights; 4 bytes each
    # in float32, 1 in int8
    wavenet = tiny("wavenet", loss="ce")
    weights = 256 + 5120 + 2048 + 2560 + 1024 + 8192
    assert FastWaveNetStepper(wavenet).bytes_per_step() == 4 * weights
    assert FastWaveNetStepper(wavenet, precision="int8").bytes_per_step() == weights
    # tiny transformer: embed 64*2, qkv 64*16, out 64*16, ff 64*16 + 64*32, decoder 512*16 floats; keys of 2 heads
    # (8 dims, 32 positions padded to 64) and values (2 * 8 * 32) read for the 24 positions attended on average
    matrices = 4 * (128 + 3 * 1024 + 2048 + 8192)
    transformer = FastTransformerStepper(tiny("transformer", loss="ce"))
    assert transformer.bytes_per_step() == matrices + (4096 + 2048) * 24 // 32
    # alibi, 2 layers: both layers' matrices, and every cached key and value of both
    sliding = FastTransformerStepper(tiny("transformer", loss="ce", **SLIDING))
    assert sliding.bytes_per_step() == matrices + 4 * (3 * 1024 + 2048) + 2 * (4096 + 2048)
