"""Critical batch size predicted by the gradient noise scale, next to the fitted breakdown.

McCandlish et al. (2018): the simple noise scale B_simple = tr(Σ)/|G|² (in examples)
predicts the critical batch size, the B above which doubling the batch no longer halves
the updates needed; the learning-rate law ε* ∝ B should break down around the same B.

What is taken: the final (last-epoch, smoothed) B_simple of the non-diverged, finished
trials at each cell's best searched ε, and their median over all those trials. Why:
B_simple grows as the loss falls, so it is read at one comparable point (the end of
training) and at the learning rate the law is about (ε*, not the diverging or barely
training ends of the grid); the median because the estimate is a ratio of two noisy
quantities with a heavy tail. The spread is the interquartile range over trials, and the
95 % interval of the median is distribution-free: the order statistics x₍ₖ₎ and x₍ₙ₊₁₋ₖ₎ with
k the largest rank such that P(Binomial(n, ½) < k) ≤ 0.025, which hold the median of the
trials' distribution with probability ≥ 95 % for any continuous distribution of independent
trials (Conover, "Practical Nonparametric Statistics", §3.2); at least 6 trials are needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalestudy.analysis.fits.cell_optimum.frontier import CellOptimum, trials_at_best_lr
from scalestudy.analysis.fits.law import Breakdown

TAKEN = ("median over the finished trials at each cell's best searched lr of the final smoothed "
         "B_simple = tr(Σ)/|G|²")


@dataclass(frozen=True)
class CriticalBatch:
    """B_crit ≈ B_simple [examples], or None with a reason; and the breakdown it is compared with."""

    value: float | None
    iqr: tuple[float, float] | None  # interquartile range over the trials used [examples]
    n_trials: int
    cells: tuple[tuple[int, float, float], ...]  # (B, m, median B_simple of the cell's trials)
    breakdown: float | None  # fitted breakdown batch size [examples]
    breakdown_ci95: tuple[float, float] | None
    reason: str | None = None  # why value is None
    taken: str = TAKEN
    ci95: tuple[float, float] | None = None  # distribution-free 95 % interval of the median [examples]
    ci95_reason: str | None = None  # why ci95 is None

    @property
    def ratio_to_breakdown(self) -> float | None:
        """B_simple / breakdown batch size (1: they agree)."""
        if self.value is None or not self.breakdown:
            return None
        return self.value / self.breakdown

    @property
    def within_breakdown_ci(self) -> bool | None:
        if self.value is None or self.breakdown_ci95 is None:
            return None
        return self.breakdown_ci95[0] <= self.value <= self.breakdown_ci95[1]


def critical_batch_from_noise(frame: pd.DataFrame, cells: list[CellOptimum], breakdown: Breakdown) -> CriticalBatch:
    """B_crit from the ``gradient_noise_scale`` column of a frame of finished trials (see the
    module docstring for what is taken); None with a reason when the column is missing."""
    compare = {"breakdown": breakdown.batch_size, "breakdown_ci95": breakdown.ci95}
    if "gradient_noise_scale" not in frame.columns:
        return CriticalBatch(None, None, 0, (), reason="no gradient_noise_scale in the trial table "
                             "(enable diagnostics.gradient_noise_scale in the spec)", **compare)
    at_best = trials_at_best_lr(frame, cells)
    values = at_best["gradient_noise_scale"].to_numpy(float)
    ok = np.isfinite(values) & (values > 0)  # a non-positive estimate means |G|² was lost in the noise
    at_best = at_best[ok]
    if at_best.empty:
        reason = ("no cell has a best lr" if not any(c.best_lr is not None for c in cells)
                  else "no trial at a cell's best lr has a positive, finite gradient_noise_scale")
        return CriticalBatch(None, None, 0, (), reason=reason, **compare)
    values = at_best["gradient_noise_scale"].to_numpy(float)
    per_cell = at_best.groupby(["batch_size", "momentum"])["gradient_noise_scale"].median()
    rows = tuple((int(b), float(m), float(v)) for (b, m), v in per_cell.items())
    q1, q3 = np.percentile(values, [25, 75])
    ci, ci_reason = median_interval(values)
    return CriticalBatch(float(np.median(values)), (float(q1), float(q3)), len(values), rows, ci95=ci,
                         ci95_reason=ci_reason, **compare)


def median_interval(values: np.ndarray) -> tuple[tuple[float, float] | None, str | None]:
    """The distribution-free 95 % interval of the median (see the module docstring), or None with a reason."""
    n = len(values)
    rank = 0  # the largest k with P(Binomial(n, ½) ≤ k − 1) ≤ 0.025
    below = 0.0
    for k in range(1, n // 2 + 1):
        below += math.comb(n, k - 1) / 2.0 ** n
        if below > 0.025:
            break
        rank = k
    if rank == 0:
        return None, f"{n} trials: a 95 % interval of the median needs at least 6"
    ordered = np.sort(values)
    return (float(ordered[rank - 1]), float(ordered[n - rank])), None
