"""Datasets larger than memory: the streaming path gives the loop exactly the in-memory path's
batches (sizes, update and example counts, the examples and their order, the augmentation), a
streamed trial killed mid-epoch resumes exactly, and ``image_folder`` reads real PNG files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scalestudy.data import load_dataset
from scalestudy.data.base import InMemoryDataset
from scalestudy.data.stream import GlobalBatchSampler, MapDataset, as_map_dataset, resident
from scalestudy.spec import SpecError, spec_from_dict
from scalestudy.train.batches import MemoryBatches, StreamBatches
from scalestudy.train.distributed import Distributed
from scalestudy.train.loop import EpochLoop
from scalestudy.trial.config import TrialConfig, expand_trials

REPO = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")
CLASSES, PER_CLASS, TEST_PER_CLASS, SIZE = 3, 16, 4, 8


@pytest.fixture(scope="module")
def image_root(tmp_path_factory) -> Path:
    """PNG images in train/ and test/ class folders; each class has its own mean colour."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for split, count in (("train", PER_CLASS), ("test", TEST_PER_CLASS)):
        for label in range(CLASSES):
            folder = root / split / f"class_{label}"
            folder.mkdir(parents=True)
            for index in range(count):
                pixels = rng.normal(60 + 60 * label, 40, (SIZE, SIZE, 3)).clip(0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{index:03d}.png")
    return root


def image_trial(root: Path, residency: str, workers: int = 0, epochs: int = 3) -> TrialConfig:
    spec = spec_from_dict({
        "name": "stream",
        "workload": {"dataset": "image_folder",
                     "dataset_options": {"root": str(root), "image_size": SIZE, "augment": True,
                                         "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
                     "model": "mlp", "model_options": {"hidden": [32]}, "epochs": epochs, "ghost_batch_size": 4,
                     "data": {"residency": residency, "loader_workers": workers}},
        "grid": {"batch_size": [8], "lr": [0.05], "momentum": [0.9]},
        # B grows 8 → 16 at epoch 2: per-epoch batch sizes, and a ragged tail (48 = 3·16, 48 = 6·8; 40 test).
        "schedule": {"kind": "increase_batch", "milestones": [2], "factor": 2},
    })
    return expand_trials(spec)[0]


def reports(config: TrialConfig) -> list[dict]:
    torch.set_num_threads(1)
    loop = EpochLoop(config, Distributed(device=CPU))
    out = [r.metrics() for r in loop.run()]
    for report in out:
        report.pop("epoch_seconds")
    return out


def test_image_folder_reads_the_folders(image_root):
    data = load_dataset("image_folder", {"root": str(image_root), "image_size": SIZE})
    assert isinstance(data, MapDataset)
    assert (data.train_size, data.test_size, data.num_classes) == (CLASSES * PER_CLASS, CLASSES * TEST_PER_CLASS, 3)
    x, y = data.train[PER_CLASS]  # the first image of class_1
    assert x.shape == (3, SIZE, SIZE) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert y == 1
    pixels = np.asarray(Image.open(image_root / "train" / "class_1" / "000.png"), dtype=np.float32) / 255
    torch.testing.assert_close(x, torch.from_numpy(pixels).permute(2, 0, 1))
    assert [data.test[i][1] for i in range(0, CLASSES * TEST_PER_CLASS, TEST_PER_CLASS)] == [0, 1, 2]


def test_image_folder_without_splits_is_split_by_a_seeded_shuffle(image_root):
    options = {"root": str(image_root / "train"), "image_size": SIZE, "test_fraction": 0.25, "seed": 3}
    a, b = load_dataset("image_folder", options), load_dataset("image_folder", options)
    assert (a.train_size, a.test_size) == (36, 12)
    assert a.train.indices == b.train.indices and not set(a.train.indices) & set(a.test.indices)


def test_image_folder_spec_errors_name_the_field(tmp_path):
    with pytest.raises(SpecError, match=r"^workload.dataset_options.root: .*Couldn't find any class folder"):
        image_trial(tmp_path, "auto")
    with pytest.raises(SpecError, match=r"^workload.dataset_options.mean: three per-channel values"):
        spec_from_dict({"name": "x", "workload": {"dataset": "image_folder", "epochs": 1, "dataset_options": {
            "root": str(tmp_path), "mean": [0.5], "std": [0.5]}}, "grid": {"batch_size": [8], "lr": [0.1]}})


def test_residency_keeps_small_data_in_memory_and_streams_what_is_over_the_limit(image_root):
    data = load_dataset("image_folder", {"root": str(image_root), "image_size": SIZE})
    size_mb = data.nbytes() / 2**20
    kept = resident(data, "auto", memory_limit_mb=size_mb * 1.01)
    assert isinstance(kept, InMemoryDataset) and kept.train_x.shape == (48, 3, SIZE, SIZE)
    assert torch.equal(kept.train_x[PER_CLASS], data.train[PER_CLASS][0])
    assert resident(data, "auto", memory_limit_mb=size_mb * 0.99) is data
    assert isinstance(resident(data, "memory", memory_limit_mb=1e-9), InMemoryDataset)
    assert resident(data, "stream", memory_limit_mb=1e9) is data
    assert isinstance(resident(kept, "stream", memory_limit_mb=1e9), MapDataset)


def test_the_sampler_gives_each_rank_its_slice_of_every_global_batch():
    order = torch.randperm(50, generator=torch.Generator().manual_seed(0))
    one = GlobalBatchSampler(0, 1)
    one.set_epoch(order, batch_size=12, steps=50 // 12)
    ranks = [GlobalBatchSampler(r, 3) for r in range(3)]
    for sampler in ranks:
        sampler.set_epoch(order, batch_size=12, steps=50 // 12)
    whole = list(one)
    assert len(whole) == len(one) == 4 and all(len(b) == 12 for b in whole)  # 2 examples of the tail dropped
    assert [i for b in whole for i in b] == order[:48].tolist()
    for step, batch in enumerate(whole):
        assert [i for sampler in ranks for i in list(sampler)[step]] == batch  # rank r: rows [4r, 4r + 4)


def test_both_paths_yield_the_same_batches_augmented_alike(image_root):
    """The examples seen, in order, and their augmentation: one epoch of B = 12 (48 = 4·12), two ranks."""
    data = load_dataset("image_folder", {"root": str(image_root), "image_size": SIZE, "augment": True})
    memory = resident(data, "memory", 1e9)
    order = torch.randperm(data.train_size, generator=torch.Generator().manual_seed(1))
    for rank in (0, 1):
        dist = Distributed(rank=rank, world_size=2, device=CPU)
        sources = (MemoryBatches(memory, dist), StreamBatches(data, dist, CPU, workers=1, prefetch_factor=2))
        a, b = (list(source.train(order, 12, 4, torch.Generator().manual_seed(5))) for source in sources)
        assert len(a) == len(b) == 4
        for (xa, ya), (xb, yb) in zip(a, b):
            assert xa.shape == (6, 3, SIZE, SIZE)
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
        evaluation = [list(source.evaluation("test")) for source in sources]
        assert [torch.equal(x, y) for (x, _), (y, _) in zip(*evaluation)] == [True] * len(evaluation[0])


@pytest.mark.parametrize("workers", [0, 2])
def test_streaming_trains_exactly_as_in_memory(image_root, workers):
    in_memory = reports(image_trial(image_root, "memory"))
    streamed = reports(image_trial(image_root, "stream", workers))
    assert [r["batch_size"] for r in streamed] == [8, 8, 16]
    assert [r["updates"] for r in streamed] == [6, 12, 15]
    assert [r["examples_seen"] for r in streamed] == [48, 96, 144]
    assert streamed == in_memory  # every metric, bit for bit


def test_a_language_model_corpus_streams_as_it_trains_in_memory():
    def lm(residency: str) -> TrialConfig:
        spec = spec_from_dict({
            "name": "lm", "workload": {
                "dataset": "text_bytes", "dataset_options": {"max_bytes": 6000, "seq_len": 16},
                "model": "transformer", "model_options": {"d_model": 16, "n_layers": 1, "n_heads": 2},
                "task": "language_model", "epochs": 2, "data": {"residency": residency}},
            "grid": {"batch_size": [32], "lr": [0.1], "momentum": [0.9]}})
        return expand_trials(spec)[0]

    streamed = reports(lm("stream"))
    assert streamed == reports(lm("auto"))
    assert streamed[-1]["tokens_per_batch"] == 32 * 16 and "test_acc" not in streamed[-1]


CHILD = """
import os, signal, sys, json, torch
from scalestudy.train.distributed import Distributed
from scalestudy.train.loop import EpochLoop
from scalestudy.trial.config import TrialConfig
torch.set_num_threads(1)
loop = EpochLoop(TrialConfig.from_dict(json.loads(sys.argv[1])), Distributed(device=torch.device("cpu")))
train = loop.batches.train
def dying(*args):
    for step, batch in enumerate(train(*args)):
        if loop.epoch == 1 and step == 3:  # mid-way through the second epoch: a real SIGKILL
            os.kill(os.getpid(), signal.SIGKILL)
        yield batch
loop.batches.train = dying
for report in loop.run():  # a checkpoint at every epoch end, as the trainables write them
    torch.save(loop.state_dict(), sys.argv[2])
"""


def test_a_streamed_trial_killed_mid_epoch_resumes_exactly(image_root, tmp_path):
    config = image_trial(image_root, "stream", workers=1)
    checkpoint = tmp_path / "state.pt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(config.to_dict()), str(checkpoint)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    state = torch.load(checkpoint, weights_only=False)
    assert state["epoch"] == 1
    resumed = EpochLoop(config, Distributed(device=CPU))  # a new process' state: nothing of the killed one
    resumed.load_state_dict(state)
    rest = [r.metrics() for r in resumed.run()]
    for report in rest:
        report.pop("epoch_seconds")
    assert rest == reports(config)[1:]  # epochs 2 and 3, bit for bit


def test_an_in_memory_dataset_can_be_streamed_too():
    data = load_dataset("synthetic", {"train_size": 64, "test_size": 16})
    streamed = as_map_dataset(data)
    assert (streamed.train_size, streamed.test_size) == (64, 16)
    x, y = streamed.train[5]
    assert torch.equal(x, data.train_x[5]) and y == data.train_y[5]
