"""Datasets larger than memory: map-style datasets streamed through a DataLoader that
scalestudy's own batch sampler drives.

A :class:`MapDataset` holds the train and test splits as ``torch.utils.data.Dataset`` s whose
items are ``(input, target)`` pairs. Streaming keeps every rule of the in-memory path, because
the sampler hands the DataLoader exactly the index lists the in-memory path gathers:

* the epoch's order is the same seeded permutation the in-memory path draws (on the same
  device, with the same generator), so both paths see the same examples in the same order;
* each step's global batch is the schedule's B for the epoch, and rank r takes rows
  [r·B/W, (r+1)·B/W) of it (ghost batches stay whole; W workers see what one would);
* the ragged tail (N mod B examples) is dropped;
* augmentation is not a per-example transform in a worker: it runs batched on the device after
  loading, with the dataset's ``augment(batch, generator, first, total)`` (``data.base.Augment``),
  drawn from the same per-epoch generator as in memory. A user's Dataset may still transform each
  item deterministically (decode, resize, normalise); random per-item transforms would make the two
  paths, and a resumed epoch, differ.

Nothing of an epoch's position is checkpointed: checkpoints are taken at epoch ends, and a trial
killed mid-epoch re-runs that epoch from the last one identically (the order and the augmentation
are functions of (seed, epoch)). The DataLoader gets a private generator, so loading never draws
from the global RNG the checkpoint saves.

``workload.data.residency`` chooses the path: ``auto`` keeps a dataset whose two splits take at most
``memory_limit_mb`` in memory (materialised once into tensors, the fast path: batches are index
gathers on the device) and streams a larger one; ``memory`` and ``stream`` force either.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from scalestudy.data.base import Augment, InMemoryDataset, _check_augment

MIB = 2**20
MATERIALISE_BATCH = 1024


@dataclass(frozen=True, eq=False, repr=False)
class MapDataset:
    """Train and test splits as map-style datasets of ``(input, target)`` items (on the CPU).

    A split may offer ``tensors() -> (inputs, targets)``: the whole split at once, which
    materialising it in memory then uses instead of reading it item by item."""

    name: str
    train: Dataset
    test: Dataset
    num_classes: int
    input_shape: tuple[int, ...]  # one example, without the batch dimension
    augment: Augment | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        if self.augment is not None:
            _check_augment(self.name, self.augment)

    @property
    def train_size(self) -> int:
        return len(self.train)  # type: ignore[arg-type]

    @property
    def test_size(self) -> int:
        return len(self.test)  # type: ignore[arg-type]

    def nbytes(self) -> int:
        """Bytes both splits take as tensors, from one item of each (items are of one shape)."""
        total = 0
        for split, size in ((self.train, self.train_size), (self.test, self.test_size)):
            if size:
                inputs, targets = split[0]
                total += size * (torch.as_tensor(inputs).nbytes + torch.as_tensor(targets).nbytes)
        return total

    def in_memory(self, workers: int = 0) -> InMemoryDataset:
        """Both splits read once into tensors (with ``workers`` loader processes)."""
        train_x, train_y = _read_split(self.train, workers)
        test_x, test_y = _read_split(self.test, workers)
        return InMemoryDataset(self.name, train_x, train_y, test_x, test_y, self.num_classes, self.input_shape,
                               self.augment)

    def __repr__(self) -> str:
        return (f"MapDataset({self.name!r}, train={self.train_size}, test={self.test_size}, "
                f"input_shape={self.input_shape}, num_classes={self.num_classes})")


class TensorPairs(Dataset):
    """Tensors as a map-style dataset (an in-memory dataset streamed, for tests and benchmarks)."""

    def __init__(self, inputs: Tensor, targets: Tensor) -> None:
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.inputs[index], self.targets[index]

    def tensors(self) -> tuple[Tensor, Tensor]:
        return self.inputs, self.targets


def as_map_dataset(data: InMemoryDataset) -> MapDataset:
    """An in-memory dataset (on the CPU) seen as a map-style one: ``residency: stream`` for it."""
    data = data.to("cpu")
    return MapDataset(data.name, TensorPairs(data.train_x, data.train_y), TensorPairs(data.test_x, data.test_y),
                      data.num_classes, data.input_shape, data.augment)


def _read_split(split: Dataset, workers: int) -> tuple[Tensor, Tensor]:
    whole = getattr(split, "tensors", None)
    if callable(whole):
        return whole()
    loader = DataLoader(split, batch_size=MATERIALISE_BATCH, shuffle=False, num_workers=workers,
                        generator=torch.Generator())
    parts = list(loader)
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def resident(data: InMemoryDataset | MapDataset, residency: str, memory_limit_mb: float,
             workers: int = 0) -> InMemoryDataset | MapDataset:
    """The dataset on the path ``residency`` chooses (see the module docstring): an
    :class:`InMemoryDataset` (CPU tensors) or a :class:`MapDataset` to stream."""
    if residency == "stream":
        return data if isinstance(data, MapDataset) else as_map_dataset(data)
    if isinstance(data, InMemoryDataset):
        return data
    if residency == "memory" or data.nbytes() <= memory_limit_mb * MIB:
        return data.in_memory(workers)
    return data


class GlobalBatchSampler:
    """This rank's index lists for one epoch: slice [r·B/W, (r+1)·B/W) of each global batch of
    ``order`` (the epoch's permutation), ``steps`` batches (the ragged tail dropped).

    The loop sets the epoch (:meth:`set_epoch`) before iterating its DataLoader; a DataLoader
    with persistent workers keeps this sampler and reads it afresh each epoch."""

    def __init__(self, rank: int, world_size: int) -> None:
        self.rank, self.world_size = rank, world_size
        self.order: list[int] = []
        self.batch_size = 0
        self.steps = 0

    def set_epoch(self, order: Tensor, batch_size: int, steps: int) -> None:
        self.order = order.tolist()
        self.batch_size, self.steps = batch_size, steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[list[int]]:
        local = self.batch_size // self.world_size
        for step in range(self.steps):
            first = step * self.batch_size + self.rank * local
            yield self.order[first:first + local]


class ChunkSampler:
    """Evaluation batches of this rank: chunks ``rank, rank + W, ...`` of ``chunk`` consecutive
    indices of ``indices`` (the in-memory path's sharding of evaluation)."""

    def __init__(self, indices: Sequence[int], chunk: int, rank: int, world_size: int) -> None:
        self.indices, self.chunk, self.rank, self.world_size = indices, chunk, rank, world_size

    def __len__(self) -> int:
        return max(0, math.ceil((len(self.indices) - self.rank * self.chunk) / (self.world_size * self.chunk)))

    def __iter__(self) -> Iterator[list[int]]:
        for start in range(self.rank * self.chunk, len(self.indices), self.world_size * self.chunk):
            yield list(self.indices[start:start + self.chunk])


def loader(dataset: Dataset, batch_sampler: Any, workers: int, prefetch_factor: int, pin_memory: bool) -> DataLoader:
    """A DataLoader of ``dataset`` driven by ``batch_sampler``; worker processes persist across epochs.

    Its private generator (for the workers' seeds) keeps it off the global RNG."""
    options: dict[str, Any] = {}
    if workers > 0:
        options = {"prefetch_factor": prefetch_factor, "persistent_workers": True, "worker_init_fn": _in_worker}
    return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=workers, pin_memory=pin_memory,
                      generator=torch.Generator(), **options)


def _in_worker(worker_id: int) -> None:
    """A loader worker is forked while the trial's other loaders hold their own workers: the copies
    of their iterators it inherits belong to the parent. Mark this process as exiting for them, so
    that their ``__del__`` in this process never tries to shut down workers it does not own (which
    prints "can only test a child process" at its exit). Workers are forked, not spawned: spawning
    would re-run the parent's ``__main__``, which under Ray is Ray's own worker."""
    from torch.utils.data import _utils

    _utils.python_exit_status = True
