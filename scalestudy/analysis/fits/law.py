"""The scaling law ln ε* = ln k + α·ln B + β·ln(1 − m) [+ γ·ln N], fitted below its breakdown batch size.

γ, the dependence on the dataset size N, is fitted when the cells span several N (a study with a
``grid.dataset_size``); Smith & Le (2017) predict B_opt ∝ εN/(1 − m), i.e. ε* ∝ B(1 − m)/N at a
constant optimal noise scale g = εN/(B(1 − m)): γ = −1 together with α = β = 1.

The breakdown is tested first, on every usable cell (:mod:`scalestudy.analysis.fits.breakdown`:
a likelihood-ratio test calibrated by parametric bootstrap, with three outcomes), and the smooth
bend of McCandlish et al. (2018) is fitted beside it, on the same cells
(:mod:`scalestudy.analysis.fits.bend`: its small-B slope, B_noise, and whether the data prefer it to
the hinge). The law
is then fitted by weighted least squares on the usable cells up to the largest tested batch
size at or below a declared breakdown (all of them otherwise): a random-effects
meta-regression with weights 1/(var ln ε* + τ²), var ln ε* each cell's variance read off its
95 % set (:func:`~scalestudy.analysis.fits.cell_optimum.law_weight.interval_variance`) and τ² the between-cell
scatter it does not explain (method of moments), and Student-t 95 % intervals from the weighted
residual scatter (Knapp–Hartung) with the scale floored at :data:`MIN_SCALE`. Equal weights
let the noisy cells (bounded by divergence, at large B, where leverage is high) tilt α. The
error a peak's shape puts into every cell alike is added to ln k's variance
(:func:`shared_shape_variance`). Usable cells are those with an interior optimum and
those bounded by divergence (ε* below the first fully diverged ε). Fields that the data
cannot determine are None, with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from scalestudy.analysis.fits._stats import LinearFit, least_squares
from scalestudy.analysis.fits.bend import BendFit, fit_smooth_bend
from scalestudy.analysis.fits.breakdown import (
    Breakdown,
    fit_breakdown,
    law_coordinates,
    law_design,
    law_weights,
    log_dataset_sizes,
)
from scalestudy.analysis.fits.cell_optimum.frontier import CellOptimum

__all__ = ["BendFit", "Breakdown", "LawFit", "LawPrior", "LinearFit", "fit_breakdown", "fit_law", "regress_law"]

# Floor of the Knapp–Hartung scale, in units of the cells' variances. Those are read off the cells'
# 95 % sets, which hold the optimum whatever the peak's shape and so overstate a vertex's error
# (about 2× in sd on misspecified studies: RMS 0.30-0.36 e-folds against 0.53 implied). The plain
# scale (no floor) then trusts a few cells that land on the line by chance: α held 89 % at 2 seeds.
# The modified method's floor of 1 (Knapp & Hartung 2003) held 100 % with intervals 0.61 wide; 0.1
# holds 100 % at 2-5 seeds with 0.16-0.19 (scalestudy bench coverage, misspecified rows).
MIN_SCALE = 0.1


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
    weighting: str = "equal weights"  # how the cells were weighted in the least squares
    # Variance of a new cell's ln ε* about the law beyond its own measurement noise: τ² when the
    # cells are weighted by their variances, the residual variance with equal weights.
    scatter: float | None = None
    gamma: float | None = None  # ε* ∝ N^γ; None when the cells have one dataset size
    shared_shape_variance: float | None = None  # added to ln k's variance (see with_shared_shape_error)
    # McCandlish's smooth bend ε_max·(1 − m)^β/(1 + B_noise/B)^α on every usable cell, beside the
    # hinge (:mod:`scalestudy.analysis.fits.bend`); None with fewer than 4 batch sizes
    bend: BendFit | None = None


@dataclass(frozen=True)
class LawPrior:
    """A pull of α and β towards given values: each is one pseudo-observation α = ``alpha``
    (β = ``beta``) of weight ``weight`` in squared ln ε units (ridge regression towards the
    prior). With few cells the prior decides what they cannot (one cell gives the prior's law
    through it); many cells outweigh it."""

    alpha: float
    beta: float
    weight: float


def regress_law(u: np.ndarray, v: np.ndarray, y: np.ndarray, terms: tuple[str, ...] = ("alpha", "beta"), *,
                weights: np.ndarray | None = None, prior: LawPrior | None = None,
                min_scale: float = 0.0, w: np.ndarray | None = None) -> LinearFit:
    """Least squares of y = ln ε* on ln k + α·u + β·v, u = ln B, v = ln(1 − m), for the ``terms``
    fitted (the constant ``log_k`` always): the one regression of the law, used by the law fit
    (weighted) and by the search's running law (with a prior). ``min_scale``: see
    :func:`~scalestudy.analysis.fits._stats.least_squares`; ``w`` = ln N for a "gamma" term."""
    X, target = law_design(u, v, terms, w), np.asarray(y, float)
    if weights is not None:
        scale = np.sqrt(weights)
        X, target = X * scale[:, None], target * scale
    if prior is not None:
        pull = np.sqrt(prior.weight)
        rows = np.zeros((len(terms), 1 + len(terms)))
        rows[np.arange(len(terms)), 1 + np.arange(len(terms))] = pull
        X = np.vstack([X, rows])
        target = np.concatenate([target, [pull * getattr(prior, term) for term in terms]])
    return least_squares(X, target, ("log_k", *terms), min_scale=min_scale)


def fit_law(cells: list[CellOptimum], *, seed: int = 0) -> LawFit:
    """Breakdown first (on every usable cell), then the law below it. ``seed``: the breakdown
    test's simulations (the result is reproducible for a given seed)."""
    usable = [cell for cell in cells if cell.usable]
    if not usable:
        reason = "no cell has an interior optimum (see the warnings)"
        nothing = {name: reason for name in ("k", "alpha", "beta")}
        return LawFit(None, None, None, {"k": None, "alpha": None, "beta": None}, None, nothing, (), (), 0,
                      Breakdown(None, None, reason, inconclusive=True), None, {"batch_size": None, "momentum": None})
    breakdown = fit_breakdown(usable, seed=seed)
    last = breakdown.last_batch_size
    below = [c for c in usable if last is None or c.batch_size <= last]
    law = replace(_fit_below(below, breakdown), bend=fit_smooth_bend(usable, seed=seed, min_scale=MIN_SCALE))
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


def shared_shape_variance(cells: list[CellOptimum]) -> float | None:
    """The error a peak's shape puts into every cell alike, as a variance of ln ε*.

    A peak's shape moves every cell's vertex the same way (a slow left shoulder pulls it to smaller
    ε in every cell), so that part of the cells' error does not average out over cells. A shift
    shared by all cells only moves ln k (the design has a constant), so it leaves α, β and γ alone.
    Its size is a typical cell's uncertainty: the median variance read off the cells' 95 % sets."""
    variances = [c.log_lr_var for c in cells if c.ci95 is not None and c.log_lr_var is not None]
    return float(np.median(variances)) if variances else None


def with_shared_shape_error(regression: LinearFit, shared: float | None) -> LinearFit:
    """The fit with ``shared`` added to ln k's variance (and so to every prediction's)."""
    if regression.cov is None or shared is None:
        return regression
    cov = [list(row) for row in regression.cov]
    cov[0][0] += shared
    return replace(regression, cov=tuple(tuple(row) for row in cov))


def _fit_below(cells: list[CellOptimum], breakdown: Breakdown) -> LawFit:
    u, v, y = law_coordinates(cells)
    w = log_dataset_sizes(cells)
    n_b, n_m, n_n = len(np.unique(u)), len(np.unique(v)), 0 if w is None else len(np.unique(w))
    terms, reasons, notes = [], {}, []
    if n_b >= 2:
        terms.append("alpha")
    else:
        reasons["alpha"] = f"single batch size (B={cells[0].batch_size})"
        reasons["k"] = "needs alpha"
    if n_m >= 2:
        terms.append("beta")
    else:
        reasons["beta"] = f"single momentum (m={cells[0].momentum:g})"
        notes.append(f"beta is unknown: k includes the factor (1-m)^beta at m={cells[0].momentum:g}")
    if n_b < 2 and n_m < 2:
        reasons["k"] = "single batch size and single momentum"
    if n_n >= 2:
        terms.append("gamma")
    else:
        reasons["gamma"] = ("single dataset size" + (f" (N={cells[0].dataset_size})" if w is not None else "")
                            + ": the law holds at the N it was fitted at")
    X = law_design(u, v, tuple(terms), w)
    weights, tau2 = law_weights(cells, X, y)
    regression = regress_law(u, v, y, tuple(terms), weights=weights, min_scale=0.0 if tau2 is None else MIN_SCALE, w=w)
    shared = shared_shape_variance(cells)
    regression = with_shared_shape_error(regression, shared)
    names = regression.names
    coef = dict(zip(names, regression.coef))
    ci = dict(zip(names, regression.intervals()))
    if regression.cov is None:
        for name in names:
            reasons.setdefault(f"ci95.{name}", f"{len(y)} cells for {len(names)} parameters: no interval")
    tss = float(((y - y.mean()) ** 2).sum())
    rss = float(((y - X @ np.array(regression.coef)) ** 2).sum())
    r2 = 1.0 - rss / tss if tss > 0 and len(y) > len(names) else None
    weighting = ("equal weights, without two seeds to estimate each cell's variance" if tau2 is None else
                 f"weighted by 1/(var ln ε* + τ²) with τ² = {tau2:.3g}, the between-cell scatter "
                 "beyond the seeds' noise")
    has_k = "alpha" in coef
    k_ci = ci["log_k"]
    domain = {"batch_size": (float(min(c.batch_size for c in cells)), float(max(c.batch_size for c in cells))),
              "momentum": (float(min(c.momentum for c in cells)), float(max(c.momentum for c in cells))),
              "dataset_size": None if w is None else (float(min(c.dataset_size for c in cells)),
                                                      float(max(c.dataset_size for c in cells)))}
    return LawFit(
        k=float(np.exp(coef["log_k"])) if has_k else None,
        alpha=coef.get("alpha"), beta=coef.get("beta"),
        ci95={"k": tuple(np.exp(k_ci)) if has_k and k_ci else None, "alpha": ci.get("alpha"),
              "beta": ci.get("beta"), "gamma": ci.get("gamma")},
        r2=r2, reasons=reasons, notes=tuple(notes), cells=tuple(cells),
        n_trials=sum(c.n_trials for c in cells), breakdown=breakdown, regression=regression, domain=domain,
        weighting=weighting, scatter=tau2 if tau2 is not None else (rss / regression.dof if regression.dof > 0
                                                                    else None), gamma=coef.get("gamma"),
        shared_shape_variance=shared if regression.cov is not None else None)
