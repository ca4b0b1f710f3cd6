"""The vertex's spread under the seeds' noise (analysis/fits/cell_optimum/vertex_spread.py), against closed forms."""

import numpy as np

from scalestudy.analysis.fits.cell_optimum.vertex_spread import SHAPE_ALLOWANCE, vertex_spread

X = np.log([0.0125, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8])
STEP = np.log(2.0)


def gaussian(x, centre, width=1.0, top=0.9, floor=0.1):
    return floor + (top - floor) * np.exp(-0.5 * ((x - centre) / width) ** 2)


def test_without_noise_the_interval_is_the_vertex_widened_by_the_shape_allowance():
    """A Gaussian bump in ln(accuracy − 0) is not exact, but with zero noise every draw is the data:
    the interval is the vertex ± one grid step."""
    y = np.log(gaussian(X, np.log(0.07)))  # ln-accuracy of a Gaussian in ln: a parabola, vertex exact
    accuracy = np.exp(y)
    low, high = vertex_spread(X, accuracy, np.zeros(len(X)), np.ones(len(X), bool), 0.0)
    assert np.isclose(low, np.log(0.07) - SHAPE_ALLOWANCE * STEP, atol=0.02)
    assert np.isclose(high, np.log(0.07) + SHAPE_ALLOWANCE * STEP, atol=0.02)


def test_noise_widens_it_and_a_flat_shoulder_leaves_it_open():
    """Noise of 1 point on a peaked curve widens the interval past the noise-free one; on a curve that
    is flat from the smallest lr to the best (a slow shoulder), draws peak at the smallest lr more than
    2.5 % of the time: no lower bound."""
    peaked = gaussian(X, np.log(0.07), width=0.8)
    quiet = vertex_spread(X, peaked, np.zeros(len(X)), np.ones(len(X), bool), 0.0)
    noisy = vertex_spread(X, peaked, np.full(len(X), 0.01 ** 2), np.ones(len(X), bool), 0.0)
    assert noisy[0] < quiet[0] and noisy[1] > quiet[1]
    shoulder = np.array([0.640, 0.642, 0.643, 0.645, 0.640, 0.55, 0.3])
    low, high = vertex_spread(X, shoulder, np.full(len(X), 0.005 ** 2), np.ones(len(X), bool), 0.0)
    assert low == -np.inf and np.isfinite(high)


def test_a_column_where_every_trial_diverged_bounds_it_above():
    """The best lr is the largest alive one and the next diverged: the vertex is capped at the diverged
    lr, so the upper end is that lr plus the allowance, whatever the noise."""
    y = gaussian(X, np.log(0.5), width=1.2)
    alive = np.ones(len(X), bool)
    alive[-2:] = False
    y[-2:] = 0.1
    se2 = np.where(alive, 0.003 ** 2, 0.0)
    low, high = vertex_spread(X, y, se2, alive, 0.1)
    assert high <= X[-2] + SHAPE_ALLOWANCE * STEP + 1e-9 and np.isfinite(low)
