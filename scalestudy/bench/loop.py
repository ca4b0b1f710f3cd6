"""``bench loop``: examples/s of scalestudy's epoch loop vs a minimal bare PyTorch loop.

Both train the same model (same class, ghost BN included) on the same device-resident
data with the same batch size, device and thread count, and both evaluate the test set
once per epoch. Epochs alternate between the two so machine noise hits both alike, and
the figure is the median of the per-epoch ratios.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from scalestudy.bench import BenchTable
from scalestudy.spec import spec_from_dict
from scalestudy.trial.config import TrialConfig, expand_trials
from scalestudy.train.distributed import Distributed
from scalestudy.train.loop import EVAL_BATCH, EpochLoop


def loop_config(batch_size: int, train_size: int, model: str = "mlp", device: str = "cpu") -> TrialConfig:
    spec = spec_from_dict({
        "name": "bench-loop",
        "workload": {"dataset": "mnist1d", "dataset_options": {"train_size": train_size, "test_size": 1000},
                     "model": model, "epochs": 1000, "ghost_batch_size": 16},
        "grid": {"batch_size": [batch_size], "lr": [0.01], "momentum": [0.9]},
        "resources": {"gpus_per_worker": 1 if device == "cuda" else 0},
    })
    return expand_trials(spec)[0]


class BareLoop:
    """What a researcher would write by hand: gather, forward, backward, step."""

    def __init__(self, reference: EpochLoop) -> None:
        self.data = reference.data
        self.model = reference.model  # built by the same registry call as the loop under test
        self.batch_size = reference.initial.batch_size
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.autocast = reference.autocast
        self.generator = torch.Generator(device=reference.device).manual_seed(0)

    def epoch(self) -> float:
        x, y, n = self.data.train_x, self.data.train_y, self.data.train_size
        self.model.train()
        order = torch.randperm(n, generator=self.generator, device=x.device)
        for step in range(n // self.batch_size):
            batch = order[step * self.batch_size:(step + 1) * self.batch_size]
            with self.autocast:
                loss = F.cross_entropy(self.model(x[batch]), y[batch])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        self.model.eval()
        correct = torch.zeros((), device=x.device)
        with torch.no_grad(), self.autocast:
            for start in range(0, self.data.test_size, EVAL_BATCH):
                logits = self.model(self.data.test_x[start:start + EVAL_BATCH])
                correct += (logits.argmax(1) == self.data.test_y[start:start + EVAL_BATCH]).sum()
        return float(correct.item()) / self.data.test_size


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(batch_size: int, train_size: int, epochs: int, model: str, device: str, threads: int) -> dict:
    torch.set_num_threads(threads)
    ours = EpochLoop(loop_config(batch_size, train_size, model, device), Distributed(device=torch.device(device)))
    bare = BareLoop(EpochLoop(loop_config(batch_size, train_size, model, device),
                              Distributed(device=torch.device(device))))
    ours.train_epoch(), bare.epoch()  # warm up (allocator, kernels, caches)
    times: dict[str, list[float]] = {"scalestudy": [], "bare": []}
    for _ in range(epochs):
        for name, run in (("scalestudy", ours.train_epoch), ("bare", bare.epoch)):
            _sync(ours.device)
            start = time.perf_counter()
            run()
            _sync(ours.device)
            times[name].append(time.perf_counter() - start)
    examples = (train_size // batch_size) * batch_size
    # The median of per-pair ratios: a background spike hits one epoch, not the figure.
    ratio = statistics.median(b / o for b, o in zip(times["bare"], times["scalestudy"]))
    return {"device": device, "model": model, "B": batch_size, "threads": threads,
            "bare ex/s": examples / statistics.median(times["bare"]),
            "scalestudy ex/s": examples / statistics.median(times["scalestudy"]), "ratio": ratio}


def bench_loop(tiny: bool = False, device: str | None = None) -> BenchTable:
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    table = BenchTable("loop", ["device", "model", "B", "threads", "bare ex/s", "scalestudy ex/s", "ratio"])
    train_size, epochs = (2048, 1) if tiny else (8000, 9)
    # A CPU trial runs with cpus_per_worker threads (1 by default); so does the benchmark.
    threads = torch.get_num_threads() if device == "cuda" else 1
    for model in ("mlp", "cnn1d"):
        for batch_size in (32, 1024):
            table.add(**measure(batch_size, train_size, epochs, model, device, threads))
    table.notes.append("target: ratio ≥ 0.95 (scalestudy's loop at least 95 % of the bare loop's examples/s)")
    return table
