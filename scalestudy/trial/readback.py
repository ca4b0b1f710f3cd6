"""A trial's record read back as a row of the trial table: from its MLflow run (the params, latest
metrics and tags that :mod:`scalestudy.trial.record` has the tracking write) or from its config and
last Ray result. The other half of :mod:`~scalestudy.trial.record`: the names, the status rule
(:func:`~scalestudy.trial.record.trial_status`) and the defaults for records written by earlier
versions come from there and from the spec's objective, none is spelled twice.

One name per concept in the table: ``trial_key`` (the trial key: the tag and the param that hold
it), ``epochs_completed`` (the last report's ``epoch``) and ``epochs_planned`` (the ``epochs`` param:
``TrialWorkload.epochs``, the epochs the trial was configured for). Tables written before these
names (``trial_id``, ``epochs``, ``planned_epochs``) are read under the new ones
(:func:`with_current_names`).

The MLflow side is vectorised over the runs of an experiment (10,000 runs read in about a second);
the status rule, a function of one run, is applied per run only to runs closed before statuses
existed (those without a status tag).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scalestudy.optim import timescales
from scalestudy.spec.objective import LEGACY_OBJECTIVE, Objective
from scalestudy.trial.axes import applied_decay
from scalestudy.trial.record import (
    DIAGNOSTIC_KEYS,
    DIVERGED,
    FINISHED_STATUSES,
    KEY_TAG,
    OK,
    STATUS_TAG,
    SUBSPACE_SHARPNESS,
    TARGET_PARAM_KEYS,
    trial_status,
)

if TYPE_CHECKING:
    import pandas as pd

    from scalestudy.trial.config import TrialConfig

# --- the table's names for what the record holds under other names ---------------------------------
KEY = "trial_key"  # the trial key (the tag KEY_TAG; the param trial_key)
EPOCHS_COMPLETED = "epochs_completed"  # epochs the trial ran: its last report's ``epoch``
EPOCHS_PLANNED = "epochs_planned"  # epochs it was configured for: the param ``epochs``
# Columns of tables written before these names, read under the new ones.
FORMER_NAMES = {"trial_id": KEY, "epochs": EPOCHS_COMPLETED, "planned_epochs": EPOCHS_PLANNED}

# Params every trial run holds (a run without one is not a trial of this engine's contract).
REQUIRED_PARAMS = ("batch_size", "lr", "momentum", "seed", "dataset_size")
# Params carried into the table as they are (the table's validation makes numbers of the numeric ones).
TABLE_PARAMS = ("dataset", "model", "task", "optimizer", "optimizer_options", "ghost_batch_size", "weight_decay",
                "nesterov", "schedule_args", "workers", "cpus_per_worker", "gpus_per_worker", "grad_clip_norm",
                "grad_norm_penalty", "train_metrics", *(key for key in TARGET_PARAM_KEYS if key != "steps_to_target"))
# Final values of the per-epoch metrics every row has (NaN where a task does not report one).
FINAL_METRICS = ("test_acc", "train_acc", "updates", "test_loss", "train_loss")
# Final values of the model EMA's test metrics (optimizer.ema; NaN without one or for a task without the metric).
EMA_METRICS = ("ema_test_loss", "ema_test_acc")
# The summed training time of each run, when the read could sum the epochs (a column of the runs frame).
SUMMED_SECONDS = "metrics_sum.epoch_seconds"
MAX_FLOAT = 1.7976931348623157e308  # MLflow's SQL stores store ±inf as ±max float


def with_current_names(frame: pd.DataFrame) -> pd.DataFrame:
    """A trial table with the columns of earlier versions under their current names (unchanged when
    the current name is already there)."""
    renamed = {old: new for old, new in FORMER_NAMES.items() if old in frame.columns and new not in frame.columns}
    return frame.rename(columns=renamed) if renamed else frame


# --- from a Ray result -------------------------------------------------------------------------------
def row_from_result(config: TrialConfig, result: Mapping[str, Any]) -> dict[str, Any]:
    """The trial-table row of a trial that ended with ``result`` (its last Tune result, or its last
    epoch report's metrics), from its config."""
    def final(name: str) -> float:
        value = result.get(name)
        return math.nan if value is None or isinstance(value, bool) else float(value)

    objective = config.objective
    train = objective.train_metric
    decay = applied_decay(config.optimizer, config.weight_decay, config.optimizer_options)
    beta2 = getattr(config.optimizer_options, "beta2", None)
    ema = config.ema_momentum
    axes = optimizer_axis_columns(config.optimizer, math.nan if decay is None else decay,
                                  math.nan if beta2 is None else float(beta2), config.batch_size, config.lr,
                                  config.workload.dataset_size, math.nan if ema is None else ema)
    return {"batch_size": config.batch_size, "lr": config.lr, "momentum": config.momentum, "seed": config.seed,
            "dataset_size": config.workload.dataset_size, **axes,
            **{name: final(name) for name in (*FINAL_METRICS, *EMA_METRICS)},
            "diverged": bool(result.get("diverged")), EPOCHS_COMPLETED: final("epoch"),
            EPOCHS_PLANNED: float(config.workload.epochs), "schedule": config.schedule.kind,
            "section": config.section, KEY: config.trial_key, "status": trial_status(config.workload, result),
            "train_metrics": config.workload.train_metrics,
            "objective": final(objective.metric), "objective_train": math.nan if train is None else final(train),
            "objective_metric": objective.metric, "objective_direction": objective.direction}


# --- from MLflow runs --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Plan:
    """What the status rule reads of a run's params (record.PlannedWork)."""

    epochs: float
    stop_at_train_loss: float | None


def rows_from_runs(runs: pd.DataFrame) -> tuple[pd.DataFrame, Counter]:
    """(the trial-table rows of the runs that ended, the statuses of the runs left out, counted).

    ``runs``: one row per trial run, columns ``run_id``, ``params.<name>``, ``metrics.<name>`` (latest
    values) and ``tags.<name>``, as ``MlflowClient.search_runs`` gives them, and optionally
    :data:`SUMMED_SECONDS`; every name of :data:`REQUIRED_PARAMS` is a column."""
    import numpy as np
    import pandas as pd

    def column(name: str) -> pd.Series:
        return runs[name] if name in runs.columns else pd.Series(None, index=runs.index, dtype=object)

    def number(name: str) -> pd.Series:
        value = pd.to_numeric(column(name), errors="coerce").astype(float)
        return value.where(~(value.abs() >= MAX_FLOAT), np.sign(value) * np.inf)  # stored ±inf

    def metric(name: str) -> pd.Series:
        return number(f"metrics.{name}")

    tagged = column(f"tags.{STATUS_TAG}").astype(object)
    diverged = (metric("diverged") == 1) | (tagged == DIVERGED)
    completed, planned = metric("epoch"), number("params.epochs")
    derived = _untagged_statuses(completed, metric("diverged"), metric("train_loss"), planned,
                                 number("params.stop_at_train_loss"))
    status = tagged.where(tagged.notna(), pd.Series(derived, index=runs.index, dtype=object))
    finished = status.isin(FINISHED_STATUSES)
    frame = pd.DataFrame({
        **{name: column(f"params.{name}") for name in REQUIRED_PARAMS},
        **{name: metric(name) for name in FINAL_METRICS}, "diverged": diverged.astype(bool),
        "schedule": column("params.schedule").fillna("constant"),
        KEY: column(f"tags.{KEY_TAG}").fillna(column("params.trial_key")), EPOCHS_COMPLETED: completed,
        EPOCHS_PLANNED: planned, "section": column("params.section"), "run_id": runs["run_id"], "status": status,
        **_objective_columns(runs, metric),
    })
    for name in TABLE_PARAMS:
        if f"params.{name}" in runs.columns:
            frame[name] = runs[f"params.{name}"]
    options = column("params.optimizer_options").map(_beta2_of)
    frame = frame.assign(**optimizer_axis_columns(
        column("params.optimizer").where(column("params.optimizer").map(bool), "sgd").fillna("sgd"),
        number("params.weight_decay"), pd.to_numeric(options, errors="coerce").astype(float),
        number("params.batch_size"), number("params.lr"), number("params.dataset_size"),
        number("params.ema_momentum")), **{name: metric(name) for name in EMA_METRICS})
    logged = [name.removeprefix("metrics.") for name in runs.columns if name.startswith("metrics.")]
    subspace = sorted(name for name in logged if SUBSPACE_SHARPNESS.fullmatch(name))
    for name in (*(key for key in DIAGNOSTIC_KEYS if not SUBSPACE_SHARPNESS.fullmatch(key)), *subspace):
        if name in logged:
            frame[name] = metric(name)
    if SUMMED_SECONDS in runs.columns:
        frame["train_seconds"] = number(SUMMED_SECONDS)
    elif "metrics.epoch_seconds" in runs.columns:  # only the last epoch's: an estimate
        frame["train_seconds"] = metric("epoch_seconds") * completed
    skipped = Counter(str(s) if isinstance(s, str) else "unfinished" for s in tagged[~finished])
    return frame[finished.to_numpy()].reset_index(drop=True), skipped


def optimizer_axis_columns(optimizer: Any, weight_decay: Any, beta2: Any, batch_size: Any, lr: Any,
                           dataset_size: Any, ema_momentum: Any) -> dict[str, Any]:
    """The optimizer's columns of the trial table (values or whole columns): its name, the λ and β2 it
    applied, their timescales (:mod:`scalestudy.optim.timescales`: τ_epoch = B/(ε·λ·N), NaN at λ = 0;
    β2's half-life B·ln½/ln β2 in examples) and the model EMA's ρ (NaN: none)."""
    return {"optimizer": optimizer, "weight_decay": weight_decay, "beta2": beta2,
            "tau_epoch": timescales.tau_epoch(weight_decay, batch_size, lr, dataset_size),
            "beta2_half_life_examples": timescales.half_life_examples(beta2, batch_size),
            "ema_momentum": ema_momentum}


def _beta2_of(options: Any) -> float:
    """β2 of a run's optimizer_options param (JSON), NaN when it has none."""
    try:
        value = json.loads(options).get("beta2") if isinstance(options, str) and options else None
    except (ValueError, AttributeError):
        value = None
    return math.nan if value is None else float(value)


def _untagged_statuses(completed: pd.Series, diverged: pd.Series, train_loss: pd.Series, planned: pd.Series,
                       loss_targets: pd.Series) -> list[str | None]:
    """Each run's status by the status rule on its latest metrics and its params, for runs closed
    before statuses existed (the tag is read first): ``ok`` or ``diverged`` once it ended, else None
    (unfinished: a run that has not ended looks like one stopped early, which only the tag tells)."""
    statuses = []
    for epoch, diverged, train_loss, epochs, loss_target in zip(completed, diverged, train_loss, planned,
                                                                 loss_targets):
        last = {key: value for key, value in (("epoch", epoch), ("diverged", diverged), ("train_loss", train_loss))
                if not math.isnan(value)}
        plan = _Plan(epochs, None if math.isnan(loss_target) else loss_target)
        status = trial_status(plan, last)
        statuses.append(status if status in (OK, DIVERGED) else None)
    return statuses


def _objective_columns(runs: pd.DataFrame, metric) -> dict[str, pd.Series]:
    """Each run's objective (params objective_metric, objective_direction; runs from before objectives:
    :data:`~scalestudy.spec.objective.LEGACY_OBJECTIVE`), its final value and its training
    counterpart's (:attr:`~scalestudy.spec.objective.Objective.train_metric`)."""
    import numpy as np
    import pandas as pd

    def param(name: str, default: str) -> pd.Series:
        values = runs[f"params.{name}"] if f"params.{name}" in runs.columns else pd.Series(None, index=runs.index)
        return values.where(values.map(lambda v: isinstance(v, str) and bool(v.strip())), default).astype(object)

    names = param("objective_metric", LEGACY_OBJECTIVE.metric)
    directions = param("objective_direction", LEGACY_OBJECTIVE.direction)
    value = pd.Series(np.nan, index=runs.index)
    train = pd.Series(np.nan, index=runs.index)
    for name in names.unique():
        rows = names == name
        value[rows] = metric(name)[rows]
        counterpart = Objective.train_metric_of(name)
        if counterpart is not None:
            train[rows] = metric(counterpart)[rows]
    return {"objective": value, "objective_train": train, "objective_metric": names, "objective_direction": directions}
