"""MLflow runs of a branched study's extra trials: each branch a child of the base trial's run
(``mlflow.parentRunId``), each comparison run a child of the study's; found by its trial key under its
parent before one is created (so ``--resume`` appends to it), with its own tags, params and name
(:class:`~scalestudy.trial.branch.BranchOrigin`, :class:`~scalestudy.trial.stages.StagedRun`). The
writing itself is the study's :class:`~scalestudy.run.callbacks.MlflowCallback`."""

from __future__ import annotations

from typing import Any

from scalestudy.run.callbacks import MlflowCallback
from scalestudy.run.tracking import TrialRuns, client
from scalestudy.trial import record
from scalestudy.trial.config import TrialConfig


def run_info(tags: dict[str, str], params: dict[str, str], name: str) -> dict[str, Any]:
    """What a child run carries besides its trial config (plain, so Tune can pickle it)."""
    return {"tags": tags, "params": params, "name": name}


class ChildRuns(TrialRuns):
    """Runs under ``parent_run_id`` whose tags, params and names come from ``infos`` (trial key → run_info)."""

    def __init__(self, mlflow_client, experiment_id: str, parent_run_id: str, infos: dict[str, dict[str, Any]]) -> None:
        super().__init__(mlflow_client, experiment_id, parent_run_id)
        self.infos = infos

    def _create(self, config: TrialConfig) -> str:
        info = self.infos[config.trial_key]
        tags = {record.PARENT_TAG: self.parent_run_id, record.KEY_TAG: config.trial_key,
                record.STATUS_TAG: record.RUNNING, record.SECTION_TAG: config.section, **info["tags"]}
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=info["name"])
        self._log_params(run.info.run_id, config)
        return run.info.run_id

    def _log_params(self, run_id: str, config: TrialConfig) -> None:
        from mlflow.entities import Param

        super()._log_params(run_id, config)
        params = self.infos[config.trial_key]["params"]
        self.client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])


class ChildRunsCallback(MlflowCallback):
    """The study's MLflow writer, with each trial's run under ``parent_run_id`` as ``infos`` describe it."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str,
                 infos: dict[str, dict[str, Any]], *, new_study: bool = False) -> None:
        self.infos = infos
        super().__init__(tracking_uri, experiment_id, parent_run_id, new_study=new_study)

    @property
    def runs(self) -> TrialRuns:
        if self._runs is None:
            self._runs = ChildRuns(client(self.tracking_uri), self.experiment_id, self.parent_run_id, self.infos)
        return self._runs
