"""Early stopping by a bound on the final objective, per (section, schedule, B, m) cell (``search.early_stopping:
{kind: cell_bound}``).

After each epoch e ≥ ``grace_period`` (and before its last), a trial is stopped when the most it can
still end at, extrapolated from its cell's finished trials
(:func:`scalestudy.trial.curve_bound.final_upper_bound`), is below the cell's best finished final
objective by more than ``margin`` (in the objective's units). Until two trials of the cell have
finished there is nothing to extrapolate from and nothing is stopped. Cells, as for ASHA, are
:func:`~scalestudy.search.early_stopping.cell_key`: a trial is only judged against other ε and seeds of
its own cell.

A stopped trial ends TERMINATED in Tune; the status rule (:func:`scalestudy.trial.record.trial_status`)
calls it ``stopped``. Its bound is not lost: the analysis recomputes it from the per-epoch histories
with the same function (:mod:`scalestudy.analysis.inputs.stop_bounds`), over every finished trial of
the cell (at least the ones it was stopped on, so at least as high), and enters the trial in the ε*
fit as censored there. :attr:`CellBoundStopping.stopped` keeps what each stop was decided on, for
the driver's log and for tests. The cells' finished curves live in this object only: a resumed study
starts with none (it stops nothing in a cell until two more of its trials finish).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from scalestudy.search.early_stopping import cell_key
from scalestudy.spec import Objective
from scalestudy.trial.config import TrialConfig, TrialWorkload
from scalestudy.trial.curve_bound import SAFETY, final_score, final_upper_bound
from scalestudy.trial.record import OK, trial_status

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoppedAt:
    """What a stop was decided on, in the objective's units (a minimised objective's bound is the
    lowest it could reach)."""

    epoch: int  # epochs completed when it was stopped
    objective: float  # its objective after that epoch
    bound: float  # the best final objective it could still have reached
    best: float  # the cell's best finished final objective then


class CellBoundStopping(FIFOScheduler):
    """Stops a trial whose bound on its final objective is below its cell's best finished one minus ``margin``."""

    def __init__(self, *, objective: Objective, grace_period: int, margin: float, safety: float = SAFETY) -> None:
        super().__init__()
        self.objective = objective
        self._metric = objective.metric  # what Tune checks results against
        self.grace_period, self.margin, self.safety = grace_period, margin, safety
        self._cells: dict[str, tuple[str, TrialWorkload]] = {}  # trial id → (cell key, what it plans to run)
        self._curves: dict[str, dict[int, float]] = {}  # running trial id → epoch → score
        self._finished: dict[str, list[dict[int, float]]] = {}  # cell key → its finished trials' curves
        self.stopped: dict[str, StoppedAt] = {}  # trial id → why it was stopped

    def on_trial_add(self, tune_controller, trial) -> None:
        config = TrialConfig.from_dict(trial.config["trial"])
        self._cells[trial.trial_id] = (cell_key(config), config.workload)
        self._curves[trial.trial_id] = {}

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if "epoch" not in result or trial.trial_id not in self._cells:
            return TrialScheduler.CONTINUE
        epoch = int(result["epoch"])
        curve = self._curves.setdefault(trial.trial_id, {})
        curve[epoch] = self.objective.score(result)
        key, workload = self._cells[trial.trial_id]
        if not self.grace_period <= epoch < workload.epochs:
            return TrialScheduler.CONTINUE
        finished = self._finished.get(key, [])
        best = max((final_score(c) for c in finished), default=-math.inf)
        bound = final_upper_bound(curve, finished, epoch, self.safety)
        if not bound < best - self.margin:
            return TrialScheduler.CONTINUE
        sign = self.objective.sign
        stop = StoppedAt(epoch, sign * curve[epoch], sign * bound, sign * best)
        self.stopped[trial.trial_id] = stop
        log.info("early stopping: trial %s stopped after epoch %d at %s %.4g; it could end at %.4g at best, "
                 "its cell's best is %.4g", trial.trial_id, epoch, self.objective.metric, stop.objective,
                 stop.bound, stop.best)
        return TrialScheduler.STOP

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        cell = self._cells.pop(trial.trial_id, None)
        curve = self._curves.pop(trial.trial_id, None)
        if cell is None or curve is None or trial.trial_id in self.stopped:
            return
        # Only trials that ran their course are a reference for how far a curve still rises.
        key, workload = cell
        if trial_status(workload, result) == OK:
            self._finished.setdefault(key, []).append(curve)

    def on_trial_error(self, tune_controller, trial) -> None:
        self._forget(trial)

    def on_trial_remove(self, tune_controller, trial) -> None:
        self._forget(trial)

    def _forget(self, trial) -> None:
        self._cells.pop(trial.trial_id, None)
        self._curves.pop(trial.trial_id, None)

    def debug_string(self) -> str:
        return (f"Using early stopping by a bound per cell: {len(self.stopped)} stopped, "
                f"{sum(map(len, self._finished.values()))} finished curves in {len(self._finished)} cells")
