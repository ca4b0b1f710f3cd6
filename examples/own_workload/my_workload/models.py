"""The model: an MLP with batch norm, built by the contract ``build(input_shape, num_classes, **options)``."""

import math

from torch import nn


def build(input_shape, num_classes, width=64, depth=2):
    """Flatten → [Linear → BatchNorm1d → ReLU] × depth → Linear. scalestudy turns the BatchNorm1d layers
    into ghost batch norm when the spec sets workload.ghost_batch_size."""
    layers, features = [nn.Flatten()], math.prod(input_shape)
    for _ in range(depth):
        layers += [nn.Linear(features, width, bias=False), nn.BatchNorm1d(width), nn.ReLU()]
        features = width
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)
