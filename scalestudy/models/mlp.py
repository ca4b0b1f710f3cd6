"""Multilayer perceptron: the smallest workload (mnist1d), for fast sweeps over B, lr and momentum."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class MLP(nn.Module):
    """Flatten → [Linear → BatchNorm1d → ReLU] per hidden width → Linear.

    With ``norm="batch"`` the hidden Linear layers have no bias (BatchNorm's shift replaces it);
    with ``norm="none"`` they keep it.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int,
                 hidden: Sequence[int] = (256, 256), norm: str = "batch") -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for out in hidden:
            layers.append(nn.Linear(width, out, bias=norm == "none"))
            if norm == "batch":
                layers.append(nn.BatchNorm1d(out))
            layers.append(nn.ReLU(inplace=True))
            width = out
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
