"""The surge test (fits/surge.py): its statistic against hand-computed values, the sign property that
makes a flat ε*(B) least favourable, its size under a flat truth, and its verdicts on cells planted
from Li et al.'s surge and from a law that saturates."""

import math

import numpy as np
import pytest

from scalestudy.analysis.fits.cell_optimum.optimum import CellOptimum
from scalestudy.analysis.fits.surge import fall_contrasts, fall_p_value, largest_drop, surge_test
from scalestudy.testing.adamw_studies import SurgeLaw

SIZES = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


def cells(lr_of, sizes=SIZES, sd=0.05, momentum=0.9, rng=None):
    """Usable cells with ε* = lr_of(B)·e^(noise of sd ``sd``) and log_lr_var = sd²."""
    rng = rng or np.random.default_rng(0)
    return [CellOptimum(b, momentum, "ok", lr_of(b) * math.exp(rng.normal(0, sd)), (1.0, 2.0), 1.0, 0.9, (), (), (),
                        (), (), 3, 3, log_lr_var=sd ** 2) for b in sizes]


def test_the_statistic_is_the_largest_studentized_fall():
    """y = (0, 1, 0.5), unit variances: the drop 1 → 0.5 is 0.5/√2; the 3-point tail rises (slope +¼)."""
    x, v = np.log([16.0, 32.0, 64.0]), np.ones(3)
    assert largest_drop(np.array([[0.0, 1.0, 0.5]]), x, v)[0] == pytest.approx(0.5 / math.sqrt(2))
    assert largest_drop(np.array([[0.0, 1.0, 2.0]]), x, v)[0] == 0.0  # rising: no fall at all


def test_every_contrast_has_unit_variance_and_is_non_positive_on_a_rising_curve():
    x, v = np.log(SIZES), np.random.default_rng(1).uniform(0.01, 0.2, len(SIZES))
    c = fall_contrasts(x, v)
    assert (c ** 2) @ v == pytest.approx(np.ones(len(c)))
    rising = np.cumsum(np.random.default_rng(2).uniform(0, 1, (50, len(SIZES))), axis=1)
    assert (rising @ c.T <= 1e-12).all()


def test_its_size_under_a_flat_truth_is_at_most_its_level():
    """200 flat lines of 3 cells (known variances): at most ~5 % rejected at 5 % (±3 sd)."""
    rng = np.random.default_rng(3)
    p = [fall_p_value(cells(lambda b: 1e-3, (64, 128, 256), sd=0.2, rng=rng), rng, 500) for _ in range(200)]
    assert np.mean(np.array(p) <= 0.05) <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 200)


def test_a_planted_surge_is_a_peak_at_its_noise_batch_size():
    law = SurgeLaw(1e-3, 256.0)
    fit = surge_test(cells(lambda b: law.lr_opt(b, 0.9)))
    assert fit.verdict == "peak" and fit.p_value < 0.01 and fit.momentum == 0.9
    assert fit.peak_ci95[0] <= 256 <= fit.peak_ci95[1]
    assert fit.peak_batch_size == pytest.approx(256, rel=0.5)


def test_a_law_that_saturates_is_monotone():
    """McCandlish et al.'s ε_max/(1 + B_noise/B): rises and flattens, never falls."""
    fit = surge_test(cells(lambda b: 1e-2 / (1 + 256 / b)))
    assert fit.verdict == "monotone" and fit.p_value > 0.05


def test_fewer_than_three_batch_sizes_is_inconclusive():
    fit = surge_test(cells(lambda b: 1e-3, (64, 128)))
    assert fit.verdict == "inconclusive" and fit.p_value is None and "3 batch sizes" in fit.reason


def test_li_et_al_form_peaks_at_the_noise_batch_size():
    """ε_max/(½(√(B_noise/B) + √(B/B_noise))): ε_max at B_noise, the same at B_noise/4 and 4·B_noise."""
    law = SurgeLaw(2e-3, 100.0)
    assert law.lr_opt(100, 0) == pytest.approx(2e-3)
    assert law.lr_opt(25, 0) == pytest.approx(law.lr_opt(400, 0)) == pytest.approx(2e-3 / 1.25)
