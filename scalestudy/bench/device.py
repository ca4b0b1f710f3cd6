"""The device a benchmark measures, and how to time work on it.

CUDA work is asynchronous: a host clock means something only after ``synchronize``.
"""

from __future__ import annotations

import os

import torch


def bench_device(device: str | torch.device | None = None) -> torch.device:
    """``device``, else CUDA when there is one, else the CPU."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (nothing to wait for on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def describe(device: torch.device) -> str:
    """For notes: the GPU's name, or the CPU's core count; and torch's version."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {os.cpu_count()} cores"
    return f"{name}; torch {torch.__version__}"
