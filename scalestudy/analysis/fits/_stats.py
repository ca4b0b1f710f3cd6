"""Student-t and F quantiles and least squares, importing scipy only on first use
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


@dataclass(frozen=True)
class LinearFit:
    """Least squares y = X·coef with Student-t intervals (for figure bands)."""

    names: tuple[str, ...]
    coef: tuple[float, ...]
    cov: tuple[tuple[float, ...], ...] | None
    dof: int
    rss: float

    def predict(self, row: dict[str, float]) -> tuple[float, float | None]:
        """(ŷ, half-width of its 95 % interval) at a point given by column name."""
        x = np.array([row.get(name, 1.0) for name in self.names])
        y = float(x @ np.array(self.coef))
        if self.cov is None:
            return y, None
        return y, float(t_quantile(0.975, self.dof) * np.sqrt(x @ np.array(self.cov) @ x))

    def intervals(self) -> list[tuple[float, float] | None]:
        """Student-t 95 % interval of each coefficient (None without residual degrees of freedom)."""
        if self.cov is None:
            return [None] * len(self.coef)
        t = t_quantile(0.975, self.dof)
        return [(c - t * np.sqrt(self.cov[i][i]), c + t * np.sqrt(self.cov[i][i])) for i, c in enumerate(self.coef)]


def least_squares(X: np.ndarray, y: np.ndarray, names: tuple[str, ...], *, min_scale: float = 0.0) -> LinearFit:
    """Ordinary least squares with the covariance s²(XᵀX)⁻¹, s² = max(RSS/dof, ``min_scale``)
    (None without residual dof or at rank deficit)."""
    coef, _, rank, _ = np.linalg.lstsq(X, y, rcond=None)
    rss = float(((y - X @ coef) ** 2).sum())
    dof = len(y) - X.shape[1]
    cov = None
    if dof > 0 and rank == X.shape[1]:
        cov_matrix = max(rss / dof, min_scale) * np.linalg.inv(X.T @ X)
        cov = tuple(tuple(float(c) for c in row) for row in cov_matrix)
    return LinearFit(names, tuple(float(c) for c in coef), cov, dof, rss)


def random_effects_weights(X: np.ndarray, y: np.ndarray, variances: np.ndarray) -> tuple[np.ndarray, float]:
    """(weights 1/(vᵢ + τ²), τ²) for a meta-regression of y on X whose points have known
    variances vᵢ plus an unknown common variance τ² (scatter the vᵢ do not explain).

    τ² by the method of moments (DerSimonian & Laird 1986, generalised to regression):
    Q = Σ wᵢ rᵢ² with wᵢ = 1/vᵢ has expectation (n − p) + τ²·tr(P), P = W − WX(XᵀWX)⁻¹XᵀW.
    Least squares with these weights and a scale estimated from the weighted residuals is
    the Knapp–Hartung method, whose Student-t intervals hold their level in small samples;
    with the scale at least 1 (``least_squares(..., min_scale=1)``), the modified method
    (Knapp & Hartung 2003), the interval is never narrower than the vᵢ alone imply."""
    w = 1.0 / np.asarray(variances, float)
    n, p = X.shape
    if n <= p:
        return w, 0.0
    WX = X * w[:, None]
    inverse = np.linalg.pinv(X.T @ WX)
    coef = inverse @ (WX.T @ y)
    q = float(w @ (y - X @ coef) ** 2)
    trace = float(w.sum() - np.trace(inverse @ (WX.T @ WX)))
    tau2 = max(0.0, (q - (n - p)) / trace) if trace > 0 else 0.0
    return 1.0 / (np.asarray(variances, float) + tau2), tau2
