"""Does ε*(B) stop following one power law? The breakdown batch size, with a calibrated test.

ln ε* against u = ln B is fitted as a single power law (ln ε* = a + α·u [+ β·v], v =
ln(1 − m)) and as a broken (hinged, continuous) power law whose slope changes from α to
α₂ at u_c, with the same β term. For each u_c the hinged model is linear, so it is profiled
over a grid of u_c that includes every tested batch size in range (a hinge exactly at one
is found exactly).

Test statistic: the likelihood ratio of the best hinge whose slope falls (a law that
flattens at large B; a rising slope is not a breakdown),

    T = n · ln( RSS_single / min(RSS_single, min over u_c with α₂ < α of RSS(u_c)) ).

Cells are weighted by 1/(var ln ε* + τ²) (:func:`law_weights`), as in the law fit: a cell
bounded by divergence extrapolates its optimum and is several times noisier, and equal
weights let a hinge chase that noise at large B.

Calibration: a parametric bootstrap under the fitted single law, y* = ŷ + σ̂·z with z
standard normal (in the weighted problem, rows scaled by √w). T does not change when a
single law is added to y (it lies inside every hinged model) nor when y is scaled (a ratio
of sums of squares), so its null distribution is that of T(z) whatever ŷ and σ̂ are: this
is an exact Monte Carlo test for Gaussian scatter between cells with variances known up to
a factor, p = (1 + #{T* ≥ T}) / (R + 1) over R replicates, seeded (reproducible).

Outcomes (:attr:`Breakdown.outcome`):

- ``breakdown``: p ≤ 0.01 (with R = 399, exactly 1 % of single-law studies);
- ``inconclusive``: 0.01 < p ≤ 0.05 (a hinge fits better, not decisively), fewer than 5
  batch sizes, or no evidence but fewer than 3 residual degrees of freedom left to the
  hinged law (a breakdown could go unseen);
- ``none``: p > 0.05 with at least 3 residual degrees of freedom.

The BIC rule this replaces declared a breakdown in 17 % of simulated single-law studies
with 5 batch sizes and 12 % with 6 (one and two residual degrees of freedom); this test, on
400 planted quickstart-like single-law studies each (``scalestudy bench coverage``), in
0.75 % (5 batch sizes) and 1.25 % (6) with one momentum, 1.0 % and 1.25 % with two.

Interval: the profile-likelihood set {u_c : RSS(u_c) ≤ RSS_min·(1 + F₀.₉₅(1, n − p)/(n − p))}.
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

from scalestudy.analysis._stats import f_quantile, least_squares, random_effects_weights
from scalestudy.analysis.frontier import CellOptimum

MIN_BELOW, MIN_ABOVE = 3, 2  # distinct batch sizes needed on each side of a breakdown
DECLARE_P, SUGGEST_P = 0.01, 0.05  # p-values for a breakdown, and for "inconclusive" evidence of one
MIN_DOF_FOR_NONE = 3  # residual dof of the hinged law below which "no evidence" is inconclusive
REPLICATES = 399  # (R + 1)·0.01 is an integer: the Monte Carlo test has exact size
SAME_BATCH = 1e-9  # tolerance in ln B for "at this tested batch size"


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
    inside = np.append(_interval_ends(wide.grid, accepted, rss_at, limit), u_c)  # u_c: it may lie past the grid
    ci = (float(np.exp(inside.min())), float(np.exp(inside.max())))
    reason = f"broken power law preferred: p = {p_value:.2g} (likelihood ratio against {replicates} simulations)"
    if inside.min() <= wide.grid[0] or inside.max() >= wide.grid[-1]:
        reason += "; the interval reaches the edge of the batch sizes tested"
    hinge = least_squares(scale[:, None] * hinge_design(u, u_c, extra), ys, ())
    last = max(b for b in tested if np.log(b) <= u_c + SAME_BATCH)
    return Breakdown(_on_tested(u_c, tested), ci, reason, slope_above=float(hinge.coef[2]),
                     candidate=_on_tested(u_c, tested), last_batch_size=int(last), **common)


def hinge_grid(distinct: np.ndarray, n_grid: int = 120, *, below: int = MIN_BELOW, above: int = MIN_ABOVE) -> np.ndarray:
    """Hinge positions u_c = ln B_c: a grid from the ``below``-th tested batch size up to (not
    including) the ``above``-th from the top, with every tested batch size in that range on it.

    The test searches hinges with MIN_BELOW sizes at or below and MIN_ABOVE above (its level is
    calibrated over those); the interval, over every identifiable hinge (2 at or below, 1 above),
    so that a breakdown between the outermost tested sizes is still covered."""
    lo, hi = distinct[below - 1], distinct[-above]
    return np.union1d(np.linspace(lo, hi, n_grid, endpoint=False), distinct[(distinct >= lo) & (distinct < hi)])


def noise_scatter(residual: np.ndarray, leverage: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Each cell's noise sd, estimated from the residuals r of a fit with leverages h: seed noise
    that grows (or shrinks) with B is simulated at its own size at each B, where one σ for every
    cell (the bootstrap this replaces) understated it at the large B where hinges act.

    - A batch size with several cells (momenta, dataset sizes): σ̂²(B) = Σ rᵢ² / Σ (1 − hᵢ) over its
      cells, unbiased when the variance is constant within B (E rᵢ² = σ²(1 − hᵢ), as HC2).
    - A batch size with one cell: the trend σ²(u) = c·e^(b·(u − ū)) fitted to rᵢ²/(1 − hᵢ) by Gaussian
      likelihood (c in closed form, b on a grid). The cell's own residual alone, under a breakdown,
      holds the bend itself: simulated as noise, it hid half the breakdowns a single momentum shows.

    On quickstart-like single-law studies with sd = 0.1·(B/16)^0.3 (``scalestudy.bench.coverage_bend``)
    this keeps false breakdowns at nominal 1 % to 0.8–1.4 % where the homoscedastic bootstrap gave
    2.2–3.5 %; a wild bootstrap (each cell's own residual, Rademacher signs) gave 1.4–1.7 %."""
    room = np.maximum(1.0 - leverage, 1e-9)
    variance = _variance_trend(residual ** 2 / room, u)
    for value in np.unique(u):
        at = np.abs(u - value) <= SAME_BATCH
        if at.sum() >= 2:
            variance[at] = np.sum(residual[at] ** 2) / max(float(np.sum(1.0 - leverage[at])), 1e-9)
    return np.sqrt(variance)


TREND_SLOPES = np.linspace(-1.5, 1.5, 61)  # d ln σ² / d ln B searched: up to a 180-fold variance over 32-fold B


def _variance_trend(squares: np.ndarray, u: np.ndarray) -> np.ndarray:
    """c·e^(b·(u − ū)) maximising the Gaussian likelihood of ``squares`` (unbiased variances, one per cell):
    −2 ln L = Σ ln σᵢ² + sᵢ/σᵢ² is n·ln c + n at c = mean(sᵢ·e^(−b(uᵢ − ū))), so b minimises c."""
    x = u - u.mean()
    scales = (squares[None, :] * np.exp(-TREND_SLOPES[:, None] * x[None, :])).mean(axis=1)
    best = int(scales.argmin())
    return scales[best] * np.exp(TREND_SLOPES[best] * x)


def simulate_fit(x: np.ndarray, ys: np.ndarray, u: np.ndarray, rng: np.random.Generator, replicates: int,
                 noise: np.ndarray | None = None) -> np.ndarray:
    """(n, replicates): the least-squares fit of ys on x (rows already scaled by √weight) plus
    Gaussian noise at each batch size's residual scatter (:func:`noise_scatter`). ``noise``:
    standard normal draws to reuse (common random numbers across fits)."""
    q = np.linalg.qr(x)[0]
    fitted = q @ (q.T @ ys)
    sd = noise_scatter(ys - fitted, (q ** 2).sum(axis=1), u)
    draws = rng.standard_normal((len(ys), replicates)) if noise is None else noise
    return fitted[:, None] + sd[:, None] * draws


def hinge_interval(hinges: HingeFits, ys: np.ndarray, u: np.ndarray, extra: list[np.ndarray],
                   inside: np.ndarray, rng: np.random.Generator, replicates: int) -> np.ndarray:
    """Grid positions in the 95 % set of the hinge: the F-based profile set ``inside``, widened by
    test inversion with a simulated threshold (see the module docstring: the hinge position is
    not a regular parameter and the F threshold covered 73–81 % between tested batch sizes).

    A position u₀ outside the F set is accepted when its profile likelihood ratio
    LR(u₀) = n·ln(RSS(u₀)/RSS_min) is at most the 95th percentile of LR*(u₀) over data simulated
    from the hinge fitted at u₀ (:func:`simulate_fit`: each batch size's own scatter). Positions
    are tried outwards from the F set's ends, stopping at the first rejected on each side; the
    draws are shared by all u₀ (common random numbers)."""
    grid, n = hinges.grid, len(ys)
    rss = hinges.rss(ys[:, None])[:, 0]
    ratio = n * np.log(np.maximum(rss, 1e-300) / max(rss.min(), 1e-300))
    draws = rng.standard_normal((n, replicates))
    accepted = inside.copy()

    def accept(index: int) -> bool:
        x = hinges.scale[:, None] * hinge_design(u, grid[index], extra)
        simulated = hinges.rss(simulate_fit(x, ys, u, rng, replicates, noise=draws))
        floor = 1e-300
        star = n * np.log((simulated[index] + floor) / (simulated.min(axis=0) + floor))
        return bool(ratio[index] <= np.quantile(star, 0.95))

    indices = np.flatnonzero(inside)
    for step, start in ((-1, indices.min()), (1, indices.max())):
        index = start + step
        while 0 <= index < len(grid) and accept(index):
            accepted[index] = True
            index += step
    return accepted


def _interval_ends(grid: np.ndarray, accepted: np.ndarray, rss_at, limit: float) -> list[float]:
    """ln B_c at each end of the accepted grid positions, placed between the outermost accepted
    point and the next rejected one: where the RSS crosses the profile limit when the accepted point
    lies within it (Brent's root), else halfway. Precise data have an interval a few grid steps wide,
    which the grid alone would round inwards."""
    from scipy.optimize import brentq

    indices = np.flatnonzero(accepted)
    ends = []
    for index, step in ((indices.min(), -1), (indices.max(), 1)):
        outside = index + step
        if not 0 <= outside < len(grid):
            ends.append(float(grid[index]))
        elif rss_at(grid[index]) <= limit < rss_at(grid[outside]):
            ends.append(float(brentq(lambda x: rss_at(x) - limit, grid[index], grid[outside], xtol=1e-10)))
        else:
            ends.append(float((grid[index] + grid[outside]) / 2))
    return ends


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


def hinge_design(u: np.ndarray, u_c: float, extra: list[np.ndarray]) -> np.ndarray:
    """The hinged law's columns at u_c: 1, min(u, u_c), max(u − u_c, 0), then ``extra``."""
    return np.column_stack([np.ones_like(u), np.minimum(u, u_c), np.maximum(u - u_c, 0.0), *extra])


class HingeFits:
    """The hinged fits at every grid position, for many response vectors at once, with rows
    scaled by the square roots of the cells' weights (weighted least squares).

    The design at each u_c does not depend on y, so its QR factors are computed once: the
    residual sum of squares of y is |r|² − |Qᵀr|² with r the single-law residual, and the
    change of slope α₂ − α is wᵀr with w = Q·R⁻ᵀ·(e₂ − e₁)."""

    def __init__(self, single: np.ndarray, u: np.ndarray, extra: list[np.ndarray], grid: np.ndarray,
                 scale: np.ndarray):
        self.grid, self.scale = grid, scale
        self.single_q = np.linalg.qr(scale[:, None] * single)[0]
        g = grid[:, None]
        columns = [np.ones_like(g * u), np.minimum(u, g), np.maximum(u - g, 0.0)]
        columns += [np.broadcast_to(column, columns[0].shape) for column in extra]
        designs = scale[None, :, None] * np.stack(columns, axis=2)  # (grid, n, p), as hinge_design
        self.q, r = np.linalg.qr(designs)
        # Qᵀ of every position stacked into one (grid·p, n) matrix: one matrix product for all of them
        self.stacked = np.ascontiguousarray(np.swapaxes(self.q, 1, 2)).reshape(-1, len(u))
        step = np.zeros(designs.shape[2])
        step[1], step[2] = -1.0, 1.0
        z = np.linalg.solve(np.swapaxes(r, 1, 2), np.broadcast_to(step, (len(grid), len(step)))[..., None])
        self.w = (self.q @ z)[..., 0]  # (grid, n)

    def _fits(self, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(single-law RSS per column, RSS per grid position and column, whether the slope falls there)."""
        resid = Y - self.single_q @ (self.single_q.T @ Y)
        rss_single = (resid ** 2).sum(axis=0)
        projected = (self.stacked @ resid).reshape(len(self.grid), -1, resid.shape[1])  # (grid, p, columns)
        rss = np.maximum(rss_single[None, :] - (projected ** 2).sum(axis=1), 0.0)
        return rss_single, rss, (self.w @ resid) < 0

    def rss(self, Y: np.ndarray) -> np.ndarray:
        """(grid, columns): the hinged law's RSS at every position, whichever way its slope turns."""
        return self._fits(Y)[1]

    def best_rss(self, Y: np.ndarray) -> np.ndarray:
        """Per column: the RSS of the best hinge whose slope falls, or of the single law if lower."""
        rss_single, rss, falling = self._fits(Y)
        return np.minimum(np.where(falling, rss, np.inf).min(axis=0), rss_single)

    def best_position(self, y: np.ndarray) -> float | None:
        """u_c of the best falling hinge of one (scaled) response, None when none fits better than the
        single law."""
        index = int(self.statistic(y[:, None])[1][0])
        return None if index < 0 else float(self.grid[index])

    def statistic(self, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(T per column of Y, index of the best falling hinge or −1, RSS per grid position and column)."""
        rss_single, rss, falling = self._fits(Y)
        masked = np.where(falling, rss, np.inf)
        best = np.where(falling.any(axis=0), masked.argmin(axis=0), -1)
        floor = 1e-12 * np.maximum(rss_single, 1e-300)  # noise-free data: keep the logs finite
        lowest = np.minimum(masked.min(axis=0), rss_single)
        return len(Y) * np.log((rss_single + floor) / (lowest + floor)), best, rss
