"""Dataset registry: whole datasets as tensors on the trial's device, or map-style datasets
streamed from disk (``text_bytes``, ``image_folder``; ``scalestudy.data.stream``).

This module stays torch-free: spec validation imports it to check a dataset's name and
options and to learn the training-set size N. The loaders (torch, torchvision, mnist1d)
are imported only when a dataset is loaded.

    opts = dataset_options("mnist1d", {"train_size": 2000})
    train_size("mnist1d", opts)              # 2000, without generating anything
    data = load_dataset("mnist1d", opts, device="cuda")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from scalestudy.data.options import (
    Cifar10Options,
    ImageFolderOptions,
    Mnist1dOptions,
    SyntheticOptions,
    TextBytesOptions,
)
from scalestudy.registry import Registry

if TYPE_CHECKING:
    import torch

    from scalestudy.data.base import InMemoryDataset
    from scalestudy.data.stream import MapDataset

__all__ = ["DATASETS", "DATASET_OPTIONS", "dataset_options", "train_size", "load_dataset"]

DATASETS = Registry(
    "dataset",
    {
        "mnist1d": "scalestudy.data.mnist1d:load_mnist1d",
        "synthetic": "scalestudy.data.synthetic:load_synthetic",
        "cifar10": "scalestudy.data.cifar10:load_cifar10",
        "text_bytes": "scalestudy.data.text:load_text_bytes",
        "image_folder": "scalestudy.data.imagefolder:load_image_folder",
    },
)

DATASET_OPTIONS: dict[str, type[BaseModel]] = {
    "mnist1d": Mnist1dOptions,
    "synthetic": SyntheticOptions,
    "cifar10": Cifar10Options,
    "text_bytes": TextBytesOptions,
    "image_folder": ImageFolderOptions,
}


def dataset_options(name: str, raw: Mapping[str, Any] | BaseModel | None = None) -> BaseModel:
    """Validated, frozen options for dataset ``name``.

    Raises ``UnknownNameError`` for an unknown dataset and pydantic's ``ValidationError``
    for an unknown or invalid option (the caller formats it).
    """
    cls = DATASET_OPTIONS[DATASETS.check(name)]
    if isinstance(raw, cls):
        return raw
    if isinstance(raw, BaseModel):
        raise TypeError(f"{type(raw).__name__} are not options for dataset {name!r}")
    return cls.model_validate(dict(raw or {}))


def train_size(name: str, options: BaseModel) -> int:
    """Number of training examples (N) the loader will return, without loading data."""
    return dataset_options(name, options).train_examples()  # type: ignore[attr-defined]


def load_dataset(
    name: str, options: BaseModel | Mapping[str, Any] | None = None, device: str | torch.device = "cpu"
) -> InMemoryDataset | MapDataset:
    """Load dataset ``name`` (to CPU, then moved to ``device``; a map-style dataset stays on the CPU,
    its batches are moved as they are loaded)."""
    from scalestudy.data.base import InMemoryDataset

    options = dataset_options(name, options)
    loaded = DATASETS.get(name)(options)
    return loaded.to(device) if isinstance(loaded, InMemoryDataset) else loaded
