"""Sharpness of the final solution against batch size (Keskar et al. 2017).

Keskar et al. report that large-batch training ends in sharper minima. Each cell is
read at its best searched ε (the point ε* is interpolated around), so every batch size
is compared at its own tuned learning rate: the value is the seed mean of the finished
trials there, for the full-space ε-sharpness (``sharpness``) and each random-subspace
version (``sharpness_subspace`` or ``sharpness_p<dims>``), all in percent. The claim is
checked per momentum by the smallest against the largest batch size that have a value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalestudy.analysis.fits.cell_optimum.frontier import CellOptimum, trials_at_best_lr
from scalestudy.trial.record import SUBSPACE_SHARPNESS


@dataclass(frozen=True)
class SharpnessCell:
    batch_size: int
    momentum: float
    lr: float  # the cell's best searched ε [per update]
    values: tuple[tuple[str, float], ...]  # (column, seed mean [percent]); NaN where no trial has it
    n_trials: int

    def value(self, key: str) -> float:
        return dict(self.values).get(key, float("nan"))


@dataclass(frozen=True)
class SharpnessComparison:
    key: str
    momentum: float
    small_batch: int
    small: float  # sharpness at the smallest batch size [percent]
    large_batch: int
    large: float  # at the largest

    @property
    def ratio(self) -> float:
        return self.large / self.small if self.small > 0 else float("inf")


@dataclass(frozen=True)
class SharpnessFit:
    keys: tuple[str, ...]  # sharpness, sharpness_subspace, sharpness_p<dims> by dims (those present)
    cells: tuple[SharpnessCell, ...]
    comparisons: tuple[SharpnessComparison, ...]
    reason: str | None = None  # why there is nothing


def sharpness_keys(frame: pd.DataFrame) -> tuple[str, ...]:
    """sharpness, sharpness_subspace, then sharpness_p<dims> by dims: the columns present."""
    subspace = sorted((c for c in frame.columns if SUBSPACE_SHARPNESS.fullmatch(str(c))),
                      key=lambda c: -1 if c == "sharpness_subspace" else int(c[len("sharpness_p"):]))
    return tuple((["sharpness"] if "sharpness" in frame.columns else []) + subspace)


def fit_sharpness(frame: pd.DataFrame, cells: list[CellOptimum]) -> SharpnessFit:
    """Sharpness at each cell's best ε and the smallest-vs-largest batch size comparison."""
    keys = sharpness_keys(frame)
    if not keys:
        return SharpnessFit((), (), (), "no sharpness in the trial table (enable diagnostics.sharpness)")
    at_best = trials_at_best_lr(frame, cells)
    rows = []
    for (b, m, lr), part in at_best.groupby(["batch_size", "momentum", "lr"], sort=True):
        means = tuple((key, _mean(part[key])) for key in keys)
        if any(np.isfinite(v) for _, v in means):
            rows.append(SharpnessCell(int(b), float(m), float(lr), means, len(part)))
    if not rows:
        return SharpnessFit(keys, (), (), "no finished trial at a cell's best lr has a sharpness value")
    comparisons = []
    for key in keys:
        for m in sorted({c.momentum for c in rows}):
            have = [c for c in rows if c.momentum == m and np.isfinite(c.value(key))]
            if len({c.batch_size for c in have}) >= 2:
                small, large = have[0], have[-1]
                comparisons.append(SharpnessComparison(key, m, small.batch_size, small.value(key),
                                                       large.batch_size, large.value(key)))
    reason = None if comparisons else "fewer than 2 batch sizes with a sharpness value: no comparison"
    return SharpnessFit(keys, tuple(rows), tuple(comparisons), reason)


def _mean(values: pd.Series) -> float:
    values = values.to_numpy(float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else float("nan")
