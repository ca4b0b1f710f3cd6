"""Every trial run of an experiment with how it ended, and the per-epoch histories of chosen runs: what
the cells' aggregation over seeds reads (:mod:`~scalestudy.analysis.fits.seed_aggregate`).

The runs come from the trial table's own read (:mod:`~scalestudy.analysis.inputs.mlflow_runs`: runs
tagged as trials, so the runs this aggregation writes back are never read as trials) and their status
from the record's own rule (:func:`scalestudy.trial.readback.rows_from_runs`); unlike the trial table,
runs that errored or have not ended are kept, to be counted. Histories are read by
:func:`~scalestudy.analysis.inputs.metric_histories.read_histories` (imported here for the aggregation).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scalestudy.analysis.inputs.metric_histories import read_histories, uses_sql
from scalestudy.analysis.inputs.mlflow_runs import _search_client, _search_sql
from scalestudy.trial.readback import rows_from_runs
from scalestudy.trial.record import ERROR, PARENT_TAG, STATUS_TAG

UNFINISHED = "unfinished"  # a run still running, or closed without a status it could be read from
__all__ = ["UNFINISHED", "read_histories", "read_trial_runs"]


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
