"""Data-parallel training with PyTorch's own engine: torchrun starts one process per device (or CPU share),
DistributedDataParallel averages the gradients.

Every process draws the same global sequence of examples (same seed) and takes its slice of each global batch,
so N processes with batch B/N each step exactly as one process with batch B (up to float summation order; with
BatchNorm each process normalizes over its own slice, as DDP does, unless `norm` is "group"). Process 0 logs,
validates and writes the run folder. gloo on CPU, nccl on CUDA.
"""
from __future__ import annotations

import itertools
import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Sampler


@dataclass(frozen=True)
class Ranks:
    """This process's place in the group (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def launched() -> bool:
    """Started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def main_process() -> bool:
    """Rank 0 (or not launched by torchrun): the process that logs and writes."""
    return os.environ.get("RANK", "0") == "0"


def start(device: torch.device) -> tuple[Ranks, torch.device]:
    """Join the process group when launched by torchrun (each process on its own GPU when `device` is CUDA)."""
    if not launched():
        return Ranks(), device
    ranks = Ranks(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))
    if device.type == "cuda":
        device = torch.device("cuda", ranks.local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return ranks, device


def finish() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, ranks: Ranks, device: torch.device) -> torch.nn.Module:
    """The model as DDP when there are several processes, else as it is."""
    if ranks.world == 1:
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


class RankSlices(Sampler):
    """This rank's part of every global batch: items [r*b, (r+1)*b) of each run of world*b indices."""

    def __init__(self, sampler: Sampler, batch: int, ranks: Ranks):
        self.sampler, self.batch, self.ranks = sampler, batch, ranks

    def __iter__(self):
        indices, lo = iter(self.sampler), self.ranks.rank * self.batch
        while chunk := list(itertools.islice(indices, self.batch * self.ranks.world)):
            yield from chunk[lo:lo + self.batch]

    def __len__(self) -> int:
        return len(self.sampler) // self.ranks.world


def mean_across(value: torch.Tensor, ranks: Ranks) -> float:
    """The mean of a scalar over all processes."""
    if ranks.world > 1:
        value = value.detach().clone()
        dist.all_reduce(value)
        value /= ranks.world
    return value.item()


def any_across(flag: bool, ranks: Ranks, device: torch.device) -> bool:
    """True on every process when it is true on one (a Ctrl-C that reached some processes stops all)."""
    if ranks.world == 1:
        return flag
    value = torch.tensor([float(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def torchrun_command(nproc: int, args: list[str]) -> list[str]:
    """The command that runs `foley train ARGS` in nproc processes on this machine with torchrun."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "foleylib", "train", *args]
