"""How much a cell's ε* weighs in the law: the variance of its ln ε* (``CellOptimum.log_lr_var``).

A cell with a 95 % set reads it off the set's width (:func:`interval_variance`), so a flat top or a
noisy cell weighs less; without a set, the delta method with the study's pooled seed variance
(:func:`log_lr_variance`)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from scalestudy.analysis.fits.cell_optimum.optimum import CellOptimum
from scalestudy.analysis.fits.cell_optimum.peak import Peak, at_stability_edge, delta_variance, interpolate, vertex_range


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
    if cell.ci95 is not None:
        return interval_variance(cell.ci95)
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


def interval_variance(ci95: tuple[float, float]) -> float:
    """Variance of ln ε* read off a cell's 95 % set: its width in ln ε is taken as ±1.96 sd. The set
    bounds the optimum whatever the peak's shape, so this carries the shape's uncertainty, not only
    the seeds' noise, into the law's weights."""
    return float((np.log(ci95[1] / ci95[0]) / (2 * 1.959964)) ** 2)


def _peak_of(cell: CellOptimum) -> Peak:
    """The peak :func:`fit_cell` found, from the cell's fields."""
    columns = tuple(cell.lrs.index(lr) for lr in cell.fit_lrs)
    bound = None if cell.lr_bound is None else cell.lrs.index(cell.lr_bound)
    return Peak(cell.status, cell.lrs.index(cell.best_lr), columns, bound)
