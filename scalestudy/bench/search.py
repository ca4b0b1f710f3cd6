"""``bench search``: compute to law — the trial-epochs each search algorithm needs to estimate α.

A tabular ("surrogate") benchmark, standard practice for comparing HPO methods:

1. The full grid of the workload is trained once, for real, with the bare epoch loop
   (the same loop a Tune trial runs; no Ray or MLflow overhead), and cached under
   ``$SCALESTUDY_CACHE`` keyed by the spec hash. Its α (the analysis layer's fit) is the
   reference α_grid, and its trial-epochs (diverged trials count the epochs they ran)
   the reference cost.
2. The grid becomes a response surface: per (B, m) cell, the seed-mean final test
   accuracy interpolated in ln ε (makima), divergence above the midpoint (in ln ε)
   between the last grid ε where most seeds survived and the first where most diverged,
   and Gaussian evaluation noise with the seed-to-seed sd measured on the grid.
3. Each algorithm's real builder (the same SearchPlan and Searcher classes a study
   uses) is replayed against the surface by :func:`scalestudy.search.replay.replay`,
   at several ``trials_per_cell`` budgets and repetitions (search seed and noise seed
   change together); α is fitted on each run's trials with the analysis layer.

Reported per algorithm: trial-epochs needed for |α − α_grid| ≤ 0.1 (per repetition the
smallest budget from which every larger budget stays within 0.1; median over
repetitions), its ratio to the full grid, and the α reached within a fixed budget of a
quarter of the grid's trial-epochs.
"""

from __future__ import annotations

import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scalestudy.bench import BenchTable

REPO_ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 0.1  # |α − α_grid| that counts as "found the law"
BUDGET_SHARE = 0.25  # the fixed budget: this share of the full grid's trial-epochs
CONCURRENCY = 4  # trials in flight during a replay (a small machine)

# The tiny workload (--tiny, CI): synthetic data, a small MLP, 3 epochs; about 20 s of training.
TINY_SPEC = {
    "name": "bench-search-tiny",
    "workload": {"dataset": "synthetic", "dataset_options": {"train_size": 512, "test_size": 256},
                 "model": "mlp", "model_options": {"hidden": [32]}, "epochs": 3, "ghost_batch_size": 16},
    "grid": {"batch_size": [16, 32, 64, 128],
             "lr": {"reference_batch_size": 32, "reference_lr": 0.05, "reference_momentum": 0.9,
                    "multipliers": [0.125, 0.25, 0.5, 1, 2, 4, 8, 64]},
             "momentum": [0.0, 0.9], "seeds": [0, 1]},
}


# ---------------------------------------------------------------------------------------
# 1. The full grid, trained once


def grid_spec(tiny: bool):
    """The workload: the quickstart's law section (constant schedule), or the tiny one."""
    from scalestudy.spec import load_spec, spec_from_dict

    if tiny:
        return spec_from_dict(TINY_SPEC)
    return load_spec(REPO_ROOT / "search_spaces" / "quickstart.yaml", ["sections={}"])


def cache_file(spec) -> Path:
    from scalestudy.data.mnist1d import cache_dir

    return cache_dir() / f"bench-search-{spec.name}-{spec.spec_hash()}.parquet"


def response_table(spec, processes: int | None = None, verbose: bool = False) -> tuple[pd.DataFrame, bool]:
    """Every trial of the spec's full grid, trained for real: (trial table, read from cache).

    One row per trial in the analysis layer's trial-table schema, plus ``test_acc_curve``
    (JSON list, one value per epoch run). The table is cached by spec hash."""
    path = cache_file(spec)
    if path.is_file():
        return pd.read_parquet(path), True
    from scalestudy.train.config import expand_trials

    # Longest trials (small batches) first, so the pool's last minutes are not one slow trial.
    trials = sorted(expand_trials(spec), key=lambda t: (t["batch_size"], t["lr"]))
    processes = processes or max(1, min(len(trials), os.cpu_count() or 1))
    started = time.monotonic()
    rows = []
    with ProcessPoolExecutor(processes) as pool:
        for i, row in enumerate(pool.map(train_trial, trials, chunksize=1)):
            rows.append(row)
            if verbose:
                print(f"[{time.monotonic() - started:6.0f}s] grid trial {i + 1}/{len(trials)}: "
                      f"B={row['batch_size']} lr={row['lr']:.4g} m={row['momentum']:g} seed={row['seed']} "
                      f"test_acc={row['test_acc']:.3f}{' diverged' if row['diverged'] else ''}", flush=True)
    frame = pd.DataFrame(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    frame.to_parquet(partial)
    partial.replace(path)
    return frame, False


def train_trial(config: dict[str, Any]) -> dict[str, Any]:
    """One grid trial with the bare epoch loop (one thread): its final values and accuracy curve."""
    import torch

    from scalestudy.train.loop import EpochLoop

    torch.set_num_threads(1)
    loop = EpochLoop(config, device="cpu")
    curve, last = [], None
    for report in loop.run():
        last = report
        curve.append(float(report.test_acc))
    return {"batch_size": config["batch_size"], "lr": config["lr"], "momentum": config["momentum"],
            "seed": config["seed"], "dataset_size": config["dataset_size"], "schedule": "constant",
            "section": config["section"], "trial_id": config["trial_key"], "test_acc": float(last.test_acc),
            "train_acc": float(last.train_acc), "diverged": bool(last.diverged), "epochs": float(last.epoch),
            "planned_epochs": float(config["epochs"]), "updates": float(last.updates),
            "train_seconds": float(sum(h["epoch_seconds"] for h in loop.history)),
            "test_acc_curve": json.dumps(curve)}
