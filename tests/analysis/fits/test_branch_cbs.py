"""estimate_cbs on hand-built branched-study tables: crossings, censoring both ways, divergence, one seed."""

import math

import numpy as np
import pandas as pd
import pytest

from scalestudy.analysis.fits.branch_cbs import estimate_cbs
from scalestudy.law.cbs import CBS_SCHEMA, CBSCurve

TOL = 0.01


def table(excess: dict[int, float], seeds=4, noise=1e-4, checkpoint=0, base=8, extra=None) -> pd.DataFrame:
    """Rows of one checkpoint: window_loss = 1 + excess[B] + a little noise per seed (B₀ itself: excess 0)."""
    rng = np.random.default_rng(checkpoint)
    rows = []
    for size, delta in {base: 0.0, **excess}.items():
        for seed in range(seeds):
            rows.append({"checkpoint": checkpoint, "checkpoint_examples": 1000 * (checkpoint + 1),
                         "checkpoint_updates": 125 * (checkpoint + 1), "base_loss": 1.2, "batch_size": size,
                         "seed": seed, "window_loss": 1.0 + delta + noise * rng.standard_normal(), **(extra or {})})
    return pd.DataFrame(rows)


def one(rows, **kwargs):
    (point,) = estimate_cbs(rows, tolerance=kwargs.pop("tolerance", TOL), base_batch_size=kwargs.pop("base", 8))
    return point


def test_the_crossing_is_interpolated_in_ln_b_inside_its_bracket():
    point = one(table({16: 0.0, 32: 0.005, 64: 0.02, 128: 0.08}))
    # Δ goes 0.005 → 0.02 between 32 and 64: the tolerance is a third of the way in ln B.
    assert point.cbs == pytest.approx(32 * 2 ** (1 / 3), rel=0.02)
    assert point.ci95 == (32.0, 64.0) and point.censored is None and point.note is None
    assert point.tested_batch_sizes == (8, 16, 32, 64, 128)
    assert (point.examples, point.updates, point.base_loss) == (1000, 125, 1.2)


def test_censored_above_when_every_size_keeps_the_loss():
    point = one(table({16: 0.0, 32: 0.001, 64: 0.002}))
    assert point.censored == "above" and point.cbs == 64 and point.ci95.low == 64


def test_censored_below_when_the_first_branch_already_loses():
    point = one(table({16: 0.04, 32: 0.1}))
    assert point.censored == "below" and 8 < point.cbs < 16 and point.ci95 == (8.0, 16.0)


def test_a_diverged_branch_fails_the_tolerance():
    rows = table({16: 0.0, 32: 0.002, 64: 0.003, 128: 0.004})
    rows.loc[(rows.batch_size == 64) & (rows.seed == 2), "window_loss"] = math.nan
    point = one(rows)
    # 64 diverged once: it loses; 128 kept the loss, so CBS is past it (the largest size within the tolerance).
    assert point.censored == "above" and point.cbs == 128 and point.ci95.low == 128
    rows.loc[(rows.batch_size == 128) & (rows.seed == 0), "window_loss"] = math.inf
    point = one(rows)
    assert point.cbs == 32 and point.ci95 == (32.0, 64.0)  # no slope to read past a divergence: the last size within


def test_noise_near_the_tolerance_widens_the_interval_to_the_sizes_it_cannot_tell_apart():
    rows = table({16: 0.0, 32: 0.0, 64: 0.0, 128: 0.2}, noise=0.0)
    spread = {32: [0.0, 0.018, 0.005, 0.013], 64: [0.004, 0.02, 0.008, 0.016]}  # means 0.009 and 0.012
    for size, values in spread.items():
        rows.loc[rows.batch_size == size, "window_loss"] += values
    point = one(rows)
    # Neither 32 nor 64 is surely within or surely past 0.01: the interval spans both cells.
    assert point.ci95 == (16.0, 128.0)
    assert point.ci95.low <= point.cbs <= point.ci95.high


def test_one_seed_gives_an_estimate_without_an_interval():
    point = one(table({16: 0.0, 32: 0.05}, seeds=1))
    assert point.cbs == pytest.approx(16 * 2 ** (TOL / 0.05), rel=0.05) and point.ci95 is None
    assert "one seed" in point.note


def test_unpaired_seeds_use_welch_and_unknown_control_is_a_note():
    rows = table({16: 0.0, 32: 0.05})
    rows.loc[rows.batch_size == 32, "seed"] += 10  # branch seeds with no control of the same seed
    assert one(rows).ci95 == (16.0, 32.0)
    no_control = one(table({16: 0.0}).query("batch_size != 8"))
    assert no_control.cbs is None and "control" in no_control.note
    lone = one(table({}))
    assert lone.cbs is None and "no branch" in lone.note


def test_points_carry_the_noise_scale_and_the_truth_in_order_of_examples():
    rows = pd.concat([table({16: 0.0, 32: 0.05}, checkpoint=1, extra={"noise_scale": 40.0, "true_cbs": 20.0}),
                      table({16: 0.05}, checkpoint=0, extra={"noise_scale": 30.0, "true_cbs": math.inf})])
    points = estimate_cbs(rows, tolerance=TOL, base_batch_size=8)
    assert [p.checkpoint for p in points] == [0, 1]
    assert points[1].noise_scale == 40.0 and points[1].true_cbs == 20.0 and points[0].true_cbs is None
    curve = CBSCurve(CBS_SCHEMA, 8, 0.1, 0.0, "sgd", "linear", TOL, 512, 4096, 8192, points)
    assert CBSCurve.from_dict(curve.to_dict()).points == points  # the points make a valid cbs.json


def test_bad_input_is_one_line_naming_what_is_wrong():
    with pytest.raises(ValueError, match="window_loss"):
        estimate_cbs(table({16: 0.0}).drop(columns="window_loss"), tolerance=TOL, base_batch_size=8)
    with pytest.raises(ValueError, match="tolerance"):
        estimate_cbs(table({16: 0.0}), tolerance=-1.0, base_batch_size=8)


def test_a_branch_that_lost_by_orders_of_magnitude_bounds_the_interval_above():
    rows = table({16: 0.0, 32: 0.0, 64: 0.0})
    # 64's seeds lost 10, 1000, 30, 5000: the Student-t lower bound is below 0, Markov's is not.
    rows.loc[rows.batch_size == 64, "window_loss"] += [10.0, 1000.0, 30.0, 5000.0]
    point = one(rows)
    assert point.ci95 == (32.0, 64.0) and point.note is None
    rows["window_loss"] -= 2.0  # a loss that can be negative has no Markov bound: the upper end stays open
    point = one(rows)
    assert point.ci95 == (32.0, 64.0) and "upper end" in point.note
