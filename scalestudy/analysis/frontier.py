"""ε*(B, m): the optimal learning rate of each (batch size, momentum) cell.

For one cell, the seed-mean final test accuracy is a curve over x = ln ε. A diverged
trial counts as a failure at its ε: its accuracy is replaced by the failure accuracy
(the lowest finite test accuracy in the table), so an ε where one seed of two diverged
scores about halfway. The optimum is the vertex of a quadratic through the best point
and its neighbours (parabolic interpolation in ln ε), not the grid argmax.

The 95 % interval is a Student-t interval over per-seed optima: each seed's own curve
is interpolated through the same three ε, and ln ε* ± t(0.975, n−1)·sd/√n, with sd the
spread of the n per-seed ln ε*. A percentile bootstrap over 2–5 seeds has 4–126 atoms
and covered the true ε* in 51 % (2 seeds) to 82 % (5 seeds) of simulated cells; this
interval holds its coverage at 2, 3 and 5 seeds (``scalestudy bench coverage``). Where
a seed's optimum falls outside its three ε (noise larger than the peak's curvature) the
per-seed optima are not Gaussian and the cell reports the min–max ``seed_range`` instead,
which is not a 95 % interval. One seed gives neither.

A cell whose best ε is the largest that did not diverge, with every trial at the next
searched ε diverged, is ``bounded_by_divergence``: ε* is below that diverged ε (the
optimum is a stable ε), so the cell is kept in the law with ε* from the parabola through
the three best ε extrapolated to its vertex in ln(accuracy − failure accuracy) (exact for
a Gaussian peak above chance) and capped at the diverged ε, as is its interval. Cells
whose best ε is the smallest, or the largest with no larger ε searched, are flagged
``edge_low`` / ``edge_high``: the optimum may lie outside the search, so they are left
out of the law with a warning that names them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalestudy.analysis._stats import t_quantile

OK = "ok"
BOUNDED = "bounded_by_divergence"
USABLE = (OK, BOUNDED)  # statuses whose ε* enters the law


@dataclass(frozen=True)
class CellOptimum:
    """Optimal learning rate of one cell. ``lr_opt`` is in the units of ``lr`` (per update)."""

    batch_size: int
    momentum: float
    status: str  # ok | bounded_by_divergence | edge_low | edge_high | all_diverged | too_few_points
    lr_opt: float | None
    ci95: tuple[float, float] | None  # Student-t over per-seed optima (None: see seed_range, reason)
    best_lr: float | None  # the best searched ε (grid argmax, failures included)
    best_acc: float | None  # seed-mean test accuracy at best_lr
    lrs: tuple[float, ...]  # searched ε, ascending
    mean_acc: tuple[float, ...]  # seed-mean test accuracy per ε, failures included
    sd_acc: tuple[float, ...]  # sd over seeds per ε (0 with one seed)
    n_runs: tuple[int, ...]  # trials per ε
    n_diverged: tuple[int, ...]  # diverged trials per ε
    n_trials: int
    n_seeds: int
    reason: str | None = None
    seed_range: tuple[float, float] | None = None  # min–max of per-seed ε* where no 95 % interval holds
    lr_bound: float | None = None  # bounded_by_divergence: the diverged ε that bounds ε* above

    @property
    def usable(self) -> bool:
        return self.status in USABLE

    @property
    def diverged_lrs(self) -> tuple[float, ...]:
        """The ε where every trial diverged."""
        return tuple(lr for lr, n, d in zip(self.lrs, self.n_runs, self.n_diverged) if d == n)

    @property
    def label(self) -> str:
        return f"B={self.batch_size} m={self.momentum:g}"


@dataclass(frozen=True)
class Frontier:
    cells: tuple[CellOptimum, ...]
    failure_acc: float
    warnings: tuple[str, ...]

    def usable(self) -> list[CellOptimum]:
        return [cell for cell in self.cells if cell.usable]


def failure_accuracy(frame: pd.DataFrame) -> float:
    """Accuracy given to diverged trials: the lowest finite test accuracy in the table (0 if none)."""
    finite = frame["test_acc"][np.isfinite(frame["test_acc"])]
    return float(finite.min()) if len(finite) else 0.0


def fit_frontier(frame: pd.DataFrame, *, n_boot: int | None = None, seed: int | None = None) -> Frontier:
    """ε* for every (batch_size, momentum) cell of a constant-schedule trial frame.

    ``n_boot`` and ``seed`` are ignored: they belonged to the bootstrap interval this
    module no longer uses, and are accepted so that callers written for it still run."""
    floor = failure_accuracy(frame)
    cells, warnings = [], []
    for (batch_size, momentum), group in frame.groupby(["batch_size", "momentum"], sort=True):
        cell = fit_cell(group, int(batch_size), float(momentum), floor)
        cells.append(cell)
        if cell.status.startswith("edge"):
            side = "smallest" if cell.status == "edge_low" else "largest"
            warnings.append(f"cell {cell.label}: best lr {cell.best_lr:.4g} is the {side} "
                            "non-diverged lr searched; left out of the law (extend the lr grid)")
        elif cell.status == BOUNDED:
            warnings.append(f"cell {cell.label}: best lr {cell.best_lr:.4g} is the largest that did not diverge "
                            f"and every trial at {cell.lr_bound:.4g} diverged: ε* is bounded by divergence, "
                            f"estimated {cell.lr_opt:.4g} by extrapolation and kept in the law")
        elif not cell.usable:
            warnings.append(f"cell {cell.label}: {cell.reason}; left out of the law")
    return Frontier(tuple(cells), floor, tuple(warnings))


def trials_at_best_lr(frame: pd.DataFrame, cells: tuple[CellOptimum, ...] | list[CellOptimum]) -> pd.DataFrame:
    """The non-diverged trials at each cell's best searched ε (the point ε* is interpolated
    around): where per-trial diagnostics are compared across batch sizes."""
    best = pd.DataFrame([(c.batch_size, c.momentum, c.best_lr) for c in cells if c.best_lr is not None],
                        columns=["batch_size", "momentum", "lr"])
    alive = frame[~frame["diverged"]]
    return alive.merge(best, on=["batch_size", "momentum", "lr"], how="inner")


@dataclass(frozen=True)
class _Peak:
    """Where a curve peaks: its status, the best column, the three columns the parabola goes
    through and, for a cell bounded by divergence, the first fully diverged column."""

    status: str
    best: int | None = None
    columns: tuple[int, int, int] | None = None
    bound: int | None = None


def fit_cell(group: pd.DataFrame, batch_size: int, momentum: float, floor: float, *,
             n_boot: int | None = None, rng: np.random.Generator | None = None) -> CellOptimum:
    """ε* of one cell (``n_boot`` and ``rng`` are ignored, see :func:`fit_frontier`)."""
    acc = np.where(group["diverged"], floor, group["test_acc"].to_numpy(float))
    acc = np.where(np.isfinite(acc), acc, floor)
    seeds, seed_index = np.unique(group["seed"].to_numpy(), return_inverse=True)
    lrs, lr_index = np.unique(group["lr"].to_numpy(float), return_inverse=True)
    div = group["diverged"].to_numpy(bool)
    V = _seed_by_lr(seed_index, lr_index, acc, (len(seeds), len(lrs)))  # mean accuracy
    D = _seed_by_lr(seed_index, lr_index, div.astype(float), (len(seeds), len(lrs)))  # diverged share
    n_div = np.bincount(lr_index, weights=div, minlength=len(lrs)).astype(int)
    n_runs = np.bincount(lr_index, minlength=len(lrs))
    with np.errstate(invalid="ignore"):
        mean, sd = np.nanmean(V, axis=0), np.nanstd(V, axis=0)
    common = {"batch_size": batch_size, "momentum": momentum, "lrs": tuple(float(v) for v in lrs),
              "mean_acc": tuple(float(v) for v in mean), "sd_acc": tuple(float(v) for v in sd),
              "n_runs": tuple(int(n) for n in n_runs), "n_diverged": tuple(int(n) for n in n_div),
              "n_trials": len(group), "n_seeds": len(V)}
    alive = (np.isfinite(V) & (np.nan_to_num(D, nan=1.0) < 1.0)).any(axis=0)
    x = np.log(lrs)
    peak = _peak(mean, alive)
    if peak.status not in USABLE:
        reasons = {"all_diverged": "every trial diverged", "too_few_points": "fewer than 3 non-diverged lr values"}
        best = peak.best
        return CellOptimum(status=peak.status, lr_opt=None, ci95=None, reason=reasons.get(peak.status),
                           best_lr=None if best is None else float(lrs[best]),
                           best_acc=None if best is None else float(mean[best]), **common)
    x_opt, interior = _interpolate(x, mean, peak, floor)
    if peak.status == BOUNDED and not interior and x_opt > x[peak.columns[1]]:
        # Accuracy still rises at the largest stable ε (the vertex lies at or past the diverged
        # ε, or the curve does not bend): the optimum is the edge of stability, somewhere
        # between the best ε and the diverged one; take the middle (in ln ε).
        return CellOptimum(status=BOUNDED, lr_opt=float(np.sqrt(lrs[peak.best] * lrs[peak.bound])), ci95=None,
                           best_lr=float(lrs[peak.best]), best_acc=float(mean[peak.best]),
                           reason=(f"accuracy still rises at the largest stable lr: ε* is at the edge of stability, "
                                   f"between {lrs[peak.best]:.4g} and {lrs[peak.bound]:.4g}; no interval"),
                           lr_bound=float(lrs[peak.bound]), **common)
    per_seed = [_interpolate(x, row, peak, floor) for row in V if np.isfinite(row[list(peak.columns)]).all()]
    upper = x[peak.bound] if peak.bound is not None else np.inf
    ci, seed_range, reason = _seed_interval(x_opt, per_seed, len(V), upper)
    return CellOptimum(status=peak.status, lr_opt=float(np.exp(x_opt)), ci95=ci, best_lr=float(lrs[peak.best]),
                       best_acc=float(mean[peak.best]), reason=reason, seed_range=seed_range,
                       lr_bound=None if peak.bound is None else float(lrs[peak.bound]), **common)


def _seed_interval(x_opt: float, per_seed: list[tuple[float, bool]], n_seeds: int, upper: float):
    """(ci95, seed_range, reason) in ε from the per-seed optima (ln ε, interior) of a cell.

    Student-t over the per-seed ln ε*, centred on the seed-mean curve's vertex; capped at
    ``upper`` (ln of the diverged ε bounding the optimum, or +inf)."""
    if n_seeds == 1:
        return None, None, "one seed: no interval"
    if len(per_seed) < 2:
        return None, None, "fewer than 2 seeds ran the three lrs around the optimum: no interval"
    values = np.array([v for v, _ in per_seed])
    if not all(interior for _, interior in per_seed):
        low, high = min(values.min(), x_opt), max(values.max(), x_opt)
        return None, (float(np.exp(low)), float(np.exp(min(high, upper)))), \
            ("a seed's optimum falls outside the three lrs around it (noise larger than the peak's curvature): "
             "seed range, not a 95 % interval")
    half = t_quantile(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return (float(np.exp(x_opt - half)), float(np.exp(min(x_opt + half, upper)))), None, None


def _seed_by_lr(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Mean of ``values`` per (seed, ε) cell; NaN where that seed did not run that ε."""
    total, count = np.zeros(shape), np.zeros(shape)
    np.add.at(total, (rows, cols), values)
    np.add.at(count, (rows, cols), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def _peak(y: np.ndarray, alive: np.ndarray) -> _Peak:
    """The peak of one accuracy curve (columns sorted by ε).

    ``alive`` marks the ε columns with at least one non-diverged trial; only those can be
    the optimum or take part in the quadratic. Every column above the largest alive one
    diverged in every trial."""
    candidates = np.flatnonzero(alive & np.isfinite(y))
    if len(candidates) == 0:
        return _Peak("all_diverged")
    best_pos = int(np.argmax(y[candidates]))
    best = int(candidates[best_pos])
    if len(candidates) < 3:
        return _Peak("too_few_points", best)
    if best_pos == 0:
        return _Peak("edge_low", best)
    if best_pos == len(candidates) - 1:
        if best + 1 < len(y):  # the next searched ε diverged in every trial: ε* lies below it
            return _Peak(BOUNDED, best, tuple(int(c) for c in candidates[best_pos - 2:best_pos + 1]), best + 1)
        return _Peak("edge_high", best)
    return _Peak(OK, best, (int(candidates[best_pos - 1]), best, int(candidates[best_pos + 1])))


def _interpolate(x: np.ndarray, y: np.ndarray, peak: _Peak, floor: float) -> tuple[float, bool]:
    """(ln ε*, whether the vertex fell strictly inside its range) for one curve at ``peak``.

    Interior peak: Gaussian interpolation, the parabola through ln(accuracy) at the best
    point and its neighbours; exact for a Gaussian bump and several times less biased than
    a parabola through accuracy itself for the peak shapes seen in practice. Bounded by
    divergence: the parabola through ln(accuracy − failure accuracy) at the three best
    points, whose vertex lies beyond them, kept between the middle point and the diverged ε.
    """
    x0, x1, x2 = x[list(peak.columns)]
    values = y[list(peak.columns)]
    if peak.status == OK:
        return _vertex(x0, x1, x2, *np.log(np.clip(values, 1e-9, None)), low=x0, high=x2)
    scale = max(float(values.max()) - floor, 1e-9)
    above = np.log(np.clip(values - floor, 1e-6 * scale, None))
    return _vertex(x0, x1, x2, *above, low=x1, high=float(x[peak.bound]))


def _vertex(x0: float, x1: float, x2: float, y0: float, y1: float, y2: float, *, low: float,
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
