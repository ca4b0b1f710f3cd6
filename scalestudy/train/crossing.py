"""Where a metric first crosses a target, from the evaluations around the crossing.

Evaluations (u, a): u updates, a the metric (test accuracy, or a minimised test loss). The crossing
lies between the last evaluation short of the target (u₀, a₀) and the first at or past it (u₁, a₁):

* u₁ − u₀ ≤ 1: u₁ exactly (the metric exists only at whole updates; also u₁ = 0, a target met by
  the untrained model);
* u₀ = 0, the untrained model: **left-censored**, known only to lie in (0, u₁]. Not interpolated:
  the rise from the initial model is steep and unknown (a crossing at 47 of a 250-update epoch
  would come out anywhere up to 250), and ln u below is undefined at 0;
* otherwise interpolated in x = ln u by a monotone piecewise-cubic Hermite interpolant (PCHIP:
  Fritsch & Carlson 1980, SIAM J. Numer. Anal. 17, slopes by Fritsch & Butland's weighted harmonic
  mean, ends by the three-point formula, as scipy's ``PchipInterpolator``) through the evaluation
  before (u₋₁, if above 0), (u₀, a₀), (u₁, a₁) and the evaluation after (u₂, if there is one yet).

Why ln u and a cubic: accuracy rises concavely in u (fast early, slowly later), so the chord
between two evaluations lies below the curve and a linear interpolant in u reaches the target late
(an audit fitted a noise-free B_crit of 256 from epoch ends as 318). Curves are far straighter in
ln u, and the neighbours' slopes carry the remaining curvature. Closed-form checks
(tests/train/test_target.py): on a(u) = c + d·ln u every secant in x has the same slope, so the
interpolant is that line and exact, where the chord in u between u₀ and 2u₀ with the target
half-way in a gives 1.5·u₀ against the true √2·u₀; on a(u) = u/(u + c), crossing t at u = c·t/(1 − t),
epoch ends give it to within 1 % where the chord in u is 4-10 % late.

The slopes are limited to α = s₀/δ, β = s₁/δ in [0, 3] (δ the secant of the bracket), inside
Fritsch and Carlson's region of monotonicity, so on [u₀, u₁] the interpolant rises (falls) from a₀
to a₁ and crosses the target exactly once: noisy evaluations cannot put the crossing outside them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

ITERATIONS = 60  # bisection of the bracket in ln u: 2⁻⁶⁰ of it


@dataclass(frozen=True)
class Evaluation:
    updates: int  # optimizer updates before the evaluation
    examples: int  # training examples seen before it
    value: float  # the target's metric (test accuracy [fraction], a test loss, ...)


@dataclass(frozen=True)
class Crossing:
    updates: float  # [updates]; when censored, the bound: reached at or before this count
    examples: float  # [examples], the same way
    censored: bool = False  # left-censored: reached before the first evaluation after the initial model


def crossing(before: Sequence[Evaluation], at: Evaluation, target: float, after: Evaluation | None = None) -> Crossing:
    """The crossing of ``target`` just before ``at`` (the first evaluation at or past it): ``before``
    holds the evaluations short of the target just before it (the latest last; one or two are used),
    ``after`` the evaluation after ``at``, when there is one. See the module docstring."""
    below = before[-1] if before else None
    if at.updates == 0 or (below is not None and at.updates - below.updates <= 1):
        return Crossing(float(at.updates), float(at.examples))
    if below is None or below.updates == 0:
        return Crossing(float(at.updates), float(at.examples), censored=True)
    earlier = before[-2] if len(before) >= 2 and before[-2].updates > 0 else None
    updates = _pchip_crossing(earlier, below, at, after, target)
    per_update = (at.examples - below.examples) / (at.updates - below.updates)  # B between the two
    return Crossing(updates, below.examples + per_update * (updates - below.updates))


def _pchip_crossing(earlier: Evaluation | None, below: Evaluation, at: Evaluation, after: Evaluation | None,
                    target: float) -> float:
    """u in (below.updates, at.updates] where the PCHIP interpolant in ln u meets ``target``."""
    x0, x1 = math.log(below.updates), math.log(at.updates)
    h, a0, a1 = x1 - x0, below.value, at.value
    secant = (a1 - a0) / h
    left = _secant(earlier, below) if earlier is not None else None  # (interval in x, secant)
    right = _secant(at, after) if after is not None and after.updates > at.updates else None
    if left is not None:
        s0 = _interior_slope(left[0], h, left[1], secant)
    else:
        s0 = _end_slope(h, right[0], secant, right[1]) if right is not None else secant
    if right is not None:
        s1 = _interior_slope(h, right[0], secant, right[1])
    else:
        s1 = _end_slope(h, left[0], secant, left[1]) if left is not None else secant
    # Fritsch & Carlson: α, β in [0, 3] keep the cubic monotone on the bracket.
    s0 = min(max(s0 / secant, 0.0), 3.0) * secant
    s1 = min(max(s1 / secant, 0.0), 3.0) * secant
    rising = a1 > a0

    def short(t: float) -> bool:  # whether the interpolant at x0 + t·h is still short of the target
        value = ((2 * t**3 - 3 * t**2 + 1) * a0 + (t**3 - 2 * t**2 + t) * h * s0
                 + (3 * t**2 - 2 * t**3) * a1 + (t**3 - t**2) * h * s1)
        return value < target if rising else value > target

    low, high = 0.0, 1.0
    for _ in range(ITERATIONS):
        middle = (low + high) / 2
        low, high = (middle, high) if short(middle) else (low, middle)
    return math.exp(x0 + high * h)


def _secant(a: Evaluation, b: Evaluation) -> tuple[float, float]:
    step = math.log(b.updates) - math.log(a.updates)
    return step, (b.value - a.value) / step


def _interior_slope(h0: float, h1: float, d0: float, d1: float) -> float:
    """Fritsch & Butland's weighted harmonic mean of the secants d0, d1 (0 at a local extremum)."""
    if d0 * d1 <= 0:
        return 0.0
    w0, w1 = 2 * h1 + h0, h1 + 2 * h0
    return (w0 + w1) / (w0 / d0 + w1 / d1)


def _end_slope(h0: float, h1: float, d0: float, d1: float) -> float:
    """The three-point slope at an end: the interval h0 with secant d0 at the end, h1, d1 next to it."""
    return ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
