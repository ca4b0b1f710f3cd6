"""What a trial stopped early could still have reached: an upper bound on its final objective, from its
curve so far and the curves of its cell's finished trials. The one rule the search's early stopping
stops by (:class:`scalestudy.search.cell_bound.CellBoundStopping`) and the analysis censors by
(:mod:`scalestudy.analysis.inputs.stop_bounds`).

A conservative learning-curve extrapolation. Domhan, Springenberg & Hutter (2015, "Speeding up
automatic hyperparameter optimization of deep neural networks by extrapolation of learning curves",
IJCAI) stop a run whose extrapolated curve is unlikely to beat the best seen so far; they fit a
parametric curve model. Here no model is fitted: a trial at epoch e is taken to gain at most what
the finished trials of its cell gained after their own epoch e, with a safety factor,

    U = s(e) + SAFETY · max(0, max over finished f of [s_f(final) − s_f(e)]),

where s is the objective's score (higher is better: :meth:`scalestudy.spec.Objective.score`). A cell's
trials differ only in ε and seed (same section, schedule, B, m and epochs:
:func:`scalestudy.search.early_stopping.cell_key`), so its finished curves are the nearest reference
for how much a curve still rises after epoch e. Successive halving (ASHA: Li et al. 2020, "A System
for Massively Parallel Hyperparameter Tuning", MLSys), the other kind of early stopping, stops by rank
at a rung instead and leaves no bound.

Curves map an epoch (1-based, epochs completed) to the score after it. With fewer than
:data:`MIN_FINISHED` finished curves that reach past epoch e there is nothing to extrapolate from:
the bound is +inf (nothing is stopped, nothing is censored).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

SAFETY = 1.5  # the finished trials' largest late gain, times this: a curve may still rise more than any of them
MIN_FINISHED = 2  # finished curves past epoch e needed before a bound exists

Curve = Mapping[int, float]  # epoch → score (higher is better)


def final_score(curve: Curve) -> float:
    """The score at the curve's last epoch (NaN for an empty curve)."""
    return curve[max(curve)] if curve else math.nan


def late_gains(finished_curves: Iterable[Curve], epoch: int) -> list[float]:
    """What each finished curve that went on past ``epoch`` gained from there to its end."""
    return [final_score(curve) - curve[epoch] for curve in finished_curves
            if epoch in curve and max(curve) > epoch and math.isfinite(curve[epoch])
            and math.isfinite(final_score(curve))]


def final_upper_bound(curve: Curve, finished_curves: Iterable[Curve], epoch: int, safety: float = SAFETY) -> float:
    """U, the highest score the trial with ``curve`` can end at, judged at ``epoch`` from its cell's
    ``finished_curves``; +inf when there is nothing to extrapolate from, or its score there is not
    finite (a diverged epoch: the trial ends by itself)."""
    score = curve.get(epoch, math.nan)
    gains = late_gains(finished_curves, epoch)
    if not math.isfinite(score) or len(gains) < MIN_FINISHED:
        return math.inf
    return score + safety * max(0.0, max(gains))
