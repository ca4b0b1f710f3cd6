"""A study's runs in MLflow as a whole (one trial's run is written by :mod:`scalestudy.run.tracking`):
the study's parent runs in its experiment, the state of each of its trials by trial key, and the
parent run's life after it was created: reopened by ``--resume`` and ``--extend`` (which logs the
grown spec), marked KILLED with its unfinished trial runs when the study is interrupted.

Every name comes from :mod:`scalestudy.trial.record`. Only the driver calls these, before the
first trial starts or after the last report was written (DESIGN decision 6: one writer).
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalestudy.endpoints import answers, redact_uri
from scalestudy.run.interrupts import InterruptedStudy
from scalestudy.run.ray_session import environment
from scalestudy.run.storage import StudyRun
from scalestudy.trial.axes import cell_axis_params
from scalestudy.trial.record import (
    ERROR,
    FINISHED_STATUSES,
    INTERRUPTED,
    INTERRUPTED_TAG,
    KEY_TAG,
    OK,
    PARENT_TAG,
    PLANNED_TAG,
    ROLE_TAG,
    RUNNING,
    SPEC_HASH_TAG,
    STATUS_TAG,
    STATUSES,
    STUDY_ROLE,
    STUDY_TAG,
    TRIAL_ROLE,
)

log = logging.getLogger(__name__)

SPEC_ARTIFACT = "spec.yaml"  # the parent run's resolved spec (the grown one, once extended)
# The params that name a trial's cell (everything but ε that an extension may vary), as the record writes them.
CELL_PARAMS = ("section", "dataset_size", "schedule", "schedule_args", "momentum", "batch_size", "seed")
# A run's MLflow status → the trial's status, for runs closed before status tags existed.
_UNTAGGED = {"FINISHED": OK, "FAILED": ERROR, "KILLED": INTERRUPTED, "RUNNING": RUNNING, "SCHEDULED": RUNNING}


@dataclass(frozen=True)
class TrialInStudy:
    """One trial of a study as MLflow has it (its latest run when it has several)."""

    key: str
    run_id: str
    run_name: str
    status: str  # running | interrupted | ok | diverged | stopped | error
    objective: float | None  # the objective's latest value
    start_time: int  # ms
    cell: tuple[str, ...]  # its CELL_PARAMS, then its optimizer axes (scalestudy.trial.axes.cell_axis_params)

    @property
    def ended(self) -> bool:
        return self.status in STATUSES

    @property
    def finished(self) -> bool:
        """Ended as data (ok, diverged, stopped early): never run again."""
        return self.status in FINISHED_STATUSES


def study_parents(client, experiment_name: str, study: str) -> list[Any]:
    """The study's parent runs in its experiment (active ones), oldest first."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return []
    return list(client.search_runs([experiment.experiment_id],
                                   f"tags.`{ROLE_TAG}` = '{STUDY_ROLE}' and tags.`{STUDY_TAG}` = '{study}'",
                                   max_results=1000, order_by=["attributes.start_time ASC"]))


def trial_states(client, experiment_id: str, parent_run_id: str, objective_metric: str) -> dict[str, TrialInStudy]:
    """Every trial of the study by trial key: its run that finished, else its latest."""
    states: dict[str, TrialInStudy] = {}
    for run in _trial_runs(client, experiment_id, parent_run_id):
        tags = run.data.tags
        key = tags.get(KEY_TAG) or run.data.params.get("trial_key")
        if not key:
            continue
        value = run.data.metrics.get(objective_metric)
        state = TrialInStudy(key=key, run_id=run.info.run_id, run_name=tags.get("mlflow.runName", key),
                           status=tags.get(STATUS_TAG) or _UNTAGGED.get(run.info.status, RUNNING),
                           objective=value if value is not None and math.isfinite(value) else None,
                           start_time=run.info.start_time or 0,
                           cell=(*(run.data.params.get(name, "") for name in CELL_PARAMS),
                                 *cell_axis_params(run.data.params)))
        held = states.get(key)
        if held is None or (state.finished, state.start_time) > (held.finished, held.start_time):
            states[key] = state
    return states


def mark_interrupted(client, experiment_id: str, parent_run_id: str) -> int:
    """Close every trial run of the study still RUNNING as KILLED (status ``interrupted``), then the
    parent run (KILLED, tagged ``scalestudy.interrupted``); returns the trial runs closed."""
    closed = 0
    for run in list(_trial_runs(client, experiment_id, parent_run_id, "attributes.status = 'RUNNING'")):
        client.set_tag(run.info.run_id, STATUS_TAG, INTERRUPTED)
        client.set_terminated(run.info.run_id, "KILLED")
        closed += 1
    client.set_tag(parent_run_id, INTERRUPTED_TAG, "true")
    client.set_terminated(parent_run_id, "KILLED")
    return closed


def interrupted_study(client, tracking_uri: str, run: StudyRun, planned: int, objective_metric: str) -> InterruptedStudy:
    """Tell MLflow the study was interrupted (:func:`mark_interrupted`) and count its trials; a store that
    does not answer only gets a warning (``--resume`` reopens the runs either way)."""
    try:
        if not answers(tracking_uri):
            raise ConnectionError(f"{redact_uri(tracking_uri)} does not answer")
        closed = mark_interrupted(client, run.experiment_id, run.parent_run_id)
        states = trial_states(client, run.experiment_id, run.parent_run_id, objective_metric)
        return InterruptedStudy(sum(1 for state in states.values() if state.ended), closed, planned, marked=True)
    except Exception as error:  # noqa: BLE001 - the study's state is safe in Ray storage
        log.warning("could not mark the interrupted study in MLflow (%s)", str(error).splitlines()[0][:200])
        return InterruptedStudy(None, None, planned, marked=False)


def reopen_study_run(client, parent_run_id: str, grown_spec=None, planned: int | None = None) -> None:
    """The study's parent run RUNNING again (``--resume``, ``--extend``), no longer tagged interrupted;
    an extension's grown spec replaces its ``spec.yaml``, spec hash and planned count (the params keep
    the first: MLflow params never change)."""
    client.update_run(parent_run_id, status="RUNNING")
    if INTERRUPTED_TAG in client.get_run(parent_run_id).data.tags:
        client.delete_tag(parent_run_id, INTERRUPTED_TAG)
    if grown_spec is not None:
        client.log_text(parent_run_id, grown_spec.to_yaml(), SPEC_ARTIFACT)
        client.set_tag(parent_run_id, SPEC_HASH_TAG, grown_spec.spec_hash())
    if planned is not None:
        client.set_tag(parent_run_id, PLANNED_TAG, str(planned))


def stored_spec(client, parent_run_id: str) -> str | None:
    """The study's spec as its parent run holds it (YAML), None when it cannot be read."""
    quiet = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}  # MLflow draws a download bar on stderr
    with tempfile.TemporaryDirectory() as folder, environment(quiet, keep_set=True):
        try:
            return Path(client.download_artifacts(parent_run_id, SPEC_ARTIFACT, folder)).read_text()
        except Exception:  # noqa: BLE001 - missing or unreadable: the caller says what it cannot check
            return None


def _trial_runs(client, experiment_id: str, parent_run_id: str, extra: str = ""):
    query = f"tags.`{PARENT_TAG}` = '{parent_run_id}' and tags.`{ROLE_TAG}` = '{TRIAL_ROLE}'"
    token = None
    while True:
        page = client.search_runs([experiment_id], query + (f" and {extra}" if extra else ""),
                                  max_results=10_000, page_token=token)
        yield from page
        token = page.token
        if not token:
            return
