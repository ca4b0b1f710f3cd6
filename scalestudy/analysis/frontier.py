"""ε*(B, m): the optimal learning rate of each (batch size, momentum) cell — (B, m, N) when the
trials span several dataset sizes N.

Everything below is written for the default objective, test accuracy (maximised); the study's
objective (``analysis.objective``: the trial table's ``objective`` column) takes its place. A
minimised objective (a language model's test loss) is oriented as −value, its failure value is
the worst (largest) finite value in the table, and its curve is interpolated as it is rather than
in ln (:mod:`scalestudy.analysis.peak`); ``mean_acc``, ``best_acc`` and the failure value stay in
the metric's own units.

For one cell, the seed-mean final test accuracy is a curve over x = ln ε. A diverged
trial counts as a failure at its ε: its accuracy is replaced by the failure accuracy
(the lowest finite test accuracy in the table), so an ε where one seed of two diverged
scores about halfway. The optimum is the vertex of a quadratic through the best point
and its neighbours (parabolic interpolation in ln ε, :mod:`scalestudy.analysis.peak`),
not the grid argmax.

The 95 % interval is a Student-t interval over per-seed optima: each seed's own curve is
interpolated through the same three ε, and the interval is ln ε̂ ± t(0.975, n−1)·s/√n, with
ε̂ the seed-mean curve's optimum and s the sd of the n per-seed ln ε*. The percentile
bootstrap over seeds it replaces has only 3 distinct resamples with 2 seeds (10 with 3)
and covered the true ε* in 51 % of simulated cells with 2 seeds, 68 % with 3, 82 % with 5;
this interval holds 95 % at 2, 3 and 5 seeds (``scalestudy bench coverage``). Where a
seed's optimum falls outside its three ε (noise larger than the peak's curvature) the
per-seed optima are not Gaussian and the cell reports their min–max as ``seed_range``,
which is not a 95 % interval. One seed gives neither.

A cell whose best ε is the largest that did not diverge, with every trial at the next
searched ε diverged, is ``bounded_by_divergence``: ε* lies below that diverged ε (the
optimum is a stable ε), so the cell is kept in the law, with ε* from the parabola through
its three best ε extrapolated to its vertex and capped at the diverged ε, as is its
interval. Cells whose best ε is the smallest, or the largest with no larger ε searched,
are flagged ``edge_low`` / ``edge_high``: the optimum may lie outside the search, so they
are left out of the law with a warning that names them.

:func:`fit_frontier` also gives each usable cell ``log_lr_var``, the variance of its ln ε*
by the delta method with the seed-to-seed accuracy variance pooled over the study
(:func:`log_lr_variance`): the law fit weights cells by it (a cell bounded by divergence
extrapolates its optimum, and is several times noisier).

Its 300-odd lines are one estimator (the cell's peak, its interval, the divergence bound, the
objective's direction and the N axis): split, its pieces would pass half-built state around.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from scalestudy.analysis._stats import t_quantile
from scalestudy.analysis.peak import (
    BOUNDED,
    OK,
    USABLE,
    Peak,
    at_stability_edge,
    delta_variance,
    find_peak,
    interpolate,
    vertex_range,
)
from scalestudy.analysis.table import ACCURACY, Objective, objective_of

__all__ = ["BOUNDED", "OK", "USABLE", "CellOptimum", "Frontier", "cell_keys", "failure_accuracy", "fit_cell",
           "fit_frontier", "trials_at_best_lr"]


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
    fit_lrs: tuple[float, ...] = ()  # the three ε the parabola goes through
    seed_lr_opt: tuple[float, ...] = ()  # each seed's own ε*, through the same three ε
    log_lr_var: float | None = None  # variance of ln ε*, for weighting the law (set by fit_frontier)
    direction: str = "max"  # the objective's: mean_acc, best_acc are its values, higher or lower is better
    dataset_size: int | None = None  # N of the cell's trials when the study varies N (None: a single N)

    @property
    def usable(self) -> bool:
        return self.status in USABLE

    @property
    def key(self) -> tuple[int, float, int | None]:
        """(B, m, N): the cell's identity (N None in a study of one dataset size)."""
        return self.batch_size, self.momentum, self.dataset_size

    @property
    def diverged_lrs(self) -> tuple[float, ...]:
        """The ε where every trial diverged."""
        return tuple(lr for lr, n, d in zip(self.lrs, self.n_runs, self.n_diverged) if d == n)

    @property
    def label(self) -> str:
        return f"B={self.batch_size} m={self.momentum:g}" + (f" N={self.dataset_size}" if self.dataset_size else "")


@dataclass(frozen=True)
class Frontier:
    cells: tuple[CellOptimum, ...]
    failure_acc: float
    warnings: tuple[str, ...]

    def usable(self) -> list[CellOptimum]:
        return [cell for cell in self.cells if cell.usable]


def failure_accuracy(frame: pd.DataFrame) -> float:
    """The objective given to diverged trials: its worst finite value in the table (the lowest test
    accuracy; the largest loss of a minimised objective); 0 if none."""
    objective = objective_of(frame)
    values = frame["objective"] if "objective" in frame.columns else frame["test_acc"]
    finite = values[np.isfinite(values)]
    if not len(finite):
        return 0.0
    return float(finite.min() if objective.maximise else finite.max())


def fit_frontier(frame: pd.DataFrame, *, n_boot: int | None = None, seed: int | None = None) -> Frontier:
    """ε* for every (batch_size, momentum) cell of a constant-schedule trial frame.

    ``n_boot`` and ``seed`` are ignored: they belonged to the bootstrap interval this
    module no longer uses, and are accepted so that callers written for it still run."""
    floor = failure_accuracy(frame)
    objective = objective_of(frame)
    cells, warnings = [], []
    keys = cell_keys(frame)
    for values, group in frame.groupby(keys, sort=True):
        batch_size, momentum, *n = values
        cell = fit_cell(group, int(batch_size), float(momentum), floor, objective=objective,
                        dataset_size=int(n[0]) if n else None)
        cells.append(cell)
        if cell.status.startswith("edge"):
            side = "smallest" if cell.status == "edge_low" else "largest"
            warnings.append(f"cell {cell.label}: best lr {cell.best_lr:.4g} is the {side} "
                            "non-diverged lr searched; left out of the law (extend the lr grid)")
        elif cell.status == BOUNDED:
            warnings.append(f"cell {cell.label}: every trial at lr {cell.lr_bound:.4g} diverged, the next above "
                            f"its best lr {cell.best_lr:.4g}: ε* is bounded by divergence, estimated "
                            f"{cell.lr_opt:.4g}, and the cell is kept in the law")
        elif not cell.usable:
            warnings.append(f"cell {cell.label}: {cell.reason}; left out of the law")
    return Frontier(tuple(with_variances(cells, floor)), floor, tuple(warnings))


def cell_keys(frame: pd.DataFrame) -> list[str]:
    """The columns that identify a cell: B and m, and N when the study varies the dataset size."""
    varies = "dataset_size" in frame.columns and frame["dataset_size"].nunique() > 1
    return ["batch_size", "momentum", *(["dataset_size"] if varies else [])]


def trials_at_best_lr(frame: pd.DataFrame, cells: tuple[CellOptimum, ...] | list[CellOptimum]) -> pd.DataFrame:
    """The non-diverged trials at each cell's best searched ε (the point ε* is interpolated
    around): where per-trial diagnostics are compared across batch sizes."""
    with_n = any(c.dataset_size is not None for c in cells)
    keys = ["batch_size", "momentum", *(["dataset_size"] if with_n else []), "lr"]
    best = pd.DataFrame([(c.batch_size, c.momentum, *([c.dataset_size] if with_n else []), c.best_lr)
                         for c in cells if c.best_lr is not None], columns=keys)
    alive = frame[~frame["diverged"]]
    return alive.merge(best, on=keys, how="inner")


def fit_cell(group: pd.DataFrame, batch_size: int, momentum: float, floor: float, *,
             n_boot: int | None = None, rng: np.random.Generator | None = None,
             objective: Objective = ACCURACY, dataset_size: int | None = None) -> CellOptimum:
    """ε* of one cell (``n_boot`` and ``rng`` are ignored, see :func:`fit_frontier`); ``floor`` is the
    failure value in the objective's units."""
    values = group["objective"] if "objective" in group.columns else group["test_acc"]
    acc = np.where(group["diverged"], floor, values.to_numpy(float))
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
              "n_trials": len(group), "n_seeds": len(V), "direction": objective.direction,
              "dataset_size": dataset_size}
    # Oriented: higher is better (the accuracy itself; −loss), interpolated in ln for a maximised one.
    sign, log = objective.sign, objective.maximise
    V, mean, floor = sign * V, sign * mean, sign * floor
    peak = find_peak(mean, (np.isfinite(V) & (np.nan_to_num(D, nan=1.0) < 1.0)).any(axis=0))
    best = peak.best
    found = {"best_lr": None if best is None else float(lrs[best]),
             "best_acc": None if best is None else float(sign * mean[best])}
    if peak.status not in USABLE:
        reasons = {"all_diverged": "every trial diverged", "too_few_points": "fewer than 3 non-diverged lr values"}
        return CellOptimum(status=peak.status, lr_opt=None, ci95=None, reason=reasons.get(peak.status),
                           **found, **common)
    x = np.log(lrs)
    found.update(fit_lrs=tuple(float(lrs[c]) for c in peak.columns),
                 lr_bound=None if peak.bound is None else float(lrs[peak.bound]))
    if at_stability_edge(x, mean, peak, floor, log):
        # The optimum is the edge of stability, somewhere between the best ε and the
        # diverged one: take the middle (in ln ε).
        reason = (f"accuracy still rises at the largest stable lr: ε* is at the edge of stability, between "
                  f"{lrs[best]:.4g} and {lrs[peak.bound]:.4g}; no interval")
        return CellOptimum(status=BOUNDED, lr_opt=float(np.sqrt(lrs[best] * lrs[peak.bound])), ci95=None,
                           reason=reason, **found, **common)
    x_opt, _ = interpolate(x, mean, peak, floor, log)
    per_seed = [interpolate(x, row, peak, floor, log) for row in V if np.isfinite(row[list(peak.columns)]).all()]
    upper = x[peak.bound] if peak.bound is not None else np.inf
    ci, seed_range, reason = _seed_interval(x_opt, per_seed, len(V), upper)
    return CellOptimum(status=peak.status, lr_opt=float(np.exp(x_opt)), ci95=ci, reason=reason,
                       seed_range=seed_range, seed_lr_opt=tuple(float(np.exp(v)) for v, _ in per_seed),
                       **found, **common)


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


def with_variances(cells: list[CellOptimum], floor: float) -> list[CellOptimum]:
    """The cells with ``log_lr_var`` set on the usable ones (unchanged without two seeds anywhere):
    the pooled seed variance of accuracy carried through each cell's interpolation."""
    seed_variance = pooled_seed_variance(cells)
    if seed_variance is None:
        return cells
    return [replace(c, log_lr_var=log_lr_variance(c, floor, seed_variance)) if c.usable else c for c in cells]


def pooled_seed_variance(cells: list[CellOptimum]) -> float | None:
    """Seed-to-seed variance of final accuracy, pooled over the three ε of every usable cell
    where no trial diverged (None without two seeds anywhere)."""
    squares = dof = 0.0
    for cell in cells:
        if not cell.usable:
            continue
        for column in _peak_of(cell).columns:
            n = cell.n_runs[column]
            if n >= 2 and cell.n_diverged[column] == 0:
                squares += n * cell.sd_acc[column] ** 2  # sd_acc is the population sd
                dof += n - 1
    return squares / dof if dof > 0 and squares > 0 else None


def log_lr_variance(cell: CellOptimum, floor: float, seed_variance: float) -> float:
    """Variance of a usable cell's ln ε* by the delta method: the pooled seed variance (or the
    column's own where some trials diverged, if larger) over the trials at each of the three ε.

    The delta method evaluates the slopes at the cell's own curve, so a cell whose estimate
    lands further out (an extrapolation) gets a larger variance: in simulation this shifts α
    by about a third of its standard error, and the law's intervals still cover 94–95 %; a
    variance pooled over cells instead, free of that shift, left α covered 92 % (the cells'
    variances differ too much). At least the variance of a uniform error over the range the
    vertex was kept in when it hit an end, or over [best ε, diverged ε] at the edge of stability."""
    sign, log = (1.0, True) if cell.direction == "max" else (-1.0, False)
    x, y, floor = np.log(cell.lrs), sign * np.array(cell.mean_acc), sign * floor
    n = np.array(cell.n_runs, float)
    own = np.array(cell.sd_acc) ** 2 * n / np.maximum(n - 1, 1)
    column_var = np.where(np.array(cell.n_diverged) > 0, np.maximum(own, seed_variance), seed_variance) / n
    peak = _peak_of(cell)
    if at_stability_edge(x, y, peak, floor, log):
        return float((x[peak.bound] - x[peak.best]) ** 2 / 12)
    low, high = vertex_range(x, peak)
    variance = delta_variance(x, y, peak, floor, column_var, log)
    return variance if interpolate(x, y, peak, floor, log)[1] else max(variance, (high - low) ** 2 / 12)


def _peak_of(cell: CellOptimum) -> Peak:
    """The peak :func:`fit_cell` found, from the cell's fields."""
    columns = tuple(cell.lrs.index(lr) for lr in cell.fit_lrs)
    bound = None if cell.lr_bound is None else cell.lrs.index(cell.lr_bound)
    return Peak(cell.status, cell.lrs.index(cell.best_lr), columns, bound)


def _seed_by_lr(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Mean of ``values`` per (seed, ε) cell; NaN where that seed did not run that ε."""
    total, count = np.zeros(shape), np.zeros(shape)
    np.add.at(total, (rows, cols), values)
    np.add.at(count, (rows, cols), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)
