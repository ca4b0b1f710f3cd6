"""``bench pack``: examples/s of the whole device with k = 1, 2, 4, 8, 16 trials on it, three ways.

A scaling study is many small trials, and one of them uses a few percent of a modern GPU: the
study's cost is set by how many trials share a device. This measures the quickstart's trial
(mnist1d, MLP 256-256, ghost BN 16) and a ResNet-8 CIFAR trial at B = 32 and 256, run as k
separate processes (Ray's fractional GPUs), as k CUDA streams of one process, and as one
vmapped stack of k models (``pack_ways``). Every trial of a setting does the same number of
steps, calibrated once per (workload, B) so that one trial alone trains for about a fixed time.

The decision it informs (issue 15): a vmapped pack becomes a trial mode only if it beats
separate processes by at least 2× at some setting that matters for studies; until then,
``resources.gpus_per_worker: 1/k`` (fractional GPUs) is the way to put k trials on a device.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence

import torch

from scalestudy.bench import BenchTable
from scalestudy.bench.pack_members import WORKLOADS, Member
from scalestudy.bench.device import bench_device, describe, synchronize
from scalestudy.bench.pack_ways import WARMUP_STEPS, ProcessPool, time_streams, time_vmap

TRIALS_PER_DEVICE = (1, 2, 4, 8, 16)
BATCH_SIZES = (32, 256)
DECISION_RATIO = 2.0  # vmap over processes, at some setting, before packs are worth building


def calibrated_steps(name: str, data, batch_size: int, device: torch.device, seconds: float) -> int:
    """Steps for which one trial alone trains about ``seconds`` (at least 3, at most 2000)."""
    member = Member(WORKLOADS[name], data, batch_size, seed=0, device=device)
    for _ in range(WARMUP_STEPS):
        member.step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(3):
        member.step()
    synchronize(device)
    per_step = (time.perf_counter() - start) / 3
    return max(3, min(2000, math.ceil(seconds / per_step)))


def _one_process_threads(device: torch.device, k: int) -> int:
    # On CPU the device is the machine's cores: a vmapped stack of k trials may use up to k of
    # them, as k single-threaded processes would.
    return min(k, os.cpu_count() or 1) if device.type == "cpu" else torch.get_num_threads()


def bench_pack(tiny: bool = False, device: str | None = None, trials: Sequence[int] | None = None,
               batch_sizes: Sequence[int] | None = None) -> BenchTable:
    """``trials`` and ``batch_sizes`` narrow the measured settings (a small machine measures k ≤ 4)."""
    device = bench_device(device)
    ks = tuple(trials or ((1, 2) if tiny else TRIALS_PER_DEVICE))
    batch_sizes = tuple(batch_sizes or ((32,) if tiny else BATCH_SIZES))
    seconds = 0.3 if device.type == "cuda" else 1.0  # one trial alone; k trials do k times the work
    table = BenchTable("pack", ["device", "workload", "B", "k", "steps", "processes ex/s", "streams ex/s",
                                "vmap ex/s", "streams/processes", "vmap/processes"])
    default_threads = torch.get_num_threads()
    with ProcessPool(max(ks), device) as pool:
        for name in WORKLOADS:
            data = WORKLOADS[name].dataset(device, tiny)  # also writes mnist1d's cache before the workers read it
            for batch_size in batch_sizes:
                torch.set_num_threads(1)
                steps = 2 if tiny else calibrated_steps(name, data, batch_size, device, seconds)
                for k in ks:
                    torch.set_num_threads(1)
                    processes = pool.time(name, batch_size, k, steps, tiny)
                    streams = time_streams(WORKLOADS[name], data, batch_size, k, steps, device)
                    torch.set_num_threads(_one_process_threads(device, k))
                    vmapped = time_vmap(WORKLOADS[name], data, batch_size, k, steps, device)
                    table.add(device=device.type, workload=name, B=batch_size, k=k, steps=steps,
                              **{"processes ex/s": processes, "streams ex/s": streams, "vmap ex/s": vmapped,
                                 "streams/processes": streams / processes, "vmap/processes": vmapped / processes})
    torch.set_num_threads(default_threads)
    table.notes += pack_notes(table, device)
    return table


def pack_notes(table: BenchTable, device: torch.device) -> list[str]:
    """What each way is, and the decision rule applied to the measured rows (the last note)."""
    notes = [f"device: {describe(device)}; examples/s of the whole device (k trials together)",
             "processes: k spawned processes, one trial each (Ray's fractional GPUs: gpus_per_worker = 1/k)"
             + ("; one thread each" if device.type == "cpu" else ""),
             "streams: k threads of one process, each trial on its own CUDA stream"
             if device.type == "cuda" else "streams: on CPU, k threads of one process (no CUDA streams on CPU)",
             "vmap: one torch.func stack of k models (stack_module_state + functional_call + vmap)"
             + (", up to k threads" if device.type == "cpu" else ", NCHW (no channels_last under vmap)")]
    # k = 1 is one trial either way: a vmapped "pack" of one says nothing about packing.
    best = max((row for row in table.rows if row["k"] > 1), key=lambda row: row["vmap/processes"], default=None)
    if best is not None:
        verdict = ("build packs (resources.pack_size)" if best["vmap/processes"] >= DECISION_RATIO
                   else "fractional GPUs stay the way (gpus_per_worker: 1/k)")
        notes.append(f"best vmap/processes: {best['vmap/processes']:.2f} ({best['workload']} B={best['B']} "
                     f"k={best['k']}); decision rule ≥ {DECISION_RATIO:g}× at some setting: {verdict}")
    return notes
