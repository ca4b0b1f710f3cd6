"""``bench loop``: examples/s of scalestudy's epoch loop vs a bare loop written the airbench way.

Both train the same model (built by the same registry call, ghost BN included) on the same
device-resident data with the same batch size, device and thread count, and both evaluate the
test set once per epoch; the bare loop is ``bench.bare`` (augmentation once per epoch over the
whole set, bf16 autocast and channels_last on CUDA, no host sync inside the epoch). Epochs
alternate between the two so machine noise hits both alike, and the figure is the median of
the per-epoch ratios.

Workloads: mlp and cnn1d on mnist1d at B = 32 and 1024; ResNet-8 and ResNet-20 on CIFAR-format
data generated on the device (``random_cifar10``: CIFAR-10's normalisation and augmentation,
plain batch norm as in He et al.) at B = 128 and 512 on GPU, ResNet-8 at B = 128 on a smaller
set on CPU.

The streaming path (``workload.data.residency: stream``) is held against a bare DataLoader loop
(``bench.bare_stream``: a plain DataLoader with a batch size and shuffling, the same workers,
pinned memory and prefetch): the same map-style data, model, optimizer and loss, scalestudy's
loop taking its batches through its own global-batch sampler (``train.batches.StreamBatches``).
Workloads: the mlp on mnist1d (its tensors as a map-style dataset) at B = 32 and 1024, and the
byte-level transformer on ``text_bytes`` (a map-style dataset of byte sequences) at B = 64.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from scalestudy.bench import BenchTable
from scalestudy.bench.bare import BareLoop
from scalestudy.bench.bare_stream import BareStreamLoop
from scalestudy.bench.device import bench_device, describe, synchronize
from scalestudy.data.cifar10 import random_cifar10
from scalestudy.spec import spec_from_dict
from scalestudy.train.distributed import Distributed
from scalestudy.train.loop import EpochLoop
from scalestudy.trial.config import TrialConfig, expand_trials


@dataclass(frozen=True)
class LoopCase:
    model: str
    batch_size: int
    train_size: int
    test_size: int
    epochs: int  # measured epochs of each loop, after one warm-up epoch
    path: str = "memory"  # memory: data resident on the device; stream: through DataLoaders

    @property
    def images(self) -> bool:
        return self.model.startswith("resnet")

    @property
    def text(self) -> bool:
        return self.model == "transformer"


SEQ_LEN = 32  # bytes per sequence of the transformer's cases


def loader_workers(device: torch.device) -> int:
    """DataLoader worker processes of the streaming cases: none on CPU (a CPU trial has one core by
    default, and its loader shares it), two feeding a GPU."""
    return 2 if device.type == "cuda" else 0


def loop_config(case: LoopCase, device: torch.device) -> TrialConfig:
    """The trial a study would run: mnist1d with ghost BN 16, CIFAR-10 (its data injected) with plain BN, or
    the byte-level language model."""
    if case.images:
        dataset = {"dataset": "cifar10", "dataset_options": {"train_size": case.train_size, "test_size": case.test_size,
                                                             "verify_checksums": False}}
    elif case.text:  # the standard library's bytes, cut to about train_size + test_size sequences
        sequences = case.train_size + case.test_size
        dataset = {"dataset": "text_bytes", "task": "language_model",
                   "dataset_options": {"max_bytes": sequences * SEQ_LEN, "seq_len": SEQ_LEN,
                                       "test_fraction": case.test_size / sequences},
                   "model_options": {"d_model": 128, "n_layers": 2, "n_heads": 4} if device.type == "cuda"
                   else {"d_model": 32, "n_layers": 1, "n_heads": 2}}
    else:
        dataset = {"dataset": "mnist1d", "dataset_options": {"train_size": case.train_size, "test_size": case.test_size},
                   "ghost_batch_size": 16}
    streamed = {"data": {"residency": "stream", "loader_workers": loader_workers(device)}} \
        if case.path == "stream" else {}
    spec = spec_from_dict({
        "name": "bench-loop",
        "workload": {**dataset, "model": case.model, "epochs": 1000, **streamed},
        "grid": {"batch_size": [case.batch_size], "lr": [0.01], "momentum": [0.9]},
        "resources": {"gpus_per_worker": 1 if device.type == "cuda" else 0},
    })
    return expand_trials(spec)[0]


def cases(device: torch.device, tiny: bool) -> list[LoopCase]:
    if tiny:
        return [*(LoopCase(m, b, 2048, 1000, 1) for m in ("mlp", "cnn1d") for b in (32, 1024)),
                LoopCase("resnet8", 64, 256, 64, 1),
                LoopCase("mlp", 32, 2048, 1000, 1, "stream"), LoopCase("transformer", 64, 512, 64, 1, "stream")]
    mnist = [LoopCase(m, b, 8000, 1000, 9) for m in ("mlp", "cnn1d") for b in (32, 1024)]
    stream = [*(LoopCase("mlp", b, 8000, 1000, 9, "stream") for b in (32, 1024)),
              LoopCase("transformer", 64, 20_000 if device.type == "cuda" else 4000, 1000, 5, "stream")]
    if device.type == "cuda":
        return mnist + [LoopCase(m, b, 50_000, 10_000, 5) for m in ("resnet8", "resnet20") for b in (128, 512)] + stream
    return mnist + [LoopCase("resnet8", 128, 2048, 1000, 3)] + stream


def measure(case: LoopCase, device: torch.device, threads: int) -> dict:
    torch.set_num_threads(threads)
    config = loop_config(case, device)
    data = random_cifar10(case.train_size, case.test_size, device) if case.images else None
    ours = EpochLoop(config, Distributed(device=device), data=data)
    reference = EpochLoop(config, Distributed(device=device), data=data)  # the same model, built the same way
    if case.path == "stream":  # the same map-style dataset, through a plain shuffling DataLoader
        loading = config.workload.data
        bare = BareStreamLoop(reference.model, reference.data.train, reference.data.test, case.batch_size,
                              reference.task.loss, device, lr=config.lr, momentum=config.momentum,
                              workers=loading.loader_workers, prefetch_factor=loading.prefetch_factor)
    else:
        bare = BareLoop(reference.model, reference.data, case.batch_size, lr=config.lr, momentum=config.momentum)
    ours.train_epoch(), bare.epoch()  # warm up (allocator, kernels, cuDNN's choices, loader workers)
    times: dict[str, list[float]] = {"scalestudy": [], "bare": []}
    for _ in range(case.epochs):
        for name, run in (("scalestudy", ours.train_epoch), ("bare", bare.epoch)):
            synchronize(device)
            start = time.perf_counter()
            run()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    ours.batches.close(), reference.batches.close()  # the streaming path's loader workers
    examples = (ours.dataset_size // case.batch_size) * case.batch_size
    # The median of per-pair ratios: a background spike hits one epoch, not the figure.
    ratio = statistics.median(b / o for b, o in zip(times["bare"], times["scalestudy"]))
    return {"device": device.type, "path": case.path, "model": case.model, "B": case.batch_size, "threads": threads,
            "bare ex/s": examples / statistics.median(times["bare"]),
            "scalestudy ex/s": examples / statistics.median(times["scalestudy"]), "ratio": ratio}


def bench_loop(tiny: bool = False, device: str | None = None) -> BenchTable:
    device = bench_device(device)
    table = BenchTable("loop", ["device", "path", "model", "B", "threads", "bare ex/s", "scalestudy ex/s", "ratio"])
    # A CPU trial runs with cpus_per_worker threads (1 by default); so does the benchmark.
    threads = torch.get_num_threads() if device.type == "cuda" else 1
    for case in cases(device, tiny):
        table.add(**measure(case, device, threads))
    table.notes.append(f"device: {describe(device)}; target: ratio ≥ 0.95 (scalestudy's loop at least 95 % of the "
                       "bare loop's examples/s); on GPU ≥ 0.9 for ResNet-8/20 (issue 15)")
    table.notes.append("path stream: scalestudy's streaming path (its global-batch sampler through a DataLoader) "
                       "vs a bare loop over a plain shuffling DataLoader of the same map-style dataset, "
                       f"{loader_workers(device)} loader workers each; target: ratio ≥ 0.95 (issue 13)")
    return table
