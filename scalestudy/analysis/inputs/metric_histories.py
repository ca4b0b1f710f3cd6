"""Per-epoch points of chosen trial runs, as MLflow holds them: what the cells' aggregation over seeds
(:mod:`~scalestudy.analysis.inputs.trial_histories`) and the bounds of trials stopped early
(:mod:`~scalestudy.analysis.inputs.stop_bounds`) read.

One SQL query per few hundred runs on a database store (the ``metrics`` table, every logged point),
else one ``get_metric_history`` per run and metric through the client, a few at a time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from scalestudy.trial.readback import MAX_FLOAT

SQL_DIALECTS = ("sqlite", "postgresql", "mysql", "mssql")  # stores read with SQL rather than the client
RUNS_PER_QUERY = 500
CLIENT_THREADS = 8
# Inlined into the SQL only when they look like MLflow's run ids and metric names.
_RUN_ID = re.compile(r"[0-9a-f]{32}")
_METRIC = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*")


def uses_sql(tracking_uri: str, method: str = "auto") -> bool:
    """Whether ``tracking_uri`` is read with SQL (a database store) rather than through the client."""
    return method == "sql" or (method == "auto" and tracking_uri.split(":", 1)[0].split("+")[0] in SQL_DIALECTS)


def read_histories(tracking_uri: str, run_ids: list[str], *, method: str = "auto",
                   keys: Iterable[str] | None = None) -> pd.DataFrame:
    """Every per-epoch point the runs logged (of the metrics ``keys`` only, when given): columns ``run_id``,
    ``key``, ``step``, ``value`` (NaN for NaN, ±inf for what the store holds as ±max float), one value
    per (run, key, step): the latest logged."""
    keys = None if keys is None else tuple(keys)
    if (uses_sql(tracking_uri, method) and all(_RUN_ID.fullmatch(run) for run in run_ids)
            and all(_METRIC.fullmatch(key) for key in keys or ())):
        try:
            points = _histories_sql(tracking_uri, run_ids, keys)
        except Exception:  # noqa: BLE001 - an MLflow schema the direct read does not know: the client
            if method == "sql":
                raise
            points = _histories_client(tracking_uri, run_ids, keys)
    else:
        points = _histories_client(tracking_uri, run_ids, keys)
    value = points["value"].astype(float)
    points["value"] = value.where(~(value.abs() >= MAX_FLOAT), np.sign(value) * np.inf)
    latest = points.sort_values("timestamp", kind="stable").drop_duplicates(["run_id", "key", "step"], keep="last")
    return latest.drop(columns="timestamp").reset_index(drop=True)


def _histories_sql(uri: str, run_ids: list[str], keys: tuple[str, ...] | None) -> pd.DataFrame:
    import sqlalchemy as sa

    engine = sa.create_engine(uri)
    connection = engine.raw_connection()
    parts = []
    try:
        cursor = connection.cursor()
        only = "" if keys is None else " AND m.key IN (" + ", ".join(f"'{key}'" for key in keys) + ")"
        for start in range(0, len(run_ids), RUNS_PER_QUERY):
            chunk = ", ".join(f"'{run}'" for run in run_ids[start:start + RUNS_PER_QUERY])
            cursor.execute(f"SELECT m.run_uuid, m.key, m.step, m.timestamp, m.value, m.is_nan FROM metrics m "
                           f"WHERE m.run_uuid IN ({chunk}){only}")
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


def _histories_client(uri: str, run_ids: list[str], keys: tuple[str, ...] | None) -> pd.DataFrame:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)

    def one_run(run_id: str) -> list[tuple]:
        logged = client.get_run(run_id).data.metrics
        return [(run_id, key, m.step, m.timestamp, m.value) for key in logged if keys is None or key in keys
                for m in client.get_metric_history(run_id, key)]

    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        rows = [row for rows in pool.map(one_run, run_ids) for row in rows]
    return pd.DataFrame(rows, columns=["run_id", "key", "step", "timestamp", "value"]).astype(
        {"step": int, "timestamp": int})
