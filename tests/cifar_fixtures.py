"""A tiny CIFAR-10 in CIFAR-10's own on-disk format, for tests that cannot download it.

The python release is ``cifar-10-batches-py/`` with five training batches, one test
batch and ``batches.meta``, each a pickled dict: ``b"data"`` a uint8 (n, 3072) array
(channel-major rows: 1024 red, 1024 green, 1024 blue values) and ``b"labels"`` a list
of ints. The files are not the original release, so torchvision's md5 check fails on
them: load them with the dataset option ``verify_checksums: false``.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np


class _Python2Pickler(pickle._Pickler):
    """Writes ``bytes`` as Python 2 ``str`` opcodes, as the original release (pickled by
    Python 2) does: ``pickle.load(f, encoding="latin1")`` (torchvision) then reads str
    keys and ``encoding="bytes"`` (the CIFAR homepage recipe) reads ``b"data"``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_python2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_python2_str


def _dump(obj: object, path: Path) -> None:
    with open(path, "wb") as f:
        _Python2Pickler(f, protocol=2).dump(obj)


LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _write_batch(path: Path, data: np.ndarray, labels: np.ndarray, name: str) -> None:
    batch = {
        b"batch_label": name.encode(),
        b"labels": [int(label) for label in labels],
        b"data": data,
        b"filenames": [f"fake_{i:05d}.png".encode() for i in range(len(labels))],
    }
    _dump(batch, path)


def write_fake_cifar10(root: str | Path, n_train: int = 100, n_test: int = 40, seed: int = 0) -> Path:
    """Write random images and labels under ``root/cifar-10-batches-py``; return ``root``.

    The ``n_train`` images are spread over the five training batches in order, so
    image i of the training set is the i-th row across ``data_batch_1..5``.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train = rng.integers(0, 256, size=(n_train, 3072), dtype=np.uint8)
    train_labels = rng.integers(0, 10, size=n_train)
    for i, rows in enumerate(np.array_split(np.arange(n_train), 5), start=1):
        _write_batch(folder / f"data_batch_{i}", train[rows], train_labels[rows], f"training batch {i} of 5")
    test = rng.integers(0, 256, size=(n_test, 3072), dtype=np.uint8)
    _write_batch(folder / "test_batch", test, rng.integers(0, 10, size=n_test), "testing batch 1 of 1")
    meta = {
        b"num_cases_per_batch": -(-n_train // 5),
        b"label_names": [name.encode() for name in LABEL_NAMES],
        b"num_vis": 3072,
    }
    _dump(meta, folder / "batches.meta")
    return root
