"""The calibration set: the shipped reference tables load, every cell's reference ε* is bounded by
its own dense data, and the subsampling machinery measures coverage on a small real subsample."""

import numpy as np
import pytest

from scalestudy.calibration import REFERENCES, SubsampleDesign, load_reference, reference_cells, subsample_coverage
from scalestudy.calibration.reference import available
from scalestudy.calibration.subsample import subsample


def test_every_reference_is_shipped_with_its_spec():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    assert available() == list(REFERENCES)
    for reference in REFERENCES.values():
        for spec in reference.specs:
            assert (root / spec).is_file(), spec
        assert all("scalestudy run" in command for command in reference.commands)


@pytest.fixture(scope="module")
def mlp():
    return load_reference("mnist1d_mlp")


def test_reference_is_dense(mlp):
    """At least 6 doublings of B, m in {0, 0.9}, a √2 grid, 8 seeds, as the calibration rule asks."""
    batch_sizes = np.unique(mlp["batch_size"])
    assert batch_sizes.max() / batch_sizes.min() >= 64
    assert set(np.unique(mlp["momentum"])) == {0.0, 0.9}
    assert mlp["seed"].nunique() >= 8
    cell = mlp[(mlp["batch_size"] == 64) & (mlp["momentum"] == 0.9)]
    steps = np.diff(np.log(np.unique(cell["lr"])))
    assert np.allclose(steps, np.log(2) / 2, atol=0.01)


def test_reference_optima_lie_inside_their_own_sets(mlp):
    cells = reference_cells(mlp)
    assert len(cells) >= 6
    for cell in cells.values():
        assert cell.ci95[0] <= cell.lr_opt <= cell.ci95[1]


def test_a_subsample_is_what_a_user_samples(mlp):
    rng = np.random.default_rng(0)
    sample = subsample(mlp, SubsampleDesign(seeds=2, grid_step=2, batch_sizes=4), rng)
    assert sample["seed"].nunique() == 2 and sample["batch_size"].nunique() == 4
    full = mlp[(mlp["batch_size"] == sample["batch_size"].iloc[0]) & (mlp["momentum"] == 0.9)]["lr"].nunique()
    kept = sample[(sample["batch_size"] == sample["batch_size"].iloc[0]) & (sample["momentum"] == 0.9)]["lr"].nunique()
    assert kept in (full // 2, full // 2 + 1)


def test_coverage_on_a_small_real_subsample(mlp):
    """A few subsamples at 2 seeds: the machinery runs the real fits and counts; the intervals hold the
    reference optima (the full benchmark, scalestudy bench coverage, measures the rate on 100)."""
    result = subsample_coverage(mlp, SubsampleDesign(seeds=2), draws=3, seed=1)
    assert result.draws == 3 and result.cells > 0
    assert result.with_interval >= 0.8 * result.cells
    assert result.cell_rate >= 0.8
