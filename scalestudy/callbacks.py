"""Tune callbacks that run in the driver: MLflow tracking and terminal progress."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from typing import Any, TextIO

from ray.tune import Callback

from scalestudy.tracking import HISTORY_KEY, METRIC_KEYS, TrialRuns, client

log = logging.getLogger(__name__)


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


class ProgressCallback(Callback):
    """Prints trials done / running / diverged and the best test accuracy so far."""

    def __init__(self, total: int, stream: TextIO | None = None, every_s: float = 15.0) -> None:
        self.total = total
        self.every_s = every_s
        self.stream = stream
        self.finished: dict[str, dict[str, Any]] = {}
        self.errored: set[str] = set()
        self.running: set[str] = set()
        self.best: tuple[float, str] | None = None
        self._last_print = 0.0
        self._start = time.monotonic()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "stream": None}

    def setup(self, **info) -> None:
        self._start = time.monotonic()  # also after Tuner.restore unpickles this callback

    def _out(self) -> TextIO:
        return self.stream or sys.stdout

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.running.add(trial.trial_id)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        acc = result.get("test_acc")
        if acc is not None and math.isfinite(acc) and (self.best is None or acc > self.best[0]):
            self.best = (acc, trial.config["trial"]["run_name"])
        if time.monotonic() - self._last_print > self.every_s:
            self._print()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.running.discard(trial.trial_id)
        self.finished[trial.trial_id] = trial.last_result or {}
        self._print()

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.running.discard(trial.trial_id)
        self.errored.add(trial.trial_id)
        self._print()

    def _print(self) -> None:
        self._last_print = time.monotonic()
        done = len(self.finished) + len(self.errored)
        diverged = sum(1 for r in self.finished.values() if r.get("diverged"))
        best = f"best test_acc {self.best[0]:.4f} ({self.best[1]})" if self.best else "best test_acc -"
        elapsed = time.monotonic() - self._start
        print(f"[{elapsed:6.0f}s] trials {done}/{self.total} done, {len(self.running)} running, "
              f"{diverged} diverged, {len(self.errored)} errored | {best}", file=self._out(), flush=True)
