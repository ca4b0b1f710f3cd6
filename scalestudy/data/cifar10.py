"""CIFAR-10 through ``torchvision.datasets.CIFAR10``, whole splits as normalised tensors.

torchvision reads the python-pickle release (``cifar-10-batches-py/``) and, before
reading, checks every file against the md5 sums in its class attributes
(``train_list``, ``test_list``, ``meta``) with ``datasets.utils.check_integrity``,
which accepts a missing md5 (``None``) as "the file exists". With
``verify_checksums: false`` we use a subclass whose lists name the same files with
``None`` sums: torchvision's own reader then loads files in CIFAR-10's format that are
not the original release (a subset, the test fixtures in ``tests/cifar_fixtures.py``).
The default keeps torchvision's full md5 check.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import CIFAR10

from scalestudy.data.augment import random_crop_flip
from scalestudy.data.base import InMemoryDataset
from scalestudy.data.options import CIFAR10_TRAIN_EXAMPLES, Cifar10Options

# Per-channel mean and std of the CIFAR-10 training images (pixel values in [0, 1]).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class _UncheckedCIFAR10(CIFAR10):
    """torchvision's CIFAR10 with the md5 sums removed: files must exist, any content."""

    train_list = [[name, None] for name, _ in CIFAR10.train_list]
    test_list = [[name, None] for name, _ in CIFAR10.test_list]
    meta = {**CIFAR10.meta, "md5": None}


def _files(root: Path) -> list[Path]:
    names = [name for name, _ in CIFAR10.train_list + CIFAR10.test_list] + [CIFAR10.meta["filename"]]
    return [root / CIFAR10.base_folder / name for name in names]


def _read_split(root: Path, options: Cifar10Options, train: bool) -> CIFAR10:
    cls = CIFAR10 if options.verify_checksums else _UncheckedCIFAR10
    missing = [p for p in _files(root) if not p.is_file()]
    if missing and not options.download:
        raise FileNotFoundError(
            f"CIFAR-10 not found in {root} (missing {missing[0]}); "
            "set download: true in the dataset options to fetch it"
        )
    try:
        return cls(str(root), train=train, download=options.download)
    except RuntimeError as error:
        if "corrupted" not in str(error):
            raise
        raise RuntimeError(
            f"CIFAR-10 files in {root} fail torchvision's md5 check (corrupted, or not the "
            "original release): delete them and download again, or set verify_checksums: false"
        ) from None


def normalise_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 NCHW pixels -> float32 (x/255 − mean)/std per channel, on the images' device.

    Normalised in place after one conversion: the full training set is 614 MB as float32,
    so no temporaries of that size.
    """
    x = images.float()
    mean = torch.tensor(CIFAR10_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD, device=x.device).view(1, 3, 1, 1)
    return x.div_(255).sub_(mean).div_(std)


def _to_tensors(split: CIFAR10, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    images = split.data[:limit]  # (n, 32, 32, 3) uint8, HWC
    labels = np.asarray(split.targets[:limit], dtype=np.int64)
    # Reorder to NCHW as uint8 (cheap), then normalise.
    return normalise_images(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()), torch.from_numpy(labels)


def random_cifar10(train_size: int, test_size: int, device: str | torch.device, seed: int = 0) -> InMemoryDataset:
    """Random uint8 images and labels in CIFAR-10's format, drawn on ``device`` and normalised as
    CIFAR-10 is, with its augmentation: for speed measurements where the pixels do not matter
    (the GPU check has no copy of CIFAR-10 and no network)."""
    generator = torch.Generator(device=device).manual_seed(seed)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = torch.randint(0, 256, (n, 3, 32, 32), generator=generator, device=device, dtype=torch.uint8)
        return normalise_images(pixels), torch.randint(0, 10, (n,), generator=generator, device=device)

    (train_x, train_y), (test_x, test_y) = split(train_size), split(test_size)
    return InMemoryDataset(name="cifar10-random", train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                           num_classes=10, input_shape=(3, 32, 32), augment=random_crop_flip)


def load_cifar10(options: Cifar10Options) -> InMemoryDataset:
    root = Path(os.path.expanduser(options.data_dir))
    train, test = _read_split(root, options, train=True), _read_split(root, options, train=False)
    for split, wanted in (("train", options.train_size), ("test", options.test_size)):
        found = len((train if split == "train" else test).data)
        if wanted is not None and wanted > found:
            raise ValueError(f"cifar10 {split}_size {wanted} exceeds the {found} images in {root}")
    if options.train_size is None and len(train.data) != CIFAR10_TRAIN_EXAMPLES:
        # train_size() promised N = 50000 to validation and the noise scale: keep it true.
        raise ValueError(
            f"found {len(train.data)} training images in {root}, not CIFAR-10's "
            f"{CIFAR10_TRAIN_EXAMPLES}: set train_size to use them"
        )
    train_x, train_y = _to_tensors(train, options.train_size)
    test_x, test_y = _to_tensors(test, options.test_size)
    return InMemoryDataset(
        name="cifar10",
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=10,
        input_shape=(3, 32, 32),
        augment=random_crop_flip if options.augment else None,
    )
