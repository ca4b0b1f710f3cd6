"""The trial table's ``objective_bound``: for each trial the search stopped by its bound
(``search.early_stopping: {kind: cell_bound}``), the best final objective it could still have reached.

The search does not log the bound: it is recomputed here from the per-epoch objective of the trial
and of its cell's finished trials (their MLflow histories), with the function the search stopped it
by (:func:`scalestudy.trial.curve_bound.final_upper_bound`), at the epoch it stopped at. It uses every
finished trial of the cell, a superset of those finished when it was stopped, so it is at least the
bound the search judged it by. The ε* fit takes such a trial as censored at its bound
(:mod:`scalestudy.analysis.fits.cell_optimum.censored`).

Only a study whose parent run says it stopped by the bound (:data:`scalestudy.trial.record.EARLY_STOPPING_TAG`)
gets the column: a trial ASHA stopped was ranked out at a rung, with no bound; it stays left out of
the ε* fit. NaN where there is no bound (a cell with fewer than two finished trials past its epoch).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from scalestudy.analysis.inputs.metric_histories import read_histories
from scalestudy.analysis.inputs.trial_table import BOUND, objective_of, stopped
from scalestudy.trial.curve_bound import final_upper_bound
from scalestudy.trial.readback import EPOCHS_PLANNED
from scalestudy.trial.record import OK

# The table's side of scalestudy.search.early_stopping.cell_key: the trials a stopped one was judged against.
CELL_COLUMNS = ("section", "schedule", "schedule_args", "batch_size", "momentum", EPOCHS_PLANNED, "dataset_size")


def with_objective_bounds(frame: pd.DataFrame, tracking_uri: str, method: str = "auto") -> pd.DataFrame:
    """``frame`` (trial-table rows with ``run_id``) with the column ``objective_bound``, read from the
    histories of the cells that hold a stopped trial; unchanged when none does."""
    cells = _cell_ids(frame)
    with_stops = cells.isin(cells[stopped(frame)])
    if not with_stops.any():
        return frame
    runs = frame.loc[with_stops & (stopped(frame) | (frame["status"] == OK)), "run_id"]
    histories = read_histories(tracking_uri, [str(run) for run in runs], method=method,
                               keys=(objective_of(frame).metric,))
    return frame.assign(**{BOUND: objective_bounds(frame, histories)})


def objective_bounds(frame: pd.DataFrame, histories: pd.DataFrame) -> pd.Series:
    """Each stopped trial's bound on its final objective, in the objective's units (for a minimised
    one, the lowest it could reach), NaN elsewhere. ``histories``: columns run_id, key, step (epoch),
    value, as :func:`~scalestudy.analysis.inputs.metric_histories.read_histories` gives them."""
    objective = objective_of(frame)
    points = histories[histories["key"] == objective.metric]
    curves = {run: dict(zip(group["step"].astype(int), objective.sign * group["value"].astype(float)))
              for run, group in points.groupby("run_id")}
    bounds = pd.Series(np.nan, index=frame.index)
    cells = _cell_ids(frame)
    for cell in cells[stopped(frame)].unique():
        members = frame[cells == cell]
        finished = [curves.get(run, {}) for run in members.loc[members["status"] == OK, "run_id"]]
        for index, run in members.loc[stopped(members), "run_id"].items():
            curve = curves.get(run, {})
            bound = final_upper_bound(curve, finished, max(curve)) if curve else math.inf
            if math.isfinite(bound):
                bounds[index] = objective.sign * bound
    return bounds


def _cell_ids(frame: pd.DataFrame) -> pd.Series:
    """Each row's cell, numbered (by the exact values of the :data:`CELL_COLUMNS` the table has)."""
    columns = [name for name in CELL_COLUMNS if name in frame.columns]
    return frame.groupby(columns, dropna=False, sort=False).ngroup()
