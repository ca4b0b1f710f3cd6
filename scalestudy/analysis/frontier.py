"""ε*(B, m): the optimal learning rate of each (batch size, momentum) cell.

For one cell, the seed-averaged final test accuracy is a curve over x = ln ε. A
diverged trial counts as a failure at its ε: its accuracy is replaced by the
failure accuracy (the lowest finite test accuracy in the table), so an ε where one
seed of two diverged scores about halfway. The optimum is the vertex of a quadratic
through the best point and its neighbours (parabolic interpolation in ln ε), not the
grid argmax, and the 95 % interval comes from a bootstrap over seeds (resample the
seeds of the cell with replacement, refit).

Cells whose best ε is the smallest or largest searched ε that did not fully diverge
are flagged ``edge_low`` / ``edge_high``: the optimum may lie outside the search, so
they are left out of the law with a warning that names them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

OK = "ok"


@dataclass(frozen=True)
class CellOptimum:
    """Optimal learning rate of one cell. ``lr_opt`` is in the units of ``lr`` (per update)."""

    batch_size: int
    momentum: float
    status: str  # ok | edge_low | edge_high | all_diverged | too_few_points
    lr_opt: float | None
    ci95: tuple[float, float] | None
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

    @property
    def usable(self) -> bool:
        return self.status == OK

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


def fit_frontier(frame: pd.DataFrame, *, n_boot: int = 200, seed: int = 0) -> Frontier:
    """ε* for every (batch_size, momentum) cell of a constant-schedule trial frame."""
    floor = failure_accuracy(frame)
    rng = np.random.default_rng(seed)
    cells, warnings = [], []
    for (batch_size, momentum), group in frame.groupby(["batch_size", "momentum"], sort=True):
        cell = fit_cell(group, int(batch_size), float(momentum), floor, n_boot=n_boot, rng=rng)
        cells.append(cell)
        if cell.status.startswith("edge"):
            side = "smallest" if cell.status == "edge_low" else "largest"
            warnings.append(f"cell {cell.label}: best lr {cell.best_lr:.4g} is the {side} "
                            "non-diverged lr searched; left out of the law (extend the lr grid)")
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


def fit_cell(group: pd.DataFrame, batch_size: int, momentum: float, floor: float, *,
             n_boot: int = 200, rng: np.random.Generator | None = None) -> CellOptimum:
    rng = rng or np.random.default_rng(0)
    acc = np.where(group["diverged"], floor, group["test_acc"].to_numpy(float))
    acc = np.where(np.isfinite(acc), acc, floor)
    seeds, seed_index = np.unique(group["seed"].to_numpy(), return_inverse=True)
    lrs, lr_index = np.unique(group["lr"].to_numpy(float), return_inverse=True)
    div = group["diverged"].to_numpy(bool)
    V = _seed_by_lr(seed_index, lr_index, acc, (len(seeds), len(lrs)))  # mean accuracy
    D = _seed_by_lr(seed_index, lr_index, div.astype(float), (len(seeds), len(lrs)))  # diverged share
    n_div = np.bincount(lr_index, weights=div, minlength=len(lrs)).astype(int)
    n_runs = np.bincount(lr_index, minlength=len(lrs))
    counts = np.ones(len(V))
    mean, sd = _curve(V, counts)
    common = {"batch_size": batch_size, "momentum": momentum, "lrs": tuple(float(v) for v in lrs),
                  "mean_acc": tuple(float(v) for v in mean), "sd_acc": tuple(float(v) for v in sd),
                  "n_runs": tuple(int(n) for n in n_runs), "n_diverged": tuple(int(n) for n in n_div),
                  "n_trials": len(group), "n_seeds": len(V)}
    status, x_opt, best = _optimum(np.log(lrs), mean, _alive(V, D, counts))
    if status != OK:
        reasons = {"all_diverged": "every trial diverged",
                   "too_few_points": "fewer than 3 non-diverged lr values"}
        return CellOptimum(status=status, lr_opt=None, ci95=None, reason=reasons.get(status),
                           best_lr=None if best is None else float(lrs[best]),
                           best_acc=None if best is None else float(mean[best]), **common)
    boots = []
    if len(V) > 1:
        weights = rng.multinomial(len(V), np.full(len(V), 1 / len(V)), size=n_boot)
        present = np.isfinite(V)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = (weights @ np.where(present, V, 0.0)) / (weights @ present)
        survivors = weights @ (present & (np.nan_to_num(D, nan=1.0) < 1.0)) > 0
        x = np.log(lrs)
        for boot_mean, alive in zip(means, survivors):
            _, boot_x, _ = _optimum(x, boot_mean, alive)
            if boot_x is not None:
                boots.append(boot_x)
    ci = (float(np.exp(np.percentile(boots, 2.5))), float(np.exp(np.percentile(boots, 97.5)))) if boots else None
    return CellOptimum(status=OK, lr_opt=float(np.exp(x_opt)), ci95=ci, best_lr=float(lrs[best]),
                       best_acc=float(mean[best]),
                       reason=None if ci else "one seed: no bootstrap interval", **common)


def _seed_by_lr(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Mean of ``values`` per (seed, ε) cell; NaN where that seed did not run that ε."""
    total, count = np.zeros(shape), np.zeros(shape)
    np.add.at(total, (rows, cols), values)
    np.add.at(count, (rows, cols), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def _curve(V: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted seed mean and sd per ε column; NaN where no selected seed ran that ε."""
    present = np.isfinite(V)
    W = weights[:, None] * present
    total = W.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(present, V, 0.0).T @ weights / np.where(total > 0, total, np.nan)
        dev = np.where(present, V - mean, 0.0) ** 2
        sd = np.sqrt((W * dev).sum(axis=0) / np.where(total > 0, total, np.nan))
    return mean, np.nan_to_num(sd)


def _alive(V: np.ndarray, D: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ε columns run by a selected seed where at least one selected trial did not diverge."""
    selected = (weights[:, None] > 0) & np.isfinite(V)
    return (selected & (np.nan_to_num(D, nan=1.0) < 1.0)).any(axis=0)


def _optimum(x: np.ndarray, y: np.ndarray, alive: np.ndarray) -> tuple[str, float | None, int | None]:
    """(status, x* = ln ε*, index of the best searched ε) from one accuracy curve.

    ``alive`` marks the ε columns with at least one non-diverged trial; only those can
    be the optimum or take part in the quadratic.
    """
    candidates = np.flatnonzero(alive & np.isfinite(y))
    if len(candidates) == 0:
        return "all_diverged", None, None
    best_pos = int(np.argmax(y[candidates]))
    best = int(candidates[best_pos])
    # Unusable statuses still return the best searched ε: bootstrap resamples use it.
    if len(candidates) < 3:
        return "too_few_points", float(x[best]), best
    if best_pos == 0:
        return "edge_low", float(x[best]), best
    if best_pos == len(candidates) - 1:
        return "edge_high", float(x[best]), best
    lo, hi = candidates[best_pos - 1], candidates[best_pos + 1]
    # Gaussian interpolation: the parabola goes through ln(accuracy), exact for a Gaussian
    # bump and several times less biased than a parabola through accuracy itself for the
    # peak shapes seen in practice (the error depends on where ε* falls between grid points).
    log_y = np.log(np.clip(y[[lo, best, hi]], 1e-9, None))
    return OK, _vertex(x[lo], x[best], x[hi], *log_y), best


def _vertex(x0: float, x1: float, x2: float, y0: float, y1: float, y2: float) -> float:
    """Vertex of the parabola through three points (x1 the best one), kept within [x0, x2]."""
    slope_left, slope_right = (y1 - y0) / (x1 - x0), (y2 - y1) / (x2 - x1)
    curvature = (slope_right - slope_left) / (x2 - x0)
    if curvature >= 0:  # flat around the best point: nothing to interpolate
        return float(x1)
    vertex = 0.5 * (x0 + x1) - slope_left / (2 * curvature)
    return float(min(max(vertex, x0), x2))
