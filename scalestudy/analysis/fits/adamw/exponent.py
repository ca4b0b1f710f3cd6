"""y* ∝ B^x across cells: the exponent of a per-cell optimum against the batch size, with its 95 %
interval and the test of the value a rule predicts.

ln y*_i = a_g + x·ln B_i, one intercept a_g per (m, N) group of cells (the groups may sit at
different levels for reasons no rule here is about) and one slope x shared by all of them. It is
weighted like the law (:mod:`scalestudy.analysis.fits.law`): a random-effects meta-regression with
weights 1/(var ln y*_i + τ²), var read off each cell's 95 % interval and τ² the scatter those do not
explain (method of moments), Student-t intervals from the weighted residual scatter (Knapp–Hartung)
with the scale floored at the law's :data:`~scalestudy.analysis.fits.law.MIN_SCALE`. The test of
x = x₀ is the same t statistic, t = (x̂ − x₀)/se(x̂) on the residual degrees of freedom, two-sided.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from scalestudy.analysis.fits._stats import LinearFit, least_squares, random_effects_weights, t_quantile
from scalestudy.analysis.fits.law import MIN_SCALE


@dataclass(frozen=True)
class ExponentEstimate:
    exponent: float | None
    ci95: tuple[float, float] | None
    hypothesis: float
    p_value: float | None  # of exponent == hypothesis (two-sided)
    cells: int
    scatter: float | None = None  # τ²
    reason: str | None = None  # why the exponent or its interval is missing
    fit: LinearFit | None = None  # on ("exponent", one column per group): for predictions
    groups: tuple[str, ...] = ()

    def predict(self, batch_size: float, group: object) -> tuple[float, tuple[float, float] | None] | None:
        """(y*, its 95 % interval) at ``batch_size`` in ``group``, the shared shape error included."""
        if self.fit is None or str(group) not in self.groups:
            return None
        row = {"exponent": float(np.log(batch_size)), **{g: float(g == str(group)) for g in self.groups}}
        centre, half = self.fit.predict(row)
        return float(np.exp(centre)), None if half is None else (float(np.exp(centre - half)),
                                                                  float(np.exp(centre + half)))


@dataclass(frozen=True)
class Level:
    """The common value of a per-cell optimum held constant across cells (a geometric mean)."""

    value: float | None
    ci95: tuple[float, float] | None
    cells: int


def fit_exponent(batch_sizes: Sequence[float], values: Sequence[float], log_vars: Sequence[float],
                 groups: Sequence[object], hypothesis: float) -> ExponentEstimate:
    """x in values ∝ B^x (one level per entry of ``groups``), from cells with variances ``log_vars`` of
    their ln value."""
    u, y = np.log(np.asarray(batch_sizes, float)), np.log(np.asarray(values, float))
    labels = sorted(set(groups), key=str)
    n = len(y)
    if len(np.unique(u)) < 2:
        return ExponentEstimate(None, None, hypothesis, None, n, reason=f"{len(np.unique(u))} batch size(s) "
                                "with an optimum: no exponent")
    X = np.column_stack([u] + [np.array([g == label for g in groups], float) for label in labels])
    if n <= X.shape[1]:
        slope = float(np.polyfit(u, y, 1)[0]) if len(labels) == 1 else None
        return ExponentEstimate(slope, None, hypothesis, None, n,
                                reason=f"{n} cells for {X.shape[1]} parameters: no interval")
    weights, tau2 = random_effects_weights(X, y, np.asarray(log_vars, float))
    scale = np.sqrt(weights)
    names = tuple(map(str, labels))
    fit = least_squares(X * scale[:, None], y * scale, ("exponent", *names), min_scale=MIN_SCALE)
    exponent = fit.coef[0]
    if fit.cov is None:
        return ExponentEstimate(exponent, None, hypothesis, None, n, tau2, "rank-deficient design: no interval")
    se = float(np.sqrt(fit.cov[0][0]))
    half = t_quantile(0.975, fit.dof) * se
    return ExponentEstimate(exponent, (exponent - half, exponent + half), hypothesis,
                            _two_sided_p((exponent - hypothesis) / se, fit.dof), n, tau2,
                            fit=with_shared_level_error(fit, log_vars, len(names)), groups=names)


def fit_level(values: Sequence[float], log_vars: Sequence[float]) -> Level:
    """The geometric mean of ``values`` weighted like :func:`fit_exponent` (random effects,
    Knapp–Hartung, the law's scale floor), its interval widened by the error every cell shares."""
    y, v = np.log(np.asarray(values, float)), np.asarray(log_vars, float)
    if len(y) < 2:
        return Level(float(np.exp(y[0])) if len(y) else None, None, len(y))
    X = np.ones((len(y), 1))
    weights, _ = random_effects_weights(X, y, v)
    scale = np.sqrt(weights)
    fit = with_shared_level_error(least_squares(X * scale[:, None], y * scale, ("level",), min_scale=MIN_SCALE),
                                  v, 1)
    centre, half = fit.coef[0], t_quantile(0.975, fit.dof) * float(np.sqrt(fit.cov[0][0]))
    return Level(float(np.exp(centre)), (float(np.exp(centre - half)), float(np.exp(centre + half))), len(y))


def with_shared_level_error(fit: LinearFit, log_vars: Sequence[float], levels: int) -> LinearFit:
    """The fit with the median cell variance added to each level's variance: a peak's shape moves every
    cell's vertex the same way, which does not average out over cells (the law adds it to ln k for the
    same reason: :func:`~scalestudy.analysis.fits.law.shared_shape_variance`). The slope is untouched."""
    if fit.cov is None:
        return fit
    shared = float(np.median(log_vars))
    cov = [list(row) for row in fit.cov]
    for index in range(len(cov) - levels, len(cov)):
        cov[index][index] += shared
    return replace(fit, cov=tuple(tuple(row) for row in cov))


def _two_sided_p(t: float, dof: int) -> float:
    from scipy import stats

    return float(2 * stats.t.sf(abs(t), dof))
