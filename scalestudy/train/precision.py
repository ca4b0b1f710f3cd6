"""How a trial computes on its device: bf16 autocast and channels_last images on CUDA, float32 on CPU.

One home for the rule, shared by the epoch loop and the benchmarks that compare against it.
bf16 needs no loss scaling (float32's exponent range); channels_last lets cuDNN pick its NHWC
tensor-core kernels for convolutions. On CPU both would only slow training down.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager:
    """A reusable context: bf16 autocast on CUDA, nothing elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def uses_channels_last(device: torch.device, input_shape: Sequence[int]) -> bool:
    """Images (C, H, W) on CUDA are trained in channels_last memory format."""
    return device.type == "cuda" and len(input_shape) == 3
