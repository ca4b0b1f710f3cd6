"""Two loaders of the same data, by the contract ``load(**options) -> (train, test)``:

* ``load_blobs``: each split a pair of tensors (inputs, targets), held in memory;
* ``load_blobs_map``: each split a map-style ``torch.utils.data.Dataset`` of (input, target) pairs,
  which declares its ``num_classes``.

The data: a mixture of Gaussian clusters, several per class (``centres_per_class``), so the classes are
not linearly separable and the network needs many updates to learn them: at a fixed number of epochs
the learning rate then decides the accuracy, as it does in real training.
"""

import torch
from torch.utils.data import Dataset


def _blobs(count, centres, classes, spread, generator):
    which = torch.randint(0, len(centres), (count,), generator=generator)
    inputs = centres[which] + spread * torch.randn(count, centres.shape[1], generator=generator)
    return inputs, which % classes  # centre j belongs to class j mod classes


def load_blobs(train_size=2048, test_size=4096, dim=16, classes=4, centres_per_class=8, spread=0.8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes * centres_per_class, dim, generator=generator)
    return tuple(_blobs(size, centres, classes, spread, generator) for size in (train_size, test_size))


class Blobs(Dataset):
    """A map-style view of one split: item i is (input, label)."""

    def __init__(self, inputs, labels, num_classes):
        self.inputs, self.labels, self.num_classes = inputs, labels, num_classes

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.inputs[index], int(self.labels[index])


def load_blobs_map(classes=4, **options):
    (train_x, train_y), (test_x, test_y) = load_blobs(classes=classes, **options)
    return Blobs(train_x, train_y, classes), Blobs(test_x, test_y, classes)
