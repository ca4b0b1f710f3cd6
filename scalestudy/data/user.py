"""The user's own dataset: ``load(**dataset_options) -> (train, test)`` made into scalestudy's dataset.

Each split is either a pair of tensors ``(inputs, targets)`` (numpy arrays are taken too) or a
map-style ``torch.utils.data.Dataset`` whose items are ``(input, target)`` pairs. scalestudy learns
N (training examples), the input shape (one example, no batch dimension) and the number of
classes from them; a ``num_classes`` attribute on the train split wins over inference from the
targets (max + 1 over both splits). Floating inputs become float32, integer targets int64.

Tensor pairs train on the in-memory path. A map-style split stays map-style (a
:class:`~scalestudy.data.stream.MapDataset`): ``workload.data.residency`` then reads it into memory
once when it is small enough, or streams it (``data/stream.py``). Its input shape comes from its
first item and its number of classes from ``num_classes``, else a ``targets`` attribute (as
torchvision's datasets have), else every item's target.
A loader may also return an :class:`InMemoryDataset` itself (with a batched ``augment``).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor
from torch.utils.data import Dataset

from scalestudy.data.base import InMemoryDataset
from scalestudy.data.inspect import TypedSplit, read_item
from scalestudy.data.stream import MapDataset, TensorPairs
from scalestudy.registry import ContractError, call_user_code

EXPECTED = ("expected (train, test), each (inputs, targets) tensors or a map-style torch.utils.data.Dataset "
            "of (input, target) pairs")


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def call_loader(name: str, loader: Callable[..., Any], options: dict[str, Any]) -> Any:
    """What ``loader(**options)`` returns; :class:`ContractError` if it does not take the options or fails."""
    return call_user_code(loader, f"{name}(**dataset_options)", (), options)


def splits(name: str, result: Any) -> tuple[Any, Any]:
    """(train, test) of a loader's result, each a tensor pair or a map-style dataset (checked, not read)."""
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise ContractError("code", f"{name} returned {_shown(result)}; {EXPECTED}")
    for which, split in zip(("train", "test"), result):
        if not (_is_tensor_pair(split) or _is_map_style(split)):
            raise ContractError("code", f"{name} returned a {which} split of {_shown(split)}; {EXPECTED}")
    return result[0], result[1]


def _is_tensor_pair(split: Any) -> bool:
    return isinstance(split, (tuple, list)) and len(split) == 2 and all(
        isinstance(part, Tensor) or hasattr(part, "__array__") for part in split)


def _is_map_style(split: Any) -> bool:
    return isinstance(split, Dataset) or (hasattr(split, "__getitem__") and hasattr(split, "__len__")
                                          and not isinstance(split, (tuple, list, str, bytes, dict)))


def materialise(name: str, which: str, split: Any) -> tuple[Tensor, Tensor]:
    """(inputs, targets) tensors of one split: a tensor pair as it is, a map-style dataset read item by item."""
    if _is_tensor_pair(split):
        try:
            inputs, targets = (torch.as_tensor(part) for part in split)
        except (RuntimeError, TypeError, ValueError) as error:  # strings, objects: not numbers
            raise ContractError("code", f"{name}: the {which} split's (inputs, targets) do not convert to tensors "
                                        f"({str(error).splitlines()[0]}); both must be numbers") from None
    else:
        count = len(split)
        if count == 0:
            raise ContractError("code", f"{name}: the {which} split is empty; both splits need examples")
        items = [read_item(name, which, split, i) for i in range(count)]
        try:
            inputs = torch.stack([x for x, _ in items])
            targets = torch.stack([y for _, y in items])
        except (RuntimeError, TypeError, ValueError) as error:
            raise ContractError("code", f"{name}: the {which} split's items do not stack into tensors "
                                        f"({str(error).splitlines()[0]}); every input must have one shape") from None
    if inputs.ndim > 0 and inputs.shape[0] == 0:
        raise ContractError("code", f"{name}: the {which} split is empty; both splits need examples")
    if inputs.ndim == 0 or targets.ndim == 0 or inputs.shape[0] != targets.shape[0]:
        raise ContractError("code", f"{name}: the {which} split has inputs of shape {tuple(inputs.shape)} and "
                                    f"targets of shape {tuple(targets.shape)}; want one target per input")
    if inputs.is_floating_point() or inputs.dtype == torch.bool:
        inputs = inputs.float()
    if not targets.is_floating_point():
        targets = targets.long()
    return inputs, targets


def num_classes(name: str, train: Any, train_y: Tensor, test_y: Tensor) -> int:
    """The train split's ``num_classes`` attribute if it has one, else max target + 1 over both splits."""
    if train_y.is_floating_point() or test_y.is_floating_point():
        raise ContractError("code", f"{name}: targets must be integer class indices, got {train_y.dtype}")
    low = int(min(train_y.min(), test_y.min())) if train_y.numel() and test_y.numel() else 0
    if low < 0:
        raise ContractError("code", f"{name}: targets must be class indices ≥ 0, found {low}")
    seen = int(max(train_y.max(), test_y.max())) + 1
    declared = getattr(train, "num_classes", None)
    if declared is None:
        return seen
    if isinstance(declared, bool) or not isinstance(declared, int) or declared < 1:
        raise ContractError("code", f"{name}: the train split's num_classes must be a positive int, got {declared!r}")
    if seen > declared:
        raise ContractError("code", f"{name}: the train split says num_classes={declared} but a target is {seen - 1}")
    return declared


def load_user_dataset(name: str, loader: Callable[..., Any], options: dict[str, Any]) -> InMemoryDataset | MapDataset:
    """The user's dataset (on CPU): in memory for tensor pairs, map-style when a split is; a
    :class:`ContractError` naming what is wrong."""
    result = call_loader(name, loader, options)
    if isinstance(result, (InMemoryDataset, MapDataset)):
        return result
    train, test = splits(name, result)
    if _is_map_style(train) or _is_map_style(test):
        return _map_dataset(name, train, test)
    train_x, train_y = materialise(name, "train", train)
    test_x, test_y = materialise(name, "test", test)
    classes = num_classes(name, train, train_y, test_y)
    try:
        return InMemoryDataset(name=name, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                               num_classes=classes, input_shape=tuple(train_x.shape[1:]))
    except (TypeError, ValueError) as error:
        raise ContractError("code", f"{name}: {str(error).splitlines()[0]}") from None


def _map_dataset(name: str, train: Any, test: Any) -> MapDataset:
    """Both splits map-style (a tensor pair wrapped), checked on their first items, not read."""
    parts = []
    for which, split in (("train", train), ("test", test)):
        if _is_tensor_pair(split):
            split = TensorPairs(*materialise(name, which, split))
        if len(split) == 0:
            raise ContractError("code", f"{name}: the {which} split is empty; both splits need examples")
        parts.append((split, read_item(name, which, split, 0)[0]))
    (train, first_train), (test, first_test) = parts
    if first_train.shape != first_test.shape:
        raise ContractError("code", f"{name}: train inputs have shape {tuple(first_train.shape)}, test inputs "
                                    f"{tuple(first_test.shape)}; every input must have one shape")
    train_y, test_y = _targets(name, "train", train), _targets(name, "test", test)
    classes = num_classes(name, train, train_y, test_y)
    typed = [split if isinstance(split, TensorPairs) else TypedSplit(split) for split in (train, test)]
    return MapDataset(name, *typed, classes, tuple(first_train.shape))


def _targets(name: str, which: str, split: Any) -> Tensor:
    """A split's targets: its ``targets`` attribute when it has one (no item is read), else every item's."""
    if isinstance(split, TensorPairs):
        return split.targets
    declared = getattr(split, "targets", None)
    if declared is not None and len(declared) == len(split):
        return torch.as_tensor(declared)
    return torch.stack([read_item(name, which, split, i)[1] for i in range(len(split))])
