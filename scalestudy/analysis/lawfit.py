"""The scaling law ln ε* = ln k + α·ln B + β·ln(1 − m) and its breakdown batch size.

Breakdown: ln ε* against u = ln B is fitted twice, as a single power law and as a
broken (hinged, continuous) power law whose slope changes from α to α₂ at u_c, with
the same β term in both. For each candidate u_c the broken model is linear, so the
fit profiles u_c on a fine grid; the two models are compared by BIC (the hinge
position counts as a parameter) and a breakdown is reported only when BIC prefers
the broken law by more than 2 and the slope falls (α₂ < α). Its 95 % interval is the
profile-likelihood set {u_c : RSS(u_c) ≤ RSS_min·(1 + F₀.₉₅(1, n − p)/(n − p))}.

The law is then fitted by least squares on the usable cells at or below the
breakdown, with Student-t 95 % intervals from the residual scatter between cells.
Fields that the data cannot determine are None, with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from scalestudy.analysis._stats import f_quantile, t_quantile
from scalestudy.analysis.frontier import CellOptimum

MIN_BELOW, MIN_ABOVE = 3, 2  # distinct batch sizes needed on each side of a breakdown
BIC_MARGIN = 2.0


@dataclass(frozen=True)
class Breakdown:
    """Batch size [examples] where ε*(B) stops following the power law, or None with a reason."""

    batch_size: float | None
    ci95: tuple[float, float] | None
    reason: str
    slope_above: float | None = None
    delta_bic: float | None = None  # BIC(single) − BIC(broken); > 0 favours the breakdown
    profile: tuple[tuple[float, float], ...] = ()  # (B_c, RSS) pairs, for the figure


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


@dataclass(frozen=True)
class LawFit:
    """ε* = k · B^α · (1 − m)^β (ε per update, B in examples), fitted on ``cells``."""

    k: float | None
    alpha: float | None
    beta: float | None
    ci95: dict[str, tuple[float, float] | None]
    r2: float | None
    reasons: dict[str, str]
    notes: tuple[str, ...]
    cells: tuple[CellOptimum, ...]  # the cells the law was fitted on
    n_trials: int
    breakdown: Breakdown
    regression: LinearFit | None = None
    domain: dict[str, tuple[float, float] | None] = field(default_factory=dict)


def fit_law(cells: list[CellOptimum]) -> LawFit:
    """Breakdown first (on every usable cell), then the law below it."""
    usable = [cell for cell in cells if cell.usable]
    if not usable:
        reason = "no cell has an interior optimum (see the warnings)"
        nothing = {name: reason for name in ("k", "alpha", "beta")}
        return LawFit(None, None, None, {"k": None, "alpha": None, "beta": None}, None, nothing, (), (), 0,
                      Breakdown(None, None, reason), None, {"batch_size": None, "momentum": None})
    breakdown = fit_breakdown(usable)
    below = [c for c in usable if breakdown.batch_size is None or c.batch_size <= breakdown.batch_size]
    law = _fit_below(below, breakdown)
    hint = _breakdown_hint(cells, usable)
    return replace(law, notes=law.notes + (hint,)) if hint else law


def _breakdown_hint(cells: list[CellOptimum], usable: list[CellOptimum]) -> str | None:
    """Cells whose optimum fell below the searched lr range at batch sizes above every fitted cell
    of their momentum: what a grid centred on the linear rule shows past the breakdown."""
    largest = {}
    for cell in usable:
        largest[cell.momentum] = max(largest.get(cell.momentum, 0), cell.batch_size)
    low = [c for c in cells if c.status == "edge_low" and c.batch_size > largest.get(c.momentum, float("inf"))]
    if not low:
        return None
    labels = ", ".join(c.label for c in low)
    return (f"{labels}: the optimum lies below the searched lr range, at batch sizes above every fitted cell "
            "of the same momentum; the law may break down there (extend the lr grid downwards to locate it)")


def _fit_below(cells: list[CellOptimum], breakdown: Breakdown) -> LawFit:
    u, v, y = _arrays(cells)
    n_b, n_m = len(np.unique(u)), len(np.unique(v))
    names, columns, reasons, notes = ["log_k"], [np.ones_like(y)], {}, []
    if n_b >= 2:
        names.append("alpha"), columns.append(u)
    else:
        reasons["alpha"] = f"single batch size (B={cells[0].batch_size})"
        reasons["k"] = "needs alpha"
    if n_m >= 2:
        names.append("beta"), columns.append(v)
    else:
        reasons["beta"] = f"single momentum (m={cells[0].momentum:g})"
        notes.append(f"beta is unknown: k includes the factor (1-m)^beta at m={cells[0].momentum:g}")
    if n_b < 2 and n_m < 2:
        reasons["k"] = "single batch size and single momentum"
    X = np.column_stack(columns)
    regression = _least_squares(X, y, tuple(names))
    coef = dict(zip(names, regression.coef))
    ci = dict(zip(names, _intervals(regression)))
    if regression.cov is None:
        for name in names:
            reasons.setdefault(f"ci95.{name}", f"{len(y)} cells for {len(names)} parameters: no interval")
    tss = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - regression.rss / tss if tss > 0 and len(y) > len(names) else None
    has_k = "alpha" in coef
    k_ci = ci["log_k"]
    domain = {"batch_size": (float(min(c.batch_size for c in cells)), float(max(c.batch_size for c in cells))),
              "momentum": (float(min(c.momentum for c in cells)), float(max(c.momentum for c in cells)))}
    return LawFit(
        k=float(np.exp(coef["log_k"])) if has_k else None,
        alpha=coef.get("alpha"), beta=coef.get("beta"),
        ci95={"k": tuple(np.exp(k_ci)) if has_k and k_ci else None, "alpha": ci.get("alpha"),
              "beta": ci.get("beta")},
        r2=r2, reasons=reasons, notes=tuple(notes), cells=tuple(cells),
        n_trials=sum(c.n_trials for c in cells), breakdown=breakdown, regression=regression, domain=domain)


def fit_breakdown(cells: list[CellOptimum], n_grid: int = 400) -> Breakdown:
    """Single vs broken power law in B (see the module docstring)."""
    u, v, y = _arrays(cells)
    distinct = np.unique(u)
    if len(distinct) < MIN_BELOW + MIN_ABOVE:
        return Breakdown(None, None, f"needs at least {MIN_BELOW + MIN_ABOVE} batch sizes with an interior "
                                     f"optimum to test for one, found {len(distinct)}")
    extra = [v] if len(np.unique(v)) >= 2 else []
    single = _least_squares(np.column_stack([np.ones_like(u), u, *extra]), y, ())
    lo, hi = distinct[MIN_BELOW - 1], distinct[-MIN_ABOVE]
    grid = np.linspace(lo, hi, n_grid, endpoint=False)
    rss = np.array([_hinge(u, v, y, uc, extra).rss for uc in grid])
    best = int(np.argmin(rss))
    n, p_single, p_broken = len(y), 2 + len(extra), 4 + len(extra)
    if n <= p_broken:
        return Breakdown(None, None, f"{n} cells are too few to fit a broken power law")
    floor = 1e-12 * max(single.rss, 1e-300)  # noise-free data: keep the logs finite
    delta_bic = (n * np.log((single.rss + floor) / (rss[best] + floor))
                 - (p_broken - p_single) * np.log(n))
    hinge = _hinge(u, v, y, grid[best], extra)
    alpha_below, alpha_above = hinge.coef[1], hinge.coef[2]
    profile = tuple((float(np.exp(g)), float(r)) for g, r in zip(grid, rss))
    if delta_bic <= BIC_MARGIN:
        return Breakdown(None, None, f"a single power law fits as well (ΔBIC = {delta_bic:.1f})",
                         delta_bic=float(delta_bic), profile=profile)
    if alpha_above >= alpha_below:
        return Breakdown(None, None, f"the slope does not fall at large B (α above {alpha_above:.2f} ≥ "
                                     f"{alpha_below:.2f} below)", delta_bic=float(delta_bic), profile=profile)
    dof = n - p_broken
    threshold = rss[best] * (1 + f_quantile(0.95, 1, dof) / dof)
    inside = grid[rss <= threshold]
    ci = (float(np.exp(inside.min())), float(np.exp(inside.max())))
    reason = f"broken power law preferred (ΔBIC = {delta_bic:.1f})"
    if inside.min() <= grid[0] or inside.max() >= grid[-1]:
        reason += "; the interval reaches the edge of the batch sizes tested"
    return Breakdown(float(np.exp(grid[best])), ci, reason, slope_above=float(alpha_above),
                     delta_bic=float(delta_bic), profile=profile)


def _hinge(u, v, y, uc, extra) -> LinearFit:
    X = np.column_stack([np.ones_like(u), np.minimum(u, uc), np.maximum(u - uc, 0.0), *extra])
    return _least_squares(X, y, ())


def _arrays(cells: list[CellOptimum]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    u = np.log([c.batch_size for c in cells]).astype(float)
    v = np.log1p(-np.array([c.momentum for c in cells], float))
    y = np.log([c.lr_opt for c in cells]).astype(float)
    return u, v, y


def _least_squares(X: np.ndarray, y: np.ndarray, names: tuple[str, ...]) -> LinearFit:
    coef, _, rank, _ = np.linalg.lstsq(X, y, rcond=None)
    rss = float(((y - X @ coef) ** 2).sum())
    dof = len(y) - X.shape[1]
    cov = None
    if dof > 0 and rank == X.shape[1]:
        cov_matrix = rss / dof * np.linalg.inv(X.T @ X)
        cov = tuple(tuple(float(c) for c in row) for row in cov_matrix)
    return LinearFit(names, tuple(float(c) for c in coef), cov, dof, rss)


def _intervals(fit: LinearFit) -> list[tuple[float, float] | None]:
    if fit.cov is None:
        return [None] * len(fit.coef)
    t = t_quantile(0.975, fit.dof)
    return [(c - t * np.sqrt(fit.cov[i][i]), c + t * np.sqrt(fit.cov[i][i])) for i, c in enumerate(fit.coef)]
