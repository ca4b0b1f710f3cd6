"""The hinged power law's fits, at every hinge position at once, and the 95 % set of the hinge
(:mod:`scalestudy.analysis.fits.breakdown` tests for a hinge; :mod:`scalestudy.analysis.fits.bend` compares
it with a smooth bend).

ln ε* = a + α·min(u, u_c) + α₂·max(u − u_c, 0) [+ β·v + γ·w], u = ln B: linear at each u_c.
"""

from __future__ import annotations

import numpy as np

from scalestudy.analysis.fits.null_simulation import SAME_BATCH, simulate_fit

__all__ = ["MIN_ABOVE", "MIN_BELOW", "SAME_BATCH", "HingeFits", "hinge_design", "hinge_grid", "hinge_interval",
           "interval_ends"]

MIN_BELOW, MIN_ABOVE = 3, 2  # distinct batch sizes the test needs on each side of a breakdown


def hinge_grid(distinct: np.ndarray, n_grid: int = 120, *, below: int = MIN_BELOW,
               above: int = MIN_ABOVE) -> np.ndarray:
    """Hinge positions u_c = ln B_c: a grid from the ``below``-th tested batch size up to (not
    including) the ``above``-th from the top, with every tested batch size in that range on it.

    The test searches hinges with MIN_BELOW sizes at or below and MIN_ABOVE above (its level is
    calibrated over those); the interval, over every identifiable hinge (2 at or below, 1 above),
    so that a breakdown between the outermost tested sizes is still covered."""
    lo, hi = distinct[below - 1], distinct[-above]
    return np.union1d(np.linspace(lo, hi, n_grid, endpoint=False), distinct[(distinct >= lo) & (distinct < hi)])


def hinge_design(u: np.ndarray, u_c: float, extra: list[np.ndarray]) -> np.ndarray:
    """The hinged law's columns at u_c: 1, min(u, u_c), max(u − u_c, 0), then ``extra``."""
    return np.column_stack([np.ones_like(u), np.minimum(u, u_c), np.maximum(u - u_c, 0.0), *extra])


def hinge_interval(hinges: HingeFits, ys: np.ndarray, u: np.ndarray, extra: list[np.ndarray],
                   inside: np.ndarray, rng: np.random.Generator, replicates: int) -> np.ndarray:
    """Grid positions in the 95 % set of the hinge: the F-based profile set ``inside``, widened by
    test inversion with a simulated threshold (the hinge position is not a regular parameter: the
    F threshold alone covered 73–81 % of hinges drawn between tested batch sizes).

    A position u₀ outside the F set is accepted when its profile likelihood ratio
    LR(u₀) = n·ln(RSS(u₀)/RSS_min) is at most the 95th percentile of LR*(u₀) over data simulated
    from the hinge fitted at u₀ (:func:`~scalestudy.analysis.fits.null_simulation.simulate_fit`: each
    cell's own scatter). Positions are tried outwards from the F set's ends, stopping at the first
    rejected on each side; the draws are shared by all u₀ (common random numbers)."""
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


def interval_ends(grid: np.ndarray, accepted: np.ndarray, rss_at, limit: float) -> list[float]:
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
