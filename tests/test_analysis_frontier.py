"""ε* per cell on hand-built frames: interpolation, divergence as failure, edges, bootstrap."""

import math

import numpy as np
import pandas as pd
import pytest

from scalestudy.analysis.frontier import fit_cell, fit_frontier

LRS = [0.0125, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8]


def cell_frame(acc_by_seed, lrs=LRS, diverged=None, batch_size=128, momentum=0.9):
    rows = []
    for seed, accs in enumerate(acc_by_seed):
        for i, (lr, acc) in enumerate(zip(lrs, accs)):
            div = bool(diverged and (seed, i) in diverged)
            rows.append({"batch_size": batch_size, "lr": lr, "momentum": momentum, "seed": seed, "dataset_size": 1000,
                             "test_acc": 0.1 if div else acc, "train_acc": 0.1 if div else acc + 0.02, "diverged": div})
    return pd.DataFrame(rows)


def gaussian(lrs, lr_opt, width=1.0, top=0.9, floor=0.1):
    x = np.log(np.asarray(lrs) / lr_opt)
    return floor + (top - floor) * np.exp(-x ** 2 / (2 * width ** 2))


def test_gaussian_peak_is_recovered_between_grid_points():
    for lr_opt in (0.06, 0.075, 0.09, 0.13):
        frame = cell_frame([gaussian(LRS, lr_opt)] * 2)
        cell = fit_cell(frame, 128, 0.9, floor=0.1)
        assert cell.status == "ok"
        assert cell.lr_opt == pytest.approx(lr_opt, rel=0.01)


def test_not_the_grid_argmax():
    frame = cell_frame([gaussian(LRS, 0.07)] * 2)
    cell = fit_cell(frame, 128, 0.9, floor=0.1)
    assert cell.best_lr == 0.05 and cell.lr_opt > 0.06


def test_bootstrap_interval_over_seeds_contains_the_estimate():
    rng = np.random.default_rng(1)
    frame = cell_frame([gaussian(LRS, 0.08) + rng.normal(0, 0.01, len(LRS)) for _ in range(5)])
    cell = fit_cell(frame, 128, 0.9, floor=0.1, rng=np.random.default_rng(0))
    low, high = cell.ci95
    assert low <= cell.lr_opt <= high
    assert 0.08 / 1.15 < low < high < 0.08 * 1.15
    one_seed = fit_cell(frame[frame["seed"] == 0], 128, 0.9, floor=0.1)
    assert one_seed.ci95 is None and "one seed" in one_seed.reason


def test_a_diverged_seed_counts_as_a_failure_at_its_lr():
    accs = gaussian(LRS, 0.1)
    clean = fit_cell(cell_frame([accs, accs]), 128, 0.9, floor=0.1)
    # Seed 1 diverges at 0.2: the mean there drops to halfway, pulling ε* down.
    hurt = fit_cell(cell_frame([accs, accs], diverged={(1, 4)}), 128, 0.9, floor=0.1)
    assert hurt.status == "ok" and hurt.lr_opt < clean.lr_opt
    assert hurt.n_diverged[4] == 1 and hurt.mean_acc[4] == pytest.approx((accs[4] + 0.1) / 2)


def test_best_at_the_largest_non_diverged_lr_is_an_edge():
    accs = gaussian(LRS, 0.5)
    frame = cell_frame([accs, accs], diverged={(s, i) for s in (0, 1) for i in (5, 6)})
    cell = fit_cell(frame, 128, 0.9, floor=0.1)
    assert cell.status == "edge_high" and cell.lr_opt is None
    assert cell.best_lr == 0.2 and cell.diverged_lrs == (0.4, 0.8)


def test_best_at_the_smallest_lr_is_an_edge_and_the_frontier_warns_naming_it():
    frame = cell_frame([gaussian(LRS, 0.005)] * 2, batch_size=32, momentum=0.0)
    frontier = fit_frontier(frame)
    assert frontier.cells[0].status == "edge_low"
    assert frontier.usable() == []
    assert len(frontier.warnings) == 1 and "B=32 m=0" in frontier.warnings[0]
    assert "smallest" in frontier.warnings[0]


def test_all_diverged_and_too_few_points():
    everything = {(s, i) for s in (0, 1) for i in range(len(LRS))}
    cell = fit_cell(cell_frame([gaussian(LRS, 0.1)] * 2, diverged=everything), 128, 0.9, floor=0.1)
    assert cell.status == "all_diverged" and cell.lr_opt is None
    two = fit_cell(cell_frame([[0.5, 0.8]] * 2, lrs=[0.1, 0.2]), 128, 0.9, floor=0.1)
    assert two.status == "too_few_points"


def test_unbalanced_seeds_and_random_search_lrs():
    """Seeds that ran different lrs (e.g. random search) still give a curve over all lrs."""
    rng = np.random.default_rng(3)
    lrs = np.sort(np.exp(rng.uniform(np.log(0.01), np.log(1.0), 24)))
    rows = [{"batch_size": 64, "lr": lr, "momentum": 0.0, "seed": i % 3, "dataset_size": 1000,
                 "test_acc": float(gaussian([lr], 0.1)[0]), "train_acc": 0.9, "diverged": False} for i, lr in enumerate(lrs)]
    cell = fit_cell(pd.DataFrame(rows), 64, 0.0, floor=0.1)
    assert cell.status == "ok"
    assert math.log(cell.lr_opt / 0.1) == pytest.approx(0, abs=0.1)
