"""MLflow → trial table: the analysis layer's only read of the tracking store (the analysis run
is written back by :mod:`~scalestudy.analysis.outputs.mlflow_run`).

The final values of every trial of an experiment come from one search (the latest
metrics, params and tags of its runs), never from one request per run per metric.
On a database-backed store (sqlite, postgresql, mysql) the same search is done with
one SQL query per table of MLflow's schema (tags, params, latest_metrics): for 10,000
runs ``search_runs`` builds ~370,000 ORM objects and takes 15-30 s here, the direct read
about 1.5 s of CPU. If that read fails (an unknown schema) the client is used instead.
Any other store (an MLflow server) goes through ``MlflowClient.search_runs``.
Per-epoch histories are read only for the few runs a figure needs; the one exception is
the training time, Σ epoch_seconds per run, which the SQL read gets from one aggregate
query (the client read, which only sees the latest value, estimates it as the last
epoch_seconds × epochs completed, and says so in the provenance); the other, in a study whose
search stopped trials by a bound on their final objective, is that objective's history in the cells
holding a stopped trial, to recompute each one's bound (:mod:`~scalestudy.analysis.inputs.stop_bounds`).
Each run becomes a row by the
record's own reader, :func:`scalestudy.trial.readback.rows_from_runs`, beside its writer.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scalestudy.analysis.errors import AnalysisError
from scalestudy.analysis.inputs.completeness import (
    RUN_STATUS,
    START_TIME,
    StudyParent,
    ended_keys,
    one_row_per_trial,
    partial_study,
    unfinished_trials,
)
from scalestudy.analysis.inputs.metric_histories import uses_sql
from scalestudy.analysis.inputs.stop_bounds import with_objective_bounds
from scalestudy.analysis.inputs.trial_table import TrialTable, validate_trials
from scalestudy.trial.readback import REQUIRED_PARAMS, rows_from_runs
from scalestudy.trial.readback import SUMMED_SECONDS as SUMMED  # the SQL read's Σ epoch_seconds per run
from scalestudy.trial.record import (
    EARLY_STOPPING_TAG,
    INTERRUPTED_TAG,
    PARENT_TAG,
    PLANNED_TAG,
    ROLE_TAG,
    SPEC_HASH_TAG,
    STUDY_ROLE,
    STUDY_TAG,
    TRIAL_ROLE,
    VERSION_TAG,
)


def load_trials_from_mlflow(experiment: str, tracking_uri: str | None = None, *, method: str = "auto",
                            allow_partial: bool = False) -> TrialTable:
    """All finished trial runs of an experiment as a validated :class:`TrialTable`, one row per trial key.

    ``method``: "auto" (SQL for database stores, else the client), "sql" or "client".
    A study that did not finish (:mod:`~scalestudy.analysis.inputs.completeness`) is an
    :class:`AnalysisError` unless ``allow_partial`` (then a warning says what is missing).
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = tracking_uri or mlflow.get_tracking_uri()
    _check_sqlite_file(uri)
    try:
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(experiment)
        if found is None and experiment.isdigit():
            found = client.get_experiment(experiment)
    except Exception as error:  # noqa: BLE001 - MlflowException, connection and database errors
        raise AnalysisError(f"cannot read MLflow at {uri}: {_first_line(error)}") from None
    if found is None:
        raise AnalysisError(f"no MLflow experiment named {experiment!r} at {uri}")
    if method not in ("auto", "sql", "client"):
        raise AnalysisError(f"unknown read method {method!r}; known: auto, sql, client")
    use_sql = uses_sql(uri, method)
    notes = []
    try:
        if use_sql:
            try:
                wide = _search_sql(uri, found.experiment_id)
            except Exception as error:  # an MLflow schema we do not know: use the client
                if method == "sql":
                    raise
                notes.append(f"direct SQL read failed ({_first_line(error)}); read through MlflowClient")
                wide = _search_client(client, found.experiment_id)
        else:
            wide = _search_client(client, found.experiment_id)
    except Exception as error:  # noqa: BLE001 - any store error becomes one line
        raise AnalysisError(f"cannot read the runs of experiment {experiment!r}: {_first_line(error)}") from None
    if wide.empty:
        raise AnalysisError(f"experiment {experiment!r} has no trial runs (tag {ROLE_TAG}={TRIAL_ROLE})")
    frame, warnings = _trials_from_wide(wide, experiment)
    frame, warnings, partial = _whole_study(client, found.experiment_id, experiment, wide, frame, warnings,
                                            allow_partial)
    provenance = {"source": "mlflow", "experiment": experiment, "experiment_id": found.experiment_id,
                  "tracking_uri": uri, **_parent(client, wide), **({"partial": partial} if partial else {})}
    if "train_seconds" in frame.columns:
        provenance["train_seconds"] = ("sum of epoch_seconds" if SUMMED in wide.columns
                                       else "estimate: last epoch_seconds × epochs completed")
    if provenance.get("early_stopping") == "cell_bound":
        try:
            frame = with_objective_bounds(frame, uri, method)
        except Exception as error:  # noqa: BLE001 - the table stands without them: stopped trials left out
            notes.append(f"the bounds of the trials stopped early could not be read ({_first_line(error)}); "
                         "they are left out of the ε* fit")
    clean, more = validate_trials(frame, f"experiment {experiment!r}")
    return TrialTable(clean, provenance, notes + warnings + more)


def _search_client(client, experiment_id: str) -> pd.DataFrame:
    from mlflow.entities import ViewType

    records, token = [], None
    while True:
        page = client.search_runs([experiment_id], f"tags.`{ROLE_TAG}` = '{TRIAL_ROLE}'", ViewType.ACTIVE_ONLY,
                                  max_results=50_000, page_token=token)
        for run in page:
            record = {"run_id": run.info.run_id, START_TIME: run.info.start_time, RUN_STATUS: run.info.status}
            record.update({f"params.{k}": v for k, v in run.data.params.items()})
            record.update({f"metrics.{k}": v for k, v in run.data.metrics.items()})
            record.update({f"tags.{k}": v for k, v in run.data.tags.items()})
            records.append(record)
        token = page.token
        if not token:
            return pd.DataFrame.from_records(records)


def _search_sql(uri: str, experiment_id: str) -> pd.DataFrame:
    """The same rows as :func:`_search_client`, one query per table of MLflow's schema.

    Plain DB-API cursors (SQLAlchemy's result rows cost twice the CPU here); the
    experiment id is an integer inlined into the SQL, so no driver-specific paramstyle."""
    import sqlalchemy as sa

    trials = ("SELECT r.run_uuid FROM runs r JOIN tags rt ON rt.run_uuid = r.run_uuid "
              f"WHERE r.experiment_id = {int(experiment_id)} AND r.lifecycle_stage = 'active' "
              f"AND rt.key = '{ROLE_TAG}' AND rt.value = '{TRIAL_ROLE}'")
    engine = sa.create_engine(uri)
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        parts = []
        for prefix, table, extra in (("tags", "tags", ""), ("params", "params", ""),
                                     ("metrics", "latest_metrics", ", x.is_nan")):
            cursor.execute(f"SELECT x.run_uuid, x.key, x.value{extra} FROM {table} x WHERE x.run_uuid IN ({trials})")
            names = ["run_id", "key", "value", *(["is_nan"] if extra else [])]
            long = pd.DataFrame.from_records(cursor.fetchall(), columns=names)
            if extra:
                value = long["value"].astype(float)
                long["value"] = value.where(~long["is_nan"].astype(bool), np.nan)
            long["key"] = prefix + "." + long["key"].astype(str)
            parts.append(long[["run_id", "key", "value"]])
        # Training time is a sum over epochs, which latest_metrics does not hold: one aggregate
        # query (every logged epoch counts, re-run epochs after a resume included: compute spent).
        cursor.execute("SELECT x.run_uuid, SUM(x.value) FROM metrics x WHERE x.key = 'epoch_seconds' "
                       f"AND x.is_nan = 0 AND x.run_uuid IN ({trials}) GROUP BY x.run_uuid")
        summed = pd.DataFrame.from_records(cursor.fetchall(), columns=["run_id", "value"])
        parts.append(summed.assign(key=SUMMED, value=summed["value"].astype(float))[["run_id", "key", "value"]])
        # When each run started and its MLflow status: which of a trial's runs is the latest, which never ended.
        cursor.execute(f"SELECT r.run_uuid, r.start_time, r.status FROM runs r WHERE r.run_uuid IN ({trials})")
        info = pd.DataFrame.from_records(cursor.fetchall(), columns=["run_id", START_TIME, RUN_STATUS])
        parts += [info[["run_id", name]].rename(columns={name: "value"}).assign(key=name)[["run_id", "key", "value"]]
                  for name in (START_TIME, RUN_STATUS)]
        cursor.close()
    finally:
        connection.close()
        engine.dispose()
    long = pd.concat(parts, ignore_index=True)
    if long.empty:
        return pd.DataFrame()
    wide = long.pivot(index="run_id", columns="key", values="value")
    wide.columns.name = None
    return wide.reset_index()


def _trials_from_wide(wide: pd.DataFrame, experiment: str) -> tuple[pd.DataFrame, list[str]]:
    """Search-result columns (params.*, metrics.*, tags.*) → trial-table rows of the runs that ended
    (:func:`scalestudy.trial.readback.rows_from_runs`, beside the record's writer), and a warning
    naming the runs left out."""
    missing = [p for p in REQUIRED_PARAMS if f"params.{p}" not in wide.columns]
    if missing:
        raise AnalysisError(f"experiment {experiment!r}: trial runs lack the param {missing[0]!r} "
                            "(see the MLflow contract in the README)")
    frame, skipped = rows_from_runs(wide)
    warnings, listing = [], ""
    if skipped:
        listing = ", ".join(f"{name} {count}" for name, count in sorted(skipped.items()))
        warnings.append(f"{sum(skipped.values())} unfinished trial runs left out ({listing})")
    if frame.empty:
        raise AnalysisError(f"experiment {experiment!r} has no finished trial runs ({listing})")
    return frame, warnings


def _whole_study(client, experiment_id: str, experiment: str, wide: pd.DataFrame, frame: pd.DataFrame,
                 warnings: list[str], allow_partial: bool) -> tuple[pd.DataFrame, list[str], str | None]:
    """(one row per trial key, the warnings with the study's parent runs named when it has several, what
    is missing of a study that did not finish); such a study is refused unless ``allow_partial``."""
    parents = _study_parents(client, experiment_id)
    starts = wide.set_index("run_id")[START_TIME] if START_TIME in wide.columns else pd.Series(dtype=float)
    frame, repeated = one_row_per_trial(frame, pd.to_numeric(starts, errors="coerce"))
    warnings = list(warnings)
    if len(parents) > 1 or repeated:
        ids = ", ".join(parent.run_id for parent in parents)
        warnings.append(f"experiment {experiment!r} holds {len(parents)} runs of the study (parent runs {ids}); "
                        f"each trial counted once, its latest finished run ({repeated} earlier runs of the same "
                        "trials left out)")
    ended = ended_keys(frame, wide)
    problem = partial_study(experiment, parents, unfinished_trials(wide, ended), max(len(ended), len(frame)))
    if problem is None:
        return frame, warnings, None
    if not allow_partial:
        raise AnalysisError(f"{problem}; finish it with `scalestudy run SPEC --resume`, or fit the {len(frame)} "
                            "trials that finished with --allow-partial")
    partial = f"{problem}; only the {len(frame)} trials that finished are fitted"
    return frame, [*warnings, f"partial study: {partial}"], partial


def _study_parents(client, experiment_id: str) -> list[StudyParent]:
    """The experiment's study runs (the parents of its trial runs)."""
    runs = client.search_runs([experiment_id], f"tags.`{ROLE_TAG}` = '{STUDY_ROLE}'", max_results=1000)
    parents = []
    for run in runs:
        planned = run.data.tags.get(PLANNED_TAG) or run.data.params.get("trials")
        parents.append(StudyParent(run.info.run_id, run.info.status, run.data.tags.get(INTERRUPTED_TAG) == "true",
                                   int(planned) if planned and str(planned).isdigit() else None,
                                   run.info.start_time or 0))
    return sorted(parents, key=lambda parent: parent.start_time)


def _parent(client, wide: pd.DataFrame) -> dict[str, Any]:
    """The study's parent run (the most common parent of the trial runs) and its tags."""
    parents = wide.get(f"tags.{PARENT_TAG}")
    if parents is None or parents.dropna().empty:
        return {"parent_run_id": None}
    parent_id = Counter(parents.dropna()).most_common(1)[0][0]
    try:
        tags = client.get_run(parent_id).data.tags
    except Exception:  # noqa: BLE001 - a deleted parent: keep its id
        tags = {}
    return {"parent_run_id": parent_id, "spec_hash": tags.get(SPEC_HASH_TAG),
            "study": tags.get(STUDY_TAG), "study_version": tags.get(VERSION_TAG),
            **({"early_stopping": tags[EARLY_STOPPING_TAG]} if EARLY_STOPPING_TAG in tags else {})}


def load_histories(tracking_uri: str, run_ids: list[str],
                   keys: tuple[str, ...] = ("epoch", "updates", "test_acc")) -> pd.DataFrame:
    """Per-epoch metrics of a few runs: columns run_id, step (epoch), key, value."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    rows = [(run_id, m.step, key, m.value) for run_id in run_ids for key in keys
            for m in client.get_metric_history(run_id, key)]
    return pd.DataFrame(rows, columns=["run_id", "step", "key", "value"])


def _check_sqlite_file(uri: str) -> None:
    """MLflow creates an empty store for a missing SQLite file: refuse instead."""
    if uri.startswith("sqlite:///") and ":memory:" not in uri:
        path = Path(uri[len("sqlite:///"):].split("?")[0])
        if not path.is_file():
            raise AnalysisError(f"no MLflow store at {path} (tracking URI {uri})")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__
