"""Helpers for fault tests: run the real CLI, watch its MLflow store, read Tune's files."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from scalestudy.trial.record import HISTORY_KEY, METRIC_KEYS


def start_cli(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    """Start ``scalestudy ARGS`` in its own session so the test can kill it like a crash."""
    out = log.open("w")
    return subprocess.Popen([sys.executable, "-m", "scalestudy.cli", *args], cwd=cwd, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)


def run_cli(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scalestudy.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def epochs_logged(db: Path) -> dict[str, int]:
    """run id → last epoch logged, read straight from the SQLite store (cheap to poll)."""
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            rows = conn.execute("select run_uuid, max(step) from metrics where key = 'epoch' group by run_uuid")
            return {run: int(step) for run, step in rows}
    except sqlite3.Error:
        return {}


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def kill_hard(proc: subprocess.Popen) -> None:
    """SIGKILL the driver alone (its Ray processes are left to notice, as after a crash)."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)


def trial_histories(uri: str, experiment: str) -> dict[str, dict[str, list[int]]]:
    """trial key → metric → the steps logged (sorted, duplicates kept)."""
    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([experiment_id], "tags.`scalestudy.role` = 'trial'", max_results=10000)
    histories: dict[str, dict[str, list[int]]] = {}
    for run in runs:
        key = run.data.tags["scalestudy.trial_key"]
        assert key not in histories, f"two MLflow runs for trial {key}"
        histories[key] = {metric: sorted(m.step for m in client.get_metric_history(run.info.run_id, metric))
                          for metric in METRIC_KEYS}
    return histories


def _replayed(report: dict) -> bool:
    history = json.loads(report[HISTORY_KEY]) if report.get(HISTORY_KEY) else []
    return bool(history) and history[-1]["epoch"] == report["epoch"]


def reported_epochs(study_dir: Path) -> dict[str, list[int]]:
    """trial folder → the epochs in Tune's result.json, in the order they were reported."""
    found = {}
    for result in study_dir.glob("*/result.json"):
        lines = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        # A restored finished trial re-announces its last epoch without retraining it: its report's
        # history ends at its own epoch.
        found[result.parent.name] = [int(r["epoch"]) for r in lines if "epoch" in r and not _replayed(r)]
    return found
