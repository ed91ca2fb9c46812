"""Progress bars that behave in logs: tqdm in a terminal or a notebook, a line every few percent elsewhere.

In a terminal tqdm redraws one line with carriage returns; written to a file (`make demo > log`) that is hundreds
of updates. So when the stream is not a terminal, each update becomes its own line, and only every LOG_PERCENT of
the total (every LOG_SECONDS without a known total), at most one line per LOG_MIN_SECONDS.
"""
from __future__ import annotations

import math
import sys
from typing import TextIO

from tqdm.auto import tqdm as auto_tqdm
from tqdm.std import tqdm as terminal_tqdm

LOG_PERCENT = 5  # a log line every 5 % of the total ...
LOG_SECONDS = 30.0  # ... or, with no known total, every 30 s
LOG_MIN_SECONDS = 1.0  # and never two lines within a second


class _Lines:
    """A text stream for tqdm in a log: each status it writes (after its carriage return) becomes one line;
    blank writes (the padding and newline tqdm ends with) are dropped."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> None:
        for status in text.split("\r"):
            if status.strip():
                self.stream.write(status.rstrip() + "\n")

    def flush(self) -> None:
        self.stream.flush()


class _LogBar(terminal_tqdm):
    """tqdm writing lines at its update schedule only: a new postfix waits for the next scheduled line."""

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs) -> None:
        super().set_postfix(ordered_dict, refresh=False, **kwargs)


def progress_bar(total: float | None = None, desc: str = "", *, enabled: bool = True, file: TextIO | None = None,
                 **options) -> terminal_tqdm:
    """A tqdm progress bar over `total` (None: unknown) labelled `desc`; `options` go to tqdm (unit, initial, ...).

    To a terminal (or in a notebook) it is tqdm's own bar. To anything else (a log file, a pipe, `file` that is
    not a terminal) it writes one line per LOG_PERCENT of the total, or every LOG_SECONDS without a total, never
    two within LOG_MIN_SECONDS, and no carriage returns. Disabled (writes nothing) unless `enabled`.
    """
    stream = sys.stderr if file is None else file
    if not enabled or _is_terminal(stream):
        return terminal_tqdm(total=total, desc=desc, disable=not enabled, file=file, **options)
    if file is None and _in_notebook():  # tqdm.auto draws a widget
        return auto_tqdm(total=total, desc=desc, **options)
    step = max(1, math.ceil(total * LOG_PERCENT / 100)) if total else 1
    schedule = {"miniters": step, "mininterval": LOG_MIN_SECONDS if total else LOG_SECONDS, "maxinterval": math.inf}
    return _LogBar(total=total, desc=desc, file=_Lines(stream), **(schedule | options))


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (tqdm.auto's own test)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython else None
    return shell is not None and "IPKernelApp" in shell.config
