"""MLflow tracking: one experiment per study, a parent run, one child run per trial.

Only the Tune driver process writes (DESIGN decision 6), through
:class:`scalestudy.run.callbacks.MlflowCallback`, one ``log_batch`` per epoch report. Trial runs
are found by their stable trial-key tag under the study's parent run before one is created, and
steps already logged are skipped, so a resumed study appends to the same runs without
duplicates; a history carried in a resumed trial's first report fills any gap left by a driver
that died between a checkpoint and its log call. Every name written comes from
:mod:`scalestudy.trial.record`.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import time
from pathlib import Path
from typing import Any

from scalestudy import __version__
from scalestudy.endpoints import answers, redact_uri
from scalestudy.trial import record
from scalestudy.trial.config import TrialConfig
from scalestudy.trial.failure import TrialFailure

log = logging.getLogger(__name__)
MAX_TAG_CHARS = 5000  # MLflow keeps at most 8000 characters of a tag's value


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def client(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def ensure_experiment(mlflow_client, name: str) -> str:
    """Create the study's experiment if needed (before any trial: parallel creation races)."""
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is None:
        return mlflow_client.create_experiment(name, tags={record.EXPERIMENT_KIND_TAG: record.EXPERIMENT_KIND})
    if experiment.tags.get(record.EXPERIMENT_KIND_TAG) != record.EXPERIMENT_KIND:
        mlflow_client.set_experiment_tag(experiment.experiment_id, record.EXPERIMENT_KIND_TAG, record.EXPERIMENT_KIND)
    return experiment.experiment_id


def start_study_run(mlflow_client, experiment_id: str, spec, planned_trials: int) -> str:
    """The study's parent run, with the resolved spec and provenance."""
    from mlflow.entities import Param, RunTag

    tags = {**record.study_tags(spec, __version__, git_commit()), record.PLANNED_TAG: str(planned_trials)}
    run = mlflow_client.create_run(experiment_id, tags=tags, run_name=tags[record.RUN_NAME_TAG])
    params = record.study_params(spec, planned_trials)
    mlflow_client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()],
                            tags=[RunTag(k, v) for k, v in tags.items()])
    mlflow_client.log_text(run.info.run_id, spec.to_yaml(), "spec.yaml")
    return run.info.run_id


def finish_study_run(mlflow_client, parent_run_id: str, tracking_uri: str | None = None,
                     status: str = "FINISHED") -> bool:
    """Close the study's parent run; a server that does not answer only gets a warning.

    With ``tracking_uri``, a quick probe first spares the MLflow client's retries (seconds)
    when the server is down; ``scalestudy sync STUDY`` closes the run later.
    """
    try:
        if tracking_uri is not None and not answers(tracking_uri):
            raise ConnectionError(f"{redact_uri(tracking_uri)} does not answer")
        mlflow_client.set_terminated(parent_run_id, status)
        return True
    except Exception as error:  # noqa: BLE001 - the study's results are safe in Ray storage
        log.warning("could not close the study's MLflow run (%s); run `scalestudy sync STUDY` once the "
                    "server answers", str(error).splitlines()[0][:200])
        return False


def report_of(result: dict[str, Any], timestamp: float | None = None) -> dict[str, float]:
    """The tracked part of one epoch report (a Tune result or a history entry)."""
    report = {k: v for k, v in result.items() if record.is_tracked(k)}
    stamp = result.get(record.TIMESTAMP_KEY, timestamp)
    if stamp is not None:
        report[record.TIMESTAMP_KEY] = stamp
    return report


def reports_of(result: dict[str, Any]) -> list[dict[str, float]]:
    """A Tune result's epoch report plus any history it carries (a resumed trial's first report)."""
    history = json.loads(result[record.HISTORY_KEY]) if result.get(record.HISTORY_KEY) else []
    stamp = result.get(record.TIMESTAMP_KEY)
    return [report_of(entry, stamp) for entry in history] + [report_of(result)]


def ui_command(tracking_uri: str) -> str:
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {tracking_uri}"
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix):
        path = Path(tracking_uri[len(prefix):])
        if path.is_absolute() and path.parent == Path.cwd():
            tracking_uri = prefix + path.name  # the short form, when run from the same folder
    return f"mlflow ui --backend-store-uri {tracking_uri}"


def ui_link(tracking_uri: str, experiment_id: str) -> str:
    base = tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    return f"{base}/#/experiments/{experiment_id}?workflowType=machine_learning"


class TrialRuns:
    """Finds or creates the MLflow run of each trial under the study's parent run."""

    def __init__(self, mlflow_client, experiment_id: str, parent_run_id: str) -> None:
        self.client = mlflow_client
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self._runs: dict[str, str] = {}
        self._last_step: dict[str, int] = {}
        self._state: dict[str, tuple[str, str | None]] = {}  # run id → (run status, status tag)
        self.created: set[str] = set()  # trial keys this object created a run for

    def run_for(self, config: TrialConfig, reopen: bool = True, search: bool = True) -> str:
        """The trial's run id; found by trial key, else created. ``reopen`` marks a found closed run RUNNING.

        ``search=False`` skips the lookup: only for a new study whose every write so far succeeded,
        where no earlier run of the key can exist.
        """
        key = config.trial_key
        if key in self._runs:
            return self._runs[key]
        found = search and self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{record.PARENT_TAG}` = '{self.parent_run_id}' and tags.`{record.KEY_TAG}` = '{key}'",
            max_results=1,
        )
        if found:
            run = found[0]
            run_id = run.info.run_id
            if not run.data.params:  # a driver killed between creating the run and logging its params
                self._log_params(run_id, config)
            history = self.client.get_metric_history(run_id, "epoch")
            self._last_step[run_id] = max((m.step for m in history), default=0)
            self._state[run_id] = (run.info.status, run.data.tags.get(record.STATUS_TAG))
            if reopen and run.info.status != "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
                status = run.data.tags.get(record.STATUS_TAG)
                if status == record.INTERRUPTED:  # its study was interrupted: it runs again
                    status = record.RUNNING
                    self.client.set_tag(run_id, record.STATUS_TAG, status)
                self._state[run_id] = ("RUNNING", status)
        else:
            run_id = self._create(config)
            self._last_step[run_id] = 0
            self._state[run_id] = ("RUNNING", record.RUNNING)
            self.created.add(key)
        self._runs[key] = run_id
        return run_id

    def _create(self, config: TrialConfig) -> str:
        tags = {record.PARENT_TAG: self.parent_run_id, record.ROLE_TAG: record.TRIAL_ROLE,
                record.KEY_TAG: config.trial_key, record.STATUS_TAG: record.RUNNING,
                record.SECTION_TAG: config.section}
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=config.run_name)
        self._log_params(run.info.run_id, config)
        return run.info.run_id

    def _log_params(self, run_id: str, config: TrialConfig) -> None:
        from mlflow.entities import Param

        params = record.trial_params(config.to_dict())
        self.client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])

    def log_epochs(self, run_id: str, reports: list[dict[str, Any]], tags: dict[str, str] | None = None) -> int:
        """Log reports whose epoch is past the last one logged, and ``tags``, in one log_batch call;
        returns points logged."""
        from mlflow.entities import Metric, RunTag

        last = self._last_step.get(run_id, 0)
        now = time.time()
        metrics = []
        for report in sorted(reports, key=lambda r: r["epoch"]):
            step = int(report["epoch"])
            if step <= last:
                continue
            last = step
            stamp = int(float(report.get(record.TIMESTAMP_KEY) or now) * 1000)
            metrics.extend(Metric(key, _finite_or_nan(value), stamp, step)
                           for key, value in report.items() if record.is_tracked(key))
        if metrics or tags:
            self.client.log_batch(run_id, metrics=metrics, tags=[RunTag(k, v) for k, v in (tags or {}).items()])
            self._last_step[run_id] = last
        return len(metrics)

    def finish(self, run_id: str, status: str, reports: list[dict[str, Any]] = (),
               failure: TrialFailure | None = None) -> bool:
        """Log what is left of ``reports``, tag the trial's status (and a failed trial's reason; its traceback
        becomes the artifact error.txt) and close its run (the tags ride in the same log_batch); nothing to
        close (False) when it already is."""
        run_status = "FAILED" if status == record.ERROR else "FINISHED"
        if self._state.get(run_id) == (run_status, status):
            self.log_epochs(run_id, list(reports))
            return False
        tags = {record.STATUS_TAG: status}
        if failure is not None:
            tags[record.ERROR_REASON_TAG] = failure.reason()[:MAX_TAG_CHARS]
            self.client.log_text(run_id, failure.traceback or failure.reason(), record.ERROR_ARTIFACT)
        self.log_epochs(run_id, list(reports), tags=tags)
        self.client.set_terminated(run_id, run_status)
        self._state[run_id] = (run_status, status)
        return True


def _finite_or_nan(value: Any) -> float:
    value = float(value)
    return value if math.isfinite(value) else math.nan
