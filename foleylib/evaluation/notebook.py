"""Small helpers for the notebooks: an audio player, a results record that tests read back, table cells."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from foleylib.core.fsutil import write_json


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


def fmt_cell(value, spec: str = ".3f") -> str:
    """A table cell: "-" for None, true/false for booleans, str(value) without a format spec, else formatted."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    return format(value, spec) if spec else str(value)
