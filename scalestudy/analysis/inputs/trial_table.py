"""The trial table: one row per trial that ended (finished, diverged or stopped early), the
only input of every fit.

Schema (documented in docs/tracking.md, "The trial table"; units in brackets):

required
  batch_size    int    initial global batch size B [examples per update]
  lr            float  initial (base) learning rate ε [per update]
  momentum      float  initial momentum m, 0 <= m < 1
  seed          int    random seed of the trial
  dataset_size  int    N, training examples [examples]
  diverged      bool   the trial stopped on a non-finite or exploding loss
  objective     float  final value of the study's objective (analysis.objective); may be NaN for
                       diverged trials
  objective_direction  str  max | min: one per table
    (a table without the objective columns, written before objectives existed, is read as
    objective = test_acc, maximised, objective_train = train_acc: test_acc and train_acc are then
    required)
optional
  objective_metric  str  the objective's metric name (test_acc, test_loss, ...)
  objective_train   float  its training-split counterpart (train_acc for test_acc): the gap
  test_acc, train_acc  float  final accuracies [fraction] (classification)
  train_metrics str    eval | running: how the train_* metrics were measured (workload.train_metrics:
                       an eval-mode pass over a fixed training subset, or the epoch's running mean)
  schedule      str    constant | step_decay_lr | increase_batch | hybrid | ... (missing: constant)
  optimizer     str    sgd | adamw | the user's import path (missing or empty: sgd); the noise scale g*
                       is fitted for sgd only
  status        str    ok | diverged | stopped (the search's early stopping ended it before its planned
                       epochs: its final accuracy is not comparable, so it is left out of every
                       accuracy fit, or enters the ε* fit censored at its objective_bound, and is
                       counted in the compute; a trial that ended at workload.stop_at_train_loss is
                       ok); missing: ok or diverged
  objective_bound  float  a stopped trial's bound on its final objective (search.early_stopping kind
                       cell_bound, scalestudy.trial.curve_bound): the best it could still have
                       reached, at most this (a minimised objective: at least); its objective and
                       epochs_completed are where it stopped. NaN: no bound (ASHA, or none could be
                       extrapolated), or not stopped
  updates       float  total optimizer steps [updates]
  test_loss, train_loss  float  final losses (NaN/inf allowed when diverged)
  trial_key     str    stable key of the trial
  epochs_completed  float  epochs the trial ran [epochs]
  epochs_planned    float  epochs the trial was configured for [epochs]
  train_seconds float  wall seconds of training + evaluation, Σ epoch_seconds [s] (the MLflow
                       client read estimates it as the last epoch_seconds × epochs)
  workers, cpus_per_worker, gpus_per_worker  float  resources of the trial [processes, devices]
  gradient_noise_scale  float  final smoothed B_simple = tr(Σ)/|G|² [examples]
  target_accuracy       float  test accuracy of the steps-to-target measure [fraction]
  updates_to_target     float  updates when test_acc first reached the target, interpolated between the
                               evaluations around the crossing [updates];
  examples_to_target    float  ... and examples seen then [examples]; NaN: never reached, or censored
  updates_to_target_at_most, examples_to_target_at_most  float  a censored crossing (before the first
                               evaluation after the initial model): reached at or before these [updates],
                               [examples]; NaN otherwise (missing: tables from before censoring)
  gradient_noise_scale_at_target  float  B_simple at the end of the epoch of the crossing [examples]
  sharpness             float  Keskar ε-sharpness of the final weights, full space [percent]
  sharpness_subspace    float  the same in a random subspace (diagnostics.sharpness.subspace_dims);
  sharpness_p<dims>     float  ... or named with its dimensions, e.g. sharpness_p100
  grad_clip_norm, grad_norm_penalty  float  training recipe (NaN: unset)
  weight_decay, beta2  float  the λ the optimizer applied; AdamW's β2 (NaN: none); their timescales
                       tau_epoch = B/(ε·λ·N) [epochs] (NaN at λ = 0), beta2_half_life_examples [examples]
  ema_momentum, ema_test_loss, ema_test_acc  float  the model EMA's ρ and final test metrics (NaN: no EMA)
  section, run_id       str    (written by the MLflow loader)

Other columns are kept untouched; tables written before the current names (trial_id, epochs,
planned_epochs) are read under them (:data:`scalestudy.trial.readback.FORMER_NAMES`). Provenance
(where the table came from) travels with it and is stored in the Parquet file's schema metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scalestudy.analysis.errors import AnalysisError
from scalestudy.spec.objective import LEGACY_OBJECTIVE, Objective
from scalestudy.trial.readback import EPOCHS_COMPLETED, EPOCHS_PLANNED, KEY, with_current_names
from scalestudy.trial.record import SUBSPACE_SHARPNESS

REQUIRED = ("batch_size", "lr", "momentum", "seed", "dataset_size", "diverged")
# Tables from before objectives: the legacy objective (test accuracy) and its training counterpart (the gap).
ACCURACY_COLUMNS = (LEGACY_OBJECTIVE.metric, LEGACY_OBJECTIVE.train_metric)
DIRECTIONS = ("max", "min")
BOUND = "objective_bound"  # a stopped trial's bound on its final objective (censored in the ε* fit)
NUMERIC_OPTIONAL = ("objective", "objective_train", "test_acc", "train_acc", "target_value",
                    "updates", "test_loss", "train_loss", EPOCHS_COMPLETED, EPOCHS_PLANNED, "train_seconds", "workers",
                    "cpus_per_worker", "gpus_per_worker", "gradient_noise_scale", "target_accuracy",
                    "updates_to_target", "examples_to_target", "updates_to_target_at_most",
                    "examples_to_target_at_most", "gradient_noise_scale_at_target", "sharpness", "grad_clip_norm",
                    "grad_norm_penalty", BOUND, "weight_decay", "beta2", "tau_epoch", "beta2_half_life_examples",
                    "ema_momentum", "ema_test_loss", "ema_test_acc")
STATUSES = ("ok", "diverged", "stopped")
TEXT_OPTIONAL = ("schedule", KEY, "section", "run_id", "status", "optimizer", "objective_metric",
                 "objective_direction")
_INTEGER = ("batch_size", "seed", "dataset_size")
_MAX_EXACT_INT = 2**53
_PROVENANCE_KEY = b"scalestudy.provenance"


ACCURACY = LEGACY_OBJECTIVE  # tables and runs from before objectives


def objective_of(frame: pd.DataFrame) -> Objective:
    """The objective of a validated trial table (one metric and direction per table)."""
    if "objective_direction" not in frame.columns or frame.empty:
        return ACCURACY
    metric = frame["objective_metric"].iloc[0] if "objective_metric" in frame.columns else None
    # As the table names it (a user's table may name its metric in any way; the direction is validated).
    direction = str(frame["objective_direction"].iloc[0])
    return Objective.model_construct(metric=str(metric or "objective"), direction=direction)


@dataclass
class TrialTable:
    """A validated trial DataFrame plus where it came from.

    ``provenance`` keys: source ("mlflow" | "parquet" | "dataframe"), and for MLflow
    experiment, experiment_id, tracking_uri, parent_run_id, spec_hash, study; for
    Parquet input_file (and the original MLflow keys under "origin" when present).
    """

    frame: pd.DataFrame
    provenance: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frame)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, provenance: dict[str, Any] | None = None,
                   where: str = "trial table") -> TrialTable:
        clean, warnings = validate_trials(frame, where)
        return cls(clean, dict(provenance or {"source": "dataframe"}), warnings)

    def to_parquet(self, path: Path) -> Path:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(self.frame, preserve_index=False)
        metadata = dict(table.schema.metadata or {})
        metadata[_PROVENANCE_KEY] = json.dumps(self.provenance, default=str).encode()
        pq.write_table(table.replace_schema_metadata(metadata), path)
        return Path(path)


def load_trials_from_parquet(path: str | Path) -> TrialTable:
    """Read and validate a trial table; any problem is a one-line :class:`AnalysisError`."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        what = "a directory" if path.is_dir() else "not a regular file" if path.exists() else "no such file"
        raise AnalysisError(f"no trial table at {path} ({what}; expected a Parquet file such as trials.parquet)")
    try:
        table = pq.read_table(path)
    except Exception as error:  # noqa: BLE001 - pyarrow raises several types for unreadable files
        raise AnalysisError(f"{path}: not a readable Parquet file ({_first_line(error)})") from None
    origin = {}
    raw = (table.schema.metadata or {}).get(_PROVENANCE_KEY)
    if raw:
        try:
            origin = json.loads(raw)
        except ValueError:
            origin = {}
    provenance = {"source": "parquet", "input_file": str(path.resolve())}
    if origin:
        provenance["origin"] = origin
    return TrialTable.from_frame(table.to_pandas(), provenance, where=str(path))


def validate_trials(frame: pd.DataFrame, where: str = "trial table") -> tuple[pd.DataFrame, list[str]]:
    """Check the schema and coerce dtypes; returns the clean frame and warnings."""
    if not isinstance(frame, pd.DataFrame):
        raise AnalysisError(f"{where}: expected a table of trials, got {type(frame).__name__}")
    missing = [name for name in REQUIRED if name not in frame.columns]
    if missing:
        names = ", ".join(repr(name) for name in missing)
        raise AnalysisError(f"{where}: missing required column{'s' if len(missing) > 1 else ''} {names} "
                            "(see the trial table schema in the README)")
    if len(frame) == 0:
        raise AnalysisError(f"{where}: no trials")
    frame = _with_objective(with_current_names(frame).reset_index(drop=True).copy(), where)
    for name in ("batch_size", "lr", "momentum", "seed", "dataset_size",
                 *[n for n in frame.columns if n in NUMERIC_OPTIONAL or SUBSPACE_SHARPNESS.fullmatch(str(n))]):
        frame[name] = _numeric(frame[name], name, where)
    for name in ("batch_size", "lr", "momentum", "seed", "dataset_size"):
        if frame[name].isna().any():
            raise AnalysisError(f"{where}: column {name!r} has {int(frame[name].isna().sum())} missing values")
        _check_range(frame, name, np.isfinite(frame[name]), "finite", where)
    for name in _INTEGER:  # exact in float64 and in int64
        _check_range(frame, name, frame[name].abs() <= _MAX_EXACT_INT, f"a whole number of at most {_MAX_EXACT_INT}",
                     where)
    _check_range(frame, "batch_size", frame["batch_size"] > 0, "> 0", where)
    _check_range(frame, "lr", frame["lr"] > 0, "> 0", where)
    _check_range(frame, "momentum", (frame["momentum"] >= 0) & (frame["momentum"] < 1), "in [0, 1)", where)
    _check_range(frame, "dataset_size", frame["dataset_size"] > 0, "> 0", where)
    for name in _INTEGER:
        if (frame[name] != np.round(frame[name])).any():
            raise AnalysisError(f"{where}: column {name!r} must hold whole numbers")
        frame[name] = frame[name].astype("int64")
    frame["diverged"] = _boolean(frame["diverged"], where)
    for name in TEXT_OPTIONAL:
        if name in frame.columns:
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    if "schedule" in frame.columns:
        frame["schedule"] = frame["schedule"].map(lambda s: "constant" if s in (None, "") else str(s))
    if "status" in frame.columns:
        frame["status"] = frame["status"].where(frame["status"].map(lambda s: s not in (None, "")),
                                                np.where(frame["diverged"], "diverged", "ok"))
        unknown = ~frame["status"].isin(STATUSES)
        if unknown.any():
            raise AnalysisError(f"{where}: column 'status' must be ok, diverged or stopped "
                                f"(found {frame.loc[unknown, 'status'].iloc[0]!r})")
    warnings = []
    metric = objective_of(frame).metric
    unfinished = ~frame["diverged"] & ~np.isfinite(frame["objective"])
    if unfinished.any():
        warnings.append(f"{int(unfinished.sum())} non-diverged trials without a finite {metric} were left out")
        frame = frame[~unfinished].reset_index(drop=True)
        if len(frame) == 0:
            raise AnalysisError(f"{where}: no trial has a finite {metric}")
    return frame, warnings


def _with_objective(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """The objective columns: as given (one direction), or test accuracy (tables from before objectives)."""
    if "objective" not in frame.columns:
        missing = [name for name in ACCURACY_COLUMNS if name not in frame.columns]
        if missing:
            names = ", ".join(repr(name) for name in missing)
            raise AnalysisError(f"{where}: missing required column{'s' if len(missing) > 1 else ''} {names} "
                                "(or an 'objective' column with 'objective_direction'; see the trial table "
                                "schema in the README)")
        return frame.assign(objective=frame[ACCURACY.metric], objective_train=frame[ACCURACY.train_metric],
                            objective_metric=ACCURACY.metric, objective_direction=ACCURACY.direction)
    if "objective_direction" not in frame.columns:
        raise AnalysisError(f"{where}: column 'objective' needs 'objective_direction' (max or min)")
    directions = set(frame["objective_direction"].astype(str))
    if not directions <= set(DIRECTIONS) or len(directions) > 1:
        raise AnalysisError(f"{where}: column 'objective_direction' must be one of max or min for every trial "
                            f"(found {', '.join(sorted(directions))})")
    if "objective_metric" in frame.columns and frame["objective_metric"].nunique() > 1:
        metrics = ", ".join(sorted(map(str, frame["objective_metric"].unique())))
        raise AnalysisError(f"{where}: the trials have several objective metrics ({metrics}): analyze one at a time")
    return frame if "objective_train" in frame.columns else frame.assign(objective_train=np.nan)


def stopped(frame: pd.DataFrame) -> pd.Series:
    """Trials stopped early by the search (status ``stopped``): they ran, but did not finish."""
    if "status" not in frame.columns:
        return pd.Series(False, index=frame.index)
    return frame["status"] == "stopped"


def censored(frame: pd.DataFrame) -> pd.Series:
    """Stopped trials with a bound on their final objective: censored observations, not left out."""
    if BOUND not in frame.columns:
        return pd.Series(False, index=frame.index)
    return stopped(frame) & np.isfinite(frame[BOUND])


def _numeric(column: pd.Series, name: str, where: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(column):
        return column.astype("float64")
    if not pd.api.types.is_numeric_dtype(column):  # MLflow params log an unset value as "": missing, not bad
        column = column.where(column.map(lambda v: not (isinstance(v, str) and not v.strip())), None)
    converted = pd.to_numeric(column, errors="coerce")
    bad = converted.isna() & column.notna()
    if bad.any():
        example = column[bad].iloc[0]
        raise AnalysisError(f"{where}: column {name!r} must be numeric (found {example!r})")
    return converted.astype("float64")


def _boolean(column: pd.Series, where: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(column):
        return column.astype(bool)
    mapping = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
    values = column.map(lambda v: mapping.get(str(v).strip().lower()) if v is not None else None)
    if values.isna().any():
        example = column[values.isna()].iloc[0]
        raise AnalysisError(f"{where}: column 'diverged' must be boolean (found {example!r})")
    return values.astype(bool)


def _check_range(frame: pd.DataFrame, name: str, ok: pd.Series, rule: str, where: str) -> None:
    if not ok.all():
        example = frame.loc[~ok, name].iloc[0]
        raise AnalysisError(f"{where}: column {name!r} must be {rule} (found {example:g})")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
