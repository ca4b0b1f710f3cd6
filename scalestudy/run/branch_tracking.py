"""MLflow runs of a branched study's branches: each a child of the base trial's run
(``mlflow.parentRunId``), found by its trial key under it before one is created (so ``--resume``
appends to it), with its origin's tags and params (:class:`~scalestudy.trial.branch.BranchOrigin`).
The writing itself is the study's :class:`~scalestudy.run.callbacks.MlflowCallback`."""

from __future__ import annotations

from typing import Any

from scalestudy.run.callbacks import MlflowCallback
from scalestudy.run.tracking import TrialRuns, client
from scalestudy.trial import record
from scalestudy.trial.branch import BranchOrigin, branch_run_name
from scalestudy.trial.config import TrialConfig


class BranchRuns(TrialRuns):
    """The branches' runs under the base's run (``parent_run_id``)."""

    def __init__(self, mlflow_client, experiment_id: str, parent_run_id: str,
                 origins: dict[str, dict[str, Any]]) -> None:
        super().__init__(mlflow_client, experiment_id, parent_run_id)
        self.origins = origins

    def _create(self, config: TrialConfig) -> str:
        origin = BranchOrigin.from_dict(self.origins[config.trial_key])
        tags = {record.PARENT_TAG: self.parent_run_id, record.KEY_TAG: config.trial_key,
                record.STATUS_TAG: record.RUNNING, record.SECTION_TAG: config.section, **origin.tags()}
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=branch_run_name(config, origin))
        self._log_params(run.info.run_id, config)
        return run.info.run_id

    def _log_params(self, run_id: str, config: TrialConfig) -> None:
        from mlflow.entities import Param

        super()._log_params(run_id, config)
        origin = BranchOrigin.from_dict(self.origins[config.trial_key])
        self.client.log_batch(run_id, params=[Param(k, v) for k, v in origin.params().items()])


class BranchCallback(MlflowCallback):
    """The study's MLflow writer, with the branches' runs under the base's run."""

    def __init__(self, tracking_uri: str, experiment_id: str, base_run_id: str,
                 origins: dict[str, dict[str, Any]], *, new_study: bool = False) -> None:
        self.origins = origins
        super().__init__(tracking_uri, experiment_id, base_run_id, new_study=new_study)

    @property
    def runs(self) -> TrialRuns:
        if self._runs is None:
            self._runs = BranchRuns(client(self.tracking_uri), self.experiment_id, self.parent_run_id, self.origins)
        return self._runs
