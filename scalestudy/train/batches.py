"""Where the epoch loop's batches come from: the dataset on the device (index gathers), or
streamed through a DataLoader (``scalestudy.data.stream``). Both give the loop the same batches:
this rank's slice of each global batch of the epoch's permutation, augmented on the device with
the epoch's generator, and the evaluation sets in the same chunks on the same ranks.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import default_collate

from scalestudy.data.base import InMemoryDataset
from scalestudy.data.stream import ChunkSampler, GlobalBatchSampler, MapDataset, loader
from scalestudy.train.distributed import Distributed

EVAL_BATCH = 2048  # examples per evaluation forward (rank r evaluates chunks r, r + W, ...)

Batch = tuple[Tensor, Tensor]


def rank_batch(data: InMemoryDataset, order: Tensor, step: int, batch_size: int, dist: Distributed,
               augment_gen: torch.Generator | None) -> Batch:
    """This rank's slice of global batch ``step`` of the epoch's permutation ``order``, augmented.

    Rank r takes rows [r·b, (r+1)·b) of each global batch (b = B/W), so W workers see exactly
    the examples, ghost batches and augmentations one worker would: the augmentation draws
    its random parameters for the whole global batch from the generator every rank shares.
    """
    local = batch_size // dist.world_size
    first = step * batch_size + dist.rank * local
    batch = order[first:first + local]
    inputs, targets = data.train_x[batch], data.train_y[batch]
    if augment_gen is not None:
        inputs = data.augment(inputs, augment_gen, dist.rank * local, batch_size)
    return inputs, targets


class MemoryBatches:
    """The fast path: both splits on the device; a batch is an index gather."""

    streaming = False

    def __init__(self, data: InMemoryDataset, dist: Distributed) -> None:
        self.data, self.dist = data, dist

    def train(self, order: Tensor, batch_size: int, steps: int, augment_gen: torch.Generator | None) -> Iterator[Batch]:
        for step in range(steps):
            yield rank_batch(self.data, order, step, batch_size, self.dist, augment_gen)

    def rows(self, split: str, index: Tensor) -> Batch:
        """Rows ``index`` of a split, on the device, not augmented."""
        x, y = (self.data.train_x, self.data.train_y) if split == "train" else (self.data.test_x, self.data.test_y)
        return x[index], y[index]

    def evaluation(self, split: str, index: Tensor | None = None) -> Iterator[Batch]:
        """This rank's evaluation batches of a split (rows ``index`` of it, or all)."""
        x, y = (self.data.train_x, self.data.train_y) if split == "train" else (self.data.test_x, self.data.test_y)
        if index is not None:
            x, y = x[index], y[index]
        yield from shard(x, y, self.dist)

    def close(self) -> None:
        pass


def shard(inputs: Tensor, targets: Tensor, dist: Distributed) -> Iterator[Batch]:
    """Chunks rank, rank + W, ... of EVAL_BATCH rows of two tensors."""
    for start in range(dist.rank * EVAL_BATCH, inputs.shape[0], dist.world_size * EVAL_BATCH):
        yield inputs[start:start + EVAL_BATCH], targets[start:start + EVAL_BATCH]


class StreamBatches:
    """Batches streamed from a :class:`MapDataset` through DataLoaders (worker processes that persist
    across epochs, pinned memory on CUDA, ``prefetch_factor`` batches ahead per worker)."""

    streaming = True

    def __init__(self, data: MapDataset, dist: Distributed, device: torch.device, workers: int,
                 prefetch_factor: int) -> None:
        self.data, self.dist, self.device = data, dist, device
        self.workers, self.prefetch_factor = workers, prefetch_factor
        self.pin = device.type == "cuda"
        self.sampler = GlobalBatchSampler(dist.rank, dist.world_size)
        self.train_loader = loader(data.train, self.sampler, workers, prefetch_factor, self.pin)
        self.eval_loaders: dict[tuple[str, tuple[int, ...] | None], object] = {}

    def _to_device(self, batch: Batch) -> Batch:
        inputs, targets = batch
        return (inputs.to(self.device, non_blocking=self.pin), targets.to(self.device, non_blocking=self.pin))

    def train(self, order: Tensor, batch_size: int, steps: int, augment_gen: torch.Generator | None) -> Iterator[Batch]:
        self.sampler.set_epoch(order, batch_size, steps)
        local = batch_size // self.dist.world_size
        for batch in self.train_loader:
            inputs, targets = self._to_device(batch)
            if augment_gen is not None:
                inputs = self.data.augment(inputs, augment_gen, self.dist.rank * local, batch_size)
            yield inputs, targets

    def rows(self, split: str, index: Tensor) -> Batch:
        dataset = self.data.train if split == "train" else self.data.test
        return self._to_device(default_collate([dataset[i] for i in index.tolist()]))

    def evaluation(self, split: str, index: Tensor | None = None) -> Iterator[Batch]:
        key = (split, None if index is None else tuple(index.tolist()))
        if key not in self.eval_loaders:  # fixed sets (the test set, the training subset): one loader each
            dataset = self.data.train if split == "train" else self.data.test
            indices = key[1] if key[1] is not None else range(len(dataset))
            sampler = ChunkSampler(indices, EVAL_BATCH, self.dist.rank, self.dist.world_size)
            self.eval_loaders[key] = loader(dataset, sampler, self.workers, self.prefetch_factor, self.pin)
        for batch in self.eval_loaders[key]:
            yield self._to_device(batch)

    def close(self) -> None:
        """End the loaders' worker processes."""
        for item in (self.train_loader, *self.eval_loaders.values()):
            iterator = getattr(item, "_iterator", None)
            if iterator is not None and hasattr(iterator, "_shutdown_workers"):
                iterator._shutdown_workers()
