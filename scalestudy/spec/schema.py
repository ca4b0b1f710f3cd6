"""The study spec's schema: StudySpec and its blocks (grid, sections, resources, search, tracking).

Its 300-odd lines are the spec's top-level blocks read top to bottom, in the order a spec file has
them, because the validators of one block refer to the next (the workload's blocks live in
:mod:`scalestudy.spec.workload`)."""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from scalestudy.endpoints.uris import DEFAULT_TRACKING_URI
from scalestudy.spec.base import Frozen, all_positive
from scalestudy.spec.branching import BranchingSpec
from scalestudy.spec.early_stopping import EarlyStopping
from scalestudy.spec.objective import Objective
from scalestudy.spec.runtime_env import RuntimeEnv
from scalestudy.spec.search_names import SEARCHES
from scalestudy.spec.workload import Diagnostics, Optimizer, Schedule, Workload
from scalestudy.tasks import task_info


class LinearRuleLR(Frozen):
    """ε = reference_lr · (B / reference_batch_size)^p · [(1−m)/(1−reference_momentum)] · multiplier.

    ``rule``: ``linear`` (p = 1: ε ∝ B, Goyal et al. 2017, Smith et al. 2018: SGD) or ``sqrt``
    (p = 1/2: ε ∝ √B, the square-root scaling rule Malladi et al. 2022 derive from Adam's SDE), so
    that the grid is centred where the optimizer's rule puts ε*. The momentum factor is SGD's
    (its step is ε/(1−m) in steady state); it is refused for adamw, whose step does not grow with β1.
    """

    reference_batch_size: int = Field(gt=0)
    reference_lr: float = Field(gt=0)
    reference_momentum: float | None = Field(default=None, ge=0, lt=1)
    multipliers: list[float] = Field(min_length=1)
    rule: Literal["linear", "sqrt"] = "linear"

    @field_validator("multipliers")
    @classmethod
    def _positive(cls, values: list[float]) -> list[float]:
        return all_positive(values)

    def rule_lr(self, batch_size: int, momentum: float) -> float:
        """The rule's own ε at (B, m): multiplier 1 (where the searches start before anything is measured)."""
        ratio = batch_size / self.reference_batch_size
        base = self.reference_lr * (ratio if self.rule == "linear" else math.sqrt(ratio))
        if self.reference_momentum is not None:
            base *= (1.0 - momentum) / (1.0 - self.reference_momentum)
        return base

    def lr_for(self, batch_size: int, momentum: float) -> list[float]:
        """The grid's ε at (B, m): the rule's, times each multiplier."""
        base = self.rule_lr(batch_size, momentum)
        return [base * multiplier for multiplier in self.multipliers]


class Grid(Frozen):
    batch_size: list[int] = Field(min_length=1)
    lr: list[float] | LinearRuleLR
    momentum: list[float] = Field(default_factory=lambda: [0.0], min_length=1)
    nesterov: bool = False
    # The λ and β2 axes and their timescale forms (scalestudy.trial.axes; conversions: scalestudy.optim.timescales).
    weight_decay: float | list[float] = Field(default=0.0, description=(
        "A number: SGD's weight decay (other optimizers take theirs in optimizer.options). A list: an axis of "
        "λ for sgd (its coupled decay) and adamw (its decoupled decay, instead of options.weight_decay)."))
    tau_epochs: list[float] | None = Field(default=None, min_length=1, description=(
        "An axis of the weight decay's EMA timescale in epochs (Wang & Aitchison 2025): each trial gets "
        "λ = B/(ε·N·τ_epoch) from its initial B and ε. sgd and adamw; not with a weight_decay list."))
    beta2: list[float] | None = Field(default=None, min_length=1, description=(
        "An axis of AdamW's β2, each in [0, 1) (adamw only, instead of options.beta2)."))
    beta2_half_life_examples: list[float] | None = Field(default=None, min_length=1, description=(
        "An axis of β2's half-life h in examples (Marek et al. 2025): β2 = 0.5^(B/h) at each cell's initial B. "
        "adamw only; not with beta2."))
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    dataset_size: list[int] | None = Field(default=None, min_length=1, description=(
        "The dataset-size axis: train every cell at each N (training examples), for any dataset. A built-in "
        "with a train_size option (mnist1d, synthetic, cifar10) makes N itself; any other (your own by import "
        "path, text_bytes, image_folder) is loaded whole and scalestudy trains on N examples of its training "
        "split: the first N of one permutation seeded by dataset_subset_seed, so every trial at one N sees the "
        "same examples and a larger N holds a smaller one's; the test split is unchanged. Each N at most the "
        "training-set size. null: the workload's one N."))
    dataset_subset_seed: int = Field(default=0, ge=0, description=(
        "Seed of the training examples each N of dataset_size takes when scalestudy subsamples (the study's, "
        "not the trial's seed; logged as the dataset_subset_seed param)."))

    @field_validator("batch_size")
    @classmethod
    def _batch_positive(cls, values: list[int]) -> list[int]:
        return all_positive(values)

    @field_validator("dataset_size")
    @classmethod
    def _sizes_distinct(cls, values: list[int] | None) -> list[int] | None:
        if values is None:
            return None
        if len(set(values)) != len(values):
            raise ValueError(f"must not repeat a size, got {values}")
        return all_positive(values)

    @field_validator("weight_decay")
    @classmethod
    def _decay_non_negative(cls, value: float | list[float]) -> float | list[float]:
        values = value if isinstance(value, list) else [value]
        if not values:
            raise ValueError("must not be empty")
        for i, decay in enumerate(values):
            if decay < 0:
                raise ValueError(f"[{i}] must be >= 0, got {decay}" if isinstance(value, list) else
                                 "Input should be greater than or equal to 0")  # pydantic's words, as before
        return value

    @field_validator("tau_epochs", "beta2_half_life_examples")
    @classmethod
    def _timescales_positive(cls, values: list[float] | None) -> list[float] | None:
        return None if values is None else all_positive(values)

    @field_validator("beta2")
    @classmethod
    def _beta2_range(cls, values: list[float] | None) -> list[float] | None:
        for i, value in enumerate(values or []):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"[{i}] must be in [0, 1), got {value}")
        return values

    @model_validator(mode="after")
    def _one_form_each(self) -> "Grid":
        if self.tau_epochs is not None and isinstance(self.weight_decay, list):
            raise ValueError("tau_epochs: gives λ by its timescale; give it or a weight_decay list, not both")
        if self.beta2 is not None and self.beta2_half_life_examples is not None:
            raise ValueError("beta2_half_life_examples: gives β2 by its half-life; give it or beta2, not both")
        return self

    @property
    def decay_axis(self) -> bool:
        """Whether λ is a grid axis (a weight_decay list or tau_epochs), not SGD's one scalar."""
        return isinstance(self.weight_decay, list) or self.tau_epochs is not None

    @property
    def sgd_weight_decay(self) -> float:
        """The scalar weight_decay (SGD's, as before the axis): 0 when the grid has a λ axis."""
        return 0.0 if isinstance(self.weight_decay, list) else self.weight_decay

    @field_validator("lr")
    @classmethod
    def _lr_positive(cls, values: list[float] | LinearRuleLR) -> list[float] | LinearRuleLR:
        if isinstance(values, list):
            if not values:
                raise ValueError("must not be empty")
            all_positive(values)
        return values

    @field_validator("momentum")
    @classmethod
    def _momentum_range(cls, values: list[float]) -> list[float]:
        for i, value in enumerate(values):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"[{i}] must be in [0, 1), got {value}")
        return values

    def learning_rates(self, batch_size: int, momentum: float) -> list[float]:
        if isinstance(self.lr, LinearRuleLR):
            return self.lr.lr_for(batch_size, momentum)
        return list(self.lr)



class Resources(Frozen):
    workers_per_trial: int = Field(default=1, gt=0)
    cpus_per_worker: float = Field(default=1.0, gt=0)
    # A fraction 1/k puts k trials on one GPU (Ray's fractional GPUs; see README "Several trials per GPU").
    gpus_per_worker: float = Field(default=0.0, ge=0)
    max_concurrent_trials: int | None = Field(default=None, gt=0)
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"
    max_failures: int = Field(default=2, ge=0)
    checkpoint_every: int = Field(default=1, gt=0)
    runtime_env: RuntimeEnv | None = None  # Ray's runtime_env for every worker (the user's code on a cluster)

    @field_validator("gpus_per_worker")
    @classmethod
    def _gpus_ray_can_place(cls, value: float) -> float:
        # Ray places a GPU request above 1 only in whole GPUs (1.5 would wait forever) and counts
        # in 1/10000 of a unit (less rounds to nothing).
        if value > 1 and value != int(value):
            raise ValueError(f"must be a fraction of one GPU (at most 1) or a whole number of GPUs, got {value:g}")
        if 0 < value < 1e-4:
            raise ValueError(f"must be at least 0.0001 (Ray's resolution) or 0, got {value:g}")
        return value

    @model_validator(mode="after")
    def _ddp_workers_on_whole_gpus(self) -> "Resources":
        if self.workers_per_trial > 1 and 0 < self.gpus_per_worker < 1:
            raise ValueError(f"gpus_per_worker: {self.gpus_per_worker:g} with workers_per_trial "
                             f"{self.workers_per_trial}: a trial's DDP workers could share one GPU, which NCCL "
                             "refuses; give DDP workers whole GPUs (fractions are for one-worker trials)")
        return self


class SearchTarget(Frozen):
    """When an adaptive search may stop before its budget: the law's α interval is this narrow."""

    alpha_ci_width: float = Field(gt=0)  # width of α's 95 % interval at which every law group is precise enough


class SearchBudget(Frozen):
    """What an adaptive search may spend, in trial-epochs (a diverged or stopped trial counts the epochs it
    ran): ``trial_epochs`` outright, or ``grid_fraction`` of the full grid (every listed ε of every cell ×
    every seed × its epochs). One of the two."""

    trial_epochs: int | None = Field(default=None, gt=0)  # trial-epochs the search may spend, all trials together
    grid_fraction: float | None = Field(default=None, gt=0, le=1)  # ... or this share of the full grid's trial-epochs

    @model_validator(mode="after")
    def _one_of(self) -> "SearchBudget":
        if (self.trial_epochs is None) == (self.grid_fraction is None):
            raise ValueError("give one of trial_epochs (an integer > 0) or grid_fraction (in (0, 1])")
        return self


class Search(Frozen):
    """How ε is chosen in each (section, schedule, m, B, seed) cell."""

    algorithm: str = "grid"
    trials_per_cell: int | None = Field(default=None, gt=0)
    lr_range: list[float] | None = Field(default=None, min_length=2, max_length=2)
    step_factor: float = Field(default=2.0, gt=1)
    stop_ratio: float = Field(default=1.25, gt=1)
    min_drop: float = Field(default=0.02, ge=0)  # bracket: a fall of the objective (in its units) smaller than this is noise
    seed: int = 0
    early_stopping: EarlyStopping | None = None
    target: SearchTarget | None = None  # adaptive: stop once the law's α interval is this narrow
    budget: SearchBudget | None = None  # adaptive: what it may spend (null: a quarter of the full grid's trial-epochs)
    max_seeds: int = Field(default=8, gt=0)  # adaptive: seeds per (cell, ε) at most (grid.seeds, then the next)
    beyond_grid: int = Field(default=2, ge=0)  # adaptive: ×2 steps it may go past a cell's listed ε

    @field_validator("algorithm")
    @classmethod
    def _known_algorithm(cls, name: str) -> str:
        return SEARCHES.check(name)

    @field_validator("lr_range")
    @classmethod
    def _ordered(cls, values: list[float] | None) -> list[float] | None:
        if values is not None and not 0 < values[0] < values[1]:
            raise ValueError(f"must be [low, high] with 0 < low < high, got {values}")
        return values



class Tracking(Frozen):
    uri: str = DEFAULT_TRACKING_URI
    experiment: str | None = None

    @field_validator("uri")
    @classmethod
    def _no_credentials(cls, uri: str) -> str:
        if re.match(r"^[a-z0-9+.-]+://[^/@]+@", uri):
            raise ValueError("must not hold credentials (they would be logged with the spec); set "
                             "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD instead")
        return uri


class Analysis(Frozen):
    # null: the task's own (classification: test_acc, max; language_model: test_loss, min).
    objective: Objective | None = None


class Section(Frozen):
    """A resolved sub-study: the base workload, optimizer, grid and schedule with a section's overrides
    merged in."""

    workload: Workload
    grid: Grid
    schedule: list[Schedule] = Field(min_length=1)
    optimizer: Optimizer = Field(default_factory=Optimizer)


class StudySpec(Frozen):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    description: str = ""
    workload: Workload
    optimizer: Optimizer = Field(default_factory=Optimizer)
    grid: Grid
    schedule: list[Schedule] = Field(default_factory=lambda: [Schedule()], min_length=1)
    sections: dict[str, Section] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)
    tracking: Tracking = Field(default_factory=Tracking)
    search: Search = Field(default_factory=Search)
    diagnostics: Diagnostics = Field(default_factory=Diagnostics)
    analysis: Analysis = Field(default_factory=Analysis)
    branching: BranchingSpec | None = None  # CBS(t) from branches of one base run (spec/branching.py)

    @model_validator(mode="before")
    @classmethod
    def _resolve_sections(cls, raw: Any) -> Any:
        """Accept a single schedule mapping, and merge each section over the base."""
        if not isinstance(raw, dict):
            return raw
        raw = dict(raw)
        if isinstance(raw.get("schedule"), dict):
            raw["schedule"] = [raw["schedule"]]
        sections = raw.get("sections")
        if isinstance(sections, dict):
            resolved = {}
            for name, override in sections.items():
                override = {} if override is None else override
                if not isinstance(override, dict):
                    resolved[name] = override  # pydantic reports the type error
                    continue
                unknown = set(override) - {"workload", "optimizer", "grid", "schedule"}
                if unknown:
                    raise ValueError(f"sections.{name}: unknown key {sorted(unknown)[0]!r}; allowed: workload, "
                                     "optimizer, grid, schedule")
                workload = _deep_merge(raw.get("workload") or {}, override.get("workload") or {})
                grid = _deep_merge(raw.get("grid") or {}, override.get("grid") or {})
                schedule = override.get("schedule", raw.get("schedule", [{}]))
                resolved[name] = {"workload": workload, "grid": grid, "optimizer": _merged_optimizer(
                    raw.get("optimizer"), override.get("optimizer")),
                                  "schedule": [schedule] if isinstance(schedule, dict) else schedule}
            raw["sections"] = resolved
        return raw

    @property
    def objective(self) -> Objective:
        """The study's objective: ``analysis.objective``, else the (base) workload's task's default."""
        if self.analysis.objective is not None:
            return self.analysis.objective
        metric, direction = task_info(self.workload.task).objective
        return Objective(metric=metric, direction=direction)

    @property
    def experiment_name(self) -> str:
        return self.tracking.experiment or self.name

    def resolved_sections(self) -> dict[str, Section]:
        """The sub-grids that make up the study (the base grid alone when no sections)."""
        return dict(self.sections) or {"main": Section(workload=self.workload, grid=self.grid,
                                                       schedule=self.schedule, optimizer=self.optimizer)}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def spec_hash(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]



def _merged_optimizer(base: Any, override: Any) -> Any:
    """A section's optimizer over the base's: merged when it names the same optimizer (or none), else its own
    (another optimizer's options mean nothing to this one)."""
    if not isinstance(override, dict) or not isinstance(base, dict):
        return override if override is not None else base if base is not None else {}
    if override.get("name", base.get("name", "sgd")) != base.get("name", "sgd"):
        return override
    return _deep_merge(base, override)


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged

