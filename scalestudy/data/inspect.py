"""A dataset looked at before any trial trains on it: both splits non-empty, a sample of items of one
kind (a pair, a tensor input of one shape and dtype, an integer target), finite inputs, and a few
training examples for the dry run of the model (:mod:`scalestudy.spec.dry_run`).

Errors are :class:`~scalestudy.registry.ContractError` (the code) or :class:`~scalestudy.registry.DataError`
(the data: a non-finite input, named by its example's index; the epoch loop raises it too). Reading
an item is a call into the user's code (``__getitem__``): what it raises, ``SystemExit`` and
``KeyboardInterrupt`` included, is a ContractError naming the item. A split in memory is checked
whole for non-finite inputs (one pass over a tensor); a map-style split (read from disk) on
:data:`SAMPLE_ITEMS` items spread over it.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from scalestudy.data.base import InMemoryDataset
from scalestudy.data.stream import MapDataset
from scalestudy.registry import ContractError, DataError, failure_text
from scalestudy.usercode import user_call

SAMPLE_ITEMS = 32  # items read from each map-style split: the first ones and others spread over it
BATCH = 8  # training examples the dry run passes through the model
FINITE_CHUNK = 2**24  # values checked for NaN and inf at a time


@dataclass(frozen=True, eq=False)
class Sample:
    """A few training examples as the loop gets them (float32 or integer inputs, int64 targets)."""

    inputs: Tensor
    targets: Tensor


def _kind(value: Any) -> str:
    kind = type(value)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"


class TypedSplit(Dataset):
    """A user's split whose items come as tensors of the dtypes the in-memory path gives (float32
    inputs, int64 targets), so streaming and materialising train on the same numbers."""

    def __init__(self, split: Any) -> None:
        self.split = split
        self.targets = getattr(split, "targets", None)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        inputs, target = self.split[index]
        inputs, target = torch.as_tensor(inputs), torch.as_tensor(target)
        if inputs.is_floating_point() or inputs.dtype == torch.bool:
            inputs = inputs.float()
        return inputs, target.long()


def read_item(name: str, which: str, split: Any, index: int) -> tuple[Tensor, Tensor]:
    """Item ``index`` of a map-style split as (input, target) tensors, typed as the loop gets them."""
    try:
        with user_call():
            item = split[index]
    except Exception as error:  # noqa: BLE001 - the user's __getitem__: one line naming the item
        raise ContractError("code", f"{name}: reading item {index} of the {which} split{_source(split, index)} "
                                    f"raised {failure_text(error, (type(split),))}") from None
    if not (isinstance(item, (tuple, list)) and len(item) == 2):
        text = repr(item)
        raise ContractError("code", f"{name}: item {index} of the {which} split is {_kind(item)} "
                                    f"{text[:60]}; expected an (input, target) pair")
    inputs, target = item
    if not (isinstance(inputs, Tensor) or hasattr(inputs, "__array__") or isinstance(inputs, numbers.Number)) \
            or isinstance(inputs, (str, bytes)):
        raise ContractError("code", f"{name}: item {index} of the {which} split has an input of type {_kind(inputs)}; "
                                    "inputs must be tensors (for a torchvision dataset, add transforms.ToTensor())")
    try:
        inputs, target = torch.as_tensor(inputs), torch.as_tensor(target)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ContractError("code", f"{name}: item {index} of the {which} split does not convert to tensors "
                                    f"({str(error).splitlines()[0]}); inputs must be numbers") from None
    if target.is_floating_point() or target.dtype == torch.bool:
        raise ContractError("code", f"{name}: item {index} of the {which} split has a target of dtype {target.dtype} "
                                    f"and shape {tuple(target.shape)}; targets must be integer class indices")
    if inputs.is_floating_point() or inputs.dtype == torch.bool:
        inputs = inputs.float()
    return inputs, target.long()


def _source(split: Any, index: int) -> str:
    """`` (file F)`` for an item of a torchvision folder dataset (``samples``), seen through subsets."""
    while hasattr(split, "indices") and hasattr(split, "dataset"):  # torch.utils.data.Subset
        split, index = split.dataset, split.indices[index]
    samples = getattr(split, "samples", None)
    try:
        return f" (file {samples[index][0]})" if samples is not None else ""
    except (IndexError, TypeError, KeyError):
        return ""


def sample_indices(count: int, wanted: int = SAMPLE_ITEMS) -> list[int]:
    """The first few indices of ``count`` and others spread evenly to its end (all when few)."""
    if count <= wanted:
        return list(range(count))
    head = wanted // 4
    step = (count - head) / (wanted - head)
    return list(range(head)) + sorted({head + int(i * step) for i in range(wanted - head)} | {count - 1})


def check_finite(name: str, which: str, inputs: Tensor, index: Tensor | list[int] | None = None) -> None:
    """:class:`DataError` naming the first example of ``inputs`` (rows) with a NaN or infinite value;
    ``index``: each row's example index in its split (default: its position)."""
    if not inputs.is_floating_point() or inputs.numel() == 0:
        return
    rows = inputs.reshape(inputs.shape[0], -1)
    chunk = max(1, FINITE_CHUNK // max(1, rows.shape[1]))  # bounds the temporary mask, whatever the split's size
    for start in range(0, rows.shape[0], chunk):
        finite = torch.isfinite(rows[start:start + chunk]).all(dim=1)
        if not bool(finite.all()):
            break
    else:
        return
    row = start + int((~finite).nonzero()[0])
    bad = inputs[row].flatten()
    value = bad[~torch.isfinite(bad)][0].item()
    example = int(index[row]) if index is not None else row
    raise DataError(f"{name}: {which} example {example} has a non-finite input ({value}); inputs must be finite "
                    "(a data bug, not a divergence: fix or drop the example)")


def _check_in_memory(data: InMemoryDataset) -> Sample:
    for which, x in (("train", data.train_x), ("test", data.test_x)):
        if x.shape[0] == 0:
            raise ContractError("code", f"{data.name}: the {which} split is empty; both splits need examples")
        check_finite(data.name, which, x)
    return Sample(data.train_x[:BATCH].cpu(), data.train_y[:BATCH].cpu())


def _check_map_split(name: str, which: str, split: Any) -> tuple[Tensor, Tensor]:
    split = split.split if isinstance(split, TypedSplit) else split  # the user's items, as they come
    count = len(split)
    if count == 0:
        raise ContractError("code", f"{name}: the {which} split is empty; both splits need examples")
    indices = sample_indices(count)
    items = [read_item(name, which, split, i) for i in indices]
    first_input = items[0][0]
    for index, (inputs, _) in zip(indices, items):
        if inputs.shape != first_input.shape or inputs.dtype != first_input.dtype:
            raise ContractError("code", f"{name}: item {index} of the {which} split has an input of shape "
                                        f"{tuple(inputs.shape)} and dtype {inputs.dtype}, item {indices[0]} "
                                        f"{tuple(first_input.shape)} and {first_input.dtype}; every input must have "
                                        "one shape and dtype")
    inputs = torch.stack([x for x, _ in items])
    check_finite(name, which, inputs, indices)
    return inputs, torch.stack([y for _, y in items])


def inspect_dataset(data: InMemoryDataset | MapDataset) -> Sample:
    """Check both splits (module docstring); a few training examples for the dry run. Raises
    :class:`ContractError` (the code) or :class:`DataError` (the data)."""
    if isinstance(data, InMemoryDataset):
        return _check_in_memory(data)
    train_x, train_y = _check_map_split(data.name, "train", data.train)
    test_x, _ = _check_map_split(data.name, "test", data.test)
    if tuple(train_x.shape[1:]) != tuple(test_x.shape[1:]) or train_x.dtype != test_x.dtype:
        raise ContractError("code", f"{data.name}: train inputs have shape {tuple(train_x.shape[1:])} and dtype "
                                    f"{train_x.dtype}, test inputs {tuple(test_x.shape[1:])} and {test_x.dtype}; "
                                    "every input must have one shape and dtype")
    return Sample(train_x[:BATCH], train_y[:BATCH])
