"""MNIST-1D (Greydanus 2020), generated offline with the ``mnist1d`` package and cached.

Generation takes a few seconds (about 2.4 s for 5000 signals on one CPU core, plus
1.7 s to import the package), so the arrays are cached as ``.npz`` under
``$SCALESTUDY_CACHE`` (default ``~/.cache/scalestudy``), keyed by the options and the
package version. Trials load the cache concurrently: the file is written to a temporary
name and renamed with ``os.replace`` (atomic), so a reader sees a whole file or none.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import os
import random
import tempfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import torch

from scalestudy.data.base import InMemoryDataset
from scalestudy.data.options import MNIST1D_CLASSES, MNIST1D_LENGTH, Mnist1dOptions

CACHE_FORMAT = 1  # bump when the stored arrays change meaning
NUM_CLASSES = MNIST1D_CLASSES
SEQUENCE_LENGTH = MNIST1D_LENGTH
_ARRAYS = ("train_x", "train_y", "test_x", "test_y")

# mnist1d draws from numpy's *global* RNG: two threads generating at once would mix
# their streams, so generation in one process is serialised.
_generate_lock = threading.Lock()


def cache_dir() -> Path:
    """Where generated datasets are cached: ``$SCALESTUDY_CACHE`` or ``~/.cache/scalestudy``."""
    root = os.environ.get("SCALESTUDY_CACHE") or "~/.cache/scalestudy"
    return Path(root).expanduser().absolute() / "mnist1d"


def cache_path(options: Mnist1dOptions) -> Path:
    """The cache file for ``options``; the name is readable, the hash makes it unique."""
    key = {"format": CACHE_FORMAT, "mnist1d": importlib.metadata.version("mnist1d"), **options.model_dump()}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    name = f"mnist1d-train{options.train_size}-test{options.test_size}-seed{options.seed}-{digest}.npz"
    return cache_dir() / name


def generate_arrays(options: Mnist1dOptions) -> dict[str, np.ndarray]:
    """Generate the splits with ``mnist1d.data.make_dataset``; inputs standardised.

    ``make_dataset`` makes ``num_samples // 10`` signals per class, shuffles them and
    splits at ``train_split``; we ask for enough whole classes and slice the first
    ``train_size`` / next ``test_size`` ourselves, so any sizes work (and the defaults
    give the same 4000/1000 signals as the package's default split).
    """
    import mnist1d.data  # heavy (scipy, matplotlib): only on a cache miss

    args = mnist1d.data.get_dataset_args()
    total = options.train_size + options.test_size
    args.num_samples = NUM_CLASSES * math.ceil(total / NUM_CLASSES)
    args.train_split = 1.0
    args.seed = options.seed
    args.corr_noise_scale = options.corr_noise_scale
    args.iid_noise_scale = options.iid_noise_scale
    with _generate_lock:
        # make_dataset reseeds the global `random` and numpy RNGs: restore them so that
        # loading data never changes a trial's own random stream.
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            data = mnist1d.data.make_dataset(args)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
    x, y = data["x"], data["y"]
    train_x, test_x = x[: options.train_size], x[options.train_size : total]
    # Standardise with training statistics: one mean and std over all positions, which
    # keeps the signal's shape (a per-position scaling would distort translated digits).
    mean, std = train_x.mean(), train_x.std()
    return {
        "train_x": ((train_x - mean) / std).astype(np.float32),
        "train_y": y[: options.train_size].astype(np.int64),
        "test_x": ((test_x - mean) / std).astype(np.float32),
        "test_y": y[options.train_size : total].astype(np.int64),
    }


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in _ARRAYS}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # unreadable (e.g. left by a crash of an old version): regenerate


def write_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as an ``.npz`` at ``path``: whole, or not at all (old file kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a shared cache must be readable
        os.replace(tmp, path)  # atomic: readers see the old file, the new one, or none
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_arrays(options: Mnist1dOptions) -> dict[str, np.ndarray]:
    """The cached arrays for ``options``, generating and caching them on a miss."""
    path = cache_path(options)
    arrays = _read_cache(path)
    if arrays is None:
        arrays = generate_arrays(options)
        write_atomic(path, arrays)
    return arrays


def load_mnist1d(options: Mnist1dOptions) -> InMemoryDataset:
    arrays = {name: torch.from_numpy(array) for name, array in load_arrays(options).items()}
    return InMemoryDataset(
        name="mnist1d",
        num_classes=NUM_CLASSES,
        input_shape=(SEQUENCE_LENGTH,),
        **arrays,
    )
