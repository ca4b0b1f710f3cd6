"""Does ε*(B) stop following one power law? The breakdown batch size, with a calibrated test.

ln ε* against u = ln B is fitted as a single power law (ln ε* = a + α·u [+ β·v], v =
ln(1 − m)) and as a broken (hinged, continuous) power law whose slope changes from α to
α₂ at u_c, with the same β term. For each u_c the hinged model is linear, so it is profiled
over a grid of u_c that includes every tested batch size in range (a hinge exactly at one
is found exactly), the best position then refined between its grid neighbours (a noise-free
hinge between tested sizes is found exactly too).

Test statistic: the likelihood ratio of the best hinge whose slope falls (a law that
flattens at large B; a rising slope is not a breakdown),

    T = n · ln( RSS_single / min(RSS_single, min over u_c with α₂ < α of RSS(u_c)) ).

Cells are weighted by 1/(var ln ε* + τ²) (:func:`law_weights`), as in the law fit: a cell
bounded by divergence extrapolates its optimum and is several times noisier, and equal
weights let a hinge chase that noise at large B.

Calibration: a parametric bootstrap under the fitted single law, y* = ŷ + σ̂ᵢ·zᵢ with z standard
normal (in the weighted problem, rows scaled by √w) and σ̂ᵢ each cell's own noise level estimated
from the single law's residuals (:func:`~scalestudy.analysis.fits.null_simulation.noise_scatter`: pooled over the
cells of its batch size, or a log-linear trend in ln B with one cell per batch size). T does not
change when a single law is added to y (it lies inside every hinged model) nor when y is scaled (a
ratio of sums of squares), so its null distribution is that of T(σ̂∘z);
p = (1 + #{T* ≥ T}) / (R + 1) over R replicates, seeded (reproducible). The weights hold each cell's reported variance, but
seed noise that grows with B while the reported variances do not (a variance pooled over the study)
made the bootstrap with one σ for every cell (exact only when the weights are right) declare
2.2–3.5 % false breakdowns at nominal 1 % with sd = 0.1·(B/16)^0.3 (figures now:
:mod:`scalestudy.analysis.fits.null_simulation`).

Outcomes (:attr:`Breakdown.outcome`):

- ``breakdown``: p ≤ 0.01 (with R = 399, (R + 1)·0.01 is a whole number of replicates);
- ``inconclusive``: 0.01 < p ≤ 0.05 (a hinge fits better, not decisively), fewer than 5
  batch sizes, or no evidence but fewer than 3 residual degrees of freedom left to the
  hinged law (a breakdown could go unseen);
- ``none``: p > 0.05 with at least 3 residual degrees of freedom.

The BIC rule this replaced declared a breakdown in 17 % of simulated single-law studies
with 5 batch sizes and 12 % with 6 (one and two residual degrees of freedom). The figures of this
test, on planted studies and on cells with noise varying between them, are ``scalestudy bench
coverage``'s (:mod:`scalestudy.bench.coverage_bend` for the latter).

Interval: the profile-likelihood set {u_c : RSS(u_c) ≤ RSS_min·(1 + F₀.₉₅(1, n − p)/(n − p))}, over
every identifiable hinge (2 tested sizes at or below, 1 above: wider than the test's search, so that
a change between the outermost tested sizes is still covered), widened by test inversion with a
simulated threshold (:func:`~scalestudy.analysis.fits.hinges.hinge_interval`): the hinge position is not
a regular parameter, and the F threshold alone covered 73–81 % of hinges drawn between tested batch
sizes. Its ends lie between grid points (:func:`~scalestudy.analysis.fits.hinges.interval_ends`).

Several dataset sizes N enter as one more covariate, ln N with the law's γ, as the momenta do: the
test looks for one hinge in B shared by every N and m. That is the identifiable question with a
few batch sizes per N (a hinge per N needs 5 batch sizes at each); it matches McCandlish et al.'s
critical batch size, which depends on the gradient noise, not on N, and it is what a check at a
larger N (``scalestudy check-law``) then tests cell by cell.
The law is fitted on the cells up to :attr:`Breakdown.last_batch_size`, the largest tested
batch size not above the hinge, compared in ln B with a tolerance (exp(ln 256) is
255.99999999999994: a float comparison would drop the cell at a hinge on a tested size).
A hinge estimated just below a tested batch size moves up to it when the hinge there lies
inside the 95 % interval: a breakdown exactly at a tested size is otherwise estimated below
it half the time, and its cell, on both segments, would leave the law.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scalestudy.analysis.fits._stats import f_quantile, least_squares, random_effects_weights
from scalestudy.analysis.fits.cell_optimum.frontier import CellOptimum
from scalestudy.analysis.fits.hinges import (
    MIN_ABOVE,
    MIN_BELOW,
    SAME_BATCH,
    HingeFits,
    hinge_design,
    hinge_grid,
    hinge_interval,
    interval_ends,
)
from scalestudy.analysis.fits.null_simulation import simulate_fit

DECLARE_P, SUGGEST_P = 0.01, 0.05  # p-values for a breakdown, and for "inconclusive" evidence of one
MIN_DOF_FOR_NONE = 3  # residual dof of the hinged law below which "no evidence" is inconclusive
REPLICATES = 399  # (R + 1)·0.01 is an integer: the Monte Carlo test has exact size


@dataclass(frozen=True)
class Breakdown:
    """Batch size [examples] where ε*(B) stops following the power law, or None with a reason."""

    batch_size: float | None  # set only when the outcome is "breakdown"
    ci95: tuple[float, float] | None
    reason: str
    slope_above: float | None = None
    p_value: float | None = None  # Monte Carlo p-value of the likelihood ratio (None: not tested)
    inconclusive: bool = False
    candidate: float | None = None  # the best hinge whose slope falls, whatever the outcome [examples]
    last_batch_size: int | None = None  # largest tested batch size at or below the breakdown: the law's cells end
    profile: tuple[tuple[float, float], ...] = ()  # (B_c, RSS) over the hinge grid: the profile likelihood

    @property
    def outcome(self) -> str:
        """``breakdown``, ``none`` or ``inconclusive``."""
        if self.batch_size is not None:
            return "breakdown"
        return "inconclusive" if self.inconclusive else "none"


def law_coordinates(cells: list[CellOptimum]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ln B, ln(1 − m), ln ε*) of the cells: the law is linear in these."""
    u = np.log([c.batch_size for c in cells]).astype(float)
    v = np.log1p(-np.array([c.momentum for c in cells], float))
    y = np.log([c.lr_opt for c in cells]).astype(float)
    return u, v, y


def log_dataset_sizes(cells: list[CellOptimum]) -> np.ndarray | None:
    """w = ln N of the cells, or None when they carry no N (a study of one dataset size)."""
    if any(c.dataset_size is None for c in cells):
        return None
    return np.log([c.dataset_size for c in cells]).astype(float)


def law_design(u: np.ndarray, v: np.ndarray, terms: tuple[str, ...], w: np.ndarray | None = None) -> np.ndarray:
    """The columns of ln ε* = ln k + α·u + β·v + γ·w for the ``terms`` fitted ("alpha", "beta",
    "gamma"): a constant, then u = ln B, v = ln(1 − m) and w = ln N as asked."""
    columns = {"alpha": u, "beta": v, "gamma": w}
    return np.column_stack([np.ones_like(u), *(columns[term] for term in terms)])


def law_weights(cells: list[CellOptimum], X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float | None]:
    """(weights, τ²) of the cells in a fit of y on X: 1/(var ln ε* + τ²) when every cell has a
    variance (:attr:`CellOptimum.log_lr_var`), equal weights (and τ² None) otherwise."""
    variances = [c.log_lr_var for c in cells]
    if any(v is None or not v > 0 for v in variances):
        return np.ones(len(cells)), None
    return random_effects_weights(X, y, np.array(variances))


def fit_breakdown(cells: list[CellOptimum], *, replicates: int = REPLICATES, seed: int = 0,
                  n_grid: int = 120) -> Breakdown:
    """Single vs broken power law in B over the given cells (see the module docstring)."""
    u, v, y = law_coordinates(cells)
    distinct = np.unique(u)
    if len(distinct) < MIN_BELOW + MIN_ABOVE:
        return Breakdown(None, None, f"needs at least {MIN_BELOW + MIN_ABOVE} batch sizes with an interior "
                                     f"optimum to test for one, found {len(distinct)}", inconclusive=True)
    w = log_dataset_sizes(cells)
    terms = ("alpha", *(["beta"] if len(np.unique(v)) >= 2 else []),
             *(["gamma"] if w is not None and len(np.unique(w)) >= 2 else []))
    extra = [v] if "beta" in terms else []
    extra += [w] if "gamma" in terms else []
    n, p_broken = len(y), 4 + len(extra)
    dof = n - p_broken
    if dof < 1:
        return Breakdown(None, None, f"{n} cells are too few to fit a broken power law", inconclusive=True)
    grid = hinge_grid(distinct, n_grid)
    single = law_design(u, v, terms, w)
    scale = np.sqrt(law_weights(cells, single, y)[0])
    hinges = HingeFits(single, u, extra, grid, scale)
    ys = scale * y
    statistic, best, rss = hinges.statistic(ys[:, None])
    rng = np.random.default_rng(seed)
    null, _, _ = hinges.statistic(simulate_fit(scale[:, None] * single, ys, u, rng, replicates))
    p_value = float((1 + np.sum(null >= statistic[0])) / (replicates + 1))
    rss = rss[:, 0]
    profile = tuple((float(np.exp(g)), float(r)) for g, r in zip(grid, rss))
    tested = sorted({c.batch_size for c in cells})
    common = {"p_value": p_value, "profile": profile}
    if best[0] < 0:
        return _no_breakdown(p_value, dof, "a single power law fits as well as any hinge whose slope falls", common)
    def rss_at(position: float) -> float:  # from the residuals, to the last digit (a noise-free hinge)
        return least_squares(scale[:, None] * hinge_design(u, position, extra), ys, ()).rss

    u_c = _refine(grid, int(best[0]), rss_at)
    candidate = _on_tested(u_c, tested)
    if p_value > DECLARE_P:
        if p_value <= SUGGEST_P:
            return Breakdown(None, None, f"a hinge at B ≈ {candidate:.4g} fits better, but not decisively: "
                                         f"p = {p_value:.2g}, a breakdown is declared at p ≤ {DECLARE_P:g}",
                             inconclusive=True, candidate=candidate, **common)
        return _no_breakdown(p_value, dof, "a single power law fits as well", {**common, "candidate": candidate})
    threshold = rss[best[0]] * (1 + f_quantile(0.95, 1, dof) / dof)
    u_c = _snap_up(u_c, rss_at, threshold, tested)
    wide = HingeFits(single, u, extra, hinge_grid(distinct, 2 * n_grid, below=2, above=1), scale)
    wide_rss = wide.rss(ys[:, None])[:, 0]
    limit = min(wide_rss.min(), rss_at(u_c)) * (1 + f_quantile(0.95, 1, dof) / dof)
    profile_set = wide_rss <= limit
    if not profile_set.any():  # the best hinge lies between grid points, none of them within the limit
        profile_set[np.abs(wide.grid - u_c).argmin()] = True
    accepted = hinge_interval(wide, ys, u, extra, profile_set, rng, replicates)
    inside = np.append(interval_ends(wide.grid, accepted, rss_at, limit), u_c)  # u_c: it may lie past the grid
    ci = (float(np.exp(inside.min())), float(np.exp(inside.max())))
    reason = f"broken power law preferred: p = {p_value:.2g} (likelihood ratio against {replicates} simulations)"
    if inside.min() <= wide.grid[0] or inside.max() >= wide.grid[-1]:
        reason += "; the interval reaches the edge of the batch sizes tested"
    hinge = least_squares(scale[:, None] * hinge_design(u, u_c, extra), ys, ())
    last = max(b for b in tested if np.log(b) <= u_c + SAME_BATCH)
    return Breakdown(_on_tested(u_c, tested), ci, reason, slope_above=float(hinge.coef[2]),
                     candidate=_on_tested(u_c, tested), last_batch_size=int(last), **common)


def _refine(grid: np.ndarray, best: int, rss_at) -> float:
    """The best hinge refined between its grid neighbours (bounded Brent on √RSS, searched as the
    offset from the grid point so that its tolerance is absolute): a noise-free hinge between tested
    batch sizes is found exactly, not to the grid step. The grid point stays when it fits as well
    (a hinge exactly on a tested batch size)."""
    from scipy.optimize import minimize_scalar

    centre = grid[best]
    low, high = grid[max(best - 1, 0)] - centre, grid[min(best + 1, len(grid) - 1)] - centre
    if high <= low:
        return float(centre)
    found = minimize_scalar(lambda t: np.sqrt(rss_at(centre + t)), bounds=(low, high), method="bounded",
                            options={"xatol": 1e-12})
    return float(centre + found.x) if found.fun ** 2 < rss_at(centre) else float(centre)


def _snap_up(u_c: float, rss_at, threshold: float, tested: list[int]) -> float:
    """The hinge at the next tested batch size above u_c when it fits as well (inside the 95 %
    profile interval), else u_c. A breakdown exactly at a tested batch size is estimated a
    little below it about half the time (always, when a single tested size lies above it);
    that cell lies on both segments and belongs in the law."""
    above = [np.log(b) for b in tested if np.log(b) > u_c + SAME_BATCH]
    if len(above) < 2:  # the next one must leave a batch size above the hinge
        return u_c
    return float(above[0]) if rss_at(above[0]) <= threshold else u_c


def _no_breakdown(p_value: float, dof: int, what: str, common: dict) -> Breakdown:
    if dof < MIN_DOF_FOR_NONE:
        return Breakdown(None, None, f"no evidence of one, p = {p_value:.2g}, but the broken power law has only "
                                     f"{dof} residual degree(s) of freedom, too few to rule one out",
                         inconclusive=True, **common)
    return Breakdown(None, None, f"{what}: p = {p_value:.2g}", **common)


def _on_tested(u_c: float, tested: list[int]) -> float:
    """exp(u_c), or the tested batch size it stands on (exactly)."""
    for b in tested:
        if abs(np.log(b) - u_c) <= SAME_BATCH:
            return float(b)
    return float(np.exp(u_c))
