"""Is the study whole: each trial once, and every trial ended?

* **One trial key, one row.** An experiment may hold several runs of one trial (a study run again
  with ``run --new``: a second parent run): the table keeps the trial's latest finished run and
  says how many were left out and that the study has several parent runs, so no trial counts twice.
* **A study that did not finish** is refused unless ``allow_partial``: interrupted (its latest parent
  run KILLED or tagged ``scalestudy.interrupted``), still running or its driver gone (its parent
  RUNNING with fewer trials ended than it planned), or with trial runs that never ended (status
  ``running`` or ``interrupted``, and no finished run of the same key). Fitting part of a grid
  without a word would give a law of the trials that happened to finish. With ``allow_partial`` the
  table holds what finished, and a warning (in the report and on the terminal) says what is missing.

Pure functions of the runs' columns (as :func:`scalestudy.trial.readback.rows_from_runs` reads
them) and of the study's parent runs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pandas as pd

from scalestudy.trial.readback import KEY
from scalestudy.trial.record import ERROR, INTERRUPTED, KEY_TAG, RUNNING, STATUS_TAG

START_TIME, RUN_STATUS = "info.start_time", "info.status"  # the columns of a run's start (ms) and MLflow status
_NOT_ENDED_RUNS = ("RUNNING", "SCHEDULED", "KILLED")  # MLflow run statuses of runs without a status tag


@dataclass(frozen=True)
class StudyParent:
    """A parent run of the study (role ``study``)."""

    run_id: str
    status: str  # MLflow's: RUNNING, FINISHED, KILLED, FAILED
    interrupted: bool  # tagged scalestudy.interrupted
    planned: int | None  # its planned trials (tag, else the param), None when it holds neither
    start_time: int  # ms


def one_row_per_trial(frame: pd.DataFrame, start_times: pd.Series) -> tuple[pd.DataFrame, int]:
    """(the rows with each trial key once, its latest run; the rows left out). ``start_times``: run id →
    start (ms). Rows without a key are all kept."""
    if KEY not in frame.columns or frame[KEY].isna().all():
        return frame, 0
    started = frame["run_id"].map(start_times).fillna(0)
    ordered = frame.assign(_started=started).sort_values("_started", kind="stable")
    keyed = ordered[KEY].notna()
    kept = pd.concat([ordered[keyed].drop_duplicates(KEY, keep="last"), ordered[~keyed]])
    kept = kept.sort_index().drop(columns="_started")
    return kept, len(frame) - len(kept)


def unfinished_trials(runs: pd.DataFrame, finished_keys: set[str]) -> Counter:
    """The trials whose runs never ended (and that have no finished run), counted by status: ``running``
    or ``interrupted`` (a run without a status tag: by its MLflow status)."""
    def column(name: str) -> pd.Series:
        return runs[name] if name in runs.columns else pd.Series(None, index=runs.index, dtype=object)

    tags, states = column(f"tags.{STATUS_TAG}"), column(RUN_STATUS)
    keys = column(f"tags.{KEY_TAG}").fillna(column("params.trial_key"))
    found: dict[str, str] = {}
    for key, tag, state in zip(keys, tags, states):
        if not isinstance(key, str) or key in finished_keys:
            continue
        status = tag if isinstance(tag, str) else (INTERRUPTED if state == "KILLED" else RUNNING
                                                   if state in _NOT_ENDED_RUNS else None)
        if status in (RUNNING, INTERRUPTED):
            found[key] = INTERRUPTED if INTERRUPTED in (status, found.get(key)) else status
    return Counter(found.values())


def partial_study(experiment: str, parents: list[StudyParent], unfinished: Counter, ended: int) -> str | None:
    """Why the study is not whole (one clause), or None. ``ended``: trials that ended, errors included."""
    latest = max(parents, key=lambda parent: parent.start_time) if parents else None
    short_of_plan = (latest is not None and latest.status == "RUNNING" and latest.planned is not None
                     and ended < latest.planned)
    interrupted = latest is not None and (latest.interrupted or latest.status == "KILLED")
    if not (unfinished or interrupted or short_of_plan):
        return None
    how = ("interrupted" if interrupted else "still running, or its driver stopped" if latest is not None
           and latest.status == "RUNNING" else "some trials never ended")
    of_plan = f" of {latest.planned} planned" if latest is not None and latest.planned is not None else ""
    open_runs = ", ".join(f"{count} {status}" for status, count in sorted(unfinished.items()))
    return (f"the study of experiment {experiment!r} did not finish ({how}): {ended} trials ended{of_plan}"
            + (f", {open_runs}" if open_runs else ""))


def ended_keys(frame: pd.DataFrame, runs: pd.DataFrame) -> set[str]:
    """The keys of the trials that ended: the table's rows, and the runs that errored."""
    keys = set(frame[KEY].dropna()) if KEY in frame.columns else set()
    if f"tags.{STATUS_TAG}" in runs.columns and f"tags.{KEY_TAG}" in runs.columns:
        errored = runs[runs[f"tags.{STATUS_TAG}"] == ERROR]
        keys |= set(errored[f"tags.{KEY_TAG}"].dropna())
    return keys
