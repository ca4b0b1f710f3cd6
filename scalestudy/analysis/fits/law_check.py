"""Does a law transfer? Each cell of a second study, measured against the law's prediction.

The workflow: fit the law on a small study, run a few trials per cell at the scale you will train
at (larger B, larger N), and check here that ε* there is still what the law says.

Per (B, m, N) cell of the check study (its constant-schedule trials, ε* from the same frontier fit
as the law's cells: :func:`~scalestudy.analysis.fits.cell_optimum.frontier.fit_frontier`):

- measured: ln ε̂ with variance v_cell (the variance the law fit weights cells by: its 95 % set's
  width read as ±1.96 sd; unknown with one seed);
- predicted: ln ε_law with variance v_law (the law's parameter covariance at that point,
  ``prediction`` in law.json) plus the law's cell scatter τ² (how far cells fall from the law
  beyond their own noise);
- the test: d = ln ε̂ − ln ε_law, t = d / √(v_cell + v_law + τ²), two-sided p-value from the
  Student-t distribution with the law's residual degrees of freedom (v_cell left out when the cell
  has no variance: one seed). A cell **fails** when p ≤ 0.05 / (cells tested) — Bonferroni, so that a
  law that holds everywhere fails a check of any number of cells in at most 5 % of checks — and
  **passes** otherwise. The report shows both 95 % intervals (the measured ε̂'s, and the law's
  prediction interval ε_law·exp(±t₀.₉₇₅·√(v_law + τ²))). A cell's power: the smallest factor between
  ε̂ and ε_law that would fail it, exp(t · √(v_cell + v_law + τ²)) with t the Student-t quantile at
  the cell's level (``detectable``); the check's is its most sensitive cell's, so that "holds" on a
  law with a wide interval reads "holds, but could not have detected less than ×N".
- cells whose optimum lies outside the searched lrs (``edge_low``, ``edge_high``) or where every lr
  diverged bound ε* from one side: they **fail** when the law's prediction interval (at the
  Bonferroni level) lies wholly beyond that bound — e.g. past a breakdown, where a grid centred on the
  law finds accuracy still rising at its smallest lr — and are **inconclusive** otherwise, as are
  cells with too few lrs.

A law without a 95 % interval (too few cells, or a file of an earlier version) cannot be checked, nor
one fitted on another objective than the check study's (test_loss against test_acc): both raise.
Exit status of ``scalestudy check-law``: 0 when no cell fails, 1 when some fail, 2 for bad input
(including a check study none of whose cells can be tested, and a law it refuses).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from scalestudy.analysis.errors import AnalysisError
from scalestudy.analysis.fits._stats import t_quantile
from scalestudy.analysis.fits.cell_optimum.frontier import CellOptimum, fit_frontier
from scalestudy.analysis.fits.cell_optimum.law_weight import interval_variance
from scalestudy.analysis.fits.study import law_trials
from scalestudy.analysis.inputs.trial_table import TrialTable, objective_of
from scalestudy.law import LawError, LawRefused, ScalingLaw
from scalestudy.law.guards import law_objective, no_interval_reason

FAMILY_LEVEL = 0.05  # family-wise false-failure rate of a check when the law holds everywhere
OUTCOMES = ("pass", "fail", "inconclusive")


@dataclass(frozen=True)
class CellCheck:
    batch_size: int
    momentum: float
    dataset_size: int
    status: str  # the check cell's frontier status (ok, bounded_by_divergence, edge_low, ...)
    outcome: str  # pass | fail | inconclusive
    reason: str
    measured: float | None  # ε̂ [per update]; for an edge cell, the bound it gives
    measured_ci95: tuple[float, float] | None
    predicted: float | None  # the law's ε* here
    predicted_ci95: tuple[float, float] | None  # the law's 95 % prediction interval for a cell here
    p_value: float | None = None
    extrapolation: str | None = None  # where the cell lies outside what the law was fitted on
    detectable: float | None = None  # the smallest factor between ε̂ and the law's ε* that would fail the cell

    @property
    def label(self) -> str:
        return f"B={self.batch_size} m={self.momentum:g} N={self.dataset_size}"

    @property
    def ratio(self) -> float | None:
        """Measured / predicted ε*."""
        return None if self.measured is None or self.predicted is None else self.measured / self.predicted


@dataclass(frozen=True)
class LawCheck:
    cells: tuple[CellCheck, ...]
    level: float  # per-cell significance level: FAMILY_LEVEL / cells tested
    tested: int  # cells with a pass or fail
    warnings: tuple[str, ...]

    def count(self, outcome: str) -> int:
        return sum(cell.outcome == outcome for cell in self.cells)

    @property
    def power(self) -> CellCheck | None:
        """The most sensitive cell: the smallest deviation of ε* the check could have detected is its
        ``detectable``; None when no cell measured ε* (only bounds)."""
        measured = [cell for cell in self.cells if cell.detectable is not None]
        return min(measured, key=lambda cell: cell.detectable) if measured else None

    @property
    def passed(self) -> bool:
        return self.count("fail") == 0


def check_law(law: ScalingLaw, trials: TrialTable | pd.DataFrame) -> LawCheck:
    """Every cell of the check study against the law (see the module docstring)."""
    table = trials if isinstance(trials, TrialTable) else TrialTable.from_frame(trials)
    missing = no_interval_reason(law)
    if missing is not None:  # the test weighs the difference by the law's own error: nothing to check against
        raise LawRefused(f"{missing} (a check needs the law's interval; --force cannot replace it)")
    _same_objective(law, table.frame)
    frame, notes = law_trials(table.frame)
    if frame.empty:
        raise AnalysisError("the check study has no finished constant-schedule trials to measure ε* on")
    frontier = fit_frontier(frame)
    single_n = int(frame["dataset_size"].iloc[0])
    measurable = [c for c in frontier.cells if c.usable or c.status in ("edge_low", "edge_high", "all_diverged")]
    level = FAMILY_LEVEL / max(1, len(measurable))
    cells = tuple(_check_cell(law, cell, cell.dataset_size or single_n, level) for cell in frontier.cells)
    tested = sum(cell.outcome != "inconclusive" for cell in cells)
    if tested == 0:
        reasons = "; ".join(f"{c.label}: {c.reason}" for c in cells[:3])
        raise AnalysisError(f"no cell of the check study can be tested against the law ({reasons})")
    return LawCheck(cells, level, tested, tuple(notes) + tuple(frontier.warnings))


def _check_cell(law: ScalingLaw, cell: CellOptimum, dataset_size: int, level: float) -> CellCheck:
    common = {"batch_size": cell.batch_size, "momentum": cell.momentum, "dataset_size": dataset_size,
              "status": cell.status}
    try:
        prediction = law.predict(cell.batch_size, cell.momentum, dataset_size)
    except LawError as error:
        return CellCheck(**common, outcome="inconclusive", reason=f"the law cannot predict here: {error}",
                         measured=cell.lr_opt, measured_ci95=cell.ci95, predicted=None, predicted_ci95=None)
    spread = law.log_lr_spread(cell.batch_size, cell.momentum, dataset_size)  # not None: checked by check_law
    # The check cell shares the law's cells' shape error (same workload, same peak shape): not a difference.
    shared = law.prediction.shared_shape_variance or 0.0
    law_var = max(spread.variance - shared, 0.0) + (spread.cell_scatter or 0.0)
    dof = spread.dof
    half = t_quantile(0.975, dof) * math.sqrt(law_var)
    predicted = {"predicted": prediction.lr,
                 "predicted_ci95": (prediction.lr * math.exp(-half), prediction.lr * math.exp(half)),
                 "extrapolation": _extrapolation(law, cell.batch_size, dataset_size)}
    if cell.usable:
        cell_var = _cell_variance(cell)
        d = math.log(cell.lr_opt) - math.log(prediction.lr)
        t = d / math.sqrt(law_var + (cell_var or 0.0))
        p = _two_sided_p(t, dof)
        outcome = "fail" if p <= level else "pass"
        side = "above" if d > 0 else "below"
        reason = (f"ε̂ is {math.exp(abs(d)):.3f}× {side} the law's, p = {p:.2g} "
                  f"({'≤' if outcome == 'fail' else '>'} {level:.2g})")
        if cell_var is None:
            reason += "; one seed: the cell's own noise is not counted"
        detectable = math.exp(t_quantile(1 - level / 2, dof) * math.sqrt(law_var + (cell_var or 0.0)))
        return CellCheck(**common, outcome=outcome, reason=reason, measured=cell.lr_opt,
                         measured_ci95=cell.ci95, p_value=p, detectable=detectable, **predicted)
    return _bounded_cell(cell, common, predicted, prediction.lr, law_var, dof, level)


def _bounded_cell(cell: CellOptimum, common: dict, predicted: dict, lr: float, law_var: float, dof: int,
                  level: float) -> CellCheck:
    """Cells that only bound ε* from one side: fail when the law's interval at the Bonferroni level
    lies wholly beyond the bound."""
    half = t_quantile(1 - level / 2, dof) * math.sqrt(law_var)
    low, high = lr * math.exp(-half), lr * math.exp(half)
    alive = [x for x, n, d in zip(cell.lrs, cell.n_runs, cell.n_diverged) if d < n]
    if cell.status == "all_diverged":
        bound, beyond, text = min(cell.lrs), low > min(cell.lrs), "every lr diverged, down to"
    elif cell.status == "edge_low" and cell.best_lr in alive and alive.index(cell.best_lr) + 1 < len(alive):
        # Unimodal: nothing past the lr above the best (the best may be the smallest lr, or within noise of it).
        bound = alive[alive.index(cell.best_lr) + 1]
        beyond, text = low > bound, "accuracy does not rise from the smallest lr to the best: ε* is below"
    elif cell.status == "edge_high" and cell.best_lr in alive and alive.index(cell.best_lr) >= 1:
        bound = alive[alive.index(cell.best_lr) - 1]
        beyond, text = high < bound, "accuracy does not fall from the best lr to the largest: ε* is above"
    else:
        return CellCheck(**common, outcome="inconclusive", reason=cell.reason or cell.status, measured=None,
                         measured_ci95=None, **predicted)
    if beyond:
        return CellCheck(**common, outcome="fail", reason=f"{text} {bound:.4g}, outside the law's interval "
                         f"[{low:.4g}, {high:.4g}] at the level {level:.2g}", measured=bound, measured_ci95=None,
                         **predicted)
    return CellCheck(**common, outcome="inconclusive", reason=f"{text} {bound:.4g}, consistent with the law's "
                     f"interval [{low:.4g}, {high:.4g}]; widen the lr grid to measure ε*", measured=bound,
                     measured_ci95=None, **predicted)


def _same_objective(law: ScalingLaw, frame: pd.DataFrame) -> None:
    """A law's ε* maximise (minimise) one objective; a check study's must be of the same."""
    metric, direction = law_objective(law)
    study = objective_of(frame)
    named = "objective" not in (study.metric, metric)  # a table that does not name its metric: the direction alone
    if study.direction != direction or (named and study.metric != metric):
        raise LawRefused(f"the law was fitted on {metric} ({direction}imised) and the check study's objective is "
                         f"{study.metric} ({study.direction}imised): the ε* of one is not the ε* of the other; check "
                         f"with a study of the law's objective (analysis.objective: {{metric: {metric}, direction: "
                         f"{direction}}})")


def _cell_variance(cell: CellOptimum) -> float | None:
    """Variance of the cell's ln ε̂: the one the law fit weights it by, else read off its 95 % set."""
    if cell.log_lr_var is not None:
        return cell.log_lr_var
    return interval_variance(cell.ci95) if cell.ci95 is not None else None


def _two_sided_p(t: float, dof: int) -> float:
    from scipy import stats

    return float(2 * stats.t.sf(abs(t), dof))


def _extrapolation(law: ScalingLaw, batch_size: int, dataset_size: int) -> str | None:
    parts = []
    if law.breakdown_batch_size and batch_size > law.breakdown_batch_size:
        parts.append(f"above the law's breakdown batch size {law.breakdown_batch_size:.4g}")
    elif law.domain.batch_size and batch_size > law.domain.batch_size[1]:
        parts.append(f"above the largest fitted batch size {law.domain.batch_size[1]:g}")
    n_range = law.domain.dataset_size
    if n_range and not n_range[0] <= dataset_size <= n_range[1]:
        parts.append(f"at N = {dataset_size}, outside the fitted N = {n_range[0]:g} to {n_range[1]:g}")
    return "; ".join(parts) or None
