"""Generalization gap at the optimum: train_acc − test_acc at each cell's ε*.

On the study's objective: train − test of a maximised one (accuracy), test − train of a minimised
one (a loss: test_loss − train_loss), so a positive gap always means the training split scores
better. No gap without the objective's training counterpart (``objective_train``). How the trials
measured it (``train_metrics``: an eval-mode pass over a fixed training subset, or the running
train-mode mean over the epoch's batches, which trails the final weights) is carried to the report.

The gap of a cell is the seed-mean gap of its non-diverged trials, linearly
interpolated over ln ε at ε*. Its trend is a least-squares slope against log2 B (gap
change per doubling of the batch size, in accuracy points as a fraction) and against
log2 g* (per doubling of the noise scale), each with a Student-t 95 % interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalestudy.analysis.fits._stats import fit_line
from scalestudy.analysis.fits.cell_optimum.frontier import CellOptimum
from scalestudy.analysis.inputs.trial_table import ACCURACY, objective_of
from scalestudy.noise import noise_scale


@dataclass(frozen=True)
class GapCell:
    batch_size: int
    momentum: float
    lr_opt: float
    noise_scale: float  # g* of the cell
    gap: float  # train_acc − test_acc at ε* [fraction] (test − train of a minimised objective)


@dataclass(frozen=True)
class GapTrend:
    value: float
    ci95: tuple[float, float] | None
    intercept: float
    per: str


@dataclass(frozen=True)
class GapFit:
    cells: tuple[GapCell, ...]
    vs_batch: GapTrend | None  # per doubling of B
    vs_noise: GapTrend | None  # per doubling of g*
    reason: str | None = None
    train_metrics: str | None = None  # eval | running | mixed (the trials' workload.train_metrics); None: not recorded


def fit_gap(frame: pd.DataFrame, cells: list[CellOptimum]) -> GapFit:
    """Gap trend over the usable cells of a constant-schedule trial frame."""
    rows = []
    train, test = (("objective_train", "objective") if "objective" in frame.columns
                   else (ACCURACY.train_metric, ACCURACY.metric))
    ok = frame[~frame["diverged"] & np.isfinite(frame[train]) & np.isfinite(frame[test])]
    if ok.empty:
        return GapFit((), None, None, f"no trial has both a train and a test {objective_of(frame).metric}: no gap")
    sign = objective_of(frame).sign
    measured = sorted(set(ok["train_metrics"]) & {"eval", "running"}) if "train_metrics" in ok.columns else []
    train_metrics = (measured[0] if len(measured) == 1 else "mixed") if measured else None
    gap = (sign * (ok[train] - ok[test])).groupby([ok["batch_size"], ok["momentum"], ok["lr"]]).mean()
    dataset_size = int(frame["dataset_size"].iloc[0])
    for cell in cells:
        if not cell.usable or (cell.batch_size, cell.momentum) not in gap.index.droplevel(2):
            continue
        curve = gap.loc[(cell.batch_size, cell.momentum)].sort_index()
        value = float(np.interp(np.log(cell.lr_opt), np.log(curve.index.to_numpy(float)), curve.to_numpy(float)))
        g = float(noise_scale(cell.lr_opt, cell.momentum, dataset_size, cell.batch_size))
        rows.append(GapCell(cell.batch_size, cell.momentum, cell.lr_opt, g, value))
    if len({r.batch_size for r in rows}) < 2:
        return GapFit(tuple(rows), None, None, "fewer than 2 batch sizes with an optimum: no gap trend",
                      train_metrics)
    gaps = np.array([r.gap for r in rows])
    vs_batch = _slope(np.log2([r.batch_size for r in rows]), gaps, "doubling of batch size")
    positive = [r for r in rows if r.noise_scale > 0]
    vs_noise = None
    if len({r.noise_scale for r in positive}) >= 2:
        vs_noise = _slope(np.log2([r.noise_scale for r in positive]), np.array([r.gap for r in positive]),
                          "doubling of noise scale")
    return GapFit(tuple(rows), vs_batch, vs_noise, train_metrics=train_metrics)


def _slope(x: np.ndarray, y: np.ndarray, per: str) -> GapTrend:
    line = fit_line(x, y)
    return GapTrend(line.slope, line.slope_ci95, line.intercept, per)
