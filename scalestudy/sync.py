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
from scalestudy.tracking import HISTORY_KEY, METRIC_KEYS, TrialRuns, client


@dataclass
class SyncSummary:
    trials: int = 0
    runs_created: int = 0  # trials MLflow had no run for
    points_logged: int = 0
    finished: int = 0


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
        result = json.loads(line)
        config = config or result.get("config", {}).get("trial")
        if "epoch" not in result:
            continue
        for report in (json.loads(result[HISTORY_KEY]) if result.get(HISTORY_KEY) else []) + [result]:
            reports[int(report["epoch"])] = {k: report[k] for k in METRIC_KEYS if k in report}
    return config, reports


def sync_study(study: str, storage_path: str, tracking_uri: str | None = None) -> SyncSummary:
    import pyarrow.fs

    run: StudyRun | None = find_latest_run(storage_path, study)
    if run is None:
        raise StudyError(f"sync: no run of study {study!r} under {storage_path}")
    uri = tracking_uri or run.tracking_uri
    fs, root = _filesystem(run.storage_path)
    runs = TrialRuns(client(uri), run.experiment_id, run.parent_run_id)
    summary = SyncSummary()
    created_before = len(runs.created)
    entries = fs.get_file_info(pyarrow.fs.FileSelector(f"{root}/{run.name}"))
    for entry in sorted(entries, key=lambda e: e.base_name):
        if entry.type != pyarrow.fs.FileType.Directory:
            continue
        config, reports = _trial_reports(fs, entry.path)
        if config is None or not reports:
            continue
        summary.trials += 1
        run_id = runs.run_for(config)
        summary.points_logged += runs.log_epochs(run_id, list(reports.values()))
        last = reports[max(reports)]
        if last.get("diverged") or last["epoch"] >= config["epochs"]:
            runs.finish(run_id, "diverged" if last.get("diverged") else "ok")
            summary.finished += 1
    summary.runs_created = len(runs.created) - created_before
    return summary
