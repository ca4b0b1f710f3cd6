"""The smooth bend of ε*(B), McCandlish et al.'s optimal learning rate, fitted beside the hinge.

McCandlish, Kaplan, Amodei et al. (2018), "An Empirical Model of Large-Batch Training", §2.2:
for a locally quadratic loss and gradient noise of covariance Σ, the best step is

    ε_opt(B) = ε_max / (1 + B_noise/B),    B_noise = tr(HΣ) / (GᵀHG)

linear in B well below B_noise and flat well above it: a smooth bend, where the breakdown test
(:mod:`scalestudy.analysis.fits.breakdown`) fits a hinge. Fitted here as

    ln ε* = ln ε_max + β·ln(1 − m) [+ γ·ln N] − α·ln(1 + B_noise/B)                      (1)

with α the small-B slope: d ln ε*/d ln B = α·B_noise/(B + B_noise) → α as B → 0, α/2 at
B = B_noise, 0 well above it. Why this form:

- α is a parameter, reported with its interval: it is the slope the law means below the breakdown
  (a single power law fitted across a smooth bend is tilted: with α = 1 and B_noise = 512 on
  B = 16…512 the law's α is about 0.87, its interval excluding 1);
- α = 1, β = 0 is McCandlish's equation exactly; momentum and N enter as in the law
  (ε* ∝ (1 − m)^β N^γ), with B_noise shared by every m and N (it is a property of the gradient
  noise, as the hinge is shared in the breakdown test);
- the sharpness is McCandlish's: (1 + (B_noise/B)^a)^(−α/a) with a free a is not identified by 5–7
  batch sizes (a trades against B_noise within a doubling), so a = 1; the coverage bench
  (:mod:`scalestudy.bench.coverage_bend`) measures what a sharper bend (a = 2) and a hinge do to it;
- at a fixed B_noise (1) is linear, so it is profiled over a grid of ln B_noise from B_min/16 to
  16·B_max, plus B_noise = ∞, where −α·ln(1 + B_noise/B) = α·ln B + const: the single power law
  (no bend within the tested batch sizes).

Cells are weighted as in the law fit, by 1/(var ln ε* + τ²) (:func:`law_weights`), with τ²
re-estimated at the best bend (at the single law's design it would absorb the bend itself).

Intervals (profile likelihood, Knapp–Hartung as the law's): with dof = n − p − 1 (p linear
coefficients and B_noise), s² = max(RSS_min/dof, floor) when the cells carry variances (the law
fit's floor, :data:`~scalestudy.analysis.fits.law.MIN_SCALE`; RSS_min/dof otherwise), the region is
RSS ≤ RSS_min + s²·F₀.₉₅(1, dof). For B_noise: the grid values inside (open above when B_noise = ∞
is). For α: at each B_noise the RSS is quadratic in α,
RSS(α) = RSS(B_noise) + (α − α̂)²/c with c = [(XᵀWX)⁻¹]_αα, so the profile interval is the hull of
α̂ ± √(c·(limit − RSS(B_noise))) over the B_noise inside.

Which bend the data prefer (:attr:`BendFit.preferred`): D = n·ln(RSS_hinge / RSS_smooth), the
hinge being the breakdown test's best falling hinge (or the single law), both with the same
weights; non-nested models, so D is calibrated by simulating each fitted model in turn
(Williams 1970; Cox's test by simulation), with Gaussian noise at each cell's own residual
scatter (:func:`~scalestudy.analysis.fits.null_simulation.noise_scatter`, as the breakdown test's bootstrap):

- p_hinge = P(D* ≥ D) with data simulated from the fitted hinge: small when the smooth bend fits
  better than a hinge's data would;
- p_smooth = P(D* ≤ D) with data simulated from the fitted smooth bend;
- ``smooth`` when p_hinge ≤ 0.05 < p_smooth, ``hinge`` when p_smooth ≤ 0.05 < p_hinge, ``either``
  when neither is rejected (the data cannot tell a hinge from a bend, as with a bend beyond the
  batch sizes tested), ``neither`` when both are, ``untested`` with fewer than 5 batch sizes.

Measured on cells with noise growing with B, reported variances blind to it, bends drawn off the
design (:mod:`scalestudy.bench.coverage_bend`, 400 studies per row, the law fit's scale floor): with
α = 1, B_noise = 512 on B = 16…512 the small-B slope's interval holds 1 in 95.5–98 % (the law's α
interval in 12–15 %), B_noise's in 93–95 %; with α and B_noise drawn, 98 % and 94 %; under sharper
bends (a = 2), 94 % and 93.5 %. The slope's interval is wide where B_noise is not bounded above
(0.7–0.8 with seed noise 0.1–0.28; 0.19 with 0.05): it then reaches the single law's slope. A smooth
bend was called a hinge in 3.3 % of studies, a hinge smooth in none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scalestudy.analysis.fits._stats import f_quantile
from scalestudy.analysis.fits.breakdown import law_coordinates, law_design, law_weights, log_dataset_sizes
from scalestudy.analysis.fits.cell_optimum.frontier import CellOptimum
from scalestudy.analysis.fits.hinges import MIN_ABOVE, MIN_BELOW, HingeFits, hinge_design, hinge_grid
from scalestudy.analysis.fits.null_simulation import simulate_fit

MIN_BATCH_SIZES = 4  # three points fit (1) exactly: a fourth leaves the bend something to explain
GRID_MARGIN = np.log(16.0)  # B_noise searched from B_min/16 to 16·B_max (and ∞)
PREFER_P = 0.05  # a model is rejected against the other at this simulated p-value
REPLICATES = 199  # per model: (R + 1)·0.05 is an integer
PREFERENCES = ("smooth", "hinge", "either", "neither", "untested")


@dataclass(frozen=True)
class BendFit:
    """ε* = ε_max·(1 − m)^β·N^γ / (1 + B_noise/B)^α fitted on every usable cell (equation (1))."""

    alpha: float | None  # the small-B slope d ln ε*/d ln B as B → 0
    alpha_ci95: tuple[float, float] | None
    beta: float | None  # None with one momentum (ε_max holds its (1 − m)^β)
    gamma: float | None  # None with one dataset size
    lr_max: float | None  # ε_max: ε* well above B_noise at m = 0 (× N^γ); None when B_noise = ∞
    noise_batch_size: float | None  # B_noise [examples]; None when the best fit has no bend (B_noise = ∞)
    noise_ci95: tuple[float, float] | None  # high is inf when the data do not bound B_noise above
    preferred: str  # one of PREFERENCES: which the data prefer, the smooth bend or the hinge
    reason: str
    p_hinge: float | None = None  # simulated p-value of D under the fitted hinge (small: the hinge is rejected)
    p_smooth: float | None = None  # ... under the fitted smooth bend
    cells: int = 0
    profile: tuple[tuple[float, float], ...] = ()  # (B_noise, weighted RSS) over the grid

    @property
    def form(self) -> str:
        gamma = " * N^gamma" if self.gamma is not None else ""
        return f"lr = lr_max * (1-m)^beta{gamma} / (1 + B_noise/B)^alpha"


def fit_smooth_bend(cells: list[CellOptimum], *, replicates: int = REPLICATES, seed: int = 0,
                    n_grid: int = 160, min_scale: float = 1.0) -> BendFit | None:
    """Equation (1) on the usable ``cells``, and which of it and the hinge the data prefer;
    None with fewer than :data:`MIN_BATCH_SIZES` batch sizes or no residual degree of freedom.
    ``min_scale``: the floor of s² when the cells carry variances, in their units (the law fit
    passes its own, :data:`~scalestudy.analysis.fits.law.MIN_SCALE`)."""
    u, v, y = law_coordinates(cells)
    distinct = np.unique(u)
    w = log_dataset_sizes(cells)
    extra = [v] if len(np.unique(v)) >= 2 else []
    has_gamma = w is not None and len(np.unique(w)) >= 2
    extra += [w] if has_gamma else []
    n, p = len(y), 2 + len(extra)
    dof = n - p - 1
    if len(distinct) < MIN_BATCH_SIZES or dof < 1:
        return None
    grid = np.append(np.linspace(distinct[0] - GRID_MARGIN, distinct[-1] + GRID_MARGIN, n_grid), np.inf)
    terms = ("alpha", *(["beta"] if len(extra) > has_gamma else []), *(["gamma"] if has_gamma else []))
    weights, tau2 = _bend_weights(cells, u, extra, grid, law_design(u, v, terms, w), y)
    scale, ys = np.sqrt(weights), np.sqrt(weights) * y
    grid = _refine(grid, int(BendFits(bend_designs(u, extra, grid), scale).rss(ys[:, None])[:, 0].argmin()),
                   u, extra, scale, ys)
    bends = BendFits(bend_designs(u, extra, grid), scale)
    rss = bends.rss(ys[:, None])[:, 0]
    best = int(rss.argmin())
    s2 = max(rss[best] / dof, min_scale if tau2 is not None else 0.0)
    limit = rss[best] + s2 * f_quantile(0.95, 1, dof)
    coef = bends.coef(ys, best)
    inside = rss <= limit
    alpha_ci = _alpha_interval(bends, ys, rss, inside, limit)
    noise_ci = _noise_interval(grid, inside)
    finite = best < len(grid) - 2  # at 16·B_max or ∞ the data need no bend within (or near) the tested B
    names = ["log_lr_max", "alpha", *terms[1:]]
    values = dict(zip(names, coef))
    preferred, reason, p_hinge, p_smooth = _prefer(u, extra, distinct, bends, best, scale, ys, replicates, seed)
    if not finite:
        reason = (f"no bend within the batch sizes tested: the single power law fits as well (B_noise > "
                  f"{noise_ci[0]:.4g}); " + reason)
    elif best == 0:
        reason = "the bend lies below the batch sizes tested (ε* does not rise with B); " + reason
        alpha_ci = None  # the slope below the tested batch sizes: nothing in the data measures it
    return BendFit(
        alpha=float(values["alpha"]), alpha_ci95=alpha_ci, beta=_float(values.get("beta")),
        gamma=_float(values.get("gamma")), lr_max=float(np.exp(values["log_lr_max"])) if finite else None,
        noise_batch_size=float(np.exp(grid[best])) if finite else None, noise_ci95=noise_ci,
        preferred=preferred, reason=reason, p_hinge=p_hinge, p_smooth=p_smooth, cells=n,
        profile=tuple((float(np.exp(g)), float(r)) for g, r in zip(grid, rss)))


def bend_designs(u: np.ndarray, extra: list[np.ndarray], grid: np.ndarray) -> np.ndarray:
    """(grid, n, p): the columns of (1) at each ln B_noise: 1, −ln(1 + B_noise/B), then ``extra``
    (ln(1 − m), ln N). At ln B_noise = ∞ the bend column is ln B: −α·ln(1 + B_noise/B) =
    α·ln B − α·ln B_noise + O(B/B_noise), the constant going into ln ε_max."""
    finite = grid[np.isfinite(grid)]
    bend = -np.logaddexp(0.0, finite[:, None] - u[None, :])  # −ln(1 + e^(g − u)), stable for large g
    if len(finite) < len(grid):
        bend = np.vstack([bend, u[None, :]])
    columns = [np.ones_like(bend), bend, *(np.broadcast_to(c, bend.shape) for c in extra)]
    return np.stack(columns, axis=2)


def _bend_weights(cells: list[CellOptimum], u: np.ndarray, extra: list[np.ndarray], grid: np.ndarray,
                  single: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float | None]:
    """(weights 1/(var ln ε* + τ²), τ²) with τ² estimated at the best bend: at the single law's design
    it would absorb the bend itself. That bend is found with the single law's weights."""
    first, _ = law_weights(cells, single, y)
    rss = BendFits(bend_designs(u, extra, grid), np.sqrt(first)).rss((np.sqrt(first) * y)[:, None])[:, 0]
    best = int(rss.argmin())
    return law_weights(cells, bend_designs(u, extra, grid[best:best + 1])[0], y)


def _refine(grid: np.ndarray, best: int, u, extra, scale, ys) -> np.ndarray:
    """The grid with the best finite ln B_noise refined between its neighbours (bounded Brent on the
    RSS, which is smooth in ln B_noise): a noise-free bend is then found exactly, not to the grid step."""
    from scipy.optimize import minimize_scalar

    if not np.isfinite(grid[best]) or best == 0 or not np.isfinite(grid[best + 1]):
        return grid

    def rss(g: float) -> float:  # from the residuals: |y|² − |Qᵀy|² loses the digits a noise-free fit needs
        q = np.linalg.qr(scale[:, None] * bend_designs(u, extra, np.array([g]))[0])[0]
        return float(np.sum((ys - q @ (q.T @ ys)) ** 2))

    # √RSS: V-shaped at a noise-free optimum, where Brent's golden sections reach xatol (RSS itself is
    # flat to machine precision within √ε of it); searched as the offset from the grid point, whose
    # tolerance is absolute (Brent's is relative to |x| as well, √ε·ln B_noise)
    centre = grid[best]
    found = minimize_scalar(lambda t: np.sqrt(rss(centre + t)), method="bounded", options={"xatol": 1e-12},
                            bounds=(grid[best - 1] - centre, grid[best + 1] - centre))
    return np.sort(np.append(grid, centre + found.x)) if found.fun ** 2 < rss(centre) else grid


class BendFits:
    """Weighted least squares of (1) at every grid position, for many response vectors at once
    (rows scaled by √weight, as :class:`~scalestudy.analysis.fits.hinges.HingeFits`)."""

    def __init__(self, designs: np.ndarray, scale: np.ndarray):
        self.designs = scale[None, :, None] * designs
        self.q, self.r = np.linalg.qr(self.designs)
        self.stacked = np.ascontiguousarray(np.swapaxes(self.q, 1, 2)).reshape(-1, designs.shape[1])  # (grid·p, n)

    def rss(self, Y: np.ndarray) -> np.ndarray:
        """(grid, columns): |y|² − |Qᵀy|² at each grid position."""
        projected = (self.stacked @ Y).reshape(len(self.q), -1, Y.shape[1])  # (grid, p, columns): one product
        return np.maximum((Y ** 2).sum(axis=0)[None, :] - (projected ** 2).sum(axis=1), 0.0)

    def coef(self, y: np.ndarray, index: int) -> np.ndarray:
        return np.linalg.solve(self.r[index], self.q[index].T @ y)

    def alpha_factor(self) -> np.ndarray:
        """c = [(XᵀWX)⁻¹]_αα at each grid position: RSS(α) = RSS_min + (α − α̂)²/c there."""
        inverse = np.linalg.inv(self.r)
        return (inverse[:, 1, :] ** 2).sum(axis=1)


def _alpha_interval(bends: BendFits, ys: np.ndarray, rss: np.ndarray, inside: np.ndarray,
                    limit: float) -> tuple[float, float]:
    """The hull of α̂ ± √(c·(limit − RSS)) over the B_noise inside the region (see the docstring)."""
    factor = bends.alpha_factor()
    lows, highs = [], []
    for index in np.flatnonzero(inside):
        centre = bends.coef(ys, index)[1]
        half = np.sqrt(factor[index] * max(limit - rss[index], 0.0))
        lows.append(centre - half)
        highs.append(centre + half)
    return float(min(lows)), float(max(highs))


def _noise_interval(grid: np.ndarray, inside: np.ndarray) -> tuple[float, float]:
    """B_noise over the grid values inside the region: 0 when it reaches the lowest (the data
    show no rise at all), inf when B_noise = ∞ is inside (no bend is needed)."""
    values = grid[inside]
    low = 0.0 if inside[0] else float(np.exp(values.min()))
    return low, float(np.exp(values.max()))


def _prefer(u, extra, distinct, bends: BendFits, best: int, scale, ys, replicates: int,
            seed: int) -> tuple[str, str, float | None, float | None]:
    """(preferred, reason, p_hinge, p_smooth): the simulated comparison of the module docstring."""
    if len(distinct) < MIN_BELOW + MIN_ABOVE or len(u) - 4 - len(extra) < 1:
        return "untested", (f"a hinge needs at least {MIN_BELOW + MIN_ABOVE} batch sizes and a residual degree "
                            "of freedom to be compared with"), None, None
    single = np.column_stack([np.ones_like(u), u, *extra])
    hinges = HingeFits(single, u, extra, hinge_grid(distinct), scale)

    def contrast(Y: np.ndarray) -> np.ndarray:
        rss_hinge = hinges.best_rss(Y)
        rss_smooth = bends.rss(Y).min(axis=0)
        floor = 1e-12 * np.maximum(rss_hinge, 1e-300)  # noise-free data: keep the logs finite
        return len(ys) * np.log((rss_hinge + floor) / (rss_smooth + floor))

    observed = contrast(ys[:, None])[0]
    rng = np.random.default_rng(seed)
    position = hinges.best_position(ys)
    hinge_x = scale[:, None] * (single if position is None else hinge_design(u, position, extra))
    under_hinge = contrast(simulate_fit(hinge_x, ys, u, rng, replicates))
    under_smooth = contrast(simulate_fit(bends.designs[best], ys, u, rng, replicates))
    p_hinge = float((1 + np.sum(under_hinge >= observed)) / (replicates + 1))
    p_smooth = float((1 + np.sum(under_smooth <= observed)) / (replicates + 1))
    hinge_out, smooth_out = p_hinge <= PREFER_P, p_smooth <= PREFER_P
    preferred = {(True, False): "smooth", (False, True): "hinge", (False, False): "either",
                 (True, True): "neither"}[hinge_out, smooth_out]
    what = {"smooth": "the smooth bend fits better than a hinge's data would allow",
            "hinge": "the hinge fits better than a smooth bend's data would allow",
            "either": "the data cannot tell a smooth bend from a hinge",
            "neither": "each fits better than the other's data would allow: neither describes the bend"}[preferred]
    return preferred, f"{what} (p = {p_hinge:.2g} under the hinge, {p_smooth:.2g} under the smooth bend)", \
        p_hinge, p_smooth


def _float(value) -> float | None:
    return None if value is None else float(value)
