"""A trial's config: built once from the spec, frozen and typed, carried unchanged to the epoch loop.

The spec expands into :class:`Cell` s, one per (section, N, λ/β2 axes, schedule, m, B, seed): everything of a
trial but ε (N the grid's dataset sizes, when it has a dataset-size axis; the optimizer axes: :mod:`.axes`). A search chooses ε per cell and :meth:`Cell.trial` makes the :class:`TrialConfig`,
keyed once (:func:`scalestudy.trial.record.trial_key`). Its typed pieces are the spec's own frozen
models (Schedule, GradPenalty, PreciseBN, Diagnostics) and the dataset's and model's validated
options, so nothing below re-validates or falls back on a default.

Ray Tune carries it as a plain JSON dict (``config["trial"]``, :meth:`TrialConfig.to_dict`): the
flat form earlier versions wrote, so :meth:`TrialConfig.from_dict` also reads the params.json and
experiment snapshots of studies run before (a missing setting is the spec's default of that time;
the stored trial key is kept, never recomputed).
Its 300-odd lines are the trial's whole typed config and its one wire format (to_dict/from_dict with
the defaults of configs stored by earlier versions), kept together so the two cannot drift.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from pydantic import BaseModel

from scalestudy import data, models, optim, tasks
from scalestudy.batching import bn_batch_size
from scalestudy.spec import (
    LEGACY_OBJECTIVE,
    DataLoading,
    Diagnostics,
    GradPenalty,
    Grid,
    ModelEMA,
    Objective,
    Optimizer,
    PreciseBN,
    Resources,
    Schedule,
    StudySpec,
    Workload,
)
from scalestudy.trial import axes as optimizer_axes
from scalestudy.trial import record


@dataclass(frozen=True)
class TrialWorkload:
    """What a trial trains, on what data and how: its section's workload with the options resolved
    (defaults filled in, relative paths made absolute: Tune runs each trial in its own folder). The
    user's dataset and model are named in their portable form (``Registry.portable``: the import path
    of a name registered at run time), which a fresh Ray worker resolves."""

    dataset: str
    dataset_options: BaseModel
    dataset_size: int  # N, training examples
    model: str
    model_options: BaseModel
    task: str  # classification | language_model | package.module:attribute
    data: DataLoading  # in memory or streamed (the same examples in the same order either way)
    epochs: int
    ghost_batch_size: int | None
    max_device_batch_size: int | None
    divergence_loss: float | None
    train_metrics: Literal["running", "eval"]
    grad_clip_norm: float | None
    grad_penalty: GradPenalty | None
    precise_bn: PreciseBN | None
    stop_at_train_loss: float | None  # the trial ends once an epoch's train_loss is at or below it
    has_batch_norm: bool  # the model has batch-norm layers (the user's: seen by building it in the driver)
    # N is one value of the grid's dataset_size axis (then in run names and per-cell groupings).
    dataset_size_in_grid: bool = False
    # The N examples scalestudy takes of the training split (None: the dataset gives N itself); part of
    # the trial's identity, since the dataset's options are then the same at every N.
    train_subset: data.TrainSubset | None = None

    def __post_init__(self) -> None:
        if self.train_subset is not None and self.train_subset.size != self.dataset_size:
            raise ValueError(f"trial config: train_subset of {self.train_subset.size} examples, dataset_size "
                             f"{self.dataset_size}")

    @property
    def shown_dataset_size(self) -> int | None:
        """N where names for people and per-cell groupings need it (a study over several N)."""
        return self.dataset_size if self.dataset_size_in_grid else None


@dataclass(frozen=True)
class TrialResources:
    """Where and how a trial runs (none of it, the workers aside, changes what it trains)."""

    workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    checkpoint_every: int  # epochs
    placement_strategy: str  # of a DDP trial's workers
    max_failures: int  # retries of a DDP trial's Ray Train run
    # The study's folder, where a DDP trial's Ray Train run lives (None: Ray's default, ~/ray_results).
    storage_path: str | None


@dataclass(frozen=True)
class _TrialFields:
    """What a cell and each of its trials share: everything but ε and the key."""

    study: str
    section: str
    workload: TrialWorkload
    schedule: Schedule
    batch_size: int  # initial global batch, examples
    momentum: float
    seed: int
    nesterov: bool  # SGD's (grid.nesterov)
    weight_decay: float  # SGD's (grid.weight_decay, or its axis); other optimizers' is in their options
    optimizer: str  # sgd, adamw, or the user's (portable form)
    optimizer_options: BaseModel
    diagnostics: Diagnostics
    resources: TrialResources
    objective: Objective  # the study's: what searches and early stopping rank trials by
    # The grid's optimizer axes in their spec form (scalestudy.trial.axes; empty: none) and the model EMA.
    axes: optimizer_axes.AxisPoint = field(default=optimizer_axes.AxisPoint(), kw_only=True)
    ema: ModelEMA | None = field(default=None, kw_only=True)

    @property
    def ema_momentum(self) -> float | None:
        """The model EMA's ρ at the initial B (None without an EMA)."""
        return optimizer_axes.ema_momentum(self.ema, self.batch_size)


@dataclass(frozen=True)
class Cell(_TrialFields):
    """One (section, schedule, m, B, seed) cell of the study: a trial config but for ε."""

    lr_grid: tuple[float, ...]  # the spec's ε for the cell (searches may choose others)

    def trial(self, lr: float) -> TrialConfig:
        """The cell's trial at ε = ``lr`` (exactly that value), keyed."""
        shared = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "lr_grid"}
        shared.update(optimizer_axes.trial_settings(self, lr))  # λ from a τ_epoch
        unkeyed = TrialConfig(**shared, lr=float(lr), trial_key="")
        return replace(unkeyed, trial_key=record.trial_key(unkeyed.to_dict()))

    @property
    def label(self) -> str:
        return record.display_name(self.section, self.batch_size, self.momentum, self.seed, self.schedule.kind,
                                   self.workload.shown_dataset_size) + optimizer_axes.name_suffix(self.axes, self.ema)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Cell:
        """A cell of the dict form earlier versions kept (a trial config without ε, with ``lr_grid``);
        a restored adaptive search may hold such cells."""
        rest = {k: v for k, v in raw.items() if k != "lr_grid"}
        return cls(**_shared_fields(rest, allowed=_WIRE_KEYS - {"lr", "trial_key", "run_name"}),
                   **optimizer_axes.from_wire(rest), lr_grid=tuple(float(lr) for lr in raw["lr_grid"]))


@dataclass(frozen=True)
class TrialConfig(_TrialFields):
    """Everything one trial needs, typed; the epoch loop runs from it alone (no Ray, no MLflow)."""

    lr: float  # initial learning rate ε
    trial_key: str  # the trial's identity (scalestudy.trial.record.trial_key)

    @property
    def run_name(self) -> str:
        return record.display_name(self.section, self.batch_size, self.momentum, self.seed, self.schedule.kind,
                                   self.workload.shown_dataset_size, lr=self.lr) + optimizer_axes.name_suffix(
            self.axes, self.ema)

    @property
    def bn_batch_size(self) -> int | None:
        """Examples batch norm normalises over (None without batch norm)."""
        return bn_batch_size(self.batch_size, self.resources.workers, self.workload.ghost_batch_size,
                             self.workload.has_batch_norm)

    def to_dict(self) -> dict[str, Any]:
        """The plain JSON dict Ray Tune carries (``config["trial"]``); flat, as earlier versions wrote it."""
        workload, resources = self.workload, self.resources
        return {
            "study": self.study, "section": self.section,
            "dataset": workload.dataset, "dataset_options": workload.dataset_options.model_dump(mode="json"),
            "dataset_size": workload.dataset_size, "model": workload.model,
            "model_options": workload.model_options.model_dump(mode="json"), "task": workload.task,
            "data": workload.data.model_dump(mode="json"), "epochs": workload.epochs,
            "ghost_batch_size": workload.ghost_batch_size, "max_device_batch_size": workload.max_device_batch_size,
            "divergence_loss": workload.divergence_loss, "train_metrics": workload.train_metrics,
            "grad_clip_norm": workload.grad_clip_norm, "grad_penalty": _dump(workload.grad_penalty),
            "precise_bn": _dump(workload.precise_bn), "stop_at_train_loss": workload.stop_at_train_loss,
            "has_batch_norm": workload.has_batch_norm, "bn_batch_size": self.bn_batch_size,
            "diagnostics": self.diagnostics.model_dump(mode="json"), "batch_size": self.batch_size,
            "momentum": self.momentum, "nesterov": self.nesterov, "weight_decay": self.weight_decay,
            "optimizer": self.optimizer, "optimizer_options": self.optimizer_options.model_dump(mode="json"),
            "seed": self.seed, "schedule": self.schedule.model_dump(mode="json"), "workers": resources.workers,
            "cpus_per_worker": resources.cpus_per_worker, "gpus_per_worker": resources.gpus_per_worker,
            "checkpoint_every": resources.checkpoint_every, "placement_strategy": resources.placement_strategy,
            "max_failures": resources.max_failures, "train_storage_path": resources.storage_path,
            "objective": self.objective.model_dump(mode="json"), "lr": self.lr, "trial_key": self.trial_key,
            "run_name": self.run_name,
            # Only when set: configs (and trial keys) of studies without the axis stay as they were.
            **({"dataset_size_in_grid": True} if workload.dataset_size_in_grid else {}),
            **({"train_subset": asdict(workload.train_subset)} if workload.train_subset is not None else {}),
            **optimizer_axes.wire_fields(self.axes, self.ema),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TrialConfig:
        """The config of a wire dict, from this version or an earlier one; unknown keys are errors."""
        if "trial_key" not in raw or "lr" not in raw:
            raise ValueError("trial config: needs trial_key and lr")
        return cls(**_shared_fields(raw, allowed=_WIRE_KEYS), **optimizer_axes.from_wire(raw), lr=float(raw["lr"]),
                   trial_key=str(raw["trial_key"]))


def _dump(value: BaseModel | None) -> dict[str, Any] | None:
    return None if value is None else value.model_dump(mode="json")


# Every key a wire dict may hold: this version's, plus grad_norm_penalty (before grad_penalty).
_WIRE_KEYS = frozenset({
    "study", "section", "dataset", "dataset_options", "dataset_size", "model", "model_options", "task", "data",
    "objective", "epochs",
    "ghost_batch_size", "max_device_batch_size", "divergence_loss", "train_metrics", "grad_clip_norm",
    "grad_penalty", "grad_norm_penalty", "precise_bn", "stop_at_train_loss", "has_batch_norm", "bn_batch_size",
    "diagnostics", "batch_size", "momentum", "nesterov", "weight_decay", "optimizer", "optimizer_options", "seed", "schedule", "workers", "cpus_per_worker", "gpus_per_worker",
    "checkpoint_every", "placement_strategy", "max_failures", "train_storage_path", "lr", "trial_key", "run_name",
    "dataset_size_in_grid", "train_subset", "axes", "ema",
})


def _default(model: type[BaseModel], name: str) -> Any:
    """The spec's default of a setting: what a config written before the setting existed ran with."""
    return model.model_fields[name].get_default(call_default_factory=True)


def _shared_fields(raw: Mapping[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
    """The fields a Cell and a TrialConfig share, from a wire dict."""
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ValueError(f"trial config: unknown key {unknown[0]!r}")

    def get(key: str, model: type[BaseModel], name: str | None = None) -> Any:
        return raw[key] if key in raw else _default(model, name or key)

    optimizer = get("optimizer", Optimizer, "name")
    penalty = get("grad_penalty", Workload)
    if penalty is None and raw.get("grad_norm_penalty"):  # stored before grad_penalty existed (0.0: none)
        penalty = {"kind": "full_gradient", "strength": float(raw["grad_norm_penalty"])}
    workload = TrialWorkload(
        dataset=raw["dataset"], dataset_options=data.dataset_options(raw["dataset"], raw["dataset_options"]),
        dataset_size=int(raw["dataset_size"]), model=raw["model"],
        model_options=models.model_options(raw["model"], raw["model_options"]), task=get("task", Workload),
        data=DataLoading.model_validate(get("data", Workload)), epochs=int(raw["epochs"]),
        ghost_batch_size=get("ghost_batch_size", Workload), max_device_batch_size=get("max_device_batch_size", Workload),
        divergence_loss=get("divergence_loss", Workload),
        # Stored before the setting: running, what those trials ran with (the spec's default is now eval).
        train_metrics=raw["train_metrics"] if "train_metrics" in raw else "running",
        grad_clip_norm=get("grad_clip_norm", Workload),
        grad_penalty=None if penalty is None else GradPenalty.model_validate(penalty),
        precise_bn=None if get("precise_bn", Workload) is None else PreciseBN.model_validate(raw["precise_bn"]),
        stop_at_train_loss=get("stop_at_train_loss", Workload),
        # Stored since the user's models: before, every model was a built-in, its batch norm in its options.
        has_batch_norm=bool(raw["has_batch_norm"]) if "has_batch_norm" in raw else models.has_batch_norm(
            raw["model"], raw["model_options"]),
        dataset_size_in_grid=bool(raw.get("dataset_size_in_grid", False)),
        train_subset=data.TrainSubset(**raw["train_subset"]) if raw.get("train_subset") else None)
    resources = TrialResources(
        workers=int(get("workers", Resources, "workers_per_trial")),
        cpus_per_worker=float(get("cpus_per_worker", Resources)), gpus_per_worker=float(get("gpus_per_worker", Resources)),
        checkpoint_every=int(get("checkpoint_every", Resources)),
        placement_strategy=get("placement_strategy", Resources), max_failures=int(get("max_failures", Resources)),
        storage_path=raw.get("train_storage_path"))  # absent: built before the study's storage was known
    return dict(study=raw["study"], section=raw["section"], workload=workload,
                schedule=Schedule.model_validate(raw["schedule"]), batch_size=int(raw["batch_size"]),
                momentum=float(raw["momentum"]), seed=int(raw["seed"]), nesterov=bool(get("nesterov", Grid)),
                weight_decay=float(get("weight_decay", Grid)), optimizer=optimizer,
                optimizer_options=optim.optimizer_options(optimizer, get("optimizer_options", Optimizer, "options")),
                diagnostics=Diagnostics.model_validate(raw["diagnostics"] if "diagnostics" in raw else {}),
                resources=resources,
                objective=Objective.model_validate(raw["objective"]) if raw.get("objective") else LEGACY_OBJECTIVE)


def expand_cells(spec: StudySpec, storage_path: str | None = None) -> list[Cell]:
    """One cell per (section, N, schedule, m, B, seed), in a stable order (N: the grid's dataset sizes).

    ``storage_path``: the study's folder, where DDP trials put their Ray Train runs (known once the
    study is opened; None for validation and tests: Ray's default folder)."""
    resources = spec.resources
    runtime = TrialResources(
        workers=resources.workers_per_trial, cpus_per_worker=resources.cpus_per_worker,
        gpus_per_worker=resources.gpus_per_worker, checkpoint_every=resources.checkpoint_every,
        placement_strategy=resources.placement_strategy, max_failures=resources.max_failures,
        storage_path=storage_path)
    cells: list[Cell] = []
    for section_name, section in spec.resolved_sections().items():
        grid, spec_workload, optimizer = section.grid, section.workload, section.optimizer
        info = data.dataset_info(spec_workload.dataset, data.dataset_options(spec_workload.dataset,
                                                                             spec_workload.dataset_options))
        model_options = models.model_options(spec_workload.model, spec_workload.model_options)
        has_batch_norm = models.has_batch_norm(spec_workload.model, model_options, info.input_shape, info.num_classes)
        optimizer_name = optim.OPTIMIZERS.portable(optimizer.name)
        optimizer_options = optim.optimizer_options(optimizer.name, optimizer.options)
        for options, size, subset in _at_dataset_sizes(spec_workload, grid):
            workload = TrialWorkload(
                dataset=data.DATASETS.portable(spec_workload.dataset), dataset_options=options, dataset_size=size,
                model=models.MODELS.portable(spec_workload.model),
                model_options=model_options, task=tasks.TASKS.portable(spec_workload.task), data=spec_workload.data,
                epochs=spec_workload.epochs, ghost_batch_size=spec_workload.ghost_batch_size,
                max_device_batch_size=spec_workload.max_device_batch_size,
                divergence_loss=spec_workload.divergence_loss, train_metrics=spec_workload.train_metrics,
                grad_clip_norm=spec_workload.grad_clip_norm, grad_penalty=spec_workload.grad_penalty,
                precise_bn=spec_workload.precise_bn, stop_at_train_loss=spec_workload.stop_at_train_loss,
                has_batch_norm=has_batch_norm, dataset_size_in_grid=grid.dataset_size is not None,
                train_subset=subset)
            for point, schedule, momentum, batch_size, seed in itertools.product(
                    optimizer_axes.axis_points(grid), section.schedule, grid.momentum, grid.batch_size, grid.seeds):
                cells.append(Cell(
                    study=spec.name, section=section_name, workload=workload, schedule=schedule,
                    batch_size=batch_size, momentum=float(momentum), seed=seed, nesterov=grid.nesterov,
                    optimizer=optimizer_name, diagnostics=spec.diagnostics, resources=runtime,
                    objective=spec.objective, ema=optimizer.ema,
                    **optimizer_axes.cell_settings(point, optimizer.name, optimizer_options, grid.sgd_weight_decay,
                                                   batch_size),
                    lr_grid=tuple(float(lr) for lr in grid.learning_rates(batch_size, momentum))))
    return cells


def _at_dataset_sizes(workload: Workload, grid: Grid) -> list[tuple[BaseModel, int, data.TrainSubset | None]]:
    """(options, N, subset) of each N of the grid's dataset-size axis (``data.at_dataset_size``), or the one."""
    options = data.dataset_options(workload.dataset, workload.dataset_options)
    if grid.dataset_size is None:  # the user's dataset: loaded once (cached) to learn its N
        return [(options, data.train_size(workload.dataset, options), None)]
    at_sizes = []
    for size in grid.dataset_size:
        options_at_n, subset = data.at_dataset_size(workload.dataset, options, size, grid.dataset_subset_seed)
        at_sizes.append((options_at_n, size, subset))
    return at_sizes


def expand_trials(spec: StudySpec, storage_path: str | None = None) -> list[TrialConfig]:
    """The full grid: one config per (section, schedule, m, B, ε, seed), in a stable order."""
    trials = [cell.trial(lr) for cell in expand_cells(spec, storage_path) for lr in cell.lr_grid]
    keys = [t.trial_key for t in trials]
    if len(set(keys)) != len(keys):
        raise ValueError("the spec expands to duplicate trials (repeated values in a grid list?)")
    return trials
