"""Student-t and F quantiles and a simple regression, importing scipy only on first use
(``scipy.stats`` takes about a second to import; the analysis package must import fast)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def t_quantile(q: float, dof: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(q, dof))


def f_quantile(q: float, dfn: int, dfd: int) -> float:
    from scipy import stats

    return float(stats.f.ppf(q, dfn, dfd))


@dataclass(frozen=True)
class Line:
    slope: float
    intercept: float
    slope_ci95: tuple[float, float] | None  # Student-t, None with fewer than 3 points


def fit_line(x: np.ndarray, y: np.ndarray) -> Line:
    """Least-squares y = intercept + slope·x with a 95 % interval on the slope."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    xc = x - x.mean()
    sxx = float(xc @ xc)
    slope = float(xc @ (y - y.mean()) / sxx)
    intercept = float(y.mean() - slope * x.mean())
    if len(x) < 3:
        return Line(slope, intercept, None)
    residual = y - intercept - slope * x
    stderr = float(np.sqrt(residual @ residual / (len(x) - 2) / sxx))
    half = t_quantile(0.975, len(x) - 2) * stderr
    return Line(slope, intercept, (slope - half, slope + half))
