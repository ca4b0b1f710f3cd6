"""Where one cell's vertex can lie under the seeds' noise, widened by the vertex's own shape bias:
the interval that bounds a cell's ε* when the unimodal set (:mod:`scalestudy.analysis.fits.cell_optimum.mode_set`)
alone cannot.

Why a second interval. The unimodal set assumes nothing about the peak's shape, and pays for it:
real accuracy curves rise so slowly on their left (2-3 points over ×30 in ε in the reference
studies) that at 2-3 seeds it reaches past the searched lrs in most cells, even where the best
lr is in the middle of the grid and the cliff on the right is sharp. This interval uses what the
set leaves out, the curve's local shape, in two parts:

1. **Noise**: a smoothed parametric bootstrap of the estimator itself. Draws of the column means
   ȳⱼ + σⱼ·zⱼ/√2 go through the same peak search and vertex as the data
   (:mod:`scalestudy.analysis.fits.cell_optimum.peak`);
   the 2.5 and 97.5 % quantiles of the draws' vertices bound where noise can move it. The draws are
   centred on the *observed* means, which already carry one draw of the noise, so their noise is
   σ/√2: the spread of the argmax around a noisy curve is then about that of the data around the
   true one (Efron & Tibshirani 1993, *An Introduction to the Bootstrap*, §16.5, the smoothed
   bootstrap). A draw whose best lr is the smallest or largest searched is a vertex past that end:
   when more than 2.5 % of the draws fall there, the interval has no bound on that side.
2. **Shape**: the three-point vertex is exact for a Gaussian bump only. On a noise-free unimodal
   curve whose best column is j, both the mode and the vertex lie between x_{j−1} and x_{j+1}, so the
   vertex is off by less than two grid steps whatever the shape; on the asymmetric, flat-topped
   peaks of :mod:`scalestudy.testing.realistic` (calibrated on the reference studies) it was off by
   more than half a step often enough that a half-step allowance covered 94 % at 5 seeds and
   falling, one step 99.6 %. The interval is widened by one local grid step on each side
   (``SHAPE_ALLOWANCE``), so that its coverage does not fall as seeds are added, as a Student-t
   interval around the vertex did (86 → 38 %).

:mod:`scalestudy.analysis.fits.cell_optimum.frontier` reports the intersection of this interval with the unimodal
set's hull (where the set is bounded on a side, it stays the guard there). Measured on subsamples
of the reference studies (``scalestudy bench coverage``), the intersection covers the reference ε*
at 2, 3 and 5 seeds and bounds most cells the set alone left open (the figures are in the coverage
section of docs/benchmarks.md).
"""

from __future__ import annotations

import numpy as np

from scalestudy.analysis.fits.cell_optimum.peak import USABLE, find_peak, interpolate

DRAWS = 400
NOISE_SHARE = 1.0 / np.sqrt(2.0)  # the observed means already carry one draw of the noise
SHAPE_ALLOWANCE = 1.0  # grid steps added on each side: the three-point vertex's shape bias
TAIL = 0.025


def vertex_spread(x: np.ndarray, mean: np.ndarray, se2: np.ndarray, alive: np.ndarray, floor: float, *,
                  log: bool = True, seed: int = 0, draws: int = DRAWS) -> tuple[float, float]:
    """(low, high) in x = ln ε for the vertex of the curve ``mean`` (higher is better) over sorted
    ``x``, ±inf on a side the noise leaves open; ``se2`` is each column mean's variance, ``alive``
    marks the columns where some trial did not diverge."""
    x, mean = np.asarray(x, float), np.asarray(mean, float)
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((draws, len(x))) * (NOISE_SHARE * np.sqrt(np.asarray(se2, float)))[None, :]
    vertices = np.sort([_vertex_or_end(x, row, alive, floor, log) for row in mean[None, :] + noise])
    low = vertices[int(np.floor(TAIL * draws))]
    high = vertices[int(np.ceil((1 - TAIL) * draws)) - 1]
    step = float(np.median(np.diff(x))) if len(x) > 1 else 0.0
    return low - SHAPE_ALLOWANCE * step, high + SHAPE_ALLOWANCE * step


def _vertex_or_end(x: np.ndarray, y: np.ndarray, alive: np.ndarray, floor: float, log: bool) -> float:
    peak = find_peak(y, alive)
    if peak.status in USABLE:
        return interpolate(x, y, peak, floor, log)[0]
    if peak.status == "edge_high":
        return np.inf
    return -np.inf  # edge_low, or no peak at all: unbounded (the low end sorts first and opens it)
