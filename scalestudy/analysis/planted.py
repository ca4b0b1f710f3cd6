"""Synthetic trial tables generated from a known ("planted") scaling law (tests, benchmark).

ε*(B, m) = k · min(B, B_c)^α · (1 − m)^β: the optimal learning rate follows the law
below the breakdown batch size B_c and saturates above it. Final test accuracy is a
Gaussian bump in x = ln(ε/ε*) of width ``width`` (e-folds), whose height falls slowly
with B, plus noise; trials with ε above ``diverge_factor`` · ε* diverge. The lr grid of
each cell is powers of ``lr_step`` around ε*, as a user centring a grid would search.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

ACC_MIN = 0.1  # chance level of a 10-class problem: what a diverged trial scores


def planted_lr(batch_size, momentum, alpha, beta, k, breakdown=None):
    """ε*(B, m) of the planted law (per update)."""
    b = np.minimum(batch_size, breakdown) if breakdown else np.asarray(batch_size, float)
    return k * np.power(b, alpha) * np.power(1.0 - np.asarray(momentum, float), beta)


def make_planted_table(alpha: float = 1.0, beta: float = 1.0, k: float = 1e-3, breakdown: float | None = None,
                       noise: float = 0.005, seeds: Sequence[int] = (0, 1), *,
                       batch_sizes: Sequence[int] = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096),
                       momenta: Sequence[float] = (0.0, 0.5, 0.9), lr_step: float = 2.0, lr_points: int = 11,
                       dataset_size: int = 50_000, diverge_factor: float = 4.0, width: float = 1.0,
                       acc_max: float = 0.92, acc_drop_per_doubling: float = 0.005,
                       gap0: float = 0.02, gap_per_doubling: float = 0.01, epochs: int = 10,
                       schedules: bool = False, centre_on_rule: bool = False,
                       rng: int | np.random.Generator = 0) -> pd.DataFrame:
    """One row per trial in the trial-table schema (see scalestudy.analysis.table).

    ``centre_on_rule``: centre each cell's lr grid on the unbroken law instead of on ε*, as
    a study designed around the linear rule does; past the breakdown the optimum then
    drifts to the bottom of the grid."""
    rng = np.random.default_rng(rng)
    rows = []
    b_min = min(batch_sizes)
    for batch_size in batch_sizes:
        for momentum in momenta:
            lr_opt = float(planted_lr(batch_size, momentum, alpha, beta, k, breakdown))
            guess = float(planted_lr(batch_size, momentum, alpha, beta, k)) if centre_on_rule else lr_opt
            centre = round(math.log(guess, lr_step))
            grid = lr_step ** np.arange(centre - lr_points // 2, centre + lr_points // 2 + 1)
            for seed in seeds:
                for lr in grid:
                    rows.append(_trial(batch_size, float(lr), momentum, seed, lr_opt, b_min, rng, noise,
                                       dataset_size, diverge_factor, width, acc_max, acc_drop_per_doubling,
                                       gap0, gap_per_doubling, epochs))
    frame = pd.DataFrame(rows)
    if schedules:
        frame = pd.concat([frame, _schedule_rows(alpha, beta, k, breakdown, seeds, dataset_size, epochs, rng)],
                          ignore_index=True)
    return frame


def _trial(batch_size, lr, momentum, seed, lr_opt, b_min, rng, noise, dataset_size, diverge_factor, width,
           acc_max, acc_drop, gap0, gap_slope, epochs):
    doublings = math.log2(batch_size / b_min)
    updates = epochs * math.ceil(dataset_size / batch_size)
    base = {"batch_size": batch_size, "lr": lr, "momentum": momentum, "seed": seed, "dataset_size": dataset_size,
                "schedule": "constant", "section": "law", "epochs": float(epochs), "updates": float(updates),
                "trial_id": f"B{batch_size}-lr{lr:.6g}-m{momentum:g}-s{seed}"}
    if lr > diverge_factor * lr_opt:
        return {**base, "test_acc": ACC_MIN, "train_acc": ACC_MIN, "diverged": True,
                "test_loss": math.nan, "train_loss": math.inf, "epochs": 1.0, "updates": float(updates // epochs)}
    x = math.log(lr / lr_opt)
    peak = acc_max - acc_drop * doublings
    test_acc = ACC_MIN + (peak - ACC_MIN) * math.exp(-x * x / (2 * width ** 2)) + rng.normal(0, noise)
    gap = (gap0 + gap_slope * doublings) * math.exp(-x * x / (2 * (2 * width) ** 2)) + rng.normal(0, noise / 2)
    test_acc = float(np.clip(test_acc, 0, 1))
    return {**base, "test_acc": test_acc, "train_acc": float(np.clip(test_acc + gap, 0, 1)), "diverged": False,
            "test_loss": 2.3 * (1 - test_acc), "train_loss": 2.3 * (1 - test_acc - gap)}


def _schedule_rows(alpha, beta, k, breakdown, seeds, dataset_size, epochs, rng):
    """Smith et al.'s comparison at B0=128, m=0.9: same final accuracy, fewer updates when B grows."""
    b0, m0 = 128, 0.9
    lr0 = float(planted_lr(b0, m0, alpha, beta, k, breakdown))
    base_updates = epochs * math.ceil(dataset_size / b0)
    # (schedule, accuracy offset, updates relative to step_decay_lr)
    kinds = [("step_decay_lr", 0.0, 1.0), ("increase_batch", -0.002, 0.42), ("hybrid", -0.001, 0.61),
             ("constant", -0.03, 1.0)]
    rows = []
    for kind, offset, ratio in kinds:
        for seed in seeds:
            rows.append({"batch_size": b0, "lr": lr0, "momentum": m0, "seed": seed, "dataset_size": dataset_size,
                             "schedule": kind, "section": "schedules", "epochs": float(epochs),
                             "updates": float(round(base_updates * ratio)), "diverged": False,
                             "test_acc": 0.9 + offset + rng.normal(0, 0.002), "train_acc": 0.95,
                             "test_loss": 0.3, "train_loss": 0.1, "trial_id": f"{kind}-s{seed}"})
    return pd.DataFrame(rows)
