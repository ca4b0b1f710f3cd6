"""``bench ghostbn``: forward+backward time of GhostBatchNorm vs nn.BatchNorm.

Same input, same feature count, interleaved repetitions; the reported time is the
median over repetitions of a block of iterations.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from scalestudy.bench import BenchTable
from scalestudy.bench.device import bench_device, describe
from scalestudy.models.ghost_bn import GhostBatchNorm1d, GhostBatchNorm2d


def _time(layer: nn.Module, x: torch.Tensor, iterations: int) -> float:
    start = time.perf_counter()
    for _ in range(iterations):
        layer(x).sum().backward()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / iterations


def compare(dims: int, batch: int, ghost: int, device: str, repeats: int, iterations: int) -> dict:
    if dims == 1:
        x, plain, ghosted = torch.randn(batch, 256, device=device), nn.BatchNorm1d(256), GhostBatchNorm1d(256, ghost)
    else:
        x, plain, ghosted = (torch.randn(batch, 16, 32, 32, device=device), nn.BatchNorm2d(16),
                             GhostBatchNorm2d(16, ghost))
    x.requires_grad_(True)
    plain, ghosted = plain.to(device), ghosted.to(device)
    _time(plain, x, 2), _time(ghosted, x, 2)  # warm-up
    plain_t, ghost_t = [], []
    for _ in range(repeats):
        plain_t.append(_time(plain, x, iterations))
        ghost_t.append(_time(ghosted, x, iterations))
    p, g = statistics.median(plain_t), statistics.median(ghost_t)
    shape = "(B, 256)" if dims == 1 else "(B, 16, 32, 32)"
    return {"layer": f"{dims}d {shape}", "B": batch, "ghost": ghost, "BatchNorm ms": p * 1e3,
            "GhostBatchNorm ms": g * 1e3, "ratio": g / p}


def bench_ghostbn(tiny: bool = False) -> BenchTable:
    device = bench_device()
    # One thread on CPU: a trial holds one CPU (cpus_per_worker: 1), and two OpenMP threads
    # on a busy 2-core machine time the scheduler, not the layer.
    torch.set_num_threads(1)
    table = BenchTable("ghostbn", ["layer", "B", "ghost", "BatchNorm ms", "GhostBatchNorm ms", "ratio"])
    batches, ghosts = ((512,), (16,)) if tiny else ((512, 4096), (16, 32, 64, 128))
    repeats, iterations = (1, 2) if tiny else (7, 5)
    for dims in (1, 2):
        for batch in batches:
            for ghost in ghosts:
                table.add(**compare(dims, batch, ghost, device, repeats, iterations))
    table.notes.append(f"device: {describe(device)}, {torch.get_num_threads()} threads; target: ratio ≤ 1.15")
    return table
