"""CIFAR ResNets of He et al. 2016 (section 4.2): ResNet-8/20/32, 6n + 2 layers, 0.08M/0.27M/0.46M parameters.

Three stages of n basic blocks with 16, 32, 64 channels (× width/16) on 32×32, 16×16, 8×8 maps,
global average pooling and a linear classifier. Shortcuts are option A: identity, or stride-2
subsampling with zero-padded channels when a stage starts (no parameters).

``norm="none"`` removes every normalisation layer. So that the network still trains, each
residual branch starts as zero (its last conv is zero-initialised) and its first conv is scaled
by L^(-1/2) for L blocks, as in Fixup (Zhang et al. 2019); the convs then have biases.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _norm_layer(channels: int, norm: str) -> nn.Module:
    return nn.BatchNorm2d(channels) if norm == "batch" else nn.Identity()


class BasicBlock(nn.Module):
    """conv3×3 → BN → ReLU → conv3×3 → BN, plus the shortcut, then ReLU."""

    def __init__(self, in_channels: int, channels: int, stride: int, norm: str) -> None:
        super().__init__()
        bias = norm == "none"
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=bias)
        self.bn1 = _norm_layer(channels, norm)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=bias)
        self.bn2 = _norm_layer(channels, norm)
        self.stride = stride
        self.pad_channels = channels - in_channels

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """Option A: subsample, then zero-pad the new channels (half before, half after)."""
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.pad_channels:
            before = self.pad_channels // 2
            x = F.pad(x, (0, 0, 0, 0, before, self.pad_channels - before))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, input_shape: Sequence[int], num_classes: int,
                 norm: str = "batch", width: int = 16) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2, got {depth}")
        if len(input_shape) != 3:
            raise ValueError(f"CifarResNet expects an input shape (C, H, W), got {tuple(input_shape)}")
        blocks_per_stage = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(input_shape[0], width, 3, padding=1, bias=norm == "none"),
            _norm_layer(width, norm), nn.ReLU(inplace=True))
        blocks, in_channels = [], width
        for stage, channels in enumerate((width, 2 * width, 4 * width)):
            for i in range(blocks_per_stage):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(in_channels, channels, stride, norm))
                in_channels = channels
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(in_channels, num_classes)
        _init(self, norm, num_blocks=len(blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def _init(model: CifarResNet, norm: str, num_blocks: int) -> None:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    if norm == "none":
        for block in model.blocks:
            block.conv1.weight.data.mul_(num_blocks ** -0.5)
            nn.init.zeros_(block.conv2.weight)


def resnet8(input_shape: Sequence[int], num_classes: int, norm: str = "batch", width: int = 16) -> CifarResNet:
    return CifarResNet(8, input_shape, num_classes, norm=norm, width=width)


def resnet20(input_shape: Sequence[int], num_classes: int, norm: str = "batch", width: int = 16) -> CifarResNet:
    return CifarResNet(20, input_shape, num_classes, norm=norm, width=width)


def resnet32(input_shape: Sequence[int], num_classes: int, norm: str = "batch", width: int = 16) -> CifarResNet:
    return CifarResNet(32, input_shape, num_classes, norm=norm, width=width)
