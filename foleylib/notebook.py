"""Small helpers for the notebooks: an audio player and a results record that tests read back."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .fsutil import write_json


def audio_player(audio: np.ndarray, sr: int):
    """An in-notebook player for float audio [N, C] (or [N])."""
    from IPython.display import Audio

    audio = np.asarray(audio, np.float32)
    data = audio.T if audio.ndim == 2 else audio
    return Audio(data, rate=sr, normalize=False)


def record_results(path: str | Path, **values: Any) -> dict:
    """Merge `values` into the JSON file at `path` (the notebook's promised numbers) and return all of it."""
    path = Path(path)
    old = json.loads(path.read_text()) if path.exists() else {}
    merged = {**old, **values}
    write_json(path, merged)
    return merged
