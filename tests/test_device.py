"""configure_threads: passive OpenMP waiting and one torch thread per available core, unless the user chose;
free_cores for the takes."""
import os
import subprocess
import sys
from contextlib import nullcontext

import cv2
import pytest
import torch

from foleylib.core import device
from foleylib.data.media import cv2_threads
from foleylib.interfaces.cli import main

OMP_VARIABLES = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", device.AUTO_THREADS, "LOCAL_WORLD_SIZE")


@pytest.fixture
def env(monkeypatch):
    """No OpenMP choice in the environment; torch's thread count restored afterwards."""
    for name in OMP_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    threads = torch.get_num_threads()
    yield monkeypatch
    torch.set_num_threads(threads)


def test_free_cores_are_the_available_ones_less_the_load(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    for load, now, free in ((0.0, 0, 4), (1.4, 5, 3), (2.6, None, 1), (9.0, 9, 1), (2.6, 1, 3), (3.0, 0, 4)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, 0.0, 0.0))
        monkeypatch.setattr(device, "running_now", lambda now=now: now)  # what runs now lowers a lagging average
        assert device.available_cores() == 4 and device.free_cores() == free


def test_running_now_reads_the_kernels_count():
    assert 0 <= device.running_now() < 10_000  # this machine is Linux; the test itself is not counted


def test_threads_are_the_available_cores_whatever_the_load_and_wait_passively(env):
    env.setattr(device, "available_cores", lambda: 3)
    env.setattr(device, "free_cores", lambda: 1)  # a busy machine: the count must not follow (same seed, same weights)
    assert device.configure_threads() == 3
    assert os.environ["OMP_NUM_THREADS"] == "3" and os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    assert torch.get_num_threads() == 3  # torch was loaded already: set directly
    env.setattr(device, "available_cores", lambda: 1)  # a process started from here chooses again
    assert device.configure_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    env.setattr(device, "available_cores", lambda: 5)
    env.setenv("LOCAL_WORLD_SIZE", "2")  # one of torchrun's 2 processes on this machine: half each
    assert device.configure_threads() == 2


def test_the_users_choice_stands(env):
    env.setenv("OMP_NUM_THREADS", "1")
    env.setenv("OMP_WAIT_POLICY", "ACTIVE")
    torch.set_num_threads(2)
    assert device.configure_threads() is None
    assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    assert torch.get_num_threads() == 2


def test_main_called_from_code_that_set_torch_up_changes_nothing(env, tmp_path):
    torch.set_num_threads(1)
    assert main(["ingest", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "out")]) == 2
    assert torch.get_num_threads() == 1 and not any(name in os.environ for name in OMP_VARIABLES)


@pytest.mark.slow
def test_torch_starts_with_what_configure_threads_chose():
    script = ("import os; from foleylib.core.device import configure_threads; n = configure_threads(); "
              "import torch; print(n, torch.get_num_threads(), os.environ['OMP_WAIT_POLICY'])")
    env = {k: v for k, v in os.environ.items() if k not in OMP_VARIABLES}
    chosen, threads, policy = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                             check=True).stdout.split()
    assert 1 <= int(chosen) <= device.available_cores() and threads == chosen and policy == "PASSIVE"


def test_the_command_line_loads_without_torch():
    """`foley` chooses OpenMP's threads and waiting policy before torch loads (OpenMP reads them once): importing
    the command line must not import torch, or two trainings at once spin for each other's core (a tenth of their
    speed each instead of a half)."""
    script = "import sys, foleylib.interfaces.cli; print('torch' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "False"


@pytest.mark.parametrize("fails", [False, True])
def test_a_thread_count_is_set_inside_and_restored_after(fails):
    before = cv2.getNumThreads()
    with pytest.raises(RuntimeError) if fails else nullcontext():
        with cv2_threads(before + 1):
            assert cv2.getNumThreads() == before + 1
            if fails:
                raise RuntimeError("the body failed")
    assert cv2.getNumThreads() == before
