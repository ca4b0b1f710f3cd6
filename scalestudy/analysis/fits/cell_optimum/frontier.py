"""ε*(B, m): the optimal learning rate of each (batch size, momentum) cell — (B, m, N) when the
trials span several dataset sizes N.

Everything below is written for the default objective, test accuracy (maximised); the study's
objective (``analysis.objective``: the trial table's ``objective`` column) takes its place. A
minimised objective (a language model's test loss) is oriented as −value, its failure value is
the worst (largest) finite value in the table, and its curve is interpolated as it is rather than
in ln (:mod:`scalestudy.analysis.fits.cell_optimum.peak`); ``mean_acc``, ``best_acc`` and the failure value stay in
the metric's own units.

For one cell, the seed-mean final test accuracy is a curve over x = ln ε. A diverged
trial counts as a failure at its ε: its accuracy is replaced by the failure accuracy
(the lowest finite test accuracy in the table), so an ε where one seed of two diverged
scores about halfway. The optimum is the vertex of a quadratic through the best point
and its neighbours (parabolic interpolation in ln ε, :mod:`scalestudy.analysis.fits.cell_optimum.peak`),
not the grid argmax.

The 95 % interval is the confidence set for the mode of a unimodal curve
(:mod:`scalestudy.analysis.fits.cell_optimum.mode_set`): every ε where the seed means, with each seed's own level
taken out (:func:`without_seed_effects`), are consistent with a curve that rises up to it and
falls after it; it assumes nothing about the peak's shape. It is intersected with the spread of
the vertex under the seeds' noise, widened by the vertex's shape bias
(:mod:`scalestudy.analysis.fits.cell_optimum.vertex_spread`), which bounds the cells whose slow left shoulder
leaves the set open. The Student-t interval over per-seed vertices they replace covered the
vertex, not ε*: on asymmetric, flat-topped peaks like the real ones its coverage fell from 86 %
at 2 seeds to 38 % at 5. The vertex stays the point estimate, kept inside the interval. A cell
whose interval reaches past the searched lrs (its best lr is within the seeds' noise of the
smallest or largest) is an edge cell, like one whose best lr *is* the smallest or largest: the
optimum may lie outside the search. One seed per ε takes the study's
pooled seed variance; one seed everywhere gives no interval.

A cell whose best ε is the largest that did not diverge, with every trial at the next
searched ε diverged, is ``bounded_by_divergence``: ε* lies below that diverged ε (the
optimum is a stable ε), so the cell is kept in the law, with ε* from the parabola through
its three best ε extrapolated to its vertex and capped at the diverged ε, as is its
interval. Cells whose best ε is the smallest, or the largest with no larger ε searched,
are flagged ``edge_low`` / ``edge_high``: the optimum may lie outside the search, so they
are left out of the law with a warning that names them.

Trials the search stopped early with a bound on their final objective enter their cell's fit as
censored observations (:mod:`scalestudy.analysis.fits.cell_optimum.censored`): they can resolve an
edge and widen the interval, never narrow it.

:func:`fit_frontier` also gives each usable cell ``log_lr_var``, the variance of its ln ε* for
weighting the law (:mod:`scalestudy.analysis.fits.cell_optimum.law_weight`). The cells it returns
are :class:`~scalestudy.analysis.fits.cell_optimum.optimum.CellOptimum` s of one
:class:`~scalestudy.analysis.fits.cell_optimum.optimum.Frontier`.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd

from scalestudy.analysis.fits.cell_optimum.censored import fit_with_censored
from scalestudy.analysis.fits.cell_optimum.law_weight import with_variances
from scalestudy.analysis.fits.cell_optimum.mode_set import ModeSet, mode_set
from scalestudy.analysis.fits.cell_optimum.optimum import CellOptimum, Frontier
from scalestudy.analysis.fits.cell_optimum.peak import (
    BOUNDED,
    OK,
    USABLE,
    Peak,
    at_stability_edge,
    find_peak,
    interpolate,
)
from scalestudy.analysis.fits.cell_optimum.seed_noise import (
    NO_PRIOR,
    NoisePrior,
    cell_noise,
    column_noise,
    moderated,
    noise_prior,
)
from scalestudy.analysis.fits.cell_optimum.vertex_spread import vertex_spread
from scalestudy.analysis.inputs.trial_table import ACCURACY, objective_of
from scalestudy.spec.objective import Objective

__all__ = ["BOUNDED", "OK", "USABLE", "CellOptimum", "Frontier", "cell_keys", "failure_accuracy", "fit_cell",
           "fit_frontier", "trials_at_best_lr"]


def failure_accuracy(frame: pd.DataFrame) -> float:
    """The objective given to diverged trials: its worst finite value in the table (the lowest test
    accuracy; the largest loss of a minimised objective); 0 if none."""
    objective = objective_of(frame)
    values = frame["objective"] if "objective" in frame.columns else frame[ACCURACY.metric]
    finite = values[np.isfinite(values)]
    if not len(finite):
        return 0.0
    return float(finite.min() if objective.maximise else finite.max())


def fit_frontier(frame: pd.DataFrame, *, censored: pd.DataFrame | None = None, n_boot: int | None = None,
                 seed: int | None = None) -> Frontier:
    """ε* for every (batch_size, momentum) cell of a constant-schedule trial frame of finished trials;
    ``censored``: trials of the same cells stopped early with a bound on their final objective
    (:mod:`~scalestudy.analysis.fits.cell_optimum.censored`; those of a cell with no finished trial
    are not used).

    ``n_boot`` and ``seed`` are ignored: they belonged to the bootstrap interval this
    module no longer uses, and are accepted so that callers written for it still run."""
    floor = failure_accuracy(frame)
    objective = objective_of(frame)
    cells, warnings = [], []
    keys = cell_keys(frame)
    prior = study_noise_prior(frame, keys, floor, objective)
    censored_by_cell = dict(iter(censored.groupby(keys, sort=True))) if censored is not None and len(censored) else {}
    for values, group in frame.groupby(keys, sort=True):
        batch_size, momentum, *n = values
        fit = partial(fit_cell, batch_size=int(batch_size), momentum=float(momentum), floor=floor,
                      objective=objective, dataset_size=int(n[0]) if n else None, prior=prior)
        stopped = censored_by_cell.get(values)
        cell = fit(group) if stopped is None else fit_with_censored(fit, group, stopped, floor)
        cells.append(cell)
        if cell.status.startswith("edge"):
            side = "smallest" if cell.status == "edge_low" else "largest"
            what = cell.reason or f"best lr {cell.best_lr:.4g} is the {side} non-diverged lr searched"
            warnings.append(f"cell {cell.label}: {what}; left out of the law (extend the lr grid)")
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
             objective: Objective = ACCURACY, dataset_size: int | None = None,
             prior: NoisePrior = NO_PRIOR, axis: str = "lr") -> CellOptimum:
    """ε* of one cell (``n_boot`` and ``rng`` are ignored, see :func:`fit_frontier`); ``floor`` is the
    failure value in the objective's units.

    ``axis``: the swept column whose optimum is sought, ``lr`` by default; any other positive setting
    swept at the rest fixed (AdamW's ``weight_decay``: :mod:`scalestudy.analysis.fits.adamw.decay_optimum`)
    goes through the same peak, unimodal set and vertex spread over its logarithm, and the result's
    ``lr_opt``, ``lrs``, ``ci95``... then hold that setting's values."""
    V, D, lrs, lr_index, div = _cell_arrays(group, floor, objective, axis)
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
    per_seed = [interpolate(x, row, peak, floor, log) for row in V if np.isfinite(row[list(peak.columns)]).all()]
    seed_opt = {"seed_lr_opt": tuple(float(np.exp(v)) for v, _ in per_seed)}
    seed = batch_size + int(1000 * momentum)
    region, reason = _optimum_region(x, V, D, prior, peak, floor, log, seed=seed)
    if region is not None and not region.bounded:
        # Neither the unimodal set nor the vertex's spread bounds the optimum inside the search: an
        # edge, as when the best lr is the smallest or largest searched.
        status = "edge_low" if not np.isfinite(region.low) else "edge_high"
        side = "smallest" if status == "edge_low" else "largest"
        return CellOptimum(status=status, lr_opt=None, ci95=None, **seed_opt, **found, **common,
                           reason=f"the best lr {lrs[best]:.4g} is within the seeds' noise of the {side} searched: "
                                  "the optimum may lie outside the search")
    if at_stability_edge(x, mean, peak, floor, log):
        # The optimum is the edge of stability, somewhere between the best ε and the
        # diverged one: take the middle (in ln ε).
        x_opt = 0.5 * (x[best] + x[peak.bound])
        reason = reason or (f"accuracy still rises at the largest stable lr: ε* is at the edge of stability, "
                            f"between {lrs[best]:.4g} and {lrs[peak.bound]:.4g}")
    else:
        x_opt, _ = interpolate(x, mean, peak, floor, log)
    ci = None
    if region is not None:
        x_opt = min(max(x_opt, region.low), region.high)  # the vertex may leave a set it only estimates
        ci = (float(np.exp(region.low)), float(np.exp(region.high)))
    return CellOptimum(status=peak.status, lr_opt=float(np.exp(x_opt)), ci95=ci, reason=reason,
                       **seed_opt, **found, **common)


def _optimum_region(x: np.ndarray, V: np.ndarray, D: np.ndarray, prior: NoisePrior, peak: Peak, floor: float,
                    log: bool, seed: int) -> tuple[ModeSet | None, str | None]:
    """(the 95 % interval of the cell's ε*, None) or (None, why there is none).

    The interval is the unimodal set (:mod:`scalestudy.analysis.fits.cell_optimum.mode_set`), which assumes nothing
    about the peak's shape, intersected with the spread of the vertex under the seeds' noise,
    widened by its shape bias (:mod:`scalestudy.analysis.fits.cell_optimum.vertex_spread`), which bounds the cells
    whose slow left shoulder leaves the set open. Both see the seed-mean curve with each seed's own
    level removed (:func:`without_seed_effects`), the seeds' variance the cell's own shrunk towards
    the study's and each column's towards the cell's (:mod:`scalestudy.analysis.fits.cell_optimum.seed_noise`): a
    column below the cliff, or where some trials diverged, keeps much of its larger spread."""
    variance, dof = moderated(*cell_noise(V, D), prior)
    if not dof > 0:
        return None, "one seed: no interval"
    adjusted = without_seed_effects(V, D)
    n = np.maximum(np.isfinite(adjusted).sum(axis=0), 1)
    column = column_noise(adjusted, D, variance, dof)
    mean = np.nanmean(adjusted, axis=0)
    modes = mode_set(x, mean, column, n, dof=dof, seed=seed)
    alive = (np.isfinite(V) & (np.nan_to_num(D, nan=1.0) < 1.0)).any(axis=0)
    spread = vertex_spread(x, mean, column / n, alive, floor, log=log, seed=seed) if peak.status in USABLE \
        else (-np.inf, np.inf)
    low, high = max(modes.low, spread[0]), min(modes.high, spread[1])
    # Disjoint, the local shape contradicts what the set allows: the set, which assumes less, stands.
    return (ModeSet(low, high) if low <= high else modes), None


def without_seed_effects(V: np.ndarray, D: np.ndarray) -> np.ndarray:
    """The seed × ε table with each seed's mean offset over the columns where no trial diverged
    taken out of its non-diverged values.

    A seed fixes the initialisation and the data order for every ε of a cell, and its effect is
    shared: in the reference studies one seed is best or worst at almost every ε. The mode depends
    on differences between columns, where that effect cancels (a randomized block design: seeds
    are blocks), so removing it leaves the within-seed noise, several times smaller. Diverged
    trials keep the failure value: their score owes nothing to the seed's level."""
    runs = np.isfinite(V)
    if V.shape[0] < 2:
        return V
    diverged = np.nan_to_num(D, nan=0.0) > 0
    calm = ~(diverged & runs).any(axis=0) & (runs.sum(axis=0) >= 2)
    if calm.sum() < 2:
        return V
    column_mean = np.nanmean(np.where(runs, V, np.nan)[:, calm], axis=0)
    with np.errstate(invalid="ignore"):
        offset = np.nanmean(V[:, calm] - column_mean[None, :], axis=1)
    offset = np.nan_to_num(offset, nan=0.0)
    return np.where(runs & ~diverged, V - offset[:, None], V)


def _cell_arrays(group: pd.DataFrame, floor: float, objective: Objective, axis: str = "lr"):
    """(seed × ε objective oriented higher-is-better with failures at the floor, seed × ε diverged
    share, ascending ε, ε index and diverged flag per trial); ε is the ``axis`` column."""
    values = group["objective"] if "objective" in group.columns else group[ACCURACY.metric]
    acc = np.where(group["diverged"], floor, values.to_numpy(float))
    acc = np.where(np.isfinite(acc), acc, floor)
    seeds, seed_index = np.unique(group["seed"].to_numpy(), return_inverse=True)
    lrs, lr_index = np.unique(group[axis].to_numpy(float), return_inverse=True)
    div = group["diverged"].to_numpy(bool)
    V = _seed_by_lr(seed_index, lr_index, acc, (len(seeds), len(lrs)))  # mean accuracy
    D = _seed_by_lr(seed_index, lr_index, div.astype(float), (len(seeds), len(lrs)))  # diverged share
    return V, D, lrs, lr_index, div


def study_noise_prior(frame: pd.DataFrame, keys: list[str], floor: float, objective: Objective,
                      axis: str = "lr") -> NoisePrior:
    """The prior every cell's seed variance is shrunk towards (:func:`noise_prior` over the cells), the
    cells' curves over ``axis``."""
    noise = [cell_noise(V, D) for _, group in frame.groupby(keys, sort=True)
             for V, D, *_ in [_cell_arrays(group, floor, objective, axis)]]
    if not noise:
        return NO_PRIOR
    variances, dofs = zip(*noise)
    return noise_prior(np.array(variances), np.array(dofs))


def _seed_by_lr(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Mean of ``values`` per (seed, ε) cell; NaN where that seed did not run that ε."""
    total, count = np.zeros(shape), np.zeros(shape)
    np.add.at(total, (rows, cols), values)
    np.add.at(count, (rows, cols), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)
