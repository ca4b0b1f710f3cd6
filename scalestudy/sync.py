"""``scalestudy sync STUDY``: back-fill MLflow from a study's Ray storage.

Tune keeps every trial's reports in ``<storage>/<run>/<trial>/result.json`` (one JSON
object per line). After an MLflow outage, or a driver that died before its tracking
callback could write, this replays them through the same :class:`TrialRuns` logic the
live callback uses: runs are found by trial key, and only epochs past the last one
logged are written, so syncing twice adds nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from scalestudy.study import StudyError, StudyRun, _filesystem, find_latest_run
from scalestudy.tracking import (
    ROLE_TAG,
    TrackingError,
    TrialRuns,
    check_reachable,
    client,
    credentials_to_env,
    finish_study_run,
    reports_of,
)
from scalestudy.train.config import final_status, trial_ended


@dataclass
class SyncSummary:
    trials: int = 0
    runs_created: int = 0  # trials MLflow had no run for
    points_logged: int = 0
    finished: int = 0  # trial runs closed by this sync (already closed ones are not counted)
    study_closed: bool = False  # the study's parent run was closed by this sync


def _trial_reports(fs, trial_dir: str) -> tuple[dict[str, Any] | None, dict[int, dict[str, Any]]]:
    """The trial's config and its reports by epoch, from result.json (history included)."""
    config, reports = None, {}
    try:
        with fs.open_input_stream(f"{trial_dir}/result.json") as stream:
            lines = stream.read().decode().splitlines()
    except (OSError, FileNotFoundError):
        return None, {}
    for line in lines:
        if not line.strip():
            continue
        try:
            result = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a driver that died mid-write
            continue
        config = config or result.get("config", {}).get("trial")
        if "epoch" not in result:
            continue
        for report in reports_of(result):
            reports[int(report["epoch"])] = report
    return config, reports


def sync_study(study: str, storage_path: str, tracking_uri: str | None = None) -> SyncSummary:
    import pyarrow.fs
    from mlflow.exceptions import MlflowException

    run: StudyRun | None = find_latest_run(storage_path, study)
    if run is None:
        raise StudyError(f"sync: no run of study {study!r} under {storage_path}")
    uri = credentials_to_env(tracking_uri) if tracking_uri else run.tracking_uri
    if "***@" in uri:
        raise StudyError(f"sync: the study's tracking URI was stored without its credentials ({uri}); pass "
                         "--tracking-uri, with MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD set")
    check_reachable(uri)
    fs, root = _filesystem(run.storage_path)
    mlflow_client = client(uri)
    runs = TrialRuns(mlflow_client, run.experiment_id, run.parent_run_id)
    summary = SyncSummary()
    entries = fs.get_file_info(pyarrow.fs.FileSelector(f"{root}/{run.name}"))
    try:
        for entry in sorted(entries, key=lambda e: e.base_name):
            if entry.type != pyarrow.fs.FileType.Directory:
                continue
            config, reports = _trial_reports(fs, entry.path)
            if config is None or not reports:
                continue
            summary.trials += 1
            run_id = runs.run_for(config, reopen=False)
            summary.points_logged += runs.log_epochs(run_id, list(reports.values()))
            last = reports[max(reports)]
            if trial_ended(config, last):
                summary.finished += runs.finish(run_id, final_status(config, last))
        summary.runs_created = len(runs.created)
        parent = mlflow_client.get_run(run.parent_run_id)
        expected = int(parent.data.params.get("trials", -1))
        if expected > 0 and parent.info.status == "RUNNING" and parent.data.tags.get(ROLE_TAG) == "study":
            closed = mlflow_client.search_runs(
                [run.experiment_id], max_results=expected + 1,
                filter_string=f"tags.`mlflow.parentRunId` = '{run.parent_run_id}' and attributes.status != 'RUNNING'")
            if len(closed) >= expected:  # every trial has a closed run: the study is over
                summary.study_closed = finish_study_run(mlflow_client, run.parent_run_id, uri)
    except MlflowException as error:
        raise TrackingError(f"sync: MLflow failed after {summary.trials} trial(s): "
                            f"{str(error).splitlines()[0][:200]}; run sync again (it adds no duplicates)") from None
    return summary
