"""``scalestudy sync STUDY``: back-fill MLflow from a study's Ray storage.

Tune keeps every trial's reports in its folder's ``result.json`` (one JSON object per line; see
:mod:`scalestudy.run.storage`). After an MLflow outage, or a driver that died before its
tracking callback could write, this replays them through the same :class:`TrialRuns` logic the
live callback uses: runs are found by trial key, and only epochs past the last one logged are
written, so syncing twice adds nothing.

A trial has ended when Tune marked its last result done (it finished, diverged, or the
search's early stopping stopped it), or Tune's experiment snapshot says it terminated or errored; its run
is then closed with the status rule of :func:`scalestudy.trial.record.trial_status`. The study's
parent run is closed once every trial the study has has ended (an adaptive search may end with
fewer trials than the upper bound its parent run logged). Trials still running or pending, as
after a driver was killed, stay open: ``scalestudy run SPEC --resume`` continues them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from scalestudy.endpoints import StudyError, TrackingError, check_reachable, credentials_to_env
from scalestudy.run.storage import StudyRun, find_latest_run, read_results, trial_config, trial_folders, tune_statuses
from scalestudy.run.tracking import TrialRuns, client, finish_study_run, reports_of
from scalestudy.trial.config import TrialConfig
from scalestudy.trial.failure import TrialFailure, failure_from
from scalestudy.trial.record import ERROR, ROLE_TAG, STOPPED, STUDY_ROLE, trial_status

ENDED_IN_TUNE = ("TERMINATED", "ERROR")
log = logging.getLogger(__name__)


@dataclass
class SyncSummary:
    trials: int = 0  # trials found in the storage
    runs_created: int = 0  # trials MLflow had no run for
    points_logged: int = 0
    finished: int = 0  # trial runs closed by this sync (already closed ones are not counted)
    study_closed: bool = False  # the study's parent run was closed by this sync


def sync_study(study: str, storage_path: str, tracking_uri: str | None = None) -> SyncSummary:
    from mlflow.exceptions import MlflowException

    run: StudyRun | None = find_latest_run(storage_path, study)
    if run is None:
        raise StudyError(f"sync: no run of study {study!r} under {storage_path}")
    uri = credentials_to_env(tracking_uri) if tracking_uri else run.tracking_uri
    if "***@" in uri:
        raise StudyError(f"sync: the study's tracking URI was stored without its credentials ({uri}); pass "
                         "--tracking-uri, with MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD set")
    check_reachable(uri)
    mlflow_client = client(uri)
    runs = TrialRuns(mlflow_client, run.experiment_id, run.parent_run_id)
    summary = SyncSummary()
    try:
        all_ended = _sync_trials(run, runs, summary)
        summary.runs_created = len(runs.created)
        parent = mlflow_client.get_run(run.parent_run_id)
        if all_ended and parent.info.status == "RUNNING" and parent.data.tags.get(ROLE_TAG) == STUDY_ROLE:
            summary.study_closed = finish_study_run(mlflow_client, run.parent_run_id, uri)
    except MlflowException as error:
        raise TrackingError(f"sync: MLflow failed after {summary.trials} trial(s): "
                            f"{str(error).splitlines()[0][:200]}; run sync again (it adds no duplicates)") from None
    return summary


def ended_in_tune(run: StudyRun, experiment: str | None = None) -> set[str]:
    """The trial folders Tune's newest snapshot of ``run`` (or of its sub-experiment ``experiment``) marks
    ended: taken before a resume, the trials Tune will not run again."""
    return {name for name, status in tune_statuses(_within(run, experiment)).items() if status in ENDED_IN_TUNE}


def backfill(run: StudyRun, runs: TrialRuns, trials: set[str], experiment: str | None = None) -> SyncSummary:
    """After ``--resume``: what MLflow lacks of ``trials`` (folders of ``run``'s Tune experiment, or of its
    sub-experiment ``experiment``: a branched study's branches or comparison), written through ``runs``.

    Tune restores callbacks as they were created, not as they were when the driver died, so a trial
    that had ended just before the kill (its epochs or its end not yet written) gets no event again:
    its run would stay incomplete, or absent. Pass the trials :func:`ended_in_tune` found before the
    resume: the live callback writes the others, and its writer may still be draining them."""
    from mlflow.exceptions import MlflowException

    summary = SyncSummary()
    try:
        _sync_trials(_within(run, experiment), runs, summary, only=trials)
    except (MlflowException, OSError) as error:  # the study's results are safe in Ray storage
        log.warning("MLflow was not back-filled after the resume (%s); `scalestudy sync %s` does it",
                    str(error).strip().splitlines()[0][:200], run.name)
    summary.runs_created = len(runs.created)
    return summary


def _within(run: StudyRun, experiment: str | None) -> StudyRun:
    return run if experiment is None else replace(run, name=f"{run.name}/{experiment}")


def _sync_trials(run: StudyRun, runs: TrialRuns, summary: SyncSummary, only: set[str] | None = None) -> bool:
    """Log what MLflow lacks of every trial (of those folders in ``only``, when given) and close the runs
    of those that ended; True when every trial of the study has ended (and there is at least one)."""
    fs, _ = run.folder()
    in_tune = tune_statuses(run)
    folders = trial_folders(run)
    names = {Path(folder).name for folder in folders}
    # Trials Tune knows that have no folder yet (pending) have not ended either.
    all_ended = bool(folders) and all(status in ENDED_IN_TUNE for name, status in in_tune.items()
                                      if name not in names)
    for folder in folders:
        name = Path(folder).name
        if only is not None and name not in only:
            continue
        wire, results = read_results(fs, folder)
        if wire is None:
            try:
                wire = trial_config(run, name)
            except (OSError, KeyError, ValueError):
                continue  # not a trial's folder
        config = TrialConfig.from_dict(wire)
        summary.trials += 1
        reports = {}
        for result in results:
            if "epoch" in result:
                for report in reports_of(result):
                    reports[int(report["epoch"])] = report
        last = reports[max(reports)] if reports else None
        status = trial_status(config.workload, last, errored=in_tune.get(name) == "ERROR")
        ended = (bool(results and results[-1].get("done")) or in_tune.get(name) in ENDED_IN_TUNE
                 or (last is not None and status != STOPPED))
        all_ended = all_ended and ended
        if not reports and not ended:
            continue
        run_id = runs.run_for(config, reopen=False)
        summary.points_logged += runs.log_epochs(run_id, list(reports.values()))
        if ended:
            summary.finished += runs.finish(run_id, status, failure=_stored_failure(fs, folder) if status == ERROR
                                            else None)
    return all_ended


def _stored_failure(fs, folder: str) -> TrialFailure:
    """Why a trial failed, from the error Tune stored in its folder (pickled, else as text)."""
    from ray import cloudpickle
    from ray.tune.result import EXPR_ERROR_FILE, EXPR_ERROR_PICKLE_FILE

    for name, read in ((EXPR_ERROR_PICKLE_FILE, cloudpickle.loads), (EXPR_ERROR_FILE, bytes.decode)):
        try:
            with fs.open_input_stream(f"{folder}/{name}") as stream:
                return failure_from(read(stream.readall()))
        except Exception:  # noqa: BLE001 - missing or unreadable: try the next, else no reason
            continue
    return failure_from(None)
