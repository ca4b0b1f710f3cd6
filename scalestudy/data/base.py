"""The in-memory dataset every loader returns: whole splits as tensors on one device.

Small datasets (MNIST-1D, CIFAR-10: 614 MB as float32) fit on an accelerator, so the
training loop indexes batches out of device tensors instead of running a DataLoader,
and augmentation runs batched on the same device (the cifar10-airbench approach).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

#: ``augment(batch, generator, first=0, total=None) -> batch``: batched, on the batch's device;
#: the generator lives on that device too, so a seeded generator makes the augmentation
#: reproducible. ``batch`` is rows [first, first + len(batch)) of a global batch of ``total``
#: examples (None: the batch is the whole global batch): draw the random parameters for all
#: ``total`` examples and apply this batch's rows of them, so that W data-parallel workers,
#: which share the generator's seed, augment a global batch exactly as one worker would.
Augment = Callable[[Tensor, torch.Generator, int, "int | None"], Tensor]


def _check_augment(name: str, augment: Augment) -> None:
    try:
        inspect.signature(augment).bind(None, None, 0, 1)
    except TypeError:
        raise TypeError(f"{name}: augment must accept (batch, generator, first, total): a data-parallel "
                        "worker augments rows [first, first + len(batch)) of a global batch of total "
                        "examples (see scalestudy.data.base.Augment)") from None
    except ValueError:  # no signature to inspect (a builtin): trust it
        pass


@dataclass(frozen=True, eq=False, repr=False)
class InMemoryDataset:
    """Train and test splits as tensors: x float32 (normalised) or int64 (token ids), y int64 (class
    indices (n,), or next tokens (n, L))."""

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int
    input_shape: tuple[int, ...]  # one example, without the batch dimension
    augment: Augment | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        for split, x, y in (("train", self.train_x, self.train_y), ("test", self.test_x, self.test_y)):
            if x.dtype not in (torch.float32, torch.int64) or y.dtype != torch.int64:
                raise TypeError(f"{self.name} {split}: want float32 (or int64 token) x and int64 y, "
                                f"got {x.dtype} and {y.dtype}")
            if tuple(x.shape[1:]) != self.input_shape:
                raise ValueError(f"{self.name} {split}_x has shape {tuple(x.shape)}, want (n, *{self.input_shape})")
            if y.dim() == 0 or y.shape[0] != x.shape[0]:
                raise ValueError(f"{self.name} {split}_y has shape {tuple(y.shape)}, want ({x.shape[0]}, ...)")
        if self.augment is not None:
            _check_augment(self.name, self.augment)

    @property
    def train_size(self) -> int:
        """Number of training examples."""
        return int(self.train_x.shape[0])

    @property
    def test_size(self) -> int:
        """Number of test examples."""
        return int(self.test_x.shape[0])

    @property
    def device(self) -> torch.device:
        return self.train_x.device

    def to(self, device: str | torch.device) -> InMemoryDataset:
        """The same dataset on ``device`` (``self`` when it is already there)."""
        device = torch.device(device)
        if all(t.device == device for t in (self.train_x, self.train_y, self.test_x, self.test_y)):
            return self
        return dataclasses.replace(
            self,
            train_x=self.train_x.to(device),
            train_y=self.train_y.to(device),
            test_x=self.test_x.to(device),
            test_y=self.test_y.to(device),
        )

    def __repr__(self) -> str:
        augment = getattr(self.augment, "__name__", self.augment)
        return (
            f"InMemoryDataset({self.name!r}, train={self.train_size}, test={self.test_size}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes}, "
            f"device={self.device}, augment={augment})"
        )
