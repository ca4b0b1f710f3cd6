"""N training examples of any dataset: scalestudy's own subsample of the training split.

The dataset-size axis (``grid.dataset_size``) needs the same dataset at several N. A built-in with a
``train_size`` option makes N itself (``scalestudy.data.at_dataset_size``); every other dataset (the
user's, ``text_bytes``, ``image_folder``) is loaded whole and its training split cut here:

* seeded by the study's subset seed, never the trial's seed, so every trial at one N trains on the
  same examples;
* nested: N examples are the first N of one seeded permutation of the full training split, so a
  larger N holds every example of a smaller one and N is the only thing that changes along the axis;
* the test split is untouched: every N is scored on the same test examples.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor
from torch.utils.data import Dataset

from scalestudy.data.base import InMemoryDataset
from scalestudy.data.stream import MapDataset


def subset_indices(size: int, n: int, seed: int) -> Tensor:
    """The ``n`` of ``size`` training examples the subset seed ``seed`` picks (int64, ascending).

    Ascending, not in the permutation's order: a streamed split then reads its files in order, and the
    epoch's own permutation decides the training order anyway; the set is what nesting promises."""
    if not 0 < n <= size:
        raise ValueError(f"grid.dataset_size: N={n} training examples of a training split of {size}: each N "
                         f"must be in 1-{size}")
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
    return order[:n].sort().values


def subsample_train(data: InMemoryDataset | MapDataset, n: int, seed: int) -> InMemoryDataset | MapDataset:
    """``data`` with its training split cut to the ``n`` examples of :func:`subset_indices`; the test split,
    the augmentation and everything else as they were."""
    index = subset_indices(data.train_size, n, seed)
    if isinstance(data, InMemoryDataset):
        index = index.to(data.device)
        return dataclasses.replace(data, train_x=data.train_x[index], train_y=data.train_y[index])
    whole = callable(getattr(data.train, "tensors", None))
    return dataclasses.replace(data, train=(TensorSubset if whole else Subset)(data.train, index))


class Subset(Dataset):
    """Items ``index`` of a map-style split, read on demand (a streamed split stays streamed)."""

    def __init__(self, split: Dataset, index: Tensor) -> None:
        self.split = split
        self.index = index.tolist()  # plain ints: one lookup per item read

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, position: int):
        return self.split[self.index[position]]


class TensorSubset(Subset):
    """A subset of a split that offers ``tensors()`` (``data.stream.MapDataset``): keeps the whole-split read."""

    def tensors(self) -> tuple[Tensor, Tensor]:
        inputs, targets = self.split.tensors()  # type: ignore[attr-defined]
        index = torch.as_tensor(self.index, device=inputs.device)
        return inputs[index], targets[index]
