"""Early stopping: ASHA on the study's objective, with its rungs kept per (section, schedule, B, m) cell.

Tune's ASHA compares every trial with all trials that reached the same rung. In a
scaling study that is wrong: after one epoch a B=16 trial has made 32 times the updates
of a B=512 trial and leads whatever its ε, so a study-wide ASHA stops large batches, not
bad learning rates. :class:`CellASHA` keeps one ASHA bracket per cell (the training seeds
of a cell share it), so a trial is only compared with other ε of its own cell.

A trial ASHA stops ends TERMINATED in Tune like a finished one; the status rule
(:func:`scalestudy.trial.record.trial_status`) tells it apart by its last epoch being below
``workload.epochs`` without having diverged: ``stopped`` (the searches rank it below every
finished trial).
"""

from __future__ import annotations

import json

from ray.tune.schedulers import AsyncHyperBandScheduler
from ray.tune.schedulers.async_hyperband import _Bracket

from scalestudy.spec import Objective
from scalestudy.trial.axes import group_values
from scalestudy.trial.config import TrialConfig


def cell_key(config: TrialConfig) -> str:
    """Trials compared with each other: same section, schedule, B, m, epochs and, in a study over several
    dataset sizes, N, and the grid's optimizer axes when it has them (seeds share a bracket)."""
    n = config.workload.shown_dataset_size
    return json.dumps([config.section, config.schedule.model_dump(mode="json"), config.batch_size,
                       config.momentum, config.workload.epochs, *([n] if n is not None else []),
                       *group_values(config)], sort_keys=True)


class CellASHA(AsyncHyperBandScheduler):
    """ASHA (one bracket) on the study's objective with rungs in ``time_attr`` units, per cell.

    ``max_t`` is the longest trial of the study; each cell's rungs stop at its own epochs
    (sections may train for different numbers of epochs)."""

    def __init__(self, *, objective: Objective, time_attr: str, max_t: int, grace_period: int,
                 reduction_factor: float) -> None:
        super().__init__(time_attr=time_attr, metric=objective.metric, mode=objective.mode, max_t=max_t,
                         grace_period=grace_period, reduction_factor=reduction_factor, brackets=1)
        self._rung_settings = (grace_period, reduction_factor)
        self._cell_brackets: dict[str, _Bracket] = {}

    @property
    def objective(self) -> Objective:
        # From Ray's own metric and mode: a scheduler pickled before objectives (test_acc, max) reads the same.
        return Objective(metric=self._metric, direction=self._mode)

    def on_trial_add(self, tune_controller, trial) -> None:
        super().on_trial_add(tune_controller, trial)  # checks metric and mode
        config = TrialConfig.from_dict(trial.config["trial"])
        key = cell_key(config)
        if key not in self._cell_brackets:
            grace_period, reduction_factor = self._rung_settings
            self._cell_brackets[key] = _Bracket(grace_period, config.workload.epochs, reduction_factor, s=0)
        self._trial_info[trial.trial_id] = self._cell_brackets[key]

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if self._metric in result:
            # A diverged loss is often reported as inf: in a rung it would turn the percentile cutoff into
            # NaN or −inf, which stops nothing after it. As NaN it is left out of the cutoff (the diverged
            # trial ends by itself).
            result = {**result, self._metric: self.objective.value(result)}
        return super().on_trial_result(tune_controller, trial, result)
