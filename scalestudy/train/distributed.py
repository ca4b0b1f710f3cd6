"""The loop's view of the process group: rank, world size, reductions, DDP wrapping.

With one worker every operation is the identity, so the same loop runs in a Tune
function trial, in a Ray Train worker and in a plain test without a process group.
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass, field

import torch
import torch.distributed as torch_dist


# torch ≥ 2.14 names it forward_sync_buffers (buffers still synced once at init) and deprecates
# broadcast_buffers, which older versions need.
_NO_FORWARD_BUFFER_SYNC = ({"forward_sync_buffers": False}
                           if "forward_sync_buffers" in inspect.signature(
                               torch.nn.parallel.DistributedDataParallel.__init__).parameters
                           else {"broadcast_buffers": False})


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
        # No buffer sync at each forward: each rank folds its own ghost batches into its BN buffers
        # (``running_stats_step``) and the loop averages them (``average_``) before it evaluates
        # or checkpoints; DDP's default would overwrite them with rank 0's at every forward.
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids, **_NO_FORWARD_BUFFER_SYNC)

    def no_sync(self, net: torch.nn.Module):
        return net.no_sync() if self.is_distributed else contextlib.nullcontext()

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.is_distributed:
            tensor = tensor.clone()
            torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM)
        return tensor

    @torch.no_grad()
    def average_(self, tensors: list[torch.Tensor]) -> None:
        """Replace each tensor in place by its mean over ranks (one all-reduce of them all, in float64)."""
        if not self.is_distributed or not tensors:
            return
        flat = torch.cat([t.reshape(-1).double() for t in tensors])
        torch_dist.all_reduce(flat, op=torch_dist.ReduceOp.SUM)
        flat /= self.world_size
        for tensor, mean in zip(tensors, flat.split([t.numel() for t in tensors])):
            tensor.copy_(mean.view_as(tensor))
