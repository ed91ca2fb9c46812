"""The one error type for bad user input: the CLI prints it as `error: <reason> (<path>)` and exits 2."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class InputError(Exception):
    """A user-facing problem with one file or folder (missing, unreadable, wrong content)."""

    def __init__(self, reason: str, path: str | Path):
        self.reason = reason
        self.path = str(path)
        super().__init__(f"{reason} ({self.path})")


class Batch:
    """Runs the steps of a batch job: a step that raises InputError is reported, recorded and skipped."""

    def __init__(self, on_error: Callable[[InputError], None] | None = None):
        self.errors: list[InputError] = []
        self.on_error = on_error

    def run(self, fn: Callable[..., T], *args, **kwargs) -> T | None:
        try:
            return fn(*args, **kwargs)
        except InputError as err:
            self.errors.append(err)
            if self.on_error:
                self.on_error(err)
            return None
