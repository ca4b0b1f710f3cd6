"""The trial record: what a trial is called and what it leaves in MLflow — one home for each rule.

* names: the MLflow tags, the params of a trial and of a study, the per-epoch metrics (the fields
  of :class:`EpochReport`, the loop's own report) and the diagnostics;
* the trial key, the trial's identity, made from the exact values of everything that decides
  its training (:func:`trial_key`), and the run name, for people only (:func:`display_name`);
* the status rule: ``ok``, ``diverged``, ``stopped`` or ``error`` (:func:`trial_status`).

Tracking, the callbacks, the study, the searches, ``scalestudy sync`` and the analysis import
these; none of them spells a name or decides a status itself. The record is made from a trial
config's wire dict (:meth:`scalestudy.trial.config.TrialConfig.to_dict`), what Tune stores, and
read back as a row of the trial table by :mod:`scalestudy.trial.readback`, beside it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol

from scalestudy.trial.axes import axis_params

if TYPE_CHECKING:
    from scalestudy.spec import StudySpec

# --- tags ------------------------------------------------------------------------------------------
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"  # MLflow 3.17's UI opens such experiments as runs tables
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
ROLE_TAG = "scalestudy.role"
KEY_TAG = "scalestudy.trial_key"
STATUS_TAG = "scalestudy.status"
SECTION_TAG = "scalestudy.section"
STUDY_TAG = "scalestudy.study"
SPEC_HASH_TAG = "scalestudy.spec_hash"
VERSION_TAG = "scalestudy.version"
GIT_COMMIT_TAG = "scalestudy.git_commit"
PLANNED_TAG = "scalestudy.planned_trials"  # the study's planned trial count (the param `trials`: its first)
INTERRUPTED_TAG = "scalestudy.interrupted"  # "true" on the parent run of a study stopped by a signal
# On the parent run of a study with early stopping: its kind (search.early_stopping.kind), which tells the
# analysis whether its stopped trials carry a bound on their final objective (cell_bound) or not (asha).
EARLY_STOPPING_TAG = "scalestudy.early_stopping"
RUN_A_TAG, RUN_B_TAG = "scalestudy.run_a", "scalestudy.run_b"  # an interpolation's two trials
# A failed trial's reason, one line (scalestudy.trial.failure), and its full traceback, an artifact of its run.
ERROR_REASON_TAG = "scalestudy.error_reason"
ERROR_ARTIFACT = "error.txt"
# A cell's run over its seeds: which cell (exact values), and a fingerprint of the trial runs it averages.
CELL_KEY_TAG, CELL_DIGEST_TAG = "scalestudy.cell_key", "scalestudy.cell_digest"

# Values of ROLE_TAG: the study's parent run, a trial's run, and the runs analyses leave (a cell's
# seeds aggregated: scalestudy.analysis.outputs.cell_runs). Readers of trials select TRIAL_ROLE.
STUDY_ROLE, TRIAL_ROLE, ANALYSIS_ROLE, INTERPOLATION_ROLE = "study", "trial", "analysis", "interpolation"
CELL_AGGREGATE_ROLE = "cell_aggregate"
CHECK_ROLE = "check"  # a check-law run, under the law's study's parent run

# --- statuses (values of STATUS_TAG) ---------------------------------------------------------------
RUNNING = "running"
INTERRUPTED = "interrupted"  # a trial run closed (KILLED) when its study was interrupted; --resume continues it
OK, DIVERGED, STOPPED, ERROR = "ok", "diverged", "stopped", "error"
STATUSES = (OK, DIVERGED, STOPPED, ERROR)
FINISHED_STATUSES = (OK, DIVERGED, STOPPED)  # ended as data (stopped: by the search's early stopping)


# --- the per-epoch report and its metric names ------------------------------------------------------
@dataclass(frozen=True)
class EpochReport:
    """Metrics after one epoch (DESIGN decision 2). Counts are cumulative over the trial."""

    epoch: int  # 1-based: the number of epochs completed
    updates: int  # optimizer steps so far
    examples_seen: int
    batch_size: int  # global batch of this epoch, examples
    lr: float  # during warmup or a per-update decay: the mean over the epoch's updates
    momentum: float
    effective_lr: float  # lr / (1 − m)
    noise_scale: float  # lr/(1−m)·(N/B − 1); NaN for optimizers other than SGD (optim.noise_scale_holds)
    train_loss: float  # see workload.train_metrics: running (train mode) or eval-mode subset
    train_acc: float | None  # None (not reported) for a task without accuracy (language_model)
    test_loss: float
    test_acc: float | None
    gen_gap: float | None  # train_acc − test_acc
    running_loss: float  # mean minibatch loss during the epoch (train mode)
    epoch_seconds: float
    diverged: int  # 0/1
    # Diagnostics the spec asked for (DIAGNOSTIC_KEYS): gradient_noise_scale (B_simple, examples),
    # updates_to_target / examples_to_target (or, for a crossing before the first evaluation after the
    # initial model, their bounds *_at_most), gradient_noise_scale_at_target (B_simple at the end of
    # the epoch of the crossing), sharpness and sharpness_subspace (final epoch); and the model EMA's
    # test metrics, ema_test_<m> (optimizer.ema).
    extras: dict[str, float] = field(default_factory=dict)
    # The task's other metrics: train_<m> and test_<m> (a language model's perplexity, a user task's
    # own), and TASK_KEYS (a language model's tokens_per_batch).
    task_metrics: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        values = asdict(self)
        extras, task = values.pop("extras"), values.pop("task_metrics")
        return {**{k: v for k, v in values.items() if v is not None}, **task, **extras}


# Every report's metrics, in the report's own order; step = epoch (train_acc, test_acc, gen_gap:
# classification's; other tasks report their own, see ``is_tracked``).
METRIC_KEYS = tuple(f.name for f in fields(EpochReport) if f.name not in ("extras", "task_metrics"))
# The model EMA's metrics (optimizer.ema): the task's test metrics of the EMA weights, ema_test_loss, ....
EMA_PREFIX = "ema_"
# Per-epoch metrics of a task that are not per split.
TASK_KEYS = ("tokens_per_batch",)
# Logged when the spec's diagnostics ask for them (EpochReport.extras).
DIAGNOSTIC_KEYS = ("gradient_noise_scale", "updates_to_target", "examples_to_target", "updates_to_target_at_most",
                   "examples_to_target_at_most", "gradient_noise_scale_at_target", "sharpness", "sharpness_subspace")
LOGGED_KEYS = METRIC_KEYS + DIAGNOSTIC_KEYS + TASK_KEYS
# ε-sharpness in a random subspace: sharpness_subspace (logged; its dims are in the spec) or
# sharpness_p<dims>, e.g. sharpness_p100 (a trial table may name it so).
SUBSPACE_SHARPNESS = re.compile(r"sharpness_(subspace|p\d+)")


def is_tracked(key: str) -> bool:
    """Whether a key of a trial's result is one of its metrics: the report's own, the diagnostics,
    or the task's (every task metric is named train_<m> or test_<m>, the EMA's ema_test_<m>; Tune's keys
    never are)."""
    return key in LOGGED_KEYS or key.startswith(("train_", "test_", EMA_PREFIX + "test_"))
# A resumed trial's first report carries the epochs before it (JSON), so tracking can fill a gap.
HISTORY_KEY = "history_json"
# Tune stamps every result (int seconds); metric timestamps derive from it, so the live
# callback and ``scalestudy sync`` write identical points (MLflow drops exact repeats).
TIMESTAMP_KEY = "timestamp"


# --- the status rule -------------------------------------------------------------------------------
class PlannedWork(Protocol):
    """What the rules below read of a trial's plan (a :class:`scalestudy.trial.config.TrialWorkload`)."""

    epochs: int
    stop_at_train_loss: float | None


def trial_ended(plan: PlannedWork, last: Mapping[str, Any]) -> bool:
    """Whether a trial whose latest epoch report is ``last`` has ended on its own: it diverged, trained
    its planned epochs, or its training loss reached ``plan.stop_at_train_loss``. The one rule for the
    loop's stop, and through :func:`trial_status` for the status everywhere."""
    if last.get("diverged") or int(last.get("epoch", 0)) >= plan.epochs:
        return True
    target = plan.stop_at_train_loss
    return target is not None and last.get("train_loss", math.inf) <= target


def trial_status(plan: PlannedWork, last: Mapping[str, Any] | None, errored: bool = False) -> str:
    """How a trial that has ended ended, from its workload (``plan``) and its last report.

    ``error`` when it failed or ended without a single report; ``diverged`` when its last epoch
    diverged (divergence is data, DESIGN decision 3); ``ok`` when it ended on its own
    (:func:`trial_ended`: its planned epochs, or its training-loss target); else ``stopped``: the
    search's early stopping (``search.early_stopping``: ASHA or the bound) ended it before either.
    """
    if errored or not last or "epoch" not in last:
        return ERROR
    if last.get("diverged"):
        return DIVERGED
    return OK if trial_ended(plan, last) else STOPPED


# --- identity and names ----------------------------------------------------------------------------
# Wire keys (TrialConfig.to_dict) that do not decide what is trained: where and how the trial runs,
# what is measured on the side, and values derived from the rest.
NOT_IDENTITY = frozenset({
    "study", "diagnostics", "cpus_per_worker", "gpus_per_worker", "checkpoint_every", "placement_strategy",
    "max_failures", "train_storage_path", "trial_key", "run_name", "bn_batch_size", "dataset_size", "has_batch_norm",
    "dataset_size_in_grid",
    "data", "objective",  # streamed or in memory, the same training; the objective ranks, never trains
})


def trial_key(wire: Mapping[str, Any]) -> str:
    """The trial's identity, from its config's wire dict: a readable prefix (ε printed to 4 significant
    digits) and a digest of the exact values (JSON numbers are ``repr``, exact for floats) of everything
    that decides its training, ε included, so two trials whose ε differ beyond 4 digits get different keys.

    Computed once, when the trial config is built; a stored config keeps the key it was stored with
    (keys of studies run before this rule are read back, never recomputed).
    """
    identity = {k: v for k, v in wire.items() if k not in NOT_IDENTITY}
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    return (f"{wire['section']}-B{wire['batch_size']}-lr{wire['lr']:.4g}-m{wire['momentum']:g}"
            f"-{wire['schedule']['kind']}-s{wire['seed']}-{digest}")


def display_name(section: str, batch_size: int, momentum: float, seed: int | None, schedule_kind: str,
                 dataset_size: int | None = None, *, lr: float | None = None) -> str:
    """A trial or a cell for people, never an identity: the MLflow run name of a trial,
    ``B=128 lr=0.1 m=0.9 seed=0 constant``, and without ``lr`` its cell's label,
    ``B=128 m=0.9 seed=0 constant`` (``N=2000`` after m in a study over several N, and the section
    unless the main one); without ``seed``, its seeds together (``B=128 lr=0.1 m=0.9 constant``)."""
    rate = f" lr={lr:.4g}" if lr is not None else ""
    n = f" N={dataset_size}" if dataset_size is not None else ""
    seeds = f" seed={seed}" if seed is not None else ""
    label = f"B={batch_size}{rate} m={momentum:g}{n}{seeds} {schedule_kind}"
    return label if section in ("main", "law") else f"{label} [{section}]"


# --- params ----------------------------------------------------------------------------------------
# What never changes during a trial: logged once as MLflow params (DESIGN decision 1).
# The gradient penalty is logged as grad_penalty (its kind), grad_norm_penalty (its strength λ:
# the name the trial table has always read) and grad_penalty_block_size. The optimizer as its name
# and its options (JSON); weight_decay is the decay it applies (SGD's grid.weight_decay, or the
# option of another optimizer: empty when it has none), nesterov SGD's alone (empty otherwise).
# The grid's timescale axes and the model EMA add theirs (scalestudy.trial.axes.AXIS_PARAM_KEYS).
PARAM_KEYS = (
    "dataset", "model", "dataset_size", "epochs", "ghost_batch_size", "batch_size", "lr",
    "momentum", "nesterov", "weight_decay", "optimizer", "optimizer_options", "seed", "schedule", "schedule_args",
    "section",
    "workers", "cpus_per_worker", "gpus_per_worker", "grad_clip_norm", "grad_penalty", "grad_norm_penalty",
    "grad_penalty_block_size", "trial_key", "bn_batch_size", "precise_bn_batches", "stop_at_train_loss",
    "train_metrics",
    "task", "objective_metric", "objective_direction",
)
# Written when the spec's diagnostics count steps to a target (target_accuracy: test_acc's shortcut).
TARGET_PARAM_KEYS = ("target_accuracy", "target_metric", "target_value", "steps_to_target")


def trial_params(wire: Mapping[str, Any]) -> dict[str, str]:
    """The MLflow params of a trial, from its config's wire dict (strings; an unset value is empty)."""
    values: dict[str, Any] = {key: wire.get(key) for key in PARAM_KEYS}
    schedule = dict(wire["schedule"])
    values["schedule"] = schedule.pop("kind")
    values["schedule_args"] = json.dumps(schedule, sort_keys=True)
    precise, penalty = wire["precise_bn"], wire["grad_penalty"]
    values["precise_bn_batches"] = None if precise is None else precise["batches"]
    values["grad_penalty"] = None if penalty is None else penalty["kind"]
    values["grad_norm_penalty"] = 0.0 if penalty is None else penalty["strength"]
    values["grad_penalty_block_size"] = None if penalty is None else penalty["block_size"]
    options = wire.get("optimizer_options") or {}
    values["optimizer"] = wire.get("optimizer") or "sgd"  # configs stored before optimizers were pluggable
    values["optimizer_options"] = json.dumps(options, sort_keys=True)
    if values["optimizer"] != "sgd":
        values["weight_decay"], values["nesterov"] = options.get("weight_decay"), None
    # Written before tasks: classification.
    values["task"] = wire.get("task", "classification")
    # Always in the wire dict: TrialConfig.from_dict gives a config stored before objectives the legacy one.
    objective = wire["objective"]
    values["objective_metric"], values["objective_direction"] = objective["metric"], objective["direction"]
    corpus = (wire["dataset_options"] or {}).get("corpus_hash")
    if corpus:  # provenance of a text corpus: the sha256 of the bytes trained on
        values["corpus_hash"] = corpus
    if wire.get("train_subset"):  # which N examples scalestudy took of the training split
        values["dataset_subset_seed"] = wire["train_subset"]["seed"]
    values.update(axis_params(wire))
    diagnostics = wire["diagnostics"]
    target = diagnostics.get("target")
    if diagnostics["target_accuracy"] is not None:
        target = {"metric": "test_acc", "value": diagnostics["target_accuracy"]}
        values["target_accuracy"] = diagnostics["target_accuracy"]
    if target is not None:
        values["target_metric"], values["target_value"] = target["metric"], target["value"]
        values["steps_to_target"] = steps_to_target_method(diagnostics["target_eval_every"],
                                                           diagnostics["target_eval_margin"])
    return {key: "" if value is None else str(value) for key, value in values.items()}


def steps_to_target_method(every: int | None, margin: float | None) -> str:
    """How updates_to_target is measured (an MLflow param, see docs/tracking.md and ``scalestudy.train.target``).
    Runs logged before censoring say "interpolated between epoch ends" (linearly, from update 0 too) or
    "evaluated every K updates[ within m of the target]" (the first evaluation at the target)."""
    if every is None:
        where = "epoch ends"
    else:
        where = f"evaluations every {every} updates" + (
            "" if margin is None else f" within {margin:g} of the target (the first epoch also at {every}·2^k)")
    return f"interpolated in ln(updates) between {where}; censored before the first evaluation"


def study_tags(spec: StudySpec, version: str, commit: str | None) -> dict[str, str]:
    """The study's parent run: its role, its spec's hash and the code that ran it (provenance)."""
    tags = {ROLE_TAG: STUDY_ROLE, STUDY_TAG: spec.name, SPEC_HASH_TAG: spec.spec_hash(), VERSION_TAG: version,
            RUN_NAME_TAG: f"study {spec.name}"}
    if commit:
        tags[GIT_COMMIT_TAG] = commit
    if spec.search.early_stopping is not None:
        tags[EARLY_STOPPING_TAG] = spec.search.early_stopping.kind
    return tags


def study_params(spec: StudySpec, planned_trials: int) -> dict[str, str]:
    """The parent run's params; ``trials`` is the planned count (an upper bound for adaptive searches)."""
    values = {"trials": planned_trials, "dataset": spec.workload.dataset, "model": spec.workload.model,
              "optimizer": spec.optimizer.name,
              "epochs": spec.workload.epochs, "ghost_batch_size": spec.workload.ghost_batch_size,
              "workers_per_trial": spec.resources.workers_per_trial, "spec_hash": spec.spec_hash()}
    return {key: str(value) for key, value in values.items()}
