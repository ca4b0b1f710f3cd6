"""The smooth bend ε* = ε_max·(1 − m)^β·N^γ / (1 + B_noise/B)^α (issue 19 part 3) on hand-built cells:
exact recovery of noise-free bends, the limits (no bend, too few batch sizes), which bend the data
prefer, and the law file's ``smooth_bend`` key."""

import math

import numpy as np
import pytest

from scalestudy.analysis.fits.bend import fit_smooth_bend
from scalestudy.analysis.fits.cell_optimum.frontier import CellOptimum
from scalestudy.analysis.fits.law import fit_law

QUICKSTART = (16, 32, 64, 128, 256, 512)


def cells(log_lr, batch_sizes=QUICKSTART, momenta=(0.0, 0.9), dataset_sizes=(None,), noise=0.0, seed=0,
          variance=None):
    """Usable cells with ln ε* = log_lr(B, m, N), plus Gaussian noise of sd ``noise``."""
    rng = np.random.default_rng(seed)
    return [CellOptimum(b, m, "ok", math.exp(log_lr(b, m, n) + (rng.normal(0, noise) if noise else 0.0)), None,
                        None, None, (), (), (), (), (), 10, 2, log_lr_var=variance, dataset_size=n)
            for b in batch_sizes for m in momenta for n in dataset_sizes]


def mccandlish(alpha=1.0, noise_batch=512.0, lr_max=0.5, beta=1.0, gamma=0.0):
    """ln of McCandlish et al.'s ε_max/(1 + B_noise/B), with the slope α, momentum and N factors."""
    return lambda b, m, n: (math.log(lr_max) + beta * math.log1p(-m) + gamma * math.log(n or 1)
                            - alpha * math.log1p(noise_batch / b))


def test_a_noise_free_mccandlish_bend_is_recovered_exactly():
    bend = fit_smooth_bend(cells(mccandlish()))
    assert bend.alpha == pytest.approx(1.0, rel=1e-8) and bend.beta == pytest.approx(1.0, rel=1e-8)
    assert bend.noise_batch_size == pytest.approx(512.0, rel=1e-8) and bend.lr_max == pytest.approx(0.5, rel=1e-8)
    assert bend.gamma is None and bend.preferred == "smooth"
    assert bend.alpha_ci95 == pytest.approx((1.0, 1.0), rel=1e-6)


def test_the_small_batch_slope_momentum_and_dataset_size_factors_are_recovered():
    truth = mccandlish(alpha=0.7, noise_batch=200.0, lr_max=0.03, beta=0.8, gamma=-0.5)
    bend = fit_smooth_bend(cells(truth, dataset_sizes=(1000, 4000)))
    assert bend.alpha == pytest.approx(0.7, rel=1e-8) and bend.noise_batch_size == pytest.approx(200.0, rel=1e-8)
    assert bend.beta == pytest.approx(0.8, rel=1e-8) and bend.gamma == pytest.approx(-0.5, rel=1e-8)
    assert bend.lr_max == pytest.approx(0.03, rel=1e-8) and "N^gamma" in bend.form


def test_a_single_power_law_has_no_bend_and_an_interval_open_above():
    """B_noise = ∞ is the single law: its slope is α, and B_noise is bounded below only."""
    bend = fit_smooth_bend(cells(lambda b, m, n: math.log(1e-3 * b * (1 - m)), noise=0.02, variance=4e-4))
    assert bend.noise_batch_size is None and bend.lr_max is None and "no bend" in bend.reason
    assert math.isinf(bend.noise_ci95[1]) and bend.noise_ci95[0] > 512
    assert bend.alpha_ci95[0] <= 1.0 <= bend.alpha_ci95[1]
    assert bend.preferred == "either"


def test_a_noisy_bend_is_covered_and_the_law_below_a_hinge_is_not():
    """The audit's case: α = 1, B_noise = 512 on B = 16…512. A single power law over the cells is
    tilted to about 0.87; the smooth bend's small-B slope holds 1."""
    grid = cells(mccandlish(), noise=0.03, variance=9e-4, seed=3)
    bend = fit_smooth_bend(grid)
    assert bend.alpha_ci95[0] <= 1.0 <= bend.alpha_ci95[1]
    assert bend.noise_ci95[0] <= 512 <= bend.noise_ci95[1]
    law = fit_law(grid)
    assert law.alpha < 0.92 and law.bend == bend


def test_a_sharp_hinge_is_preferred_to_a_smooth_bend():
    hinge = cells(lambda b, m, n: math.log(1e-3 * min(b, 128) * (1 - m)), noise=0.01, variance=1e-4, seed=1)
    bend = fit_smooth_bend(hinge)
    assert bend.preferred == "hinge" and bend.p_smooth <= 0.05 < bend.p_hinge


def test_too_few_batch_sizes():
    assert fit_smooth_bend(cells(mccandlish(), batch_sizes=(64, 128, 256))) is None
    four = fit_smooth_bend(cells(mccandlish(), batch_sizes=(64, 128, 256, 512)))
    assert four.preferred == "untested" and four.noise_batch_size == pytest.approx(512.0, rel=1e-8)


def test_the_comparison_is_reproducible_for_a_seed():
    grid = cells(mccandlish(noise_batch=200.0), noise=0.05, variance=2.5e-3, seed=5)
    assert fit_smooth_bend(grid, seed=2) == fit_smooth_bend(grid, seed=2)


def test_law_json_smooth_bend_round_trip():
    """The fit as law.json's ``smooth_bend``, written and read back by the law file's reader: a bounded
    B_noise as [low, high], one open above as its low end."""
    from scalestudy.analysis.outputs.law_file import bend_entry
    from scalestudy.law.fields import SmoothBend, check_smooth_bend, read_record, to_json

    for grid in (cells(mccandlish(), noise=0.02, variance=4e-4),
                 cells(lambda b, m, n: math.log(1e-3 * b * (1 - m)), noise=0.02, variance=4e-4)):
        entry = bend_entry(fit_smooth_bend(grid))
        back = read_record(SmoothBend, to_json(entry), "law")
        check_smooth_bend(back, "law")
        assert back == entry and back.alpha == entry.alpha
    assert entry.noise_batch_size is None and entry.ci95.noise_batch_size is None
    assert entry.noise_batch_size_at_least > 512
