"""A plan in any PyTorch loop: a learning-rate scheduler that sets ε and m at every update, and a batch
sampler that gives every update the plan's batch size. Both follow :meth:`Plan.at_step` step by step,
and resume: the scheduler through ``state_dict``, the sampler from a step.

    optimizer = torch.optim.SGD(model.parameters(), lr=plan.lr, momentum=plan.momentum)
    scheduler = plan.lr_scheduler(optimizer)            # PlanScheduler
    loader = DataLoader(dataset, batch_sampler=plan.batch_sampler(seed=0))
    for x, y in loader:
        ...; optimizer.step(); scheduler.step()

Under DDP each rank builds the sampler with its ``rank`` and ``world_size``: it yields that rank's
share of every global batch (B/W rows of the same permutation), so W ranks together see exactly
the plan's batches.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import Sampler

# ``plan`` below is a :class:`scalestudy.law.plan.Plan`; this module reads it (at_step, epochs,
# total_updates, dataset_size) without importing it, since Plan hands itself to these classes.


class PlanScheduler(LRScheduler):
    """ε and m of the plan's update ``last_epoch`` (the number of ``step()`` calls so far: call it once
    after every ``optimizer.step()``, as any LRScheduler). Momentum is set in each parameter group,
    as ``momentum`` (SGD, RMSprop) or the first of ``betas`` (Adam and its kin). Past the plan's
    last update the last values stay."""

    def __init__(self, optimizer: torch.optim.Optimizer, plan: Any, last_epoch: int = -1):
        self.plan = plan
        super().__init__(optimizer, last_epoch)

    def _plan_step(self):
        return self.plan.at_step(min(max(self.last_epoch, 0), self.plan.total_updates - 1))

    def get_lr(self) -> list[float]:
        lr = self._plan_step().lr
        return [lr for _ in self.optimizer.param_groups]

    def step(self, epoch: int | None = None) -> None:  # noqa: D102 - LRScheduler.step, then the momentum
        super().step(epoch)
        momentum = self._plan_step().momentum
        for group in self.optimizer.param_groups:
            if "betas" in group:
                group["betas"] = (momentum, *tuple(group["betas"])[1:])
            else:
                group["momentum"] = momentum

    def state_dict(self) -> dict[str, Any]:
        """The scheduler's counters, without the plan (it is rebuilt from plan.yaml)."""
        return {key: value for key, value in super().state_dict().items() if key != "plan"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict({key: value for key, value in state_dict.items() if key != "plan"})
        self.step_to_current()

    def step_to_current(self) -> None:
        """Set the optimizer's ε and m to the restored step's (a restored state only holds counters)."""
        plan_step = self._plan_step()
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
            if "betas" in group:
                group["betas"] = (plan_step.momentum, *tuple(group["betas"])[1:])
            else:
                group["momentum"] = plan_step.momentum
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


class PlanBatchSampler(Sampler[list[int]]):
    """The example indices of every update, from ``start_step`` to the end of the plan.

    Each epoch is a permutation of range(N), seeded by (``seed``, epoch): update k of an epoch at
    batch size B takes positions k·B … (k+1)·B − 1 of it, and the ragged tail is dropped (N // B
    updates, as the plan counts them). A rank takes rows rank·B/W … (rank+1)·B/W − 1 of each batch.
    Restarting from step s gives exactly the batches an uninterrupted run gives from s on."""

    def __init__(self, plan: Any, *, seed: int = 0, rank: int = 0, world_size: int = 1, start_step: int = 0):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in 0-{world_size - 1}, got {rank}")
        uneven = sorted({e.batch_size for e in plan.epochs() if e.batch_size % world_size})
        if uneven:
            raise ValueError(f"batch size {uneven[0]} does not split into {world_size} equal shares")
        if not 0 <= start_step <= plan.total_updates:
            raise ValueError(f"start_step must be in 0-{plan.total_updates}, got {start_step}")
        self.plan, self.seed, self.rank, self.world_size = plan, seed, rank, world_size
        self.step = start_step  # the next update to yield

    def __len__(self) -> int:
        return self.plan.total_updates - self.step

    def permutation(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.plan.dataset_size, generator=generator)

    def __iter__(self) -> Iterator[list[int]]:
        for epoch in self.plan.epochs():
            end = epoch.first_step + epoch.updates
            if self.step >= end:
                continue
            order = self.permutation(epoch.epoch)
            share = epoch.batch_size // self.world_size
            while self.step < end:
                first = (self.step - epoch.first_step) * epoch.batch_size + self.rank * share
                self.step += 1
                yield order[first:first + share].tolist()

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step, self.seed = int(state["step"]), int(state["seed"])
