"""``image_folder``: torchvision's ``ImageFolder`` as a built-in streaming dataset.

Images are decoded, resized to ``image_size``² RGB, scaled to [0, 1] and normalised in the
DataLoader's workers (deterministic per image); the random crop and flip, when asked for, run
batched on the device after loading (the same ``augment(batch, generator, first, total)`` as
CIFAR-10's), so the streaming and in-memory paths, and a resumed epoch, see the same pixels.
Class indices come from the training folders (sorted names, as ``ImageFolder`` does) and the test
split uses the same mapping.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
from torch.utils.data import Subset
from torchvision import transforms
from torchvision.datasets import ImageFolder

from scalestudy.data.augment import random_crop_flip
from scalestudy.data.folders import classes_of as _classes, roots as _roots, split_sizes
from scalestudy.data.options import ImageFolderOptions
from scalestudy.data.stream import MapDataset


class _Folder(ImageFolder):
    """``ImageFolder`` with a given class → index mapping (the training split's), empty classes allowed."""

    def __init__(self, root: str, class_to_idx: dict[str, int], transform) -> None:
        self._given = dict(class_to_idx)
        super().__init__(root, transform=transform, allow_empty=True)

    def find_classes(self, directory):
        return sorted(self._given, key=self._given.get), dict(self._given)


def _rgb(image):
    return image.convert("RGB")


def load_image_folder(options: ImageFolderOptions) -> MapDataset:
    steps = [transforms.Resize((options.image_size, options.image_size)), transforms.ToTensor()]
    if options.mean is not None:
        steps.append(transforms.Normalize(options.mean, options.std))
    transform = transforms.Compose([_rgb, *steps])
    train_root, test_root = _roots(options)
    classes = _classes(train_root)
    train = _Folder(str(train_root), classes, transform)
    if test_root is not None:
        test = _Folder(str(test_root), classes, transform)
    else:  # a seeded shuffle of the one folder: the same split on every node and every trial
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(options.seed)).tolist()
        held_out = split_sizes(options)[1]
        train, test = Subset(train, sorted(order[held_out:])), Subset(train, sorted(order[:held_out]))
    augment = partial(random_crop_flip, padding=max(1, options.image_size // 8)) if options.augment else None
    return MapDataset("image_folder", train, test, num_classes=len(classes),
                      input_shape=(3, options.image_size, options.image_size), augment=augment)
