"""``bench compile``: does ``torch.compile`` pay for a trial? The bare loop eager vs compiled.

Measured on the bare loop (``bench.bare``), not on scalestudy's: the loop gains a compile option
only where this shows a gain worth its compile time over a trial's length (issue 15: measured
first). ResNet-8/20 on CIFAR-format data generated on the device; epochs alternate between the
two versions; the compile time is the first compiled epoch's excess over an eager one.
"""

from __future__ import annotations

import statistics
import time

import torch

from scalestudy.bench import BenchTable
from scalestudy.bench.bare import BareLoop
from scalestudy.bench.device import bench_device, describe, synchronize
from scalestudy.data.cifar10 import random_cifar10
from scalestudy.models import build_model


def _epoch_seconds(loop: BareLoop, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    loop.epoch()
    synchronize(device)
    return time.perf_counter() - start


def bench_compile(tiny: bool = False, device: str | None = None) -> BenchTable:
    device = bench_device(device)
    # Tiny runs the path only: dynamo's tracing with the eager backend (inductor needs minutes on CPU).
    backend = "eager" if tiny else "inductor"
    train_size, test_size, epochs = (64, 32, 1) if tiny else (50_000, 10_000, 4)
    data = random_cifar10(train_size, test_size, device)
    table = BenchTable("compile", ["device", "model", "B", "backend", "eager ex/s", "compiled ex/s", "ratio",
                                   "compile s"])
    for model in ("resnet8",) if tiny else ("resnet8", "resnet20"):
        for batch_size in (32,) if tiny else (128, 512):
            loops = {}
            for name, compile in (("eager", False), ("compiled", backend)):
                torch.manual_seed(0)
                net = build_model(model, input_shape=data.input_shape, num_classes=data.num_classes).to(device)
                loops[name] = BareLoop(net, data, batch_size, compile=compile)
            first = {name: _epoch_seconds(loop, device) for name, loop in loops.items()}  # compiles, warms up
            times: dict[str, list[float]] = {"eager": [], "compiled": []}
            for _ in range(epochs):
                for name, loop in loops.items():
                    times[name].append(_epoch_seconds(loop, device))
            examples = (train_size // batch_size) * batch_size
            eager, compiled = statistics.median(times["eager"]), statistics.median(times["compiled"])
            table.add(device=device.type, model=model, B=batch_size, backend=backend,
                      **{"eager ex/s": examples / eager, "compiled ex/s": examples / compiled,
                         "ratio": eager / compiled, "compile s": first["compiled"] - first["eager"]})
    table.notes.append(f"device: {describe(device)}; ratio > 1: compiled is faster; a trial of E epochs gains "
                       "E·(eager − compiled) epoch time and pays the compile time once per trial process")
    return table
