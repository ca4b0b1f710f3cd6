"""Every trial run of an experiment with how it ended, and the per-epoch histories of chosen runs: what
the cells' aggregation over seeds reads (:mod:`~scalestudy.analysis.fits.seed_aggregate`).

The runs come from the trial table's own read (:mod:`~scalestudy.analysis.inputs.mlflow_runs`: runs
tagged as trials, so the runs this aggregation writes back are never read as trials) and their status
from the record's own rule (:func:`scalestudy.trial.readback.rows_from_runs`); unlike the trial table,
runs that errored or have not ended are kept, to be counted. Histories are read with one SQL query per
few hundred runs on a database store (the ``metrics`` table, every logged point), else one
``get_metric_history`` per run and metric through the client, a few at a time.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from scalestudy.analysis.inputs.mlflow_runs import _SQL_DIALECTS, _search_client, _search_sql
from scalestudy.trial.readback import MAX_FLOAT, rows_from_runs
from scalestudy.trial.record import ERROR, PARENT_TAG, STATUS_TAG

UNFINISHED = "unfinished"  # a run still running, or closed without a status it could be read from
RUNS_PER_QUERY = 500
CLIENT_THREADS = 8
_RUN_ID = re.compile(r"[0-9a-f]{32}")  # MLflow's run ids: inlined into the SQL only when they look like one


def uses_sql(tracking_uri: str, method: str = "auto") -> bool:
    """Whether ``tracking_uri`` is read with SQL (a database store) rather than through the client."""
    return method == "sql" or (method == "auto" and tracking_uri.split(":", 1)[0].split("+")[0] in _SQL_DIALECTS)


def read_trial_runs(tracking_uri: str, experiment_id: str, *, method: str = "auto") -> pd.DataFrame:
    """One row per active trial run of the experiment: ``run_id``, ``parent_run_id``, ``status`` (``ok``,
    ``diverged``, ``stopped``, ``error`` or :data:`UNFINISHED`), ``last_epoch`` (NaN before the first),
    and every ``params.<name>`` as logged. Empty (no columns) when there are none."""
    from mlflow.tracking import MlflowClient

    if uses_sql(tracking_uri, method):
        try:
            wide = _search_sql(tracking_uri, experiment_id)
        except Exception:  # noqa: BLE001 - an MLflow schema the direct read does not know: the client
            if method == "sql":
                raise
            wide = _search_client(MlflowClient(tracking_uri=tracking_uri), experiment_id)
    else:
        wide = _search_client(MlflowClient(tracking_uri=tracking_uri), experiment_id)
    if wide.empty:
        return pd.DataFrame()
    finished, _ = rows_from_runs(wide)
    status = pd.Series(finished["status"].to_numpy(), index=finished["run_id"]).reindex(wide["run_id"])
    tagged = wide.get(f"tags.{STATUS_TAG}", pd.Series(None, index=wide.index)).to_numpy()
    status = np.where(status.notna(), status.to_numpy(), np.where(tagged == ERROR, ERROR, UNFINISHED))
    params = wide[[name for name in wide.columns if name.startswith("params.")]]
    epoch = wide["metrics.epoch"] if "metrics.epoch" in wide.columns else pd.Series(np.nan, index=wide.index)
    return pd.concat([pd.DataFrame({
        "run_id": wide["run_id"], "parent_run_id": wide.get(f"tags.{PARENT_TAG}", pd.Series("", index=wide.index)),
        "status": status, "last_epoch": pd.to_numeric(epoch, errors="coerce").astype(float)}), params], axis=1)


def read_histories(tracking_uri: str, run_ids: list[str], *, method: str = "auto") -> pd.DataFrame:
    """Every per-epoch point the runs logged: columns ``run_id``, ``key``, ``step``, ``value`` (NaN for
    NaN, ±inf for what the store holds as ±max float), one value per (run, key, step): the latest logged."""
    if uses_sql(tracking_uri, method) and all(_RUN_ID.fullmatch(run) for run in run_ids):
        try:
            points = _histories_sql(tracking_uri, run_ids)
        except Exception:  # noqa: BLE001 - as read_trial_runs: the client instead
            if method == "sql":
                raise
            points = _histories_client(tracking_uri, run_ids)
    else:
        points = _histories_client(tracking_uri, run_ids)
    value = points["value"].astype(float)
    points["value"] = value.where(~(value.abs() >= MAX_FLOAT), np.sign(value) * np.inf)
    latest = points.sort_values("timestamp", kind="stable").drop_duplicates(["run_id", "key", "step"], keep="last")
    return latest.drop(columns="timestamp").reset_index(drop=True)


def _histories_sql(uri: str, run_ids: list[str]) -> pd.DataFrame:
    import sqlalchemy as sa

    engine = sa.create_engine(uri)
    connection = engine.raw_connection()
    parts = []
    try:
        cursor = connection.cursor()
        for start in range(0, len(run_ids), RUNS_PER_QUERY):
            chunk = ", ".join(f"'{run}'" for run in run_ids[start:start + RUNS_PER_QUERY])
            cursor.execute(f"SELECT m.run_uuid, m.key, m.step, m.timestamp, m.value, m.is_nan FROM metrics m "
                           f"WHERE m.run_uuid IN ({chunk})")
            parts.append(pd.DataFrame.from_records(
                cursor.fetchall(), columns=["run_id", "key", "step", "timestamp", "value", "is_nan"]))
        cursor.close()
    finally:
        connection.close()
        engine.dispose()
    points = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["run_id", "key", "step", "timestamp", "value", "is_nan"])
    points["value"] = points["value"].astype(float).where(~points["is_nan"].astype(bool), np.nan)
    return points.drop(columns="is_nan").astype({"step": int, "timestamp": int})


def _histories_client(uri: str, run_ids: list[str]) -> pd.DataFrame:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)

    def one_run(run_id: str) -> list[tuple]:
        keys = client.get_run(run_id).data.metrics
        return [(run_id, key, m.step, m.timestamp, m.value) for key in keys
                for m in client.get_metric_history(run_id, key)]

    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        rows = [row for rows in pool.map(one_run, run_ids) for row in rows]
    return pd.DataFrame(rows, columns=["run_id", "key", "step", "timestamp", "value"]).astype(
        {"step": int, "timestamp": int})
