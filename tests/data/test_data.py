"""Dataset registry: a contract every dataset passes, then each loader and the augmentation.

Real files only: MNIST-1D is generated into a temporary cache, CIFAR-10 is a tiny set
written in CIFAR-10's own pickle format (tests/cifar_fixtures.py).
"""

from __future__ import annotations

import os
import pickle
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cifar_fixtures import write_fake_cifar10
from pydantic import ValidationError

from scalestudy.data import DATASET_OPTIONS, DATASETS, dataset_options, load_dataset, train_size
from scalestudy.data import mnist1d as mnist1d_loader
from scalestudy.data.augment import crop_flip, random_crop_flip
from scalestudy.data.base import InMemoryDataset
from scalestudy.data.cifar10 import CIFAR10_MEAN, CIFAR10_STD
from scalestudy.data.options import Mnist1dOptions
from scalestudy.registry import UnknownNameError

REPO = Path(__file__).resolve().parents[2]
FAKE_TRAIN, FAKE_TEST = 60, 20


@pytest.fixture(autouse=True)
def _shared_cache(monkeypatch, tmp_path_factory):
    """Never touch ~/.cache: every test caches MNIST-1D under the session's tmp dir."""
    monkeypatch.setenv("SCALESTUDY_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def fake_cifar(tmp_path_factory) -> Path:
    return write_fake_cifar10(tmp_path_factory.mktemp("cifar"), n_train=FAKE_TRAIN, n_test=FAKE_TEST)


def small_options(name: str, cifar_root: Path) -> dict:
    return {
        "mnist1d": {"train_size": 300, "test_size": 100},
        "synthetic": {"train_size": 256, "test_size": 64},
        "cifar10": {"data_dir": str(cifar_root), "verify_checksums": False, "train_size": 50, "test_size": 20},
        "nqm": {"dim": 4, "train_size": 64, "test_size": 8},
    }[name]


# --- the contract: every registered dataset ------------------------------------------


# Datasets held whole as tensors; text_bytes and image_folder are map-style (tests/data/test_stream.py).
IN_MEMORY = ["cifar10", "mnist1d", "nqm", "synthetic"]


def test_every_dataset_has_options_and_a_contract_entry():
    assert set(DATASETS.names()) == set(DATASET_OPTIONS) == {*IN_MEMORY, "text_bytes", "image_folder"}


@pytest.mark.parametrize("name", IN_MEMORY)
def test_contract(name, fake_cifar):
    options = dataset_options(name, small_options(name, fake_cifar))
    data = load_dataset(name, options)
    assert isinstance(data, InMemoryDataset) and data.name == name
    assert data.train_size == train_size(name, options) == options.train_size
    assert data.test_size == options.test_size
    for x, y, n in ((data.train_x, data.train_y, data.train_size), (data.test_x, data.test_y, data.test_size)):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert tuple(x.shape) == (n, *data.input_shape) and tuple(y.shape) == (n,)
        assert x.device.type == "cpu" and torch.isfinite(x).all()
        assert 0 <= int(y.min()) and int(y.max()) < data.num_classes
    again = load_dataset(name, dict(small_options(name, fake_cifar)))  # a raw dict works too
    for split in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(data, split), getattr(again, split)), split
    moved = data.to("cpu")
    assert isinstance(moved, InMemoryDataset) and torch.equal(moved.train_x, data.train_x)
    assert moved.input_shape == data.input_shape and moved.augment is data.augment
    if data.augment is not None:
        batch = data.train_x[:8]
        out = data.augment(batch, torch.Generator().manual_seed(0))
        assert out.shape == batch.shape and out.dtype == batch.dtype


@pytest.mark.parametrize("name", IN_MEMORY)
def test_options_defaults_are_frozen_and_strict(name):
    options = DATASET_OPTIONS[name]()  # every field has a default
    assert dataset_options(name, {}) == options == dataset_options(name, None)
    assert dataset_options(name, options) is options
    with pytest.raises(ValidationError):
        options.train_size = 7
    with pytest.raises(ValidationError, match="no_such_option"):
        dataset_options(name, {"no_such_option": 1})
    with pytest.raises(ValidationError, match="train_size"):
        dataset_options(name, {"train_size": 0})
    with pytest.raises(ValidationError, match="train_size"):
        dataset_options(name, {"train_size": "100"})  # strict: a string is a typo, not a number


def test_train_size_without_loading():
    assert train_size("mnist1d", dataset_options("mnist1d", {})) == 4000
    assert train_size("synthetic", dataset_options("synthetic", {"train_size": 100})) == 100
    assert train_size("cifar10", dataset_options("cifar10", {"data_dir": "/nonexistent"})) == 50_000
    assert train_size("cifar10", dataset_options("cifar10", {"train_size": 5000})) == 5000


def test_unknown_dataset_is_a_one_line_error_listing_known_names():
    for call in (
        lambda: dataset_options("mnist", {}),
        lambda: load_dataset("mnist", {}),
        lambda: train_size("mnist", Mnist1dOptions()),
    ):
        with pytest.raises(UnknownNameError) as error:
            call()
        assert str(error.value) == ("unknown dataset 'mnist'; known: cifar10, image_folder, mnist1d, nqm, synthetic, "
                                    "text_bytes; or an import path package.module:attribute")


def test_options_of_another_dataset_are_refused():
    with pytest.raises(TypeError, match="cifar10"):
        dataset_options("cifar10", Mnist1dOptions())


def test_validation_imports_no_torch():
    code = (
        "import sys\n"
        "from scalestudy.data import DATASETS, dataset_options, train_size\n"
        # image_folder counts its images with torchvision's own listing rules: it imports torch.
        "for name in DATASETS.names():\n"
        "    if name != 'image_folder': train_size(name, dataset_options(name, {}))\n"
        "heavy = [m for m in ('torch', 'torchvision', 'mnist1d') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env=_env_with_repo())


# --- MNIST-1D ------------------------------------------------------------------------


def _env_with_repo() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def test_mnist1d_generates_custom_sizes_standardised(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALESTUDY_CACHE", str(tmp_path))
    data = load_dataset("mnist1d", {"train_size": 123, "test_size": 45})  # not whole classes
    assert (data.train_size, data.test_size, data.input_shape, data.num_classes) == (123, 45, (40,), 10)
    assert abs(float(data.train_x.mean())) < 1e-5 and abs(float(data.train_x.std()) - 1) < 1e-2
    assert len(torch.unique(data.train_y)) == 10
    other_seed = load_dataset("mnist1d", {"train_size": 123, "test_size": 45, "seed": 7})
    assert not torch.equal(data.train_x, other_seed.train_x)


def test_mnist1d_second_load_reads_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALESTUDY_CACHE", str(tmp_path))
    options = dataset_options("mnist1d", {"train_size": 200, "test_size": 50})
    path = mnist1d_loader.cache_path(options)
    assert path.parent == tmp_path / "mnist1d" and not path.exists()
    first = load_dataset("mnist1d", options)
    written = path.stat()
    second = load_dataset("mnist1d", options)
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == (written.st_mtime_ns, written.st_ino)  # not rewritten
    assert torch.equal(first.train_x, second.train_x) and torch.equal(first.test_y, second.test_y)
    # Proof that loads come from the file: a doctored cache is what the next load returns.
    with np.load(path) as stored:
        doctored = {key: stored[key] for key in stored.files}
    doctored["train_x"][0, :] = 123.0
    with open(path, "wb") as f:
        np.savez(f, **doctored)
    assert float(load_dataset("mnist1d", options).train_x[0, 0]) == 123.0
    # Options that change the data get their own file.
    noisier = dataset_options("mnist1d", {"train_size": 200, "test_size": 50, "iid_noise_scale": 0.1})
    assert mnist1d_loader.cache_path(noisier) != path


def test_mnist1d_unreadable_cache_is_regenerated(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALESTUDY_CACHE", str(tmp_path))
    options = dataset_options("mnist1d", {"train_size": 100, "test_size": 20})
    expected = load_dataset("mnist1d", options)
    path = mnist1d_loader.cache_path(options)
    path.write_bytes(path.read_bytes()[:100])  # a truncated file
    assert torch.equal(load_dataset("mnist1d", options).train_x, expected.train_x)
    assert np.load(path)["train_x"].shape == (100, 40)


class _FailsOnConversion:
    """An array-like whose conversion raises: np.savez fails after writing other arrays."""

    def __array__(self, *args, **kwargs):
        raise OSError("disk full")


def test_mnist1d_interrupted_cache_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "mnist1d" / "data.npz"
    mnist1d_loader.write_atomic(path, {"train_x": np.ones((3, 40), np.float32)})
    before = path.read_bytes()
    with pytest.raises(OSError, match="disk full"):
        mnist1d_loader.write_atomic(path, {"train_x": np.zeros((3, 40), np.float32), "train_y": _FailsOnConversion()})
    assert path.read_bytes() == before  # readers still find the whole old file
    assert [p.name for p in path.parent.iterdir()] == ["data.npz"]  # the temp file is gone


def test_mnist1d_generation_leaves_global_rngs_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALESTUDY_CACHE", str(tmp_path))
    np.random.seed(1234)
    random.seed(1234)
    np_before, py_before = np.random.get_state()[1].copy(), random.getstate()
    load_dataset("mnist1d", {"train_size": 50, "test_size": 10})  # mnist1d reseeds both
    assert np.array_equal(np.random.get_state()[1], np_before) and random.getstate() == py_before


def test_mnist1d_concurrent_first_loads_share_one_whole_file(tmp_path, monkeypatch):
    """Loads that miss the cache at once all get the same data; meanwhile a reader polling
    the cache path only ever finds a whole file; no temporary files are left behind.

    Threads, not processes, to keep the test fast: the write path is the same, and
    threads are the harder case for generation (mnist1d uses numpy's global RNG).
    """
    monkeypatch.setenv("SCALESTUDY_CACHE", str(tmp_path))
    options = dataset_options("mnist1d", {"train_size": 500, "test_size": 100, "seed": 3})
    path = mnist1d_loader.cache_path(options)
    start, done = threading.Barrier(4), threading.Event()
    results, polled = [None] * 3, []

    def load(i):
        start.wait()
        results[i] = load_dataset("mnist1d", options)

    def poll():
        start.wait()
        while not done.is_set():
            if path.exists():
                with np.load(path) as stored:  # raises on a partial file
                    polled.append(stored["train_x"].shape)
            time.sleep(0.002)  # leave the GIL to the loaders

    threads = [threading.Thread(target=load, args=(i,)) for i in range(3)] + [threading.Thread(target=poll)]
    for thread in threads:
        thread.start()
    for thread in threads[:3]:
        thread.join()
    done.set()
    threads[3].join()
    assert all(torch.equal(r.train_x, results[0].train_x) and torch.equal(r.test_y, results[0].test_y) for r in results)
    assert polled and set(polled) == {(500, 40)}
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left


# --- synthetic -----------------------------------------------------------------------


def test_synthetic_is_learnable_by_a_small_mlp():
    data = load_dataset("synthetic", {})
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))
    for _ in range(3):  # plain SGD by hand: torch.optim's first step imports for seconds
        for batch in torch.randperm(data.train_size).split(64):
            loss = torch.nn.functional.cross_entropy(model(data.train_x[batch]), data.train_y[batch])
            model.zero_grad()
            loss.backward()
            with torch.no_grad():
                for param in model.parameters():
                    param -= 0.5 * param.grad
    with torch.no_grad():
        accuracy = (model(data.test_x).argmax(1) == data.test_y).float().mean().item()
    assert accuracy > 0.6  # chance is 0.25


def test_synthetic_label_noise_touches_training_labels_only():
    clean = load_dataset("synthetic", {"label_noise": 0.0})
    noisy = load_dataset("synthetic", {"label_noise": 0.5})
    assert torch.equal(clean.train_x, noisy.train_x) and torch.equal(clean.test_y, noisy.test_y)
    changed = (clean.train_y != noisy.train_y).float().mean().item()
    assert 0.3 < changed < 0.45  # 0.5 replaced, a quarter of those by the same label: 0.375
    assert not torch.equal(clean.train_x, load_dataset("synthetic", {"seed": 1}).train_x)


# --- CIFAR-10 ------------------------------------------------------------------------


def _raw_fake_images(root: Path, files: list[str]) -> tuple[np.ndarray, list[int]]:
    """Read the fixture the CIFAR homepage's way (bytes keys), independently of torchvision."""
    data, labels = [], []
    for name in files:
        with open(root / "cifar-10-batches-py" / name, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data.append(batch[b"data"])
        labels += batch[b"labels"]
    return np.concatenate(data), labels


def test_cifar10_pixels_labels_and_order_match_the_files(fake_cifar):
    data = load_dataset("cifar10", {"data_dir": str(fake_cifar), "verify_checksums": False, "train_size": FAKE_TRAIN})
    raw, labels = _raw_fake_images(fake_cifar, [f"data_batch_{i}" for i in range(1, 6)])
    pixels = torch.from_numpy(raw).float().view(-1, 3, 32, 32) / 255  # rows are channel-major
    expected = (pixels - torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    assert torch.allclose(data.train_x, expected, atol=1e-5) and data.train_y.tolist() == labels
    test_raw, test_labels = _raw_fake_images(fake_cifar, ["test_batch"])
    assert data.test_size == FAKE_TEST and data.test_y.tolist() == test_labels  # test_size None: all
    subset = load_dataset("cifar10", {"data_dir": str(fake_cifar), "verify_checksums": False, "train_size": 7})
    assert torch.equal(subset.train_x, data.train_x[:7])  # a subset is the first n images
    assert data.augment is random_crop_flip
    plain = {"data_dir": str(fake_cifar), "verify_checksums": False, "train_size": 7, "augment": False}
    assert load_dataset("cifar10", plain).augment is None


def test_cifar10_missing_data_names_the_directory(tmp_path):
    missing = tmp_path / "no-cifar-here"
    with pytest.raises(FileNotFoundError, match="download: true") as error:
        load_dataset("cifar10", {"data_dir": str(missing)})
    assert str(missing) in str(error.value) and "\n" not in str(error.value)


def test_cifar10_torchvision_md5_check_rejects_files_that_are_not_the_release(fake_cifar):
    with pytest.raises(RuntimeError, match="md5.*verify_checksums: false"):
        load_dataset("cifar10", {"data_dir": str(fake_cifar), "train_size": 10})


def test_cifar10_sizes_must_fit_the_files(fake_cifar):
    base = {"data_dir": str(fake_cifar), "verify_checksums": False}
    with pytest.raises(ValueError, match="train_size 61 exceeds the 60 images"):
        load_dataset("cifar10", {**base, "train_size": 61})
    with pytest.raises(ValueError, match="set train_size"):  # N = 50000 was promised to validation
        load_dataset("cifar10", base)


def test_cifar10_relative_data_dir_is_resolved_at_validation(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert dataset_options("cifar10", {"data_dir": "data/c10"}).data_dir == str(tmp_path / "data" / "c10")
    assert dataset_options("cifar10", {}).data_dir == "~/.cache/scalestudy/cifar10"  # expanded where loaded


# --- augmentation --------------------------------------------------------------------


def _reference_crop_flip(image, dy, dx, flip, padding):
    """One image at a time, with slicing and torch.flip: the obvious implementation."""
    h, w = image.shape[-2:]
    padded = torch.nn.functional.pad(image, (padding,) * 4)
    out = padded[:, dy : dy + h, dx : dx + w]
    return out.flip(-1) if flip else out


def test_crop_flip_matches_a_per_image_reference():
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(64, 3, 32, 32, generator=gen)
    dy, dx = torch.randint(0, 9, (64,), generator=gen), torch.randint(0, 9, (64,), generator=gen)
    flip = torch.rand(64, generator=gen) < 0.5
    out = crop_flip(images, dy, dx, flip, padding=4)
    for i in range(64):
        assert torch.equal(out[i], _reference_crop_flip(images[i], int(dy[i]), int(dx[i]), bool(flip[i]), 4))
    identity = crop_flip(images, torch.full((64,), 4), torch.full((64,), 4), torch.zeros(64, dtype=torch.bool), 4)
    assert torch.equal(identity, images)


def _translate(image: torch.Tensor, sy: int, sx: int) -> torch.Tensor:
    """``image`` moved down by sy and right by sx pixels, zeros where nothing moved in."""
    out = torch.zeros_like(image)
    h, w = image.shape[-2:]
    out[:, max(sy, 0) : h + min(sy, 0), max(sx, 0) : w + min(sx, 0)] = image[
        :, max(-sy, 0) : h + min(-sy, 0), max(-sx, 0) : w + min(-sx, 0)
    ]
    return out


def test_random_crop_moves_a_marker_at_most_4_pixels_and_pads_with_zeros():
    """An all-ones image with one bright pixel: each output is the image (or its mirror)
    translated by at most 4 pixels, with exactly zero where padding came in."""
    image = torch.ones(3, 32, 32)
    row, col = 10, 6  # mirrored column 25: never confused with a ±4 move of column 6
    image[:, row, col] = 5.0
    out = random_crop_flip(image.expand(2000, 3, 32, 32), torch.Generator().manual_seed(1))
    shifts, flips = set(), 0
    for augmented in out:
        ((r, c),) = torch.nonzero(augmented[0] == 5.0).tolist()
        flipped = abs(c - (31 - col)) <= 4
        assert flipped or abs(c - col) <= 4
        sy, sx = r - row, c - ((31 - col) if flipped else col)
        assert abs(sy) <= 4 and abs(sx) <= 4
        source = image.flip(-1) if flipped else image
        assert torch.equal(augmented, _translate(source, sy, sx))
        shifts.add((sy, sx))
        flips += flipped
    assert len(shifts) == 81  # every offset in [-4, 4]² occurs
    assert 0.45 < flips / len(out) < 0.55


def test_flip_is_an_exact_mirror_of_about_half_the_batch():
    images = torch.randn(4000, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    out = random_crop_flip(images, torch.Generator().manual_seed(3), padding=0)
    same = (out == images).flatten(1).all(1)
    mirrored = (out == images.flip(-1)).flatten(1).all(1)
    assert bool((same ^ mirrored).all())  # each image is exactly one of the two
    assert 0.45 < mirrored.float().mean().item() < 0.55


def test_augmentation_is_reproducible_with_a_generator():
    images = torch.randn(256, 3, 32, 32)
    before = images.clone()
    a = random_crop_flip(images, torch.Generator().manual_seed(5))
    b = random_crop_flip(images, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and torch.equal(images, before)  # the input is not modified
    gen = torch.Generator().manual_seed(5)
    random_crop_flip(images, gen)
    assert not torch.equal(random_crop_flip(images, gen), a)  # the generator advances
    assert not torch.equal(random_crop_flip(images, torch.Generator().manual_seed(6)), a)


def test_slices_of_a_global_batch_are_augmented_as_the_whole_batch():
    """DDP: rank r augments rows [r·b, (r+1)·b) with the parameters drawn for the global batch."""
    images = torch.randn(48, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    whole = random_crop_flip(images, torch.Generator().manual_seed(9))
    for first, n in ((0, 16), (16, 16), (32, 16), (12, 24)):
        part = random_crop_flip(images[first:first + n], torch.Generator().manual_seed(9), first, 48)
        assert torch.equal(part, whole[first:first + n])
    with pytest.raises(ValueError, match="not inside a global batch of 48"):
        random_crop_flip(images[:16], torch.Generator(), 40, 48)


def test_an_augment_without_the_global_batch_rows_is_a_clear_error():
    x, y = torch.zeros(4, 3, 8, 8), torch.zeros(4, dtype=torch.int64)
    with pytest.raises(TypeError, match=r"mine: augment must accept \(batch, generator, first, total\)"):
        InMemoryDataset("mine", x, y, x, y, 2, (3, 8, 8), augment=lambda batch, generator: batch)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_augmentation_runs_on_the_gpu_and_matches_the_reference():
    images = torch.randn(32, 3, 32, 32, device="cuda")
    out = random_crop_flip(images, torch.Generator(device="cuda").manual_seed(0))
    assert out.device == images.device
    dy, dx = torch.randint(0, 9, (32,)), torch.randint(0, 9, (32,))
    flip = torch.rand(32) < 0.5
    on_gpu = crop_flip(images, dy.cuda(), dx.cuda(), flip.cuda(), 4).cpu()
    assert torch.equal(on_gpu, crop_flip(images.cpu(), dy, dx, flip, 4))
