"""Steps to a target against batch size: McCandlish et al.'s (2018) model, fitted by profile likelihood.

McCandlish et al., "An Empirical Model of Large-Batch Training", eq. 2.11 (with Shallue et al.'s
2018 steps-to-target measurements):

    S(B) = S_min · (1 + B_crit / B),    equivalently    E(B) = B·S(B) = E_min · (1 + B / B_crit),

S the updates and E the examples to reach the target, E_min = S_min·B_crit, so
(S/S_min − 1)(E/E_min − 1) = 1: perfect scaling (S halves when B doubles) below B_crit, no
gain above it. E = B·S makes the two one model: it is fitted once, on ln S with parameters
a = ln S_min and c = ln B_crit, by least squares (multiplicative scatter, as update counts
have):

    ln S_i = a + ln(1 + e^c / B_i) + error_i.

For a given c the best a is the mean of ln S_i − ln(1 + e^c/B_i), so the fit is a search over
one number, c (a grid over B_min/1100 … 1100·B_max, then a golden-section refinement). The
95 % interval of B_crit is the profile-likelihood set {c : RSS(c) ≤ RSS_min·(1 + F₀.₉₅(1, n−2)/(n−2))},
exact for linear models and close for this one (coverage measured by simulation:
``scalestudy bench coverage``). The interval of S at another batch size, ln S(B) =
a + ln(1 + e^c/B), is the range of that function over the same confidence region
{(a, c) : RSS(a, c) ≤ limit}; since RSS(a, c) = RSS(c) + n·(a − â(c))², at each c the region
holds a = â(c) ± √((limit − RSS(c))/n). The limit is passed in (the analysis computes the F
quantile; this module is standard library only, as the law file is read without scipy).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

MIN_BATCH_SIZES = 3  # two parameters and a residual
GRID_SPAN = 7.0  # the search for ln B_crit runs e^7 ≈ 1100× beyond the batch sizes tested, each way
GRID_STEP = 0.05  # in ln B_crit: locates the basin; golden section and bisection refine it


@dataclass(frozen=True)
class TransitionFit:
    """The fitted S(B) = S_min·(1 + B_crit/B), or None values with a reason."""

    batch_sizes: tuple[float, ...]  # [examples], ascending
    updates: tuple[float, ...]  # S at each [updates]
    value: float | None  # B_crit [examples]
    ci95: tuple[float, float] | None  # profile-likelihood 95 % interval of B_crit
    min_updates: float | None  # S_min [updates]
    rss_limit: float | None  # RSS(a, c) at the edge of the 95 % confidence region
    reason: str | None = None

    @property
    def min_examples(self) -> float | None:
        """E_min = S_min·B_crit [examples]."""
        return None if self.value is None else self.min_updates * self.value

    def updates_at(self, batch_size: float) -> float:
        """The fitted S(B) [updates]."""
        return self.min_updates * (1.0 + self.value / batch_size)

    def updates_interval(self, batch_size: float) -> tuple[float, float] | None:
        """95 % interval of S(B) [updates]: the range of S(B) over the confidence region (None
        without an interval of B_crit)."""
        if self.ci95 is None or self.rss_limit is None:
            return None
        low, high = math.inf, -math.inf
        logs = [math.log(b) for b in self.batch_sizes]
        y = [math.log(s) for s in self.updates]
        c_low, c_high = math.log(self.ci95[0]), math.log(self.ci95[1])
        steps = 400
        for i in range(steps + 1):
            c = c_low + (c_high - c_low) * i / steps
            a, rss = profile(c, logs, y)
            spread = math.sqrt(max(self.rss_limit - rss, 0.0) / len(y))
            centre = a + math.log1p(math.exp(c) / batch_size)
            low, high = min(low, centre - spread), max(high, centre + spread)
        return math.exp(low), math.exp(high)


def profile(c: float, log_batch: Sequence[float], log_updates: Sequence[float]) -> tuple[float, float]:
    """(â(c), RSS(c)): the best ln S_min for ln B_crit = c, and the residual sum of squares."""
    shifts = [math.log1p(math.exp(c - u)) for u in log_batch]
    residuals = [y - s for y, s in zip(log_updates, shifts)]
    a = sum(residuals) / len(residuals)
    return a, sum((r - a) ** 2 for r in residuals)


def fit_transition(batch_sizes: Sequence[float], updates: Sequence[float], f_quantile: float | None) -> TransitionFit:
    """Fit S(B) through (B, S) points (distinct batch sizes). ``f_quantile``: F₀.₉₅(1, n − 2),
    or None for no interval (the caller computes it: this module has no scipy)."""
    order = sorted(range(len(batch_sizes)), key=lambda i: batch_sizes[i])
    b = tuple(float(batch_sizes[i]) for i in order)
    s = tuple(float(updates[i]) for i in order)
    nothing = {"batch_sizes": b, "updates": s, "value": None, "ci95": None, "min_updates": None, "rss_limit": None}
    if len(set(b)) < MIN_BATCH_SIZES:
        return TransitionFit(**nothing, reason=f"needs {MIN_BATCH_SIZES} batch sizes that reached the target, "
                                               f"found {len(set(b))}")
    if not all(math.isfinite(v) and v > 0 for v in (*b, *s)):
        return TransitionFit(**nothing, reason="batch sizes and updates must be positive and finite")
    logs, y = [math.log(v) for v in b], [math.log(v) for v in s]
    start, stop = logs[0] - GRID_SPAN, logs[-1] + GRID_SPAN
    grid = [start + i * GRID_STEP for i in range(int((stop - start) / GRID_STEP) + 1)]
    rss = [profile(c, logs, y)[1] for c in grid]
    best = min(range(len(grid)), key=rss.__getitem__)
    if best == len(grid) - 1:
        return TransitionFit(**nothing, reason="updates fall as 1/B throughout: the critical batch size is above "
                                               "the largest B tested")
    if best == 0:
        return TransitionFit(**nothing, reason="updates do not fall with the batch size: no perfect-scaling "
                                               "regime in the range")
    c_hat = _golden(lambda c: profile(c, logs, y)[1], grid[best - 1], grid[best + 1])
    a_hat, rss_min = profile(c_hat, logs, y)
    fitted = {**nothing, "value": math.exp(c_hat), "min_updates": math.exp(a_hat)}
    if f_quantile is None:
        return TransitionFit(**fitted, reason="no interval asked for")
    dof = len(y) - 2
    limit = rss_min * (1.0 + f_quantile / dof)
    excess = lambda c: profile(c, logs, y)[1] - limit  # noqa: E731 - ≤ 0 inside the interval
    ends = []
    for direction, edge in ((-1, start), (1, stop)):
        c = c_hat + direction * GRID_STEP
        while excess(c) <= 0:
            if (c - edge) * direction > 0:
                side = "below" if direction < 0 else "above"
                return TransitionFit(**fitted, reason=f"the 95 % interval of B_crit is not bounded {side}: the "
                                                      "batch sizes tested cannot place that end")
            c += direction * GRID_STEP
        ends.append(_crossing(excess, c, c - direction * GRID_STEP))
    low, high = min(ends[0], c_hat), max(ends[1], c_hat)
    return TransitionFit(**{**fitted, "ci95": (math.exp(low), math.exp(high)), "rss_limit": limit})


def _golden(f, low: float, high: float, iterations: int = 80) -> float:
    """Minimum of a unimodal function on [low, high]."""
    ratio = (math.sqrt(5) - 1) / 2
    x1, x2 = high - ratio * (high - low), low + ratio * (high - low)
    f1, f2 = f(x1), f(x2)
    for _ in range(iterations):
        if f1 <= f2:
            high, x2, f2 = x2, x1, f1
            x1 = high - ratio * (high - low)
            f1 = f(x1)
        else:
            low, x1, f1 = x1, x2, f2
            x2 = low + ratio * (high - low)
            f2 = f(x2)
    return (low + high) / 2


def _crossing(f, outside: float, inside: float, iterations: int = 60) -> float:
    """Where f changes sign between a point with f > 0 (outside) and one with f ≤ 0 (inside)."""
    for _ in range(iterations):
        middle = (outside + inside) / 2
        if f(middle) > 0:
            outside = middle
        else:
            inside = middle
    return inside
