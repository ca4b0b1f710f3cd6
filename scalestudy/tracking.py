"""MLflow tracking: one experiment per study, a parent run, one child run per trial.

Only the Tune driver process writes (DESIGN decision 6), through
``scalestudy.callbacks.MlflowCallback``, one ``log_batch`` per epoch report. Trial runs are
found by their stable ``scalestudy.trial_key`` tag under the study's parent run before
one is created, and steps already logged are skipped, so a resumed study appends to
the same runs without duplicates; a history carried in a resumed trial's first report
fills any gap left by a driver that died between a checkpoint and its log call.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

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
# Logged when the spec's diagnostics ask for them (see EpochReport.extras).
DIAGNOSTIC_KEYS = ("gradient_noise_scale", "updates_to_target", "examples_to_target", "sharpness",
                   "sharpness_subspace")
LOGGED_KEYS = METRIC_KEYS + DIAGNOSTIC_KEYS
HISTORY_KEY = "history_json"
# Set on a restored finished trial's re-announcement of its last epoch (nothing was retrained).
REPLAYED_KEY = "replayed"
# Tune stamps every result (int seconds); metric timestamps derive from it, so the live
# callback and ``scalestudy sync`` write identical points (MLflow drops exact repeats).
TIMESTAMP_KEY = "timestamp"


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class TrackingError(RuntimeError):
    """The tracking server cannot be used; ``str`` is one line."""


def redact_uri(uri: str) -> str:
    """``scheme://user:secret@host`` → ``scheme://user:***@host``: URIs end up in logs and files.

    A user name alone is kept for databases (``postgresql://user@host/db``: the password is in
    PGPASSWORD), and hidden elsewhere (``https://TOKEN@host`` is a secret)."""
    def hide(match: re.Match) -> str:
        scheme, user, password = match.group(1), match.group(2), match.group(3)
        if password is not None:
            return f"{scheme}://{user}:***@"
        return match.group(0) if scheme.split("+")[0] in ("postgresql", "mysql", "mssql") else f"{scheme}://***@"

    return re.sub(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/@:\s]*)(?::([^/@\s]*))?@", hide, uri)


def credentials_to_env(uri: str) -> str:
    """``http://user:secret@host`` → ``http://host``, with MLFLOW_TRACKING_USERNAME/PASSWORD set from it;
    ``postgresql://user:secret@host/db`` → ``postgresql://user@host/db`` with PGPASSWORD set.

    MLflow reads basic-auth credentials from the environment on every request. A URI that
    carries them would otherwise end up in files (the tracking callback Tune pickles into
    Ray storage, the study file) and messages; call this before the URI goes anywhere.
    """
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.scheme.split("+")[0] == "postgresql" and parts.password is not None:
        # libpq (psycopg and psycopg2) reads the password from PGPASSWORD; the user stays in the URI.
        os.environ["PGPASSWORD"] = unquote(parts.password)
        user, host = parts.netloc.rsplit("@", 1)
        return urlunsplit(parts._replace(netloc=f"{user.split(':', 1)[0]}@{host}"))
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return uri
    if parts.username:
        os.environ["MLFLOW_TRACKING_USERNAME"] = unquote(parts.username)
    if parts.password is not None:
        os.environ["MLFLOW_TRACKING_PASSWORD"] = unquote(parts.password)
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def absolute_uri(uri: str) -> str:
    """``sqlite:///mlflow.db`` → ``sqlite:////abs/path/mlflow.db``: resume and sync may run elsewhere."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri[len(prefix):]).resolve())
    return uri


def check_reachable(tracking_uri: str, timeout_s: float = 10.0) -> None:
    """Fail fast, before any trial starts, when an MLflow server cannot be used."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    shown = redact_uri(tracking_uri)
    try:
        urllib.request.urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=timeout_s).close()
    except urllib.error.HTTPError:
        pass  # it answered; authentication is checked below
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise TrackingError(f"MLflow tracking server {shown} is unreachable ({reason}); "
                            "start it or pass another --tracking-uri") from None
    from mlflow.exceptions import MlflowException

    try:
        client(tracking_uri).search_experiments(max_results=1)
    except MlflowException as error:
        text = str(error).splitlines()[0][:200]
        if "401" in text or "403" in text or "nauthorized" in text or "ermission" in text:
            raise TrackingError(f"MLflow tracking server {shown} rejected the credentials; set "
                                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD") from None
        raise TrackingError(f"MLflow tracking server {shown} answered with an error: {text}") from None


def answers(tracking_uri: str, timeout_s: float = 3.0) -> bool:
    """Whether an MLflow server answers at all (one quick try, no retries); True for non-HTTP stores."""
    if not tracking_uri.startswith(("http://", "https://")):
        return True
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=timeout_s).close()
    except urllib.error.HTTPError:
        return True  # it answered (an auth proxy may guard /health)
    except (OSError, ValueError):
        return False
    return True


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
    report = {k: result[k] for k in LOGGED_KEYS if k in result}
    stamp = result.get(TIMESTAMP_KEY, timestamp)
    if stamp is not None:
        report[TIMESTAMP_KEY] = stamp
    return report


def reports_of(result: dict[str, Any]) -> list[dict[str, float]]:
    """A Tune result's epoch report plus any history it carries (a resumed trial's first report)."""
    history = json.loads(result[HISTORY_KEY]) if result.get(HISTORY_KEY) else []
    stamp = result.get(TIMESTAMP_KEY)
    return [report_of(entry, stamp) for entry in history] + [report_of(result)]


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

    def run_for(self, config: dict[str, Any], reopen: bool = True, search: bool = True) -> str:
        """The trial's run id; found by trial key, else created. ``reopen`` marks a found closed run RUNNING.

        ``search=False`` skips the lookup: only for a new study whose every write so far succeeded,
        where no earlier run of the key can exist.
        """
        key = config["trial_key"]
        if key in self._runs:
            return self._runs[key]
        found = search and self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{PARENT_TAG}` = '{self.parent_run_id}' and tags.`{KEY_TAG}` = '{key}'",
            max_results=1,
        )
        if found:
            run = found[0]
            run_id = run.info.run_id
            history = self.client.get_metric_history(run_id, "epoch")
            self._last_step[run_id] = max((m.step for m in history), default=0)
            self._state[run_id] = (run.info.status, run.data.tags.get(STATUS_TAG))
            if reopen and run.info.status != "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
                self._state[run_id] = ("RUNNING", run.data.tags.get(STATUS_TAG))
        else:
            run_id = self._create(config)
            self._last_step[run_id] = 0
            self._state[run_id] = ("RUNNING", "running")
            self.created.add(key)
        self._runs[key] = run_id
        return run_id

    def last_step(self, run_id: str) -> int:
        return self._last_step.get(run_id, 0)

    def _create(self, config: dict[str, Any]) -> str:
        from mlflow.entities import Param

        from scalestudy.train.config import trial_params

        tags = {PARENT_TAG: self.parent_run_id, ROLE_TAG: "trial", KEY_TAG: config["trial_key"],
                STATUS_TAG: "running", "scalestudy.section": config["section"]}
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=config["run_name"])
        params = trial_params(config)
        self.client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
        return run.info.run_id

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
            stamp = int(float(report.get(TIMESTAMP_KEY) or now) * 1000)
            metrics.extend(Metric(key, _finite_or_nan(report[key]), stamp, step)
                           for key in LOGGED_KEYS if key in report)
        if metrics or tags:
            self.client.log_batch(run_id, metrics=metrics, tags=[RunTag(k, v) for k, v in (tags or {}).items()])
            self._last_step[run_id] = last
        return len(metrics)

    def finish(self, run_id: str, status: str, reports: list[dict[str, Any]] = ()) -> bool:
        """Log what is left of ``reports``, tag the trial's status and close its run (the tag rides in
        the same log_batch); nothing to close (False) when it already is."""
        run_status = "FAILED" if status == "error" else "FINISHED"
        if self._state.get(run_id) == (run_status, status):
            self.log_epochs(run_id, list(reports))
            return False
        self.log_epochs(run_id, list(reports), tags={STATUS_TAG: status})
        self.client.set_terminated(run_id, run_status)
        self._state[run_id] = (run_status, status)
        return True


def _finite_or_nan(value: Any) -> float:
    value = float(value)
    return value if math.isfinite(value) else math.nan
