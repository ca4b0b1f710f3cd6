"""A cell's trials over their seeds: which trial runs belong together, and the mean over the seeds of
each per-epoch metric with its 95 % interval (Student-t over the seeds). Pure functions of two frames,
read by :mod:`~scalestudy.analysis.inputs.trial_histories` and written to MLflow, one run per cell, by
:mod:`~scalestudy.analysis.outputs.cell_runs`.

A cell here is everything of a trial but its seed: the trial runs under one study (parent run) whose
params are equal but for ``seed`` and ``trial_key`` — B, ε, m, schedule, N, section and the rest of the
recipe, compared as the exact values logged, never as a display format. Which trials count:

* the curves average the trials that ended as data and did not diverge (``ok``, and ``stopped`` by
  early stopping as far as they ran): each epoch over the trials that reached it;
* the final values average each ``ok`` trial's last value (a trial stopped early never reached the end);
* diverged, errored and unfinished trials are counted, never averaged.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalestudy.analysis.fits._stats import t_quantile
from scalestudy.trial.record import DIVERGED, ERROR, OK, STOPPED, display_name

# Params that tell the seeds of one cell apart; every other param is the cell's identity.
SEED_PARAMS = ("seed", "trial_key")
AVERAGED, FINAL = (OK, STOPPED), (OK,)
# Per-epoch metrics not averaged: the epoch is the step itself, and ``diverged`` is 0 in every trial averaged.
NOT_AVERAGED = ("epoch", "diverged")
# Part of every cell's fingerprint: a change to what a cell run holds rewrites every cell run once.
FORMAT = 1
CONFIDENCE = 0.95


@dataclass(frozen=True)
class SeedGroup:
    """The trial runs of one cell under one study, and how each ended."""

    parent_run_id: str  # the study's parent run ("" for trial runs without one)
    key: str  # the cell's identity: a readable prefix and a digest of its exact params
    name: str  # for people: the trials' run name without the seed
    params: dict[str, str]  # the params the cell's trials share (as logged)
    seeds: tuple[int, ...]  # the seeds averaged (ok and stopped)
    averaged_runs: tuple[str, ...]  # their run ids, seed by seed
    final_runs: tuple[str, ...]  # the ok ones: the final values
    n_diverged: int
    n_failed: int  # ended in error
    n_stopped: int  # stopped early by the search: in the curves as far as they ran, not in the finals
    n_unfinished: int  # still running (or closed without a status): left out until they end
    digest: str  # fingerprint of everything the cell's run holds: unchanged → the run is kept


@dataclass(frozen=True)
class CellAggregate:
    """One cell's metrics over its seeds. ``per_epoch``: columns metric, step (epoch), n, mean, lo, hi;
    ``final``: metric, n, mean, lo, hi. lo and hi are NaN where a single seed has the value."""

    group: SeedGroup
    per_epoch: pd.DataFrame
    final: pd.DataFrame


def seed_groups(runs: pd.DataFrame) -> list[SeedGroup]:
    """The cells of ``runs``: one row per trial run, columns ``run_id``, ``parent_run_id``, ``status``
    (``ok``, ``diverged``, ``stopped``, ``error``, anything else: unfinished), ``last_epoch`` and
    ``params.<name>`` (strings as logged: batch_size, lr, momentum, seed, section, schedule, dataset_size
    and the rest). A seed run twice under one study counts once (its furthest finished run)."""
    params = sorted(c for c in runs.columns if c.startswith("params.") and c[len("params."):] not in SEED_PARAMS)
    shared = runs[params].fillna("").astype(str)
    frame = runs.assign(parent_run_id=runs["parent_run_id"].fillna(""),
                        _identity=shared.agg("\x1f".join, axis=1) if len(runs) else "",
                        _rank=runs["status"].map({OK: 0, STOPPED: 0, DIVERGED: 0, ERROR: 1}).fillna(2))
    several_n = frame.groupby("parent_run_id")["params.dataset_size"].nunique() > 1  # N shown where it varies
    frame = frame.sort_values(["_rank", "last_epoch"], ascending=[True, False], kind="stable")
    frame = frame.drop_duplicates(["parent_run_id", "_identity", "params.seed"])
    groups = []
    for (parent, _), cell in frame.groupby(["parent_run_id", "_identity"], sort=True):
        values = {name[len("params."):]: value for name, value in shared.loc[cell.index[0]].items()}
        groups.append(_group(str(parent), values, cell.sort_values("params.seed", key=_as_ints),
                             bool(several_n[parent])))
    return groups


def _as_ints(seeds: pd.Series) -> pd.Series:
    return pd.to_numeric(seeds, errors="coerce")


def _group(parent: str, params: dict[str, str], cell: pd.DataFrame, several_n: bool) -> SeedGroup:
    status = cell["status"]
    averaged = cell[status.isin(AVERAGED)]
    section, schedule = params.get("section") or "main", params.get("schedule") or "constant"
    n = int(params["dataset_size"]) if several_n else None
    name = display_name(section, int(params["batch_size"]), float(params["momentum"]), None, schedule, n,
                        lr=float(params["lr"]))
    digest_of_params = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
    key = (f"{section}-B{params['batch_size']}-lr{float(params['lr']):.4g}-m{float(params['momentum']):g}"
           f"-{schedule}{f'-N{n}' if n is not None else ''}-{digest_of_params}")
    trials = [(run, str(s), float(e)) for run, s, e in zip(cell["run_id"], status, cell["last_epoch"].fillna(-1))]
    digest = hashlib.sha1(json.dumps([FORMAT, name, params, trials]).encode()).hexdigest()
    return SeedGroup(
        parent_run_id=parent, key=key, name=name, params=params,
        seeds=tuple(int(s) for s in averaged["params.seed"]), averaged_runs=tuple(averaged["run_id"]),
        final_runs=tuple(cell.loc[status.isin(FINAL), "run_id"]), n_diverged=int((status == DIVERGED).sum()),
        n_failed=int((status == ERROR).sum()), n_stopped=int((status == STOPPED).sum()),
        n_unfinished=int((~status.isin((*AVERAGED, DIVERGED, ERROR))).sum()), digest=digest)


def aggregate_cells(groups: list[SeedGroup], points: pd.DataFrame) -> list[CellAggregate]:
    """Each cell's mean and 95 % interval over its seeds, per epoch and final. ``points``: columns
    ``run_id``, ``key`` (the metric), ``step`` (the epoch) and ``value``, one value per (run, metric,
    step); non-finite values are left out (a metric a trial does not report, as SGD's noise scale under
    another optimizer)."""
    cell_of = {run: index for index, group in enumerate(groups) for run in group.averaged_runs}
    final_runs = {run for group in groups for run in group.final_runs}
    points = points[points["run_id"].isin(cell_of) & ~points["key"].isin(NOT_AVERAGED)
                    & np.isfinite(points["value"].astype(float))]
    points = points.assign(cell=points["run_id"].map(cell_of), value=points["value"].astype(float))
    per_epoch = mean_intervals(points, ["cell", "key", "step"])
    last = points[points["run_id"].isin(final_runs)].sort_values("step").drop_duplicates(["run_id", "key"],
                                                                                         keep="last")
    final = mean_intervals(last, ["cell", "key"])
    by_epoch, by_final = dict(list(per_epoch.groupby("cell"))), dict(list(final.groupby("cell")))
    empty_epoch, empty_final = per_epoch.iloc[:0], final.iloc[:0]
    return [CellAggregate(group, _tidy(by_epoch.get(index, empty_epoch)), _tidy(by_final.get(index, empty_final)))
            for index, group in enumerate(groups)]


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.drop(columns="cell").rename(columns={"key": "metric"})
    if "step" in frame.columns:
        frame = frame.astype({"step": int})
    return frame.reset_index(drop=True)


def mean_intervals(points: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per group of ``by``: n, the mean of ``value`` and its Student-t interval, mean ± t(0.975, n−1)·s/√n
    with s the sample standard deviation (NaN bounds for a single value)."""
    stats = points.groupby(by, sort=True)["value"].agg(n="count", mean="mean", sd="std").reset_index()
    n = stats["n"].to_numpy()
    quantiles = {dof: t_quantile(0.5 + CONFIDENCE / 2, dof) for dof in np.unique(n[n > 1] - 1)}
    t = np.array([quantiles.get(count - 1, np.nan) for count in n], dtype=float)
    half = t * stats["sd"].to_numpy(dtype=float) / np.sqrt(n)
    return stats.assign(lo=stats["mean"] - half, hi=stats["mean"] + half).drop(columns="sd")
