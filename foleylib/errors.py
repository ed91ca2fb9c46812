"""The one error type for bad user input: the CLI prints it as `error: <reason> (<path>)` and exits 2."""
from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """A user-facing problem with one file or folder (missing, unreadable, wrong content)."""

    def __init__(self, reason: str, path: str | Path):
        self.reason = reason
        self.path = str(path)
        super().__init__(f"{reason} ({self.path})")
