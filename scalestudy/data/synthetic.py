"""A fast, deterministic classification task for tests and demos (no files, no cache).

Inputs are standard Gaussian vectors; labels are the argmax of a fixed random two-layer
tanh teacher. The task is learnable (an MLP student can represent the teacher) yet not
linearly separable, so batch size and learning rate matter as on real data. Optional
label noise on the training split only, so test accuracy still measures the teacher.
"""

from __future__ import annotations

import math

import torch

from scalestudy.data.base import InMemoryDataset
from scalestudy.data.options import SyntheticOptions

TEACHER_HIDDEN = 64


def _teacher_labels(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    return (torch.tanh(x @ w1) @ w2).argmax(dim=1)


def load_synthetic(options: SyntheticOptions) -> InMemoryDataset:
    # One CPU generator, drawn in a fixed order: same options -> identical tensors on
    # every machine, whatever device the dataset is moved to afterwards.
    gen = torch.Generator().manual_seed(options.seed)
    dim, classes = options.dim, options.num_classes
    # Weights scaled so pre-activations are O(1): tanh is neither linear nor saturated.
    w1 = torch.randn(dim, TEACHER_HIDDEN, generator=gen) * (2.0 / math.sqrt(dim))
    w2 = torch.randn(TEACHER_HIDDEN, classes, generator=gen) / math.sqrt(TEACHER_HIDDEN)
    train_x = torch.randn(options.train_size, dim, generator=gen)
    test_x = torch.randn(options.test_size, dim, generator=gen)
    train_y = _teacher_labels(train_x, w1, w2)
    test_y = _teacher_labels(test_x, w1, w2)
    if options.label_noise > 0:
        noisy = torch.rand(options.train_size, generator=gen) < options.label_noise
        random_labels = torch.randint(0, classes, (options.train_size,), generator=gen)
        train_y = torch.where(noisy, random_labels, train_y)
    return InMemoryDataset(
        name="synthetic",
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=classes,
        input_shape=(dim,),
    )
