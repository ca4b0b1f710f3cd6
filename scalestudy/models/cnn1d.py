"""A small 1-D convolutional network for mnist1d (inputs: 40 floats, or (channels, length))."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

_STRIDES = (1, 2, 2)  # length 40 → 40 → 20 → 10


class CNN1d(nn.Module):
    """3 × [Conv1d k=5 pad 2 → BatchNorm1d → ReLU] (strides 1, 2, 2) → flatten → Linear.

    The head flattens instead of average-pooling because position matters in mnist1d (the
    reference CNN of Greydanus 2020 flattens too); at length 40 the head stays small.
    A flat input of shape (N, L) is read as one channel of length L.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int,
                 channels: int = 32, norm: str = "batch") -> None:
        super().__init__()
        if len(input_shape) == 1:
            in_channels, length = 1, input_shape[0]
        elif len(input_shape) == 2:
            in_channels, length = input_shape
        else:
            raise ValueError(f"CNN1d expects an input shape (L,) or (C, L), got {tuple(input_shape)}")
        layers: list[nn.Module] = []
        for stride in _STRIDES:
            layers.append(nn.Conv1d(in_channels, channels, 5, stride=stride, padding=2, bias=norm == "none"))
            if norm == "batch":
                layers.append(nn.BatchNorm1d(channels))
            layers.append(nn.ReLU(inplace=True))
            in_channels = channels
            length = (length - 1) // stride + 1
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels * length, num_classes)
        for module in self.features:
            if isinstance(module, nn.Conv1d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        return self.head(self.features(x).flatten(1))
