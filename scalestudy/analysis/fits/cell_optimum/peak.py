"""The peak of one cell's accuracy curve over x = ln ε, and its vertex.

"Accuracy" is the study's objective oriented so that higher is better: the accuracy itself for a
maximised metric, interpolated in ln (``log=True``), and −value for a minimised one (a loss),
interpolated as it is (``log=False``): a loss near its minimum is a parabola in ln ε, so the
parabola through −loss is exact there, as the one through ln(accuracy) is for a Gaussian bump.

:func:`find_peak` says where a curve peaks (interior, bounded by divergence, at an edge of
the search, or nowhere), :func:`interpolate` places ε* between the searched ε, and
:func:`delta_variance` propagates the accuracy noise of the three points through that
placement (the delta method), for weighting cells in the law fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OK = "ok"
BOUNDED = "bounded_by_divergence"
USABLE = (OK, BOUNDED)  # statuses whose ε* enters the law


@dataclass(frozen=True)
class Peak:
    """Where a curve peaks: its status, the best column, the three columns the parabola goes
    through and, for a cell bounded by divergence, the first fully diverged column."""

    status: str
    best: int | None = None
    columns: tuple[int, int, int] | None = None
    bound: int | None = None


def find_peak(y: np.ndarray, alive: np.ndarray) -> Peak:
    """The peak of one accuracy curve (columns sorted by ε).

    ``alive`` marks the ε columns with at least one non-diverged trial; only those can be
    the optimum or take part in the quadratic. Every column above the largest alive one
    diverged in every trial."""
    candidates = np.flatnonzero(alive & np.isfinite(y))
    if len(candidates) == 0:
        return Peak("all_diverged")
    best_pos = int(np.argmax(y[candidates]))
    best = int(candidates[best_pos])
    if len(candidates) < 3:
        return Peak("too_few_points", best)
    if best_pos == 0:
        return Peak("edge_low", best)
    if best_pos == len(candidates) - 1:
        if best + 1 < len(y):  # the next searched ε diverged in every trial: ε* lies below it
            return Peak(BOUNDED, best, tuple(int(c) for c in candidates[best_pos - 2:best_pos + 1]), best + 1)
        return Peak("edge_high", best)
    return Peak(OK, best, (int(candidates[best_pos - 1]), best, int(candidates[best_pos + 1])))


def interpolate(x: np.ndarray, y: np.ndarray, peak: Peak, floor: float, log: bool = True) -> tuple[float, bool]:
    """(ln ε*, whether the vertex fell strictly inside its range) for one curve at ``peak``.

    Interior peak: Gaussian interpolation, the parabola through ln(accuracy) at the best
    point and its neighbours; exact for a Gaussian bump and several times less biased than
    a parabola through accuracy itself for the peak shapes seen in practice. Bounded by
    divergence: the parabola through ln(accuracy − failure accuracy) at the three best
    points, whose vertex lies beyond them, kept between the middle point and the diverged ε.
    Extrapolating, the floor matters: on a Gaussian peak of width 0.7–1.5 e-folds above
    chance, ln(accuracy) put the vertex 0.01–2 e-folds too high, ln(accuracy − floor) is
    exact; the parabola through the diverged ε at the failure accuracy put it 0.1–0.6
    e-folds too low. Interpolating between points, ln(accuracy) is off by at most 0.005.
    ``log=False`` (a minimised objective, y = −loss): the parabola through y itself, both cases.
    """
    x0, x1, x2 = x[list(peak.columns)]
    values = y[list(peak.columns)]
    low, high = vertex_range(x, peak)
    if not log:
        return vertex(x0, x1, x2, *values, low=low, high=high)
    if peak.status == OK:
        return vertex(x0, x1, x2, *np.log(np.clip(values, 1e-9, None)), low=low, high=high)
    scale = max(float(values.max()) - floor, 1e-9)
    return vertex(x0, x1, x2, *np.log(np.clip(values - floor, 1e-6 * scale, None)), low=low, high=high)


def vertex(x0: float, x1: float, x2: float, y0: float, y1: float, y2: float, *, low: float,
            high: float) -> tuple[float, bool]:
    """Vertex of the parabola through three points, kept within [low, high]; a flat or convex
    parabola gives the best of the three points. Second value: inside (low, high) and curved."""
    slope_left, slope_right = (y1 - y0) / (x1 - x0), (y2 - y1) / (x2 - x1)
    curvature = (slope_right - slope_left) / (x2 - x0)
    if curvature >= 0:  # flat or convex: nothing to interpolate
        best = (x0, x1, x2)[int(np.argmax((y0, y1, y2)))]
        return float(min(max(best, low), high)), False
    vertex = 0.5 * (x0 + x1) - slope_left / (2 * curvature)
    return float(min(max(vertex, low), high)), bool(low < vertex < high)


def delta_variance(x: np.ndarray, y: np.ndarray, peak: Peak, floor: float, column_var: np.ndarray,
                   log: bool = True) -> float:
    """Variance of ln ε* from independent noise of variance ``column_var`` (per column) on the
    curve: Σ (∂ ln ε*/∂ yᵢ)² · varᵢ over the three points, by central differences.

    Zero when the vertex is clipped (a small change of the curve does not move it); the
    caller floors it by the width of the range the vertex was kept in."""
    step = 1e-5
    variance = 0.0
    for column in peak.columns:
        up, down = y.copy(), y.copy()
        up[column] += step
        down[column] -= step
        slope = (interpolate(x, up, peak, floor, log)[0] - interpolate(x, down, peak, floor, log)[0]) / (2 * step)
        variance += slope ** 2 * column_var[column]
    return float(variance)


def at_stability_edge(x: np.ndarray, y: np.ndarray, peak: Peak, floor: float, log: bool = True) -> bool:
    """A cell bounded by divergence whose accuracy still rises at its largest stable ε: the
    vertex lies at or past the diverged ε, or the curve does not bend."""
    if peak.status != BOUNDED:
        return False
    x_opt, interior = interpolate(x, y, peak, floor, log)
    return not interior and x_opt > vertex_range(x, peak)[0]


def vertex_range(x: np.ndarray, peak: Peak) -> tuple[float, float]:
    """The range :func:`interpolate` keeps the vertex in (ln ε)."""
    if peak.status == OK:
        return float(x[peak.columns[0]]), float(x[peak.columns[2]])
    return float(x[peak.columns[1]]), float(x[peak.bound])
