"""The seeds' noise in one cell, borrowed from the study's other cells: moderated variances.

With 2 seeds a cell's own variance has one degree of freedom per ε column, a handful per cell,
and a Student-t on 2-3 degrees of freedom makes any interval useless. Pooling over the whole study
instead assumes every cell is as noisy as the others, which they are not (the noise grows with B
and differs between momenta). Empirical Bayes takes the middle road (Smyth 2004, "Linear models
and empirical Bayes methods for assessing differential expression in microarray experiments",
*Stat. Appl. Genet. Mol. Biol.* 3(1), eqs. 2 and 3, and §6 for the prior's estimates): each cell's
variance s² on d degrees of freedom is shrunk towards a prior s₀² worth d₀ degrees of freedom,

    s̃² = (d₀·s₀² + d·s²) / (d₀ + d),      on d₀ + d degrees of freedom,

where d₀ and s₀² come from the spread of the cells' log-variances: the more the cells agree, the
larger d₀ (all alike: d₀ = ∞, the pooled variance); the more they differ, the smaller.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_PRIOR_DOF = 1e6  # "infinite": every cell's variance the same


@dataclass(frozen=True)
class NoisePrior:
    variance: float  # s₀²
    dof: float  # d₀ (0: no prior, each cell on its own)


NO_PRIOR = NoisePrior(0.0, 0.0)


def cell_noise(V: np.ndarray, D: np.ndarray) -> tuple[float, float]:
    """(s², d) of a cell's seed × ε table ``V``: the seeds' variance about their column means with
    each seed's own level taken out (a two-way layout, seeds as blocks), over the columns where every
    seed ran and none diverged; (NaN, 0) with fewer than 2 such seeds or 3 such columns.

    Per column, the residual variance on (seeds − 1)(columns − 1)/columns degrees of freedom; the
    cell's is their median, unbiased by the median of χ²(d)/d: just below the cliff seeds disagree
    several times more than at the peak, and a mean over columns let those few columns decide every
    comparison (in a reference study, a rise of 2.5 points over 8 seeds went unseen). A median of
    k variances is about as precise as a mean of k/2, so d is half the layout's."""
    from scipy import stats

    runs = np.isfinite(V)
    diverged = (np.nan_to_num(D, nan=0.0) > 0) & runs
    calm = runs.all(axis=0) & ~diverged.any(axis=0)
    seeds, columns = V.shape[0], int(calm.sum())
    if seeds < 2 or columns < 3:
        return float("nan"), 0.0
    block = V[:, calm]
    residual = block - block.mean(axis=0, keepdims=True) - block.mean(axis=1, keepdims=True) + block.mean()
    per_column_dof = (seeds - 1) * (columns - 1) / columns
    per_column = (residual ** 2).sum(axis=0) / per_column_dof
    unbias = stats.chi2.median(per_column_dof) / per_column_dof
    return float(np.median(per_column) / unbias), float((seeds - 1) * (columns - 1)) / 2


def column_noise(V: np.ndarray, D: np.ndarray, variance: float, dof: float) -> np.ndarray:
    """Each column's seed variance: its own (seeds' spread about the column mean, with the seed effects
    already taken out of ``V``) shrunk towards the cell's ``variance`` worth ``dof`` degrees of
    freedom, as :func:`moderated` shrinks a cell towards the study. A column just below the cliff
    keeps much of its larger spread; a column at the peak with 2 seeds is mostly the cell's. A column
    where every trial diverged has none."""
    runs = np.isfinite(V)
    n = runs.sum(axis=0)
    with np.errstate(invalid="ignore"):
        own = np.where(n >= 2, np.nanvar(V, axis=0) * n / np.maximum(n - 1, 1), variance)
    own_dof = np.maximum(n - 1, 0).astype(float)
    shrunk = (dof * variance + own_dof * own) / np.maximum(dof + own_dof, 1e-12)
    all_diverged = np.where(runs, np.nan_to_num(D, nan=0.0) >= 1.0, True).all(axis=0)
    return np.where(all_diverged, 0.0, shrunk)


def noise_prior(variances: np.ndarray, dofs: np.ndarray) -> NoisePrior:
    """Smyth's (2004, §6) moment estimates of (s₀², d₀) from the cells' (s², d); no prior with fewer
    than 3 cells that have a positive variance."""
    from scipy import special

    variances, dofs = np.asarray(variances, float), np.asarray(dofs, float)
    use = np.isfinite(variances) & (variances > 0) & (dofs > 0)
    if use.sum() < 3:
        return NO_PRIOR
    s2, d = variances[use], dofs[use]
    e = np.log(s2) - special.digamma(d / 2) + np.log(d / 2)
    excess = float(np.var(e, ddof=1) - np.mean(special.polygamma(1, d / 2)))
    if excess <= 0:
        d0 = MAX_PRIOR_DOF
    else:
        d0 = 2 * _inverse_trigamma(excess)
    s0 = float(np.exp(e.mean() + special.digamma(d0 / 2) - np.log(d0 / 2)))
    return NoisePrior(s0, float(min(d0, MAX_PRIOR_DOF)))


def moderated(variance: float, dof: float, prior: NoisePrior) -> tuple[float, float]:
    """(s̃², d₀ + d): the cell's variance shrunk towards the prior (the prior alone without one of its own)."""
    if prior.dof == 0:
        return variance, dof
    if not dof > 0 or not np.isfinite(variance):
        return prior.variance, prior.dof
    total = prior.dof + dof
    return (prior.dof * prior.variance + dof * variance) / total, total


def _inverse_trigamma(y: float) -> float:
    """x with trigamma(x) = y, by Newton's method on 1/trigamma (Smyth 2004, appendix)."""
    from scipy import special

    if y > 1e7:
        return 1.0 / np.sqrt(y)
    if y < 1e-6:
        return 1.0 / y
    x = 0.5 + 1.0 / y
    for _ in range(50):
        tri = special.polygamma(1, x)
        step = tri * (1 - tri / y) / special.polygamma(2, x)
        x += step
        if -step / x < 1e-8:
            break
    return float(x)
