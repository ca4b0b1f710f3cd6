"""The calibration set: the shipped reference tables load, every cell's reference ε* is bounded by
its own dense data, and the subsampling machinery measures coverage on a small real subsample."""

import numpy as np
import pytest

from scalestudy.calibration import REFERENCES, SubsampleDesign, load_reference, reference_cells, subsample_coverage
from scalestudy.calibration.reference import available
from scalestudy.calibration.subsample import subsample

# What each reference spans in m (the cnn1d is run at m = 0.9 only, the LM has AdamW's β1 = 0.9 only).
MOMENTA = {"mnist1d_mlp": {0.0, 0.9}, "mnist1d_cnn1d": {0.9}, "text_lm_adamw": {0.9}}


def test_every_reference_is_shipped_with_its_spec():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    assert available() == list(REFERENCES)
    assert set(MOMENTA) <= set(REFERENCES)
    for reference in REFERENCES.values():
        for spec in reference.specs:
            assert (root / spec).is_file(), spec
        assert all("scalestudy run" in command for command in reference.commands)


@pytest.fixture(scope="module", params=available())
def reference(request):
    return request.param, load_reference(request.param)


@pytest.fixture(scope="module")
def mlp():
    return load_reference("mnist1d_mlp")


def test_reference_is_dense(reference):
    """At least 6 doublings of B over 7 batch sizes, a √2 grid in every cell, 8 seeds, as the
    calibration rule asks."""
    name, frame = reference
    batch_sizes = np.unique(frame["batch_size"])
    assert len(batch_sizes) >= 7 and batch_sizes.max() / batch_sizes.min() >= 64
    assert set(np.unique(frame["momentum"])) == MOMENTA[name]
    assert frame["seed"].nunique() >= 8
    for (b, m), cell in frame.groupby(["batch_size", "momentum"]):
        lrs = np.unique(cell["lr"])
        assert len(lrs) >= 9, (b, m)
        assert np.allclose(np.diff(np.log(lrs)), np.log(2) / 2, atol=0.01), (b, m)
        assert (cell.groupby("lr")["seed"].nunique() >= 8).all(), (b, m)


def test_the_lm_reference_minimises_test_loss():
    frame = load_reference("text_lm_adamw")
    assert set(frame["objective_metric"]) == {"test_loss"} and set(frame["objective_direction"]) == {"min"}
    assert set(frame["optimizer"]) == {"adamw"}
    cells = reference_cells(frame)
    # Oriented by the objective: the cell's best ε is the one of least seed-mean test loss.
    for cell in cells.values():
        assert cell.best_acc == pytest.approx(min(v for v in cell.mean_acc if np.isfinite(v)))


def test_reference_optima_lie_inside_their_own_sets(reference):
    """Most cells get a reference ε*, each inside its own 95 % set, the set inside the searched lrs,
    and the best ε is neither the smallest nor the largest searched."""
    _, frame = reference
    cells = reference_cells(frame)
    n_cells = frame.groupby(["batch_size", "momentum"]).ngroups
    assert len(cells) >= max(5, int(0.7 * n_cells))
    for cell in cells.values():
        assert cell.ci95[0] <= cell.lr_opt <= cell.ci95[1]
        assert cell.lrs[0] * (1 - 1e-9) <= cell.ci95[0] and cell.ci95[1] <= cell.lrs[-1] * (1 + 1e-9)  # exp(ln ε)
        assert cell.lrs[0] < cell.best_lr < cell.lrs[-1], (cell.batch_size, cell.momentum, cell.best_lr)


def test_a_subsample_is_what_a_user_samples(reference):
    _, frame = reference
    rng = np.random.default_rng(0)
    sample = subsample(frame, SubsampleDesign(seeds=2, grid_step=2, batch_sizes=4), rng)
    assert sample["seed"].nunique() == 2 and sample["batch_size"].nunique() == 4
    b = sample["batch_size"].iloc[0]
    full = frame[(frame["batch_size"] == b) & (frame["momentum"] == 0.9)]["lr"].nunique()
    kept = sample[(sample["batch_size"] == b) & (sample["momentum"] == 0.9)]["lr"].nunique()
    assert kept in (full // 2, full // 2 + 1)


def test_coverage_on_a_small_real_subsample(mlp):
    """A few subsamples at 2 seeds: the machinery runs the real fits and counts; the intervals hold the
    reference optima (the full benchmark, scalestudy bench coverage, measures the rate on 100)."""
    result = subsample_coverage(mlp, SubsampleDesign(seeds=2), draws=3, seed=1)
    assert result.draws == 3 and result.cells > 0
    assert result.with_interval >= 0.8 * result.cells
    assert result.cell_rate >= 0.8


@pytest.mark.parametrize("name", [n for n in available() if n != "mnist1d_mlp"])
def test_coverage_machinery_runs_on_every_reference(name):
    """The same count on the other references (one momentum each: no β in the law)."""
    frame = load_reference(name)
    result = subsample_coverage(frame, SubsampleDesign(seeds=2), draws=2, seed=1)
    assert result.draws == 2 and result.candidates > 0
    assert result.covered <= result.with_interval <= result.cells <= result.candidates
    assert result.law_total["beta"] == 0
