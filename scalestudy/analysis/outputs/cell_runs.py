"""The seeds of each cell aggregated where users look: one MLflow run per cell under the study's parent
run, so that a study of thousands of trials reads at a glance in the MLflow UI (compare cells in the
chart view; filter the runs table with ``tags.`scalestudy.role` = 'cell_aggregate'``).

A cell run is named like its trials without the seed (``B=128 lr=0.1 m=0.9 constant``) and holds

* per epoch (step = epoch), for every metric the trials logged: ``<metric>_mean`` and, with two seeds
  or more, ``<metric>_lo`` and ``<metric>_hi`` (the 95 % Student-t interval over the seeds);
* the final values the same way, under ``final/<metric>_mean|_lo|_hi`` (one point each);
* ``n_seeds``, ``n_diverged``, ``n_failed``, ``n_stopped``, ``n_unfinished`` (metrics, to sort and filter);
* params: the cell's own (every param its trials share: batch_size, lr, momentum, schedule, section,
  dataset_size, ...), ``n_seeds`` and ``seeds`` (the seeds averaged);
* tags: ``scalestudy.role = cell_aggregate``, the cell key and a digest of what it averages.

Written by ``scalestudy analyze`` and at the end of ``scalestudy run``; idempotent: a cell's run is
found by its parent and cell key, kept while its digest matches, and otherwise replaced (a new run
first, then the old one deleted: MLflow params cannot change); the runs of cells no longer there are
deleted. Which trials count, and how: :mod:`~scalestudy.analysis.fits.seed_aggregate`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from itertools import zip_longest

from scalestudy.analysis.fits.seed_aggregate import CellAggregate, SeedGroup, aggregate_cells, seed_groups
from scalestudy.analysis.inputs.trial_histories import read_histories, read_trial_runs
from scalestudy.trial.record import (
    CELL_AGGREGATE_ROLE,
    CELL_DIGEST_TAG,
    CELL_KEY_TAG,
    PARENT_TAG,
    ROLE_TAG,
    RUN_NAME_TAG,
    SECTION_TAG,
)

FINAL_PREFIX = "final/"  # MLflow's chart view groups metrics by the prefix before "/": the finals apart
COUNTS = ("n_seeds", "n_diverged", "n_failed", "n_stopped", "n_unfinished")
UI_FILTER = f"tags.`{ROLE_TAG}` = '{CELL_AGGREGATE_ROLE}'"
CELLS_PER_READ = 200  # cells whose histories are read (and runs written) at a time: bounded memory
# MLflow's log_batch limits: 1000 metrics, 100 params, 1000 entities in all per request.
METRICS_PER_BATCH, PARAMS_PER_BATCH = 900, 100


@dataclass(frozen=True)
class CellRunsSummary:
    """What :func:`publish_cell_runs` did: ``cells`` found, their runs ``written`` (new or replaced) or
    ``kept`` (unchanged), and runs ``removed`` (stale duplicates, cells no longer there)."""

    cells: int
    written: int
    kept: int
    removed: int

    def line(self) -> str:
        return (f"{self.cells} cell runs over seeds ({self.written} written, {self.kept} unchanged"
                f"{f', {self.removed} removed' if self.removed else ''}); MLflow filter: {UI_FILTER}")


def publish_cell_runs(tracking_uri: str, experiment_id: str, *, method: str = "auto") -> CellRunsSummary:
    """Write, replace or keep one run per cell of the experiment's trial runs (see the module's doc)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    runs = read_trial_runs(tracking_uri, experiment_id, method=method)
    groups = seed_groups(runs) if not runs.empty else []
    existing = existing_cell_runs(client, experiment_id)
    todo, kept, stale = [], 0, []
    for group in groups:
        found = existing.pop((group.parent_run_id, group.key), [])
        keep = next((run for run, digest in found if digest == group.digest), None)
        if keep is None:
            todo.append((group, [run for run, _ in found]))
        else:
            kept += 1
            stale += [run for run, _ in found if run != keep]  # a duplicate left by an interrupted write
    stale += [run for found in existing.values() for run, _ in found]  # cells no longer there
    for start in range(0, len(todo), CELLS_PER_READ):
        chunk = todo[start:start + CELLS_PER_READ]
        run_ids = sorted({run for group, _ in chunk for run in group.averaged_runs})
        points = read_histories(tracking_uri, run_ids, method=method)
        for aggregate, (_, replaced) in zip(aggregate_cells([group for group, _ in chunk], points), chunk):
            write_cell_run(client, experiment_id, aggregate)
            for run in replaced:  # only once the new run exists: a failure never leaves a cell without one
                client.delete_run(run)
    for run in stale:
        client.delete_run(run)
    return CellRunsSummary(cells=len(groups), written=len(todo), kept=kept, removed=len(stale))


def existing_cell_runs(client, experiment_id: str) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """The experiment's active cell runs: (parent run id, cell key) → [(run id, digest), ...]."""
    from mlflow.entities import ViewType

    found: dict[tuple[str, str], list[tuple[str, str]]] = {}
    token = None
    while True:
        page = client.search_runs([experiment_id], UI_FILTER, ViewType.ACTIVE_ONLY, max_results=50_000,
                                  page_token=token)
        for run in page:
            tags = run.data.tags
            key = (tags.get(PARENT_TAG, ""), tags.get(CELL_KEY_TAG, ""))
            found.setdefault(key, []).append((run.info.run_id, tags.get(CELL_DIGEST_TAG, "")))
        token = page.token
        if not token:
            return found


def cell_run_metrics(aggregate: CellAggregate) -> list[tuple[str, float, int]]:
    """(name, value, step) of every metric of a cell's run."""
    points = []
    for prefix, frame in (("", aggregate.per_epoch), (FINAL_PREFIX, aggregate.final)):
        steps = frame["step"] if "step" in frame.columns else [0] * len(frame)
        for metric, step, n, mean, lo, hi in zip(frame["metric"], steps, frame["n"], frame["mean"], frame["lo"],
                                                 frame["hi"]):
            points.append((f"{prefix}{metric}_mean", float(mean), int(step)))
            if n > 1:
                points += [(f"{prefix}{metric}_lo", float(lo), int(step)),
                           (f"{prefix}{metric}_hi", float(hi), int(step))]
    return points + [(name, float(value), 0) for name, value in zip(COUNTS, _counts(aggregate.group))]


def cell_run_params(group: SeedGroup) -> dict[str, str]:
    """The cell's params: those its trials share, the number of seeds averaged and which."""
    return {**group.params, "n_seeds": str(len(group.seeds)), "seeds": ",".join(str(s) for s in group.seeds)}


def _counts(group: SeedGroup) -> tuple[int, ...]:
    return len(group.seeds), group.n_diverged, group.n_failed, group.n_stopped, group.n_unfinished


def write_cell_run(client, experiment_id: str, aggregate: CellAggregate) -> str:
    """A new, finished cell run under the cell's study parent run; its id."""
    from mlflow.entities import Metric, Param

    group = aggregate.group
    tags = {ROLE_TAG: CELL_AGGREGATE_ROLE, CELL_KEY_TAG: group.key, CELL_DIGEST_TAG: group.digest,
            RUN_NAME_TAG: group.name, SECTION_TAG: group.params.get("section", "")}
    if group.parent_run_id:
        tags[PARENT_TAG] = group.parent_run_id
    run_id = client.create_run(experiment_id, tags=tags, run_name=group.name).info.run_id
    now = int(time.time() * 1000)
    metrics = [Metric(name, value, now, step) for name, value, step in cell_run_metrics(aggregate)]
    params = [Param(key, value) for key, value in cell_run_params(group).items()]
    metric_batches = [metrics[i:i + METRICS_PER_BATCH] for i in range(0, len(metrics), METRICS_PER_BATCH)]
    param_batches = [params[i:i + PARAMS_PER_BATCH] for i in range(0, len(params), PARAMS_PER_BATCH)]
    for batch_metrics, batch_params in zip_longest(metric_batches, param_batches, fillvalue=[]):
        client.log_batch(run_id, metrics=batch_metrics, params=batch_params)
    client.set_terminated(run_id)
    return run_id
