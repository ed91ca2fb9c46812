"""Where tensors run (CUDA when present, else the CPU), and how many CPU threads a process takes.

torch is imported inside the functions only: `configure_threads` sets OpenMP's environment, which the OpenMP
runtime reads once, when torch loads it.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

AUTO_THREADS = "FOLEYLIB_AUTO_THREADS"  # set beside OMP_NUM_THREADS when configure_threads chose it


def pick_device(name: str = "auto") -> torch.device:
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else torch.device(name)


@contextmanager
def thread_count(get: Callable[[], int], put: Callable[[int], object], n: int) -> Iterator[None]:
    """A library's thread count (read with `get`, set with `put`) at n inside, the count before restored after."""
    saved = get()
    put(n)
    try:
        yield
    finally:
        put(saved)


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity: a container's or taskset's share)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def running_now() -> int | None:
    """Threads running or ready to run on the machine right now, less this process (Linux; else None)."""
    try:
        return int(Path("/proc/loadavg").read_text().split()[3].split("/")[0]) - 1
    except (OSError, ValueError, IndexError):
        return None


def free_cores() -> int:
    """Available cores that other work does not hold (at least 1): by the 1-minute load average, or by what runs
    right now where that is less (a job that ended a minute ago still weighs on the average)."""
    busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    now = running_now()
    busy = busy if now is None else min(busy, now)
    return max(1, min(available_cores(), round(available_cores() - busy)))


def configure_threads() -> int | None:
    """Share the CPU with other jobs: OpenMP threads wait passively (they sleep at once instead of spinning for a
    core that another process holds: two trainings on 2 cores then run at about 2/3 of their speed alone each,
    instead of a tenth) and torch takes one intra-op thread per available core, split among the processes of a
    torchrun launch, unless OMP_NUM_THREADS or OMP_WAIT_POLICY say otherwise. Returns the thread count chosen
    (None: the user's OMP_NUM_THREADS stands).

    The count does not follow the machine's load: training results depend on it in their last bits, and the same
    seed must give the same weights (generation's takes, whose results do not depend on it, use `free_cores`;
    each generation step runs on one thread: foleylib.generation.generate.single_thread).
    Call it before torch is imported (the `foley` command does; in a notebook, in the first cell): afterwards it
    still sets the thread count, but the waiting policy stays what torch started with."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    asked = os.environ.get("OMP_NUM_THREADS")
    if asked is not None and asked != os.environ.get(AUTO_THREADS):
        return None
    threads = max(1, available_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    os.environ["OMP_NUM_THREADS"] = os.environ[AUTO_THREADS] = str(threads)  # processes started from here re-choose
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    return threads
