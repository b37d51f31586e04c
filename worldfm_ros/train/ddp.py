"""Distributed data parallel in a handful of lines, guarded by the world size (nanoGPT style).

Run a training command as it is for one process, or under ``torchrun --nproc_per_node N``:
torchrun sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` and this module joins the process
group (gloo on CPU, NCCL on CUDA). Each process then takes its slice of every global batch and
``DistributedDataParallel`` averages the gradients, so N processes compute the update one
process would on the whole batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from worldfm_ros.devices import parse_device
from worldfm_ros.errors import ConfigError


@dataclass
class DistributedContext:
    """Where this process sits: rank in [0, world_size), its device, whether a group was joined."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    initialised: bool = False

    @property
    def is_main(self) -> bool:
        """True on the process that logs, writes checkpoints and exports."""
        return self.rank == 0

    def shard(self, items: list, what: str = "batch") -> list:
        """This process's contiguous share of a global batch (its length must divide evenly)."""
        if len(items) % self.world_size:
            raise ConfigError(f"{what} size {len(items)} is not divisible by the {self.world_size} processes")
        n = len(items) // self.world_size
        return items[self.rank * n:(self.rank + 1) * n]

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` in DistributedDataParallel when more than one process runs, else itself."""
        if self.world_size == 1:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def barrier(self) -> None:
        """Wait for every process (no-op alone)."""
        if self.initialised:
            dist.barrier()

    def mean(self, value: float) -> float:
        """The average of a scalar over the processes (itself alone)."""
        if not self.initialised:
            return float(value)
        t = torch.tensor([float(value)], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item()) / self.world_size


def setup_distributed(device: str = "cpu") -> DistributedContext:
    """Join the process group when ``WORLD_SIZE`` > 1 (torchrun), else a single-process context.

    device: 'cpu' or 'cuda'; under torchrun a CUDA process uses ``cuda:LOCAL_RANK``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    base = parse_device(device)
    if world_size == 1:
        return DistributedContext(device=base)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if base.type == "cuda":
        base = torch.device("cuda", local_rank)
        torch.cuda.set_device(base)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if base.type == "cuda" else "gloo", rank=rank, world_size=world_size)
    return DistributedContext(rank, local_rank, world_size, base, True)


def cleanup_distributed(ctx: DistributedContext) -> None:
    """Leave the process group joined by ``setup_distributed``."""
    if ctx.initialised and dist.is_initialized():
        dist.destroy_process_group()
