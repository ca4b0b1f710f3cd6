"""λ* and τ*_epoch per cell (fits/adamw/decay_optimum.py): τ_epoch's closed form, the ε* machinery over
ln λ giving what it gives over ln ε, a grid that sweeps τ_epoch, a grid that sweeps ε too."""

import numpy as np
import pandas as pd
import pytest

from scalestudy.analysis.fits.adamw.decay_optimum import (
    DecayOptimum,
    fit_decay_optima,
    sweeps_weight_decay,
    tau_epoch,
)
from scalestudy.analysis.fits.cell_optimum.frontier import fit_cell, fit_frontier
from scalestudy.testing.adamw_studies import GAUSSIAN, DecayDesign, decay_study

SMALL = DecayDesign(batch_sizes=(32, 128, 512), seeds=3)


def test_tau_epoch_is_b_over_lr_lambda_n():
    """Wang & Aitchison's τ_epoch = B/(ε·λ·N): 256/(1e-3 · 0.1 · 50 000) = 51.2 epochs."""
    assert tau_epoch(256, 1e-3, 0.1, 50_000) == pytest.approx(51.2)
    cell = DecayOptimum(256, 0.9, 50_000, 1e-3, "ok", 0.1, (0.05, 0.2))
    assert cell.tau_epoch == pytest.approx(51.2)
    assert cell.tau_epoch_ci95 == pytest.approx((25.6, 102.4))  # λ's ends, swapped: τ falls as λ grows
    assert cell.log_var == pytest.approx((np.log(4) / (2 * 1.959964)) ** 2)


def test_the_optimum_over_lambda_is_the_optimum_over_lr_of_the_same_curve():
    """fit_cell(axis="weight_decay") on a λ curve = fit_cell on that curve written as an lr curve."""
    frame = decay_study(np.random.default_rng(0), SMALL, shape=GAUSSIAN).frame
    curve = frame[frame["batch_size"] == 128]
    by_decay = fit_cell(curve, 128, 0.9, 0.1, axis="weight_decay")
    as_lr = fit_cell(curve.drop(columns="lr").rename(columns={"weight_decay": "lr"}), 128, 0.9, 0.1)
    assert by_decay.lr_opt == pytest.approx(as_lr.lr_opt) and by_decay.ci95 == pytest.approx(as_lr.ci95)


def test_planted_lambda_star_is_covered_in_every_cell():
    study = decay_study(np.random.default_rng(1), SMALL, shape=GAUSSIAN)
    assert sweeps_weight_decay(study.frame)
    decay = fit_decay_optima(study.frame)
    assert len(decay.usable()) == 3
    for cell in decay.cells:
        truth = study.weight_decay_opt(cell.batch_size)
        assert cell.ci95[0] <= truth <= cell.ci95[1]
        assert cell.tau_epoch_ci95[0] <= study.tau_epoch <= cell.tau_epoch_ci95[1]
        assert cell.weight_decay == pytest.approx(truth, rel=0.25)


def test_a_grid_that_sweeps_tau_epoch_gives_the_same_optimum():
    """Without a weight_decay column, λ = B/(ε·τ·N) from tau_epoch: the same λ*."""
    frame = decay_study(np.random.default_rng(2), SMALL, shape=GAUSSIAN).frame
    plain = fit_decay_optima(frame)
    from_tau = fit_decay_optima(frame.drop(columns="weight_decay"))
    assert [c.weight_decay for c in from_tau.cells] == pytest.approx([c.weight_decay for c in plain.cells])


def test_a_study_that_sweeps_lr_too_reads_lambda_at_each_cells_best_lr():
    design = DecayDesign(batch_sizes=(32, 128, 512), seeds=3, lrs=(2.5e-4, 1e-3, 4e-3), lr_width=0.5)
    study = decay_study(np.random.default_rng(3), design, shape=GAUSSIAN)
    decay = fit_decay_optima(study.frame)
    assert [cell.lr for cell in decay.cells] == [1e-3] * 3
    for cell in decay.usable():
        assert cell.tau_epoch_ci95[0] <= study.tau_epoch <= cell.tau_epoch_ci95[1]


def test_a_study_without_a_lambda_sweep_has_no_decay_fit():
    frame = decay_study(np.random.default_rng(4), SMALL, shape=GAUSSIAN).frame
    one_lambda = frame[frame["weight_decay"] == frame.groupby("batch_size")["weight_decay"].transform("min")]
    assert not sweeps_weight_decay(one_lambda)
    assert not fit_decay_optima(one_lambda).cells
    assert not fit_frontier(frame).usable()  # the ε* fit sees one lr per cell: nothing to fit there


def test_trials_without_weight_decay_are_left_out_of_the_curve_over_ln_lambda():
    frame = decay_study(np.random.default_rng(5), SMALL, shape=GAUSSIAN).frame
    zero = frame[frame["weight_decay"] == frame["weight_decay"].min()].assign(weight_decay=0.0, tau_epoch=np.inf)
    with_zero = fit_decay_optima(pd.concat([frame, zero], ignore_index=True))
    plain = fit_decay_optima(frame)
    assert [c.weight_decay for c in with_zero.cells] == pytest.approx([c.weight_decay for c in plain.cells])
    assert any("λ = 0" in w for w in with_zero.warnings)


def test_an_interval_closed_on_one_lambda_still_weighs_as_one_grid_step():
    """A zero-width interval would get an infinite weight: its variance is at least step²/12."""
    frame = decay_study(np.random.default_rng(6), SMALL, shape=GAUSSIAN).frame
    cell = fit_decay_optima(frame).cells[0]
    closed = DecayOptimum(cell.batch_size, 0.9, 4000, 1e-3, "ok", 1.0, (1.0, 1.0), curve=cell.curve)
    assert closed.log_var == pytest.approx(np.log(2.0) ** 2 / 12)  # the design's ×2 grid
