"""Trials stopped early with a bound on their final objective, in a cell's ε* fit (censored.py): on a
planted Gaussian peak, stopped trials far from the optimum resolve an edge, leave the interval
covering the truth, and never narrow it; a bound above the best leaves the cell open."""

import numpy as np
import pandas as pd
import pytest

from scalestudy.analysis.fits.cell_optimum.frontier import fit_frontier

LRS = [0.0125, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8]
TRUTH = 0.09


def planted(lr, seed):
    """A Gaussian bump in ln ε at TRUTH (top 0.9, floor 0.1), with a little seed noise."""
    noise = np.random.default_rng(int(lr * 1e4) + 7 * seed).normal(0, 0.004)
    return 0.1 + 0.8 * np.exp(-np.log(lr / TRUTH) ** 2 / 2) + noise


def trials(lrs, seeds=(0, 1, 2), stopped=(), bound_over=0.1):
    """A cell's trial-table rows; those at ``stopped`` lrs were stopped with a bound ``bound_over``
    above their true final value (their objective is where they stopped, well below it)."""
    rows = []
    for lr in lrs:
        for seed in seeds:
            final = planted(lr, seed)
            stop = lr in stopped
            rows.append({"batch_size": 128, "lr": lr, "momentum": 0.9, "seed": seed, "dataset_size": 1000,
                         "diverged": False, "objective": final - 0.3 if stop else final,
                         "objective_direction": "max", "objective_metric": "test_acc",
                         "status": "stopped" if stop else "ok",
                         "objective_bound": final + bound_over if stop else np.nan})
    return pd.DataFrame(rows)


def frontier(frame):
    finished = frame[frame["status"] == "ok"]
    return fit_frontier(finished, censored=frame[frame["status"] == "stopped"]).cells[0], \
        fit_frontier(finished).cells[0]


def covers(cell, value):
    return cell.ci95 is not None and cell.ci95[0] <= value <= cell.ci95[1]


def test_stopped_trials_far_from_the_optimum_widen_the_interval_never_narrow_it():
    with_them, without = frontier(trials(LRS, stopped=(0.4, 0.8)))
    assert without.status == with_them.status == "ok" and with_them.n_censored == 6
    assert covers(without, TRUTH) and covers(with_them, TRUTH)
    assert with_them.ci95[0] <= without.ci95[0] and with_them.ci95[1] >= without.ci95[1]
    assert with_them.lr_opt == without.lr_opt  # the finished trials bound it: their vertex stands
    assert with_them.n_trials == 21 and without.n_trials == 15


def test_lrs_past_the_best_stopped_with_bounds_below_it_are_not_an_edge():
    """Finished up to 0.1 (the best: an edge on its own); 0.2-0.8 stopped, their bounds below the best."""
    with_them, without = frontier(trials(LRS, stopped=(0.2, 0.4, 0.8), bound_over=0.05))
    assert without.status == "edge_high" and without.ci95 is None
    assert with_them.status == "ok" and with_them.n_censored == 9
    assert covers(with_them, TRUTH) and with_them.ci95[1] >= 0.1
    # The same cell with every trial finished: the censored interval is no narrower.
    finished_all = fit_frontier(trials(LRS)).cells[0]
    assert with_them.ci95[0] <= finished_all.ci95[0] and with_them.ci95[1] >= finished_all.ci95[1]


def test_a_bound_above_the_best_at_the_end_of_the_search_leaves_the_cell_open_there():
    """Finished up to 0.2 (an interior optimum on their own); 0.4, the largest lr, stopped with a bound
    that could beat the best: the optimum could lie out there, so the cell is an edge."""
    with_them, without = frontier(trials(LRS[:-1], stopped=(0.4,), bound_over=0.6))
    assert without.status == "ok"
    assert with_them.status == "edge_high" and with_them.n_censored == 3 and "censored at their bounds" in \
        with_them.reason


def test_a_bound_above_the_best_inside_the_search_widens_the_interval_to_it():
    """0.2 stopped with a bound above the best, 0.4 finished below it: the optimum may be at 0.2."""
    frame = trials(LRS, stopped=(0.2,), bound_over=0.5)
    with_them, without = frontier(frame)
    assert with_them.status == without.status == "ok"
    assert with_them.ci95[1] >= 0.2 > without.ci95[1] and covers(with_them, TRUTH)


def test_a_minimised_objective_is_censored_below():
    frame = trials(LRS, stopped=(0.4, 0.8))
    loss = frame.assign(objective=1 - frame["objective"], objective_bound=1 - frame["objective_bound"],
                        objective_direction="min", objective_metric="test_loss")
    with_them, without = frontier(loss)
    assert with_them.status == "ok" and with_them.n_censored == 6 and covers(with_them, TRUTH)
    assert with_them.ci95[0] <= without.ci95[0] and with_them.ci95[1] >= without.ci95[1]
    assert with_them.best_acc == pytest.approx(without.best_acc)  # in the loss's own units
