"""Wide residual network WRN-16-4 (Zagoruyko & Komodakis 2016), about 2.75M parameters.

Pre-activation basic blocks (BN → ReLU → conv3×3 → BN → ReLU → dropout → conv3×3) in three
groups of (depth − 4)/6 blocks with 16k, 32k, 64k channels (k = widen factor); a 1×1 conv
shortcut, applied to the pre-activated input, where the shape changes.

``norm="none"`` removes the normalisation layers; each residual branch then starts as zero (its
last conv is zero-initialised), so the network is a stack of identities at init and trains.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _norm_layer(channels: int, norm: str) -> nn.Module:
    return nn.BatchNorm2d(channels) if norm == "batch" else nn.Identity()


class WideBasicBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, stride: int, dropout: float, norm: str) -> None:
        super().__init__()
        bias = norm == "none"
        self.bn1 = _norm_layer(in_channels, norm)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=bias)
        self.bn2 = _norm_layer(channels, norm)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=bias)
        self.shortcut = (nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False)
                         if stride != 1 or in_channels != channels else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(activated)
        out = self.conv1(activated)
        out = self.conv2(self.dropout(F.relu(self.bn2(out))))
        return out + shortcut


class WideResNet(nn.Module):
    def __init__(self, input_shape: Sequence[int], num_classes: int, depth: int = 16, widen_factor: int = 4,
                 dropout: float = 0.0, norm: str = "batch") -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n + 4, got {depth}")
        if len(input_shape) != 3:
            raise ValueError(f"WideResNet expects an input shape (C, H, W), got {tuple(input_shape)}")
        blocks_per_group = (depth - 4) // 6
        self.stem = nn.Conv2d(input_shape[0], 16, 3, padding=1, bias=False)
        blocks, in_channels = [], 16
        for group, channels in enumerate((16 * widen_factor, 32 * widen_factor, 64 * widen_factor)):
            for i in range(blocks_per_group):
                stride = 2 if group > 0 and i == 0 else 1
                blocks.append(WideBasicBlock(in_channels, channels, stride, dropout, norm))
                in_channels = channels
        self.blocks = nn.Sequential(*blocks)
        self.bn = _norm_layer(in_channels, norm)
        self.fc = nn.Linear(in_channels, num_classes)

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.zeros_(self.fc.bias)
        if norm == "none":
            for block in self.blocks:
                nn.init.zeros_(block.conv2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.blocks(self.stem(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def wrn16_4(input_shape: Sequence[int], num_classes: int, norm: str = "batch", dropout: float = 0.0) -> WideResNet:
    return WideResNet(input_shape, num_classes, depth=16, widen_factor=4, dropout=dropout, norm=norm)
