"""λ* of each cell: the weight decay whose final objective is best, with its 95 % interval, and
τ*_epoch, the timescale of AdamW's weight EMA it implies.

The curve of the seed-mean objective over x = ln λ at a fixed (B, m, N, ε) goes through the very
machinery that gives ε* over ln ε (:func:`~scalestudy.analysis.fits.cell_optimum.frontier.fit_cell`
with ``axis="weight_decay"``): the three-point vertex, the unimodal confidence set intersected with
the vertex's spread, the seeds' variances moderated across the study's curves. Nothing in it is
about learning rates but the column it reads; its checks (edges, too few points) carry over.

τ_epoch. AdamW's weights are an EMA of its updates with timescale τ_iter = 1/(ε·λ) iterations, i.e.
τ_epoch = τ_iter·B/N = B/(ε·λ·N) epochs (Wang & Aitchison, ICML 2025, eqs. 6-8). At a fixed ε the
map λ ↦ τ_epoch is monotone (decreasing), so τ*_epoch = B/(ε·λ*·N) and its interval is the image of
λ*'s, ends swapped: the optimum over ln τ is the optimum over ln λ read the other way, whether the
grid swept λ or swept ``tau_epoch`` itself (which, at a fixed ε, sweeps λ = B/(ε·τ·N)).

A study that sweeps ε too has one λ curve per ε in a cell; the cell's λ* is read on the curve of its
best ε (the best seed-mean objective anywhere on it), where the ε-and-λ optimum lies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalestudy.analysis.fits.cell_optimum.frontier import (
    CellOptimum,
    cell_keys,
    failure_accuracy,
    fit_cell,
    study_noise_prior,
)
from scalestudy.analysis.fits.cell_optimum.law_weight import interval_variance
from scalestudy.analysis.inputs.trial_table import objective_of

DECAY, TAU = "weight_decay", "tau_epoch"
MIN_POINTS = 3  # distinct λ on one curve: fewer cannot place a vertex


@dataclass(frozen=True)
class DecayOptimum:
    """λ* and τ*_epoch of one (B, m[, N]) cell, read at the learning rate ``lr``."""

    batch_size: int
    momentum: float
    dataset_size: int  # N [examples] of the cell's trials
    lr: float  # ε of the λ curve the optimum was read on
    status: str  # fit_cell's: ok | edge_low | edge_high | bounded_by_divergence | too_few_points | ...
    weight_decay: float | None  # λ*
    ci95: tuple[float, float] | None  # of λ*
    reason: str | None = None
    n_seeds: int = 0
    curve: CellOptimum | None = None  # the fit λ* was read from (lrs = the searched λ)

    @property
    def tau_epoch(self) -> float | None:
        """τ*_epoch = B/(ε·λ*·N) [epochs] (Wang & Aitchison 2025, eq. 8)."""
        return None if self.weight_decay is None else tau_epoch(self.batch_size, self.lr, self.weight_decay,
                                                                self.dataset_size)

    @property
    def tau_epoch_ci95(self) -> tuple[float, float] | None:
        if self.ci95 is None:
            return None
        low, high = (tau_epoch(self.batch_size, self.lr, lam, self.dataset_size) for lam in self.ci95)
        return high, low  # τ falls as λ grows

    @property
    def log_var(self) -> float | None:
        """Variance of ln λ* (= that of ln τ*_epoch), read off the interval like ε*'s; at least that of a
        uniform error over one step of the λ grid, for an interval that closed on one searched λ (a flat top
        whose shoulders fall steeply: its width says nothing of the grid's resolution)."""
        if self.ci95 is None:
            return None
        steps = np.diff(np.log(self.curve.lrs)) if self.curve is not None and len(self.curve.lrs) > 1 else [0.0]
        return max(interval_variance(self.ci95), float(np.median(steps)) ** 2 / 12)

    @property
    def usable(self) -> bool:
        """An interior optimum with an interval: what the exponent fits use."""
        return self.weight_decay is not None and self.ci95 is not None and self.status in ("ok",
                                                                                           "bounded_by_divergence")

    @property
    def label(self) -> str:
        return f"B={self.batch_size} m={self.momentum:g} lr={self.lr:.4g}"


@dataclass(frozen=True)
class DecayFrontier:
    cells: tuple[DecayOptimum, ...]
    warnings: tuple[str, ...]

    def usable(self) -> list[DecayOptimum]:
        return [cell for cell in self.cells if cell.usable]


def tau_epoch(batch_size: float, lr: float, weight_decay: float, dataset_size: float) -> float:
    """τ_epoch = B/(ε·λ·N): the weight EMA's timescale in epochs (Wang & Aitchison 2025, eq. 8)."""
    return float(batch_size) / (float(lr) * float(weight_decay) * float(dataset_size))


def with_weight_decay(frame: pd.DataFrame) -> pd.DataFrame:
    """The table with a ``weight_decay`` column: its own, or λ = B/(ε·τ·N) from ``tau_epoch``."""
    if DECAY in frame.columns or TAU not in frame.columns:
        return frame
    return frame.assign(**{DECAY: frame["batch_size"] / (frame["lr"] * frame[TAU] * frame["dataset_size"])})


def sweeps_weight_decay(frame: pd.DataFrame) -> bool:
    """Whether some (B, m[, N], ε) curve of the table has at least :data:`MIN_POINTS` distinct λ."""
    frame = with_weight_decay(frame)
    if DECAY not in frame.columns or frame.empty:
        return False
    frame = frame[frame[DECAY].to_numpy(float) > 0]
    if frame.empty:
        return False
    counts = frame.groupby([*cell_keys(frame), "lr"])[DECAY].nunique()
    return bool((counts >= MIN_POINTS).any())


def fit_decay_optima(frame: pd.DataFrame) -> DecayFrontier:
    """λ* and τ*_epoch of every cell of a constant-schedule frame of finished trials that sweeps λ."""
    frame = with_weight_decay(frame)
    floor, objective = failure_accuracy(frame), objective_of(frame)
    keys = cell_keys(frame)
    curves = [*keys, "lr"]
    warnings = []
    positive = frame[DECAY].to_numpy(float) > 0  # NaN (no weight decay logged) compares False too
    if (frame[DECAY] == 0).any():
        warnings.append(f"{int((frame[DECAY] == 0).sum())} trials without weight decay (λ = 0) are left out of "
                        "the λ* fit: its curves are over ln λ")
    frame = frame[positive]
    if frame.empty:
        return DecayFrontier((), ("no trial has a positive weight decay: λ* is not fitted", *warnings))
    swept = frame.groupby(curves)[DECAY].transform("nunique") >= MIN_POINTS
    frame = frame[swept]
    if frame.empty:
        return DecayFrontier((), ("no cell sweeps the weight decay at a fixed lr: λ* is not fitted", *warnings))
    prior = study_noise_prior(frame, curves, floor, objective, axis=DECAY)
    cells = []
    for values, cell in frame.groupby(keys, sort=True):
        batch_size, momentum = int(values[0]), float(values[1])
        fits = []
        for lr, curve in cell.groupby("lr", sort=True):
            fit = fit_cell(curve, batch_size, momentum, floor, objective=objective, prior=prior, axis=DECAY,
                           dataset_size=int(curve["dataset_size"].iloc[0]))
            fits.append((float(lr), fit))
        lr, best = max(fits, key=lambda pair: _oriented_best(pair[1], objective.sign))
        optimum = DecayOptimum(batch_size, momentum, int(cell["dataset_size"].iloc[0]), lr, best.status,
                               best.lr_opt, best.ci95, best.reason, best.n_seeds, best)
        cells.append(optimum)
        if not optimum.usable:
            why = best.reason or best.status
            warnings.append(f"cell {optimum.label}: no λ* with an interval ({why}); left out of the λ and τ fits")
    return DecayFrontier(tuple(cells), tuple(warnings))


def _oriented_best(fit: CellOptimum, sign: float) -> float:
    """The curve's best seed-mean objective, higher is better (−inf without one)."""
    return -np.inf if fit.best_acc is None else sign * fit.best_acc
