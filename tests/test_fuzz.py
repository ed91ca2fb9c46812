"""Mutated bytes of a good MP4 through the media probe and ingest: they work or raise InputError, nothing else
(no crash, no hang, no partial clip folder)."""
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foleylib.align import ingest_file
from foleylib.config import AVSpec
from foleylib.errors import InputError
from foleylib.media import probe

SPEC = AVSpec(sr=8000, fps=25, size=16)


def mutate(data: bytes, op: str, at: float, length: int, seed: int) -> bytes:
    """One mutation: flip random bytes in a span, cut the file, insert random bytes, or zero a span."""
    rng = np.random.default_rng(seed)
    i = int(at * len(data))
    noise = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
    if op == "flip":
        return data[:i] + noise + data[i + length:]
    if op == "cut":
        return data[:i]
    if op == "insert":
        return data[:i] + noise + data[i:]
    return data[:i] + bytes(length) + data[i + length:]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(op=st.sampled_from(["flip", "cut", "insert", "zero"]), at=st.floats(0, 1), length=st.integers(1, 4096),
       seed=st.integers(0, 2 ** 32 - 1))
def test_mutated_mp4_is_ingested_or_refused_cleanly(good_video, tmp_path_factory, op, at, length, seed):
    work = tmp_path_factory.mktemp("fuzz")
    path = work / "mutated.mp4"
    path.write_bytes(mutate(good_video.read_bytes(), op, at, length, seed))
    try:
        info = probe(path)
        result = ingest_file(path, work / "aligned", SPEC)
    except InputError as err:
        assert err.path == str(path)
        assert not (work / "aligned").exists() or not any(p.is_dir() for p in (work / "aligned").iterdir())
        return
    assert info.has_video and info.has_audio
    assert result.meta["frames"] >= 1 and Path(result.clip_dir, "frames.npy").exists()
