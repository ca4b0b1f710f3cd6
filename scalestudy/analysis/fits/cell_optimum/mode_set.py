"""Where the optimum of one cell's curve can lie: a 95 % confidence set for the mode of a
unimodal curve, by test inversion, with no assumption on the curve's shape near its top.

Why not the vertex's spread: the three-point vertex (:mod:`scalestudy.analysis.fits.cell_optimum.peak`) is exact
for a Gaussian bump only. Real accuracy-vs-ln ε curves have a slow left shoulder, a flat top and
a cliff on the right; there the vertex is biased by up to half a grid step, and an interval over
seeds centres on that biased vertex: its coverage of the true ε* *falls* as seeds are added
(86 / 68 / 38 % at 2 / 3 / 5 seeds in an audit). The set below assumes only that the mean curve
μ(x), x = ln ε, rises and then falls, which every such shape does.

For a candidate mode t, unimodality says μ is non-decreasing over the searched x below t and
non-increasing above it. The statistic is the largest studentized violation of that order,

    T(t) = max( 0, max_{a<b, x_b≤t} (ȳ_a − ȳ_b)/se_ab ,  max_{t≤x_a, a<b} (ȳ_b − ȳ_a)/se_ab ),
    se_ab = √(v_a/n_a + v_b/n_b),

with ȳ the seed means and v the seeds' variance per column. Every monotone μ on each side makes
each difference stochastically no larger than a flat μ does, and T is non-decreasing in each
difference, so a flat μ is the least favourable configuration (the union–intersection principle
for order restrictions; Robertson, Wright & Dykstra 1988, *Order Restricted Statistical
Inference*, §2.3): its (1 − α) quantile c(t), simulated with the measured standard errors and a
Student-t scale for a variance estimated on ``dof`` degrees of freedom, gives a test of level α
for every unimodal curve whose mode is t. Inverting it (Neyman) gives the set {t : T(t) ≤ c(t)},
reported as its hull. It holds its level at any number of seeds; with more seeds it narrows to
the bracket the grid allows, (x_{best−1}, x_{best+1}) on a noise-free curve.

A column where every trial diverged holds the failure value with no spread: the mode cannot
lie beyond it once a column below it is better, which is how divergence bounds ε*. When the set
reaches past the searched range (the data cannot rule out that the curve is monotone across it)
the mode is not bounded on that side: no interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
SIMULATIONS = 4000  # Monte Carlo draws for the critical values (±0.35 points on a 5 % tail)
SCREEN = 0.005  # β of the first step: the share of the level spent on screening out slack pairs


@dataclass(frozen=True)
class ModeSet:
    """The hull of the confidence set for the mode, in x = ln ε; ``low``/``high`` are ±inf where
    the set reaches past the searched range."""

    low: float
    high: float

    @property
    def bounded(self) -> bool:
        return bool(np.isfinite(self.low) and np.isfinite(self.high))


def mode_set(x: np.ndarray, mean: np.ndarray, variance: np.ndarray, n: np.ndarray, *, dof: float,
             level: float = LEVEL, seed: int = 0, simulations: int = SIMULATIONS) -> ModeSet:
    """The ``level`` confidence set's hull for the mode of a unimodal curve over sorted ``x``.

    ``mean``: per-column mean (higher is better); ``variance``: the per-trial variance of each
    column (0 where every trial gave the same value, e.g. all diverged); ``n``: trials per column;
    ``dof``: degrees of freedom of the variance estimate (inf: known)."""
    x, mean = np.asarray(x, float), np.asarray(mean, float)
    se2 = np.asarray(variance, float) / np.maximum(np.asarray(n, float), 1.0)
    rng = np.random.default_rng(seed)
    draws = rng.standard_normal((simulations, len(x))) * np.sqrt(se2)[None, :]
    if np.isfinite(dof):
        draws /= np.sqrt(rng.chisquare(dof, simulations) / dof)[:, None]
    # Step 1 (Romano, Shaikh & Wolf 2014): the pairs whose order is beyond doubt at level 1 − β,
    # simultaneously, cannot bind; leaving them out of the null lowers the critical value to what
    # the pairs near the top need. Step 2 then tests at level α − β.
    z_observed = _pair_z(mean[None, :], se2)[0]
    kappa = np.quantile(np.abs(np.nan_to_num(_pair_z(draws, se2), posinf=0.0, neginf=0.0)).max(axis=(1, 2)),
                        1.0 - SCREEN, method="higher")
    rising, falling = z_observed < -kappa, z_observed > kappa  # ȳ_b ≫ ȳ_a; ȳ_a ≫ ȳ_b (a < b)
    observed = _order_violations(mean[None, :], se2)[0]
    null = _order_violations(draws, se2, slack_below=rising, slack_above=falling)
    critical = np.quantile(null, level + SCREEN, axis=0, method="higher")  # no interpolation: −inf stays −inf
    accepted = np.flatnonzero(observed <= critical)
    if len(accepted) == 0:  # no unimodal curve fits: the data contradict the model; nothing to report
        return ModeSet(-np.inf, np.inf)
    return ModeSet(_config_range(accepted.min(), x)[0], _config_range(accepted.max(), x)[1])


def _pair_z(means: np.ndarray, se2: np.ndarray) -> np.ndarray:
    """(ȳ_a − ȳ_b)/se_ab for every pair, per row; ±inf for a difference with no spread, 0 for none."""
    se_pair = np.sqrt(se2[:, None] + se2[None, :])
    diff = means[:, :, None] - means[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se_pair > 0, diff / np.where(se_pair > 0, se_pair, 1.0), np.sign(diff) * np.inf)
    return np.nan_to_num(z, nan=0.0, posinf=np.inf, neginf=-np.inf)


def _order_violations(means: np.ndarray, se2: np.ndarray, *, slack_below: np.ndarray | None = None,
                      slack_above: np.ndarray | None = None) -> np.ndarray:
    """T for every candidate mode position (columns of the result), for each row of ``means``;
    pairs marked in ``slack_below`` / ``slack_above`` are left out below / above the mode.

    Positions c = 0 … 2K: c = 0 is "below x_0", c = 2j + 1 "at x_j", c = 2j + 2 "between x_j
    and x_{j+1}", c = 2K "above x_{K−1}". The curve must rise over the columns [0, c//2) and fall
    over [(c+1)//2, K); a column at the mode joins both. Prefix and suffix maxima of the pairwise
    statistics give all positions at once. Violations only: T⁺ = max(T, 0), as in the moment-
    inequality tests the screening step comes from (a curve in order scores 0)."""
    rows, k = means.shape
    z = _pair_z(means, se2)
    upper = np.triu(np.ones((k, k), bool), 1)  # pairs a < b
    keep_below = upper if slack_below is None else upper & ~slack_below
    keep_above = upper if slack_above is None else upper & ~slack_above
    falls = np.where(keep_below, z, -np.inf)  # a drop from a to b: violates "rising" below the mode
    rises = np.where(keep_above, -z, -np.inf)  # a rise from a to b: violates "falling" above the mode
    below = np.full((rows, k + 1), -np.inf)  # below[:, l]: worst drop among columns [0, l)
    for l in range(2, k + 1):
        below[:, l] = np.maximum(below[:, l - 1], falls[:, : l - 1, l - 1].max(axis=1))
    above = np.full((rows, k + 1), -np.inf)  # above[:, r]: worst rise among columns [r, k)
    for r in range(k - 2, -1, -1):
        above[:, r] = np.maximum(above[:, r + 1], rises[:, r, r + 1:].max(axis=1))
    positions = np.arange(2 * k + 1)
    at_column = positions % 2 == 1  # the column at the mode belongs to both sides: it is the highest
    worst = np.maximum(below[:, positions // 2 + at_column], above[:, (positions + 1) // 2 - at_column])
    # Past either end of the search the question is narrower: is some column better than the end one?
    # Comparing each column with the end column alone (Dunnett's many-to-one family) answers it with
    # k − 1 comparisons instead of every pair, so a real rise towards the top is seen sooner.
    if k >= 2:
        worst[:, 0] = rises[:, 0, 1:].max(axis=1)
        worst[:, 2 * k] = falls[:, : k - 1, k - 1].max(axis=1)
    return np.maximum(worst, 0.0)  # only violations count: a curve in order scores 0 whatever its slopes


def _config_range(position: int, x: np.ndarray) -> tuple[float, float]:
    """The range of t a candidate position stands for (see :func:`_order_violations`)."""
    k = len(x)
    if position == 0:
        return -np.inf, float(x[0])
    if position == 2 * k:
        return float(x[-1]), np.inf
    j = (position - 1) // 2
    if position % 2 == 1:
        return float(x[j]), float(x[j])
    return float(x[j]), float(x[j + 1])
