"""MLflow tracking: one experiment per study, a parent run, one child run per trial.

Only the Tune driver process writes (DESIGN decision 6): :class:`MlflowCallback` is a
Tune callback that logs each epoch report with a single ``log_batch``. Trial runs are
found by their stable ``scalestudy.trial_key`` tag under the study's parent run before
one is created, and steps already logged are skipped, so a resumed study appends to
the same runs without duplicates; a history carried in a resumed trial's first report
fills any gap left by a driver that died between a checkpoint and its log call.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

from scalestudy import __version__

log = logging.getLogger(__name__)

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
PARENT_TAG = "mlflow.parentRunId"
ROLE_TAG = "scalestudy.role"
KEY_TAG = "scalestudy.trial_key"
STATUS_TAG = "scalestudy.status"
# Per-epoch metrics (DESIGN decision 2) plus the loop's running training loss.
METRIC_KEYS = (
    "epoch", "updates", "examples_seen", "batch_size", "lr", "momentum", "effective_lr",
    "noise_scale", "train_loss", "train_acc", "test_loss", "test_acc", "gen_gap",
    "running_loss", "epoch_seconds", "diverged",
)
HISTORY_KEY = "history_json"


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
        experiment_id = mlflow_client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: "custom_model_development"})
    else:
        experiment_id = experiment.experiment_id
        if experiment.tags.get(EXPERIMENT_KIND_TAG) != "custom_model_development":
            mlflow_client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, "custom_model_development")
    return experiment_id


def start_study_run(mlflow_client, experiment_id: str, spec, n_trials: int) -> str:
    """The study's parent run, with the resolved spec and provenance."""
    from mlflow.entities import Param, RunTag

    tags = {ROLE_TAG: "study", "scalestudy.study": spec.name, "scalestudy.spec_hash": spec.spec_hash(),
            "scalestudy.version": __version__, "mlflow.runName": f"study {spec.name}"}
    commit = git_commit()
    if commit:
        tags["scalestudy.git_commit"] = commit
    run = mlflow_client.create_run(experiment_id, tags=tags, run_name=f"study {spec.name}")
    params = {"trials": n_trials, "dataset": spec.workload.dataset, "model": spec.workload.model,
              "epochs": spec.workload.epochs, "ghost_batch_size": spec.workload.ghost_batch_size,
              "workers_per_trial": spec.resources.workers_per_trial, "spec_hash": spec.spec_hash()}
    mlflow_client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()],
                            tags=[RunTag(k, v) for k, v in tags.items()])
    mlflow_client.log_text(run.info.run_id, spec.to_yaml(), "spec.yaml")
    return run.info.run_id


def ui_command(tracking_uri: str) -> str:
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {tracking_uri}"
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
        self.created: set[str] = set()  # trial keys this object created a run for

    def run_for(self, config: dict[str, Any]) -> str:
        key = config["trial_key"]
        if key in self._runs:
            return self._runs[key]
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{PARENT_TAG}` = '{self.parent_run_id}' and tags.`{KEY_TAG}` = '{key}'",
            max_results=1,
        )
        if found:
            run_id = found[0].info.run_id
            history = self.client.get_metric_history(run_id, "epoch")
            self._last_step[run_id] = max((m.step for m in history), default=0)
            if found[0].info.status != "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
        else:
            run_id = self._create(config)
            self._last_step[run_id] = 0
            self.created.add(key)
        self._runs[key] = run_id
        return run_id

    def _create(self, config: dict[str, Any]) -> str:
        from mlflow.entities import Param, RunTag

        from scalestudy.train.config import trial_params

        tags = {PARENT_TAG: self.parent_run_id, ROLE_TAG: "trial", KEY_TAG: config["trial_key"],
                STATUS_TAG: "running", "scalestudy.section": config["section"]}
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=config["run_name"])
        params = trial_params(config)
        self.client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()],
                              tags=[RunTag(k, v) for k, v in tags.items()])
        return run.info.run_id

    def log_epochs(self, run_id: str, reports: list[dict[str, Any]]) -> int:
        """Log reports whose epoch is past the last one logged; one log_batch call."""
        from mlflow.entities import Metric

        last = self._last_step.get(run_id, 0)
        now = int(time.time() * 1000)
        metrics = []
        for report in sorted(reports, key=lambda r: r["epoch"]):
            step = int(report["epoch"])
            if step <= last:
                continue
            last = step
            metrics.extend(Metric(key, _finite_or_nan(report[key]), now, step)
                           for key in METRIC_KEYS if key in report)
        if metrics:
            self.client.log_batch(run_id, metrics=metrics)
            self._last_step[run_id] = last
        return len(metrics)

    def finish(self, run_id: str, status: str) -> None:
        self.client.set_tag(run_id, STATUS_TAG, status)
        self.client.set_terminated(run_id, "FAILED" if status == "error" else "FINISHED")


def _finite_or_nan(value: Any) -> float:
    value = float(value)
    return value if math.isfinite(value) else math.nan


class MlflowCallback(Callback):
    """Tune callback: writes every trial report to the trial's MLflow run (driver only).

    It keeps each trial's reports (a few floats per epoch) and logs every epoch past the
    last one MLflow has, so an MLflow outage leaves no gap once the server is back; an
    error talking to MLflow is reported once and never stops the study (results stay in
    Ray storage, and ``scalestudy sync`` back-fills a study whose driver is gone).

    It holds only names, ids and reports, so Tune can pickle it with the experiment and a
    restored Tuner gets it back; the MLflow client is created lazily.
    """

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self._runs: TrialRuns | None = None
        self._reports: dict[str, dict[int, dict[str, float]]] = {}
        self.failures = 0

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_runs": None}

    @property
    def runs(self) -> TrialRuns:
        if self._runs is None:
            self._runs = TrialRuns(client(self.tracking_uri), self.experiment_id, self.parent_run_id)
        return self._runs

    def _guard(self, action, *args) -> None:
        try:
            action(*args)
        except Exception as error:  # noqa: BLE001 - tracking must never stop training
            self.failures += 1
            self._runs = None  # re-read runs and last logged steps once MLflow answers again
            if self.failures == 1 or self.failures % 100 == 0:
                log.warning("MLflow logging failed (%d so far; the study goes on, results stay in Ray "
                            "storage): %s", self.failures, str(error).splitlines()[0][:200])

    def _log(self, config: dict[str, Any]) -> None:
        reports = self._reports.get(config["trial_key"], {})
        self.runs.log_epochs(self.runs.run_for(config), list(reports.values()))

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._guard(self.runs.run_for, trial.config["trial"])

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if "epoch" not in result:
            return
        config = trial.config["trial"]
        reports = self._reports.setdefault(config["trial_key"], {})
        for report in (json.loads(result[HISTORY_KEY]) if result.get(HISTORY_KEY) else []) + [result]:
            reports[int(report["epoch"])] = {k: report[k] for k in METRIC_KEYS if k in report}
        self._guard(self._log, config)

    def _finish(self, trial, status: str) -> None:
        config = trial.config["trial"]
        self._log(config)
        self.runs.finish(self.runs.run_for(config), status)
        self._reports.pop(config["trial_key"], None)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        status = "diverged" if (trial.last_result or {}).get("diverged") else "ok"
        self._guard(self._finish, trial, status)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._guard(self._finish, trial, "error")
