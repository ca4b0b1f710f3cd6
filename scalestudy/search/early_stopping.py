"""Early stopping: ASHA with its rungs kept per (section, schedule, B, m) cell.

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

from scalestudy.trial.config import TrialConfig


def cell_key(config: TrialConfig) -> str:
    """Trials compared with each other: same section, schedule, B, m and epochs (seeds share a bracket)."""
    return json.dumps([config.section, config.schedule.model_dump(mode="json"), config.batch_size,
                       config.momentum, config.workload.epochs], sort_keys=True)


class CellASHA(AsyncHyperBandScheduler):
    """ASHA (one bracket) on ``metric`` with rungs in ``time_attr`` units, per cell.

    ``max_t`` is the longest trial of the study; each cell's rungs stop at its own epochs
    (sections may train for different numbers of epochs)."""

    def __init__(self, *, time_attr: str, metric: str, mode: str, max_t: int, grace_period: int,
                 reduction_factor: float) -> None:
        super().__init__(time_attr=time_attr, metric=metric, mode=mode, max_t=max_t, grace_period=grace_period,
                         reduction_factor=reduction_factor, brackets=1)
        self._rung_settings = (grace_period, reduction_factor)
        self._cell_brackets: dict[str, _Bracket] = {}

    def on_trial_add(self, tune_controller, trial) -> None:
        super().on_trial_add(tune_controller, trial)  # checks metric and mode
        config = TrialConfig.from_dict(trial.config["trial"])
        key = cell_key(config)
        if key not in self._cell_brackets:
            grace_period, reduction_factor = self._rung_settings
            self._cell_brackets[key] = _Bracket(grace_period, config.workload.epochs, reduction_factor, s=0)
        self._trial_info[trial.trial_id] = self._cell_brackets[key]
