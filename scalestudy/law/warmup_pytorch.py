"""A batch warmup (``batch_warmup.json``) in any PyTorch loop: an lr scheduler that sets each
stage's lr, a batch sampler that gives every update its stage's batch size, and the same order of
examples as a dataset, for trainers that cut a fixed micro-batch from it (:mod:`.warmup_hf`).

    warmup = BatchWarmup.load("batch_warmup.json")
    optimizer = torch.optim.SGD(model.parameters(), lr=warmup.base_lr, momentum=warmup.momentum)
    scheduler = WarmupLRScheduler(optimizer, warmup)
    loader = DataLoader(dataset, batch_sampler=WarmupBatchSampler(warmup, seed=0))
    for x, y in loader:                      # warmup.total_steps updates
        ...; optimizer.step(); scheduler.step()

The examples come as one stream: epoch e is a permutation of range(N) seeded by (seed, e), and
update s takes the stream's positions ``examples_before(s)`` … ``examples_before(s + 1) − 1``,
across an epoch's end if it falls there (as Megatron-LM, OLMo-core and Levanter count examples:
consumed samples, not epochs). Under DDP rank r of W takes rows r·B/W … (r+1)·B/W − 1 of each
batch. Restarting from step s gives exactly the batches an uninterrupted run gives from s on.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import Dataset, Sampler

from scalestudy.law.batch_warmup import BatchWarmup


class ExampleStream:
    """Position i of the warmup's stream of examples → the dataset's index (see the module docstring)."""

    def __init__(self, dataset_size: int, seed: int = 0):
        if dataset_size < 1:
            raise ValueError(f"dataset_size must be ≥ 1, got {dataset_size}")
        self.dataset_size, self.seed = dataset_size, seed
        self._epoch, self._order = -1, torch.empty(0, dtype=torch.long)

    def permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:  # one epoch's permutation kept: positions are read in order
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._order = epoch, torch.randperm(self.dataset_size, generator=generator)
        return self._order

    def indices(self, first: int, count: int) -> list[int]:
        """The dataset indices of positions ``first`` … ``first + count − 1``."""
        out: list[int] = []
        while count > 0:
            epoch, offset = divmod(first, self.dataset_size)
            take = min(count, self.dataset_size - offset)
            out += self.permutation(epoch)[offset:offset + take].tolist()
            first, count = first + take, count - take
        return out


class WarmupBatchSampler(Sampler[list[int]]):
    """The dataset indices of every update from ``start_step`` to the warmup's end, this rank's share."""

    def __init__(self, warmup: BatchWarmup, *, seed: int = 0, rank: int = 0, world_size: int = 1,
                 start_step: int = 0):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in 0-{world_size - 1}, got {rank}")
        uneven = [s.batch_size for s in warmup.stages if s.batch_size % world_size]
        if uneven:
            raise ValueError(f"batch size {uneven[0]} does not split into {world_size} equal shares")
        if not 0 <= start_step <= warmup.total_steps:
            raise ValueError(f"start_step must be in 0-{warmup.total_steps}, got {start_step}")
        self.warmup, self.rank, self.world_size = warmup, rank, world_size
        self.stream = ExampleStream(warmup.dataset_size, seed)
        self.step = start_step  # the next update to yield

    def __len__(self) -> int:
        return self.warmup.total_steps - self.step

    def __iter__(self) -> Iterator[list[int]]:
        while self.step < self.warmup.total_steps:
            share = self.warmup.at_step(self.step).batch_size // self.world_size
            first = self.warmup.examples_before(self.step) + self.rank * share
            self.step += 1
            yield self.stream.indices(first, share)

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step, "seed": self.stream.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step = int(state["step"])
        self.stream = ExampleStream(self.warmup.dataset_size, int(state["seed"]))


class WarmupDataset(Dataset):
    """The warmup's whole stream as a map-style dataset: item i is ``dataset[stream index of i]``, and
    its length is the examples of all ``total_steps`` updates. Read in order (a sequential sampler)
    in micro-batches of m, every update is a whole number of micro-batches when m divides each B."""

    def __init__(self, dataset: Any, warmup: BatchWarmup, *, seed: int = 0):
        if len(dataset) != warmup.dataset_size:
            raise ValueError(f"the dataset has {len(dataset)} examples, the warmup's epochs {warmup.dataset_size}: "
                             f"use the dataset the CBS was measured on, or one of that size")
        self.dataset, self.warmup = dataset, warmup
        self.stream = ExampleStream(warmup.dataset_size, seed)

    def __len__(self) -> int:
        return self.warmup.examples_before(self.warmup.total_steps)

    def __getitem__(self, position: int) -> Any:
        if not 0 <= position < len(self):
            raise IndexError(position)
        return self.dataset[self.stream.indices(position, 1)[0]]


class WarmupLRScheduler(LRScheduler):
    """The lr of the stage of update ``last_epoch`` (the ``step()`` calls so far: call it once after
    every ``optimizer.step()``); past the last update the last stage's lr stays. The lr is the
    stage's alone: to put a decay on top, use ``LambdaLR(optimizer, lambda s: warmup.at_step(s).lr /
    warmup.base_lr * decay(s))`` with the optimizer's lr at ``warmup.base_lr`` instead."""

    def __init__(self, optimizer: torch.optim.Optimizer, warmup: BatchWarmup, last_epoch: int = -1):
        self.warmup = warmup
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        lr = self.warmup.at_step(max(self.last_epoch, 0)).lr
        return [lr for _ in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """The scheduler's counters, without the warmup (it is rebuilt from batch_warmup.json)."""
        return {key: value for key, value in super().state_dict().items() if key != "warmup"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict({key: value for key, value in state_dict.items() if key != "warmup"})
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr  # a restored state holds counters only
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


__all__ = ["ExampleStream", "WarmupBatchSampler", "WarmupDataset", "WarmupLRScheduler"]
