"""The loop's view of the process group: rank, world size, reductions, DDP wrapping.

With one worker every operation is the identity, so the same loop runs in a Tune
function trial, in a Ray Train worker and in a plain test without a process group.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
import torch.distributed as torch_dist


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=_default_device)

    @classmethod
    def from_process_group(cls, device: torch.device) -> "Distributed":
        """Read rank and world size from an initialised torch.distributed group."""
        if not torch_dist.is_available() or not torch_dist.is_initialized():
            return cls(device=device)
        return cls(rank=torch_dist.get_rank(), world_size=torch_dist.get_world_size(), device=device)

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if not self.is_distributed:
            return model
        device_ids = [self.device.index or 0] if self.device.type == "cuda" else None
        # broadcast_buffers=True (the default): rank 0's BN running stats each forward.
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    def no_sync(self, net: torch.nn.Module):
        return net.no_sync() if self.is_distributed else contextlib.nullcontext()

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.is_distributed:
            tensor = tensor.clone()
            torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM)
        return tensor

    def mean(self, tensor: torch.Tensor) -> float:
        """Mean of a scalar over ranks, as a Python float (one host sync)."""
        return float(self.sum(tensor.double()).item() / self.world_size)
