"""Two loaders of the same data, by the contract ``load(**options) -> (train, test)``:

* ``load_blobs``: each split a pair of tensors (inputs, targets), held in memory;
* ``load_blobs_map``: each split a map-style ``torch.utils.data.Dataset`` of (input, target) pairs,
  which declares its ``num_classes``.

The data: Gaussian clusters around random centres (one per class), overlapping enough that neither
accuracy nor the best learning rate is trivial.
"""

import torch
from torch.utils.data import Dataset


def _blobs(count, centres, spread, generator):
    labels = torch.randint(0, len(centres), (count,), generator=generator)
    inputs = centres[labels] + spread * torch.randn(count, centres.shape[1], generator=generator)
    return inputs, labels


def load_blobs(train_size=1024, test_size=512, dim=16, classes=4, spread=1.2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=generator)
    return _blobs(train_size, centres, spread, generator), _blobs(test_size, centres, spread, generator)


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
