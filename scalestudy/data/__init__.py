"""Dataset registry: whole datasets as tensors on the trial's device, or map-style datasets
streamed from disk (``text_bytes``, ``image_folder``; ``scalestudy.data.stream``).

This module stays torch-free: spec validation imports it to check a dataset's name and
options and to learn the training-set size N. The loaders (torch, torchvision, mnist1d)
are imported only when a dataset is loaded.

    opts = dataset_options("mnist1d", {"train_size": 2000})
    train_size("mnist1d", opts)              # 2000, without generating anything
    data = load_dataset("mnist1d", opts, device="cuda")

Built-in datasets have typed options and know N and the example shape without loading. The
user's own (``package.module:attribute``, or a name registered with ``scalestudy.register_dataset``
or an entry point) take free-form options as keyword arguments and are loaded once in the driver
to learn N, the input shape and the number of classes (:func:`dataset_info`, :mod:`.user`).

The dataset at another N (the dataset-size axis) is :func:`at_dataset_size`'s one rule: a built-in's
``train_size`` option, else scalestudy's seeded, nested subsample of the training split
(:class:`TrainSubset`, applied by :func:`load_dataset`; :mod:`.subsample`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from scalestudy.data.options import (
    Cifar10Options,
    ImageFolderOptions,
    Mnist1dOptions,
    NqmOptions,
    SyntheticOptions,
    TextBytesOptions,
)
from scalestudy.registry import Registry, UserOptions

if TYPE_CHECKING:
    import torch

    from scalestudy.data.base import InMemoryDataset
    from scalestudy.data.inspect import Sample
    from scalestudy.data.stream import MapDataset

__all__ = ["DATASETS", "DATASET_OPTIONS", "DatasetInfo", "TrainSubset", "at_dataset_size", "dataset_info",
           "dataset_options", "train_size", "load_dataset"]

DATASETS = Registry(
    "dataset",
    {
        "mnist1d": "scalestudy.data.mnist1d:load_mnist1d",
        "synthetic": "scalestudy.data.synthetic:load_synthetic",
        "cifar10": "scalestudy.data.cifar10:load_cifar10",
        "text_bytes": "scalestudy.data.text:load_text_bytes",
        "image_folder": "scalestudy.data.imagefolder:load_image_folder",
        "nqm": "scalestudy.data.nqm:load_nqm",
    },
    import_paths=True, entry_points="scalestudy.datasets",
    contract="load(**dataset_options) -> (train, test)",
)

DATASET_OPTIONS: dict[str, type[BaseModel]] = {
    "mnist1d": Mnist1dOptions,
    "synthetic": SyntheticOptions,
    "cifar10": Cifar10Options,
    "text_bytes": TextBytesOptions,
    "image_folder": ImageFolderOptions,
    "nqm": NqmOptions,
}


def dataset_options(name: str, raw: Mapping[str, Any] | BaseModel | None = None) -> BaseModel:
    """Validated, frozen options for dataset ``name``.

    Raises ``UnknownNameError`` for an unknown dataset and pydantic's ``ValidationError``
    for an unknown or invalid option (the caller formats it).
    """
    if not DATASETS.is_builtin(DATASETS.check(name)):
        return raw if isinstance(raw, UserOptions) else UserOptions.model_validate(
            raw.model_dump() if isinstance(raw, BaseModel) else dict(raw or {}))
    cls = DATASET_OPTIONS[name]
    if isinstance(raw, cls):
        return raw
    if isinstance(raw, BaseModel):
        raise TypeError(f"{type(raw).__name__} are not options for dataset {name!r}")
    return cls.model_validate(dict(raw or {}))


@dataclass(frozen=True)
class DatasetInfo:
    """What validation needs of a dataset: N, and what a model is built for."""

    train_size: int  # N, training examples
    input_shape: tuple[int, ...]  # one example, without the batch dimension
    num_classes: int
    # The user's dataset: a few training examples, read when it was loaded and checked (data.inspect),
    # for the dry run of the model; None for a built-in's info, which comes from its options.
    sample: Sample | None = field(default=None, compare=False)


def dataset_info(name: str, options: BaseModel) -> DatasetInfo:
    """N, the input shape and the number of classes: from the options for a built-in dataset; the
    user's dataset is loaded (once per process and options) to learn them. Raises
    ``ImportPathError`` or ``ContractError`` (one line, without the spec field) for the user's code."""
    options = dataset_options(name, options)
    if DATASETS.is_builtin(name):
        shape, classes = options.example_shape()  # type: ignore[attr-defined]
        return DatasetInfo(options.train_examples(), shape, classes)  # type: ignore[attr-defined]
    return _user_dataset_info(DATASETS.portable(name), json.dumps(options.model_dump(mode="json"), sort_keys=True))


@functools.lru_cache(maxsize=16)
def _user_dataset_info(name: str, options_json: str) -> DatasetInfo:
    from scalestudy.data.inspect import inspect_dataset
    from scalestudy.data.user import load_user_dataset

    data = load_user_dataset(name, DATASETS.get(name), json.loads(options_json))
    return DatasetInfo(data.train_size, data.input_shape, data.num_classes, inspect_dataset(data))


def train_size(name: str, options: BaseModel) -> int:
    """Number of training examples (N) the loader will return (built-ins: without loading data)."""
    return dataset_info(name, options).train_size


@dataclass(frozen=True)
class TrainSubset:
    """N training examples scalestudy takes itself: the first ``size`` of one permutation of the full
    training split seeded by ``seed`` (the study's, not the trial's; :mod:`.subsample`)."""

    size: int  # N, training examples
    seed: int


def at_dataset_size(name: str, options: BaseModel | Mapping[str, Any] | None, size: int,
                    seed: int) -> tuple[BaseModel, TrainSubset | None]:
    """The dataset at N = ``size`` training examples, as (options, subset): a built-in with a ``train_size``
    option makes N itself (its data exactly as before the axis took any dataset); any other dataset is
    loaded whole and its training split subsampled. Raises pydantic's ``ValidationError`` for a
    ``train_size`` the options refuse; N above the full split is the caller's check (it knows the size)."""
    options = dataset_options(name, options)
    if "train_size" in type(options).model_fields:
        return dataset_options(name, {**options.model_dump(), "train_size": size}), None
    return options, TrainSubset(size, seed)


def load_dataset(
    name: str, options: BaseModel | Mapping[str, Any] | None = None, device: str | torch.device = "cpu",
    subset: TrainSubset | None = None,
) -> InMemoryDataset | MapDataset:
    """Load dataset ``name`` (to CPU, then moved to ``device``; a map-style dataset stays on the CPU,
    its batches are moved as they are loaded); ``subset``: only those training examples."""
    from scalestudy.data.base import InMemoryDataset
    from scalestudy.data.subsample import subsample_train

    options = dataset_options(name, options)
    if not DATASETS.is_builtin(name):
        from scalestudy.data.user import load_user_dataset

        loaded = load_user_dataset(name, DATASETS.get(name), options.model_dump())
    else:
        loaded = DATASETS.get(name)(options)
    if subset is not None:  # cut on the CPU, before the move: only N examples reach the device
        loaded = subsample_train(loaded, subset.size, subset.seed)
    return loaded.to(device) if isinstance(loaded, InMemoryDataset) else loaded
