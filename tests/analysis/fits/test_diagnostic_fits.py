"""Stopped trials, compute, the critical batch size, steps to target and sharpness, on hand-built
and planted tables (pure functions; the files and the report are checked in test_report)."""

import math

import numpy as np
import pandas as pd
import pytest

from scalestudy.analysis import (
    TrialTable,
    critical_batch_from_noise,
    fit_frontier,
    fit_law,
    fit_sharpness,
    fit_steps_to_target,
    law_trials,
    study_compute,
)
from scalestudy.analysis.figures.sharpness_vs_batch_size import sharpness_vs_batch
from scalestudy.analysis.figures.steps_to_target import steps_to_target
from scalestudy.analysis.fits.cell_optimum.frontier import fit_cell
from scalestudy.analysis.fits.law import Breakdown
from scalestudy.analysis.fits.study import stopped_past_edges
from scalestudy.testing.planted import PlantedDiagnostics, add_diagnostics, make_planted_table, stop_early

FULL = {"batch_size": 64, "lr": 0.1, "momentum": 0.9, "seed": 0, "dataset_size": 1000, "test_acc": 0.8,
        "train_acc": 0.85}


def trial(**values):
    return {**FULL, "diverged": False, "status": "ok", **values}


def test_compute_sums_every_trial_on_a_hand_built_table():
    frame = TrialTable.from_frame(pd.DataFrame([
        trial(epochs=10, updates=160, train_seconds=3600, workers=1, cpus_per_worker=2, gpus_per_worker=0),
        trial(diverged=True, status="diverged", test_acc=0.1, epochs=2, updates=32, train_seconds=720, workers=2,
              cpus_per_worker=1, gpus_per_worker=0),
        trial(status="stopped", epochs=1, updates=16, train_seconds=360, workers=1, cpus_per_worker=4,
              gpus_per_worker=1),
        trial(epochs=10, updates=20, train_seconds=1800, workers=4, cpus_per_worker=8, gpus_per_worker=1),
    ])).frame
    compute = study_compute(frame)
    assert (compute.trials, compute.finished, compute.diverged, compute.stopped) == (4, 2, 1, 1)
    assert compute.trial_epochs == 23 and compute.updates == 228
    assert compute.train_hours == pytest.approx((3600 + 720 + 360 + 1800) / 3600)
    # CPU h: 1·2·1 h + 2·1·0.2 h + 1·4·0.1 h + 4·8·0.5 h; GPU h: 1·1·0.1 h + 4·1·0.5 h
    assert compute.cpu_hours == pytest.approx(2 + 0.4 + 0.4 + 16)
    assert compute.gpu_hours == pytest.approx(0.1 + 2)
    assert compute.notes == ()
    estimated = study_compute(frame, "estimate: last epoch_seconds × epochs completed")
    assert any("estimate" in note for note in estimated.notes)


def test_compute_without_times_or_resources_says_what_is_unknown():
    frame = TrialTable.from_frame(pd.DataFrame([trial(epochs=3.0), trial(epochs=float("nan"), seed=1)])).frame
    compute = study_compute(frame)
    assert compute.trial_epochs == 3 and compute.updates is None
    assert compute.cpu_hours is None and compute.gpu_hours is None
    assert "no train_seconds column (epoch_seconds not logged): hours unknown" in compute.notes
    assert "1 trials without epochs are left out of its sum" in compute.notes
    seconds = TrialTable.from_frame(pd.DataFrame([trial(train_seconds=7200.0)])).frame
    compute = study_compute(seconds)
    assert compute.train_hours == 2 and compute.cpu_hours is None
    assert "no workers column: one worker per trial assumed" in compute.notes
    assert "no cpus_per_worker column: CPU hours unknown" in compute.notes


def test_stopped_trials_are_left_out_of_the_fit_but_counted_in_compute():
    frame = stop_early(add_diagnostics(make_planted_table(1.0, 1.0, 1e-3, None, batch_sizes=(32, 64, 128, 256, 512),
                                                          momenta=(0.0, 0.9), lr_points=9, rng=5)), keep=0.4)
    early = frame["status"] == "stopped"
    assert early.sum() > len(frame) / 4
    frame.loc[early, "test_acc"] = 0.99  # if a stopped trial counted, ε* would move to its lr
    table = TrialTable.from_frame(frame).frame
    kept, notes = law_trials(table)
    assert len(kept) == (~early).sum() and "stopped" not in set(kept["status"])
    assert notes == [(f"{early.sum()} constant-schedule trials stopped early by the search are left out of the ε* "
                      "fit (they did not finish: their final accuracy is not comparable); they count in the compute")]
    law = fit_law(list(fit_frontier(kept, n_boot=20).cells))
    same = fit_law(list(fit_frontier(table[~early], n_boot=20).cells))
    assert law.alpha == same.alpha and law.alpha == pytest.approx(1.0, abs=0.05)
    assert len(law_trials(table, keep_stopped=True)[0]) == len(table)
    compute = study_compute(table)
    assert compute.stopped == early.sum() and compute.trials == len(frame)
    assert compute.trial_epochs == pytest.approx(frame["epochs_completed"].sum())
    assert compute.updates == pytest.approx(frame["updates"].sum())


def test_a_mostly_stopped_cell_fits_from_its_finished_trials():
    lrs = [0.0125, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8]
    x = np.log(np.array(lrs) / 0.09)
    accuracy = 0.1 + 0.8 * np.exp(-x ** 2 / 2)
    finished = {2, 3, 4}  # ASHA kept the three lrs around the optimum
    rows = [trial(batch_size=128, lr=lr, seed=seed, test_acc=acc if i in finished else acc / 3,
                  status="ok" if i in finished else "stopped")
            for seed in (0, 1) for i, (lr, acc) in enumerate(zip(lrs, accuracy))]
    kept = law_trials(TrialTable.from_frame(pd.DataFrame(rows)).frame)[0]
    cell = fit_cell(kept, 128, 0.9, floor=0.1)
    assert cell.status == "ok" and cell.lrs == (0.05, 0.1, 0.2)
    assert cell.lr_opt == pytest.approx(0.09, rel=0.01)
    # Only lrs above the optimum finished: an edge, and the warning says the search cut the lower ones short.
    rows = [trial(batch_size=128, lr=lr, seed=seed, test_acc=acc if i >= 3 else acc / 3,
                  status="ok" if i >= 3 else "stopped")
            for seed in (0, 1) for i, (lr, acc) in enumerate(zip(lrs, accuracy))]
    table = TrialTable.from_frame(pd.DataFrame(rows)).frame
    frontier = fit_frontier(law_trials(table)[0], n_boot=10)
    assert frontier.cells[0].status == "edge_low"
    assert stopped_past_edges(table, frontier) == [
        ("cell B=128 m=0.9: 6 trials at lrs past its best lr 0.1 were stopped early by the search, so the optimum "
         "is probably near it but cannot be interpolated")]


def planted_cells(**diagnostics):
    frame = add_diagnostics(make_planted_table(1.0, 1.0, 1e-3, 256, batch_sizes=(32, 64, 128, 256, 512, 1024),
                                               momenta=(0.0, 0.9), lr_points=7, noise=0.003, rng=1),
                            breakdown=256, **diagnostics)
    frame = TrialTable.from_frame(frame).frame
    frontier = fit_frontier(frame, n_boot=20)
    return frame, frontier, fit_law(list(frontier.cells))


def test_critical_batch_size_from_the_noise_scale_next_to_the_breakdown():
    frame, frontier, law = planted_cells(planted=PlantedDiagnostics(noise_scale=300.0, noise_scatter=0.0))
    critical = critical_batch_from_noise(frame, list(frontier.cells), law.breakdown)
    assert critical.value == pytest.approx(300.0) and critical.iqr == pytest.approx((300.0, 300.0))
    assert critical.n_trials == 2 * 12 and len(critical.cells) == 12  # 2 seeds at the best lr of 12 cells
    assert critical.breakdown == law.breakdown.batch_size and 200 < critical.breakdown < 330
    assert critical.ratio_to_breakdown == pytest.approx(300.0 / critical.breakdown)
    assert "median" in critical.taken and "best searched lr" in critical.taken


def test_critical_batch_size_is_null_with_a_reason():
    frame, frontier, law = planted_cells()
    absent = critical_batch_from_noise(frame.drop(columns=["gradient_noise_scale"]), list(frontier.cells),
                                       law.breakdown)
    assert absent.value is None and absent.ratio_to_breakdown is None
    assert absent.reason == ("no gradient_noise_scale in the trial table "
                             "(enable diagnostics.gradient_noise_scale in the spec)")
    negative = critical_batch_from_noise(frame.assign(gradient_noise_scale=-1.0), list(frontier.cells),
                                         Breakdown(None, None, "none"))
    assert negative.value is None and "positive, finite" in negative.reason


def steps_frame():
    """One momentum, B = 32, 64, 128, 256; two lrs, two seeds; updates S = 100·(1 + 128/B) at the good lr."""
    rows = []
    for b in (32, 64, 128, 256):
        good = 100 * (1 + 128 / b)
        for seed in (0, 1):
            rows.append(trial(batch_size=b, lr=0.1, seed=seed, updates_to_target=good + seed,
                              examples_to_target=(good + seed) * b))
            # Faster for seed 0 only: seed 1 never reached the target, so this lr does not qualify.
            slow = {0: good / 2, 1: float("nan")}[seed]
            rows.append(trial(batch_size=b, lr=0.2, seed=seed, updates_to_target=slow, examples_to_target=slow * b))
    # Stopped before the target: unknown, neither a success nor a failure of lr 0.05.
    rows.append(trial(batch_size=64, lr=0.05, seed=0, status="stopped", updates_to_target=float("nan")))
    rows.append(trial(batch_size=64, lr=0.05, seed=1, updates_to_target=40.0, examples_to_target=40.0 * 64))
    return TrialTable.from_frame(pd.DataFrame(rows).assign(target_accuracy=0.7)).frame


def test_steps_to_target_points_reference_line_and_transition():
    steps = fit_steps_to_target(steps_frame())
    assert steps.target == 0.7 and steps.reason is None and len(steps.lines) == 1
    line = steps.lines[0]
    assert [p.batch_size for p in line.points] == [32, 64, 128, 256]
    assert [p.lr for p in line.points] == [0.1, 0.05, 0.1, 0.1]
    assert [p.updates for p in line.points] == [500.5, 40.0, 200.5, 150.5]
    assert [p.n_trials for p in line.points] == [2, 1, 2, 2]
    info = steps_to_target(steps)
    curve = info.curves[0]
    assert curve.updates == (500.5, 40.0, 200.5, 150.5)
    assert curve.examples == pytest.approx((500.5 * 32, 40.0 * 64, 200.5 * 128, 150.5 * 256))
    assert curve.perfect_updates == pytest.approx((500.5, 250.25, 125.125, 62.5625))  # slope −1 through B=32
    assert curve.perfect_examples == pytest.approx((500.5 * 32,) * 4)  # perfect scaling: examples constant
    assert info.noise_b_crit is None and info.breakdown is None

    exact = steps_frame().query("lr == 0.1 and seed == 0")  # S = 100·(1 + 128/B) exactly
    transition = fit_steps_to_target(exact).lines[0].transition
    assert transition.value == pytest.approx(128) and transition.min_updates == pytest.approx(100)
    curve = steps_to_target(fit_steps_to_target(exact)).curves[0]
    assert curve.transition == pytest.approx(128) and len(curve.fit_updates) == 60
    assert curve.fit_updates[0] == pytest.approx(500) and curve.fit_updates[-1] == pytest.approx(150)


def test_steps_to_target_without_the_measure():
    frame = steps_frame()
    assert "set diagnostics.target_accuracy" in fit_steps_to_target(frame.drop(columns=["updates_to_target"])).reason
    never = fit_steps_to_target(frame.assign(updates_to_target=float("nan")))
    assert never.lines == () and never.reason == "no trial reached the target accuracy"
    two = fit_steps_to_target(frame[frame["batch_size"] <= 64]).lines[0]
    assert two.transition is None and "needs 3 batch sizes" in two.reason


def test_sharpness_at_the_best_lr_and_the_keskar_comparison():
    rows = []
    for b, sharp in ((32, 0.1), (256, 0.5)):
        for lr, acc in ((0.05, 0.6), (0.1, 0.8), (0.2, 0.7)):
            for seed in (0, 1):
                best = lr == 0.1  # the other lrs carry values that must not be read
                rows.append(trial(batch_size=b, lr=lr, seed=seed, test_acc=acc,
                                  sharpness=sharp + seed / 10 if best else 9.0,
                                  sharpness_subspace=sharp / 10 if best else 9.0,
                                  sharpness_p100=sharp / 5 if best else 9.0, sharpness_p10=float("nan")))
    frame = TrialTable.from_frame(pd.DataFrame(rows)).frame
    cells = list(fit_frontier(frame, n_boot=10).cells)
    fit = fit_sharpness(frame, cells)
    assert fit.keys == ("sharpness", "sharpness_subspace", "sharpness_p10", "sharpness_p100")
    assert [(c.batch_size, c.lr) for c in fit.cells] == [(32, 0.1), (256, 0.1)]
    assert fit.cells[0].value("sharpness") == pytest.approx(0.15) and math.isnan(fit.cells[0].value("sharpness_p10"))
    full = next(c for c in fit.comparisons if c.key == "sharpness")
    assert (full.small_batch, full.large_batch) == (32, 256) and full.ratio == pytest.approx(0.55 / 0.15)
    assert [c.key for c in fit.comparisons] == ["sharpness", "sharpness_subspace", "sharpness_p100"]  # p10: none
    info = sharpness_vs_batch(fit)
    assert [key for key, _ in info.panels] == ["sharpness", "sharpness_subspace", "sharpness_p100"]
    assert info.panels[1][1][0].values == pytest.approx((0.01, 0.05))
    bare = frame.drop(columns=list(fit.keys))
    assert fit_sharpness(bare, cells).reason == "no sharpness in the trial table (enable diagnostics.sharpness)"
