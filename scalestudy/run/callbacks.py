"""The Tune callback that writes a study to MLflow, in the driver (the progress display's callback is
in :mod:`scalestudy.run.progress`).

Callbacks read a trial's :class:`~scalestudy.trial.config.TrialConfig` from Tune's ``config["trial"]``
(parsed once per trial, :class:`TrialConfigs`) and decide its end with
:func:`scalestudy.trial.record.trial_status`.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

from scalestudy.endpoints import answers, redact_uri
from scalestudy.run.tracking import TrialRuns, client, reports_of
from scalestudy.trial.config import TrialConfig
from scalestudy.trial.failure import TrialFailure, failure_from
from scalestudy.trial.record import trial_status

log = logging.getLogger(__name__)


def trial_failure(trial) -> TrialFailure:
    """Why a trial Tune saw fail, from the error Tune stored for it: the reason its trainable gave
    (``scalestudy.trial.failure``), else the error's type and first line (an actor that died)."""
    try:
        error = _staged_error(trial) or trial.get_pickled_error() or trial.get_error()
    except Exception as problem:  # noqa: BLE001 - an unreadable error file must not stop the study
        error = f"the trial's error could not be read ({type(problem).__name__}: {problem})"
    return failure_from(error)


def _staged_error(trial):
    """The error as Tune wrote it a moment ago, in the trial's driver-side staging folder.

    ``Trial.get_pickled_error`` reads the study's storage, which Tune fills from that folder only at
    its next sync: in ``on_trial_error`` it can find nothing yet (CI did, on a loaded machine).
    """
    import cloudpickle

    pickled, text = getattr(trial, "pickled_error_file", None), getattr(trial, "error_file", None)
    if pickled and Path(pickled).is_file():
        return cloudpickle.loads(Path(pickled).read_bytes())
    if text and Path(text).is_file():
        return Path(text).read_text()
    return None


class TrialConfigs:
    """Tune trial → its TrialConfig, parsed once: Tune's events come every epoch of every trial."""

    def __init__(self) -> None:
        self._parsed: dict[str, TrialConfig] = {}

    def __call__(self, trial) -> TrialConfig:
        config = self._parsed.get(trial.trial_id)
        if config is None:
            config = self._parsed[trial.trial_id] = TrialConfig.from_dict(trial.config["trial"])
        return config

    def end(self, trial, errored: bool = False) -> tuple[TrialConfig, str]:
        """The trial's config and final status; forgets the trial."""
        config = self(trial)
        self._parsed.pop(trial.trial_id, None)
        return config, trial_status(config.workload, trial.last_result, errored)


class MlflowCallback(Callback):
    """Tune callback: writes every trial report to the trial's MLflow run (driver only).

    Tune's event loop never waits for MLflow: events only record what is to be written
    (a few floats per epoch, and which trials finished) and wake one writer thread, the
    only process and thread that talks to MLflow (DESIGN decision 6). The writer logs every
    epoch past the last one MLflow has, one ``log_batch`` per trial, so a slow or absent
    server leaves no gap once it answers again; while it fails, the writer backs off
    (1 s doubling to 30 s) and the study goes on. When the experiment ends the writer gets
    ``drain_timeout_s`` to catch up; what it could not write stays in Ray storage, where
    ``scalestudy sync STUDY`` finds it.

    ``background=False`` writes in the calling thread instead (same logic, same backoff).
    ``flush(timeout_s)`` waits until everything recorded so far is written (no timeout: while
    the server is down, it waits until it is back).

    It holds only names, ids and reports, so Tune can pickle it with the experiment and a
    restored Tuner gets it back; the MLflow client and the thread are created lazily.
    """

    MAX_BACKOFF_S = 30.0

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, *, background: bool = True,
                 drain_timeout_s: float = 60.0, new_study: bool = False) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.background = background
        self.drain_timeout_s = drain_timeout_s
        self._reports: dict[str, dict[int, dict[str, float]]] = {}  # trial key → epoch → report
        self._configs: dict[str, TrialConfig] = {}
        self._versions: dict[str, int] = {}  # trial key → events recorded; written when it stops moving
        self._pending: set[str] = set()  # trial keys with something MLflow does not have yet
        self._finished: dict[str, str] = {}  # trial key → final status, until its run is closed
        self._reasons: dict[str, TrialFailure] = {}  # trial key → why it failed, until its run is closed
        self.failures = 0
        # A new study's trials have no runs yet: create them without searching first
        # (never after a failed write, or once unpickled by Tuner.restore).
        self._new_study = new_study
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._trial_configs = TrialConfigs()
        self._runs: TrialRuns | None = None
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._busy = False
        self._retry_at = 0.0  # monotonic time before which no write is tried (backoff)
        self._backoff = 0.0

    def __getstate__(self) -> dict[str, Any]:
        runtime = ("_trial_configs", "_runs", "_cond", "_thread", "_closing", "_busy", "_retry_at", "_backoff")
        with self._cond:
            return {k: (dict(v) if isinstance(v, dict) else set(v) if isinstance(v, set) else v)
                    for k, v in self.__dict__.items() if k not in runtime}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reasons = state.get("_reasons", {})  # pickled by a version before failure reasons
        self._new_study = False  # unpickled by Tuner.restore: a resumed study, runs may exist
        # Pickled by an earlier version: configs were wire dicts.
        self._configs = {key: TrialConfig.from_dict(c) if isinstance(c, dict) else c
                         for key, c in self._configs.items()}
        self._init_runtime()

    @property
    def runs(self) -> TrialRuns:
        if self._runs is None:
            self._runs = TrialRuns(client(self.tracking_uri), self.experiment_id, self.parent_run_id)
        return self._runs

    # --- Tune events (driver thread): record, then wake the writer -------------------------------

    def _record(self, config: TrialConfig, reports: list[dict[str, Any]] = (), status: str | None = None,
                failure: TrialFailure | None = None) -> None:
        key = config.trial_key
        with self._cond:
            self._configs[key] = config
            epochs = self._reports.setdefault(key, {})
            for report in reports:
                epochs[int(report["epoch"])] = report
            if status is not None:
                self._finished[key] = status
            if failure is not None:
                self._reasons[key] = failure
            self._versions[key] = self._versions.get(key, 0) + 1
            self._pending.add(key)
            self._cond.notify_all()
        if not self.background:
            self._write_pending()
        elif self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._writer, name="scalestudy-mlflow-writer", daemon=True)
            self._thread.start()

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._record(self._trial_configs(trial))  # creates the run, so the UI lists running trials

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if "epoch" in result:
            self._record(self._trial_configs(trial), reports_of(result))

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        config, status = self._trial_configs.end(trial)
        self._record(config, status=status)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        config, status = self._trial_configs.end(trial, errored=True)
        self._record(config, status=status, failure=trial_failure(trial))

    def on_experiment_end(self, trials, **info) -> None:
        self.close()

    # --- the writer ----------------------------------------------------------------------------

    def _writer(self) -> None:
        while True:
            with self._cond:
                while not self._closing and (not self._pending or time.monotonic() < self._retry_at):
                    wait = None if not self._pending else max(0.0, self._retry_at - time.monotonic())
                    self._cond.wait(wait)
                if not self._pending:
                    return  # closing, and nothing left to write
                closing = self._closing
            ok = self._write_pending(force=closing)
            if closing and not ok:
                return  # one last try when the experiment ends; the rest is for `scalestudy sync`

    def _write_pending(self, force: bool = False) -> bool:
        """One pass over the trials MLflow is behind on; False when MLflow failed (then back off)."""
        with self._cond:
            if self._busy or (not force and time.monotonic() < self._retry_at):
                return False
            self._busy = True
            keys = sorted(self._pending)
        try:
            for key in keys:
                with self._cond:
                    version = self._versions.get(key)
                    config = self._configs[key]
                    reports = list(self._reports.get(key, {}).values())
                    status = self._finished.get(key)
                    failure = self._reasons.get(key)
                try:
                    if self._backoff and not answers(self.tracking_uri):
                        # Down: fail fast instead of spending the MLflow client's retries.
                        raise ConnectionError(f"MLflow tracking server {redact_uri(self.tracking_uri)} "
                                              "does not answer")
                    run_id = self.runs.run_for(config, search=not (self._new_study and self.failures == 0))
                    if status is None:
                        self.runs.log_epochs(run_id, reports)
                    else:
                        self.runs.finish(run_id, status, reports, failure)
                except Exception as error:  # noqa: BLE001 - tracking must never stop training
                    self._failed(error)
                    return False
                with self._cond:
                    if self._versions.get(key) == version:  # nothing new arrived meanwhile
                        self._pending.discard(key)
                        if status is not None:  # done with this trial: forget its reports
                            for table in (self._reports, self._configs, self._versions, self._finished,
                                          self._reasons):
                                table.pop(key, None)
            if self._backoff:
                log.warning("MLflow answers again; the study's runs are up to date")
            self._backoff = 0.0
            self._retry_at = 0.0
            return True
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _failed(self, error: Exception) -> None:
        self.failures += 1
        self._runs = None  # re-read runs and last logged steps once MLflow answers again
        self._backoff = min(self.MAX_BACKOFF_S, max(1.0, self._backoff * 2))
        self._retry_at = time.monotonic() + self._backoff
        if self.failures == 1 or self.failures % 20 == 0:
            log.warning("MLflow logging failed (%d so far; the study goes on, results stay in Ray storage, "
                        "retrying within %.0f s): %s", self.failures, self._backoff,
                        str(error).splitlines()[0][:200])

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until MLflow has everything recorded so far (or ``timeout_s`` passes); True when it has."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        if not self.background:
            self._write_pending(force=True)
        with self._cond:
            while self._pending or self._busy:
                if self._thread is None or not self._thread.is_alive():
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._cond.wait(remaining)
            return not self._pending

    def close(self) -> None:
        """Give the writer ``drain_timeout_s`` to write what is left, then stop it."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(self.drain_timeout_s)
        elif self._pending:
            self._write_pending(force=True)
        with self._cond:
            left = sorted(self._pending)
        if left:
            log.warning("MLflow is missing reports of %d trial(s) (%s); they are in Ray storage: run "
                        "`scalestudy sync STUDY` once the tracking server answers", len(left),
                        ", ".join(left[:3]) + (", ..." if len(left) > 3 else ""))
