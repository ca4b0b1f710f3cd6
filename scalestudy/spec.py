"""Study specs: YAML → a typed, frozen, validated :class:`StudySpec`.

Everything that can be checked before a study starts is checked here (types, ranges,
registry names, every epoch of every schedule against the ghost batch size and the
training-set size), so a bad spec fails in well under a second, starts no Ray and
creates no MLflow store. Errors are :class:`SpecError` with a one-line message that
names the field and what is allowed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scalestudy import data, models
from scalestudy.batching import micro_batch_size, penalty_block_size
from scalestudy.registry import UnknownNameError
from scalestudy.schedules import SCHEDULES, Hyper, trajectory


MAX_SPEC_BYTES = 16 * 2**20
MAX_EPOCHS = 100_000


class SpecError(ValueError):
    """A study spec or an override is invalid; ``str(error)`` is one line."""


class _Frozen(BaseModel):
    # strict: no silent "5" → 5 coercion; extra="forbid": a typo is an error, not a default.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class PreciseBN(_Frozen):
    """Recompute the BN running statistics before each evaluation (Wu & Johnson 2021)."""

    # Training batches of the epoch's per-worker batch size (a fixed, seeded set) to average over.
    batches: int = Field(gt=0)
class GradPenalty(_Frozen):
    """The explicit gradient-norm regulariser of the full-batch recipe.

    * ``geiping_blocks`` (Geiping et al. 2021, their ``GradRegularizer``, forward differences):
      the batch is split into blocks of ``block_size`` examples and each block's gradient g_k
      becomes g_k + (ε·strength/4)·H_k·g_k, ε the learning rate of the update; the update
      averages the blocks. That is the gradient of L_k + (ε·strength/8)·|g_k|².
    * ``full_gradient``: the batch's gradient g becomes g + strength·H·g, the gradient of
      L + (strength/2)·|g|², a fixed strength and no learning-rate scaling.

    H·v comes from a forward difference of gradients at θ and θ + (fd_step/|v|)·v.
    """

    kind: Literal["geiping_blocks", "full_gradient"] = "geiping_blocks"
    strength: float = Field(default=0.5, gt=0)  # λ; Geiping et al.'s ``block_strength`` (config hyp/gradreg)
    block_size: int | None = Field(default=None, gt=0)  # examples per block; geiping_blocks only (default 128)
    fd_step: float = Field(default=1e-2, gt=0)  # length of the finite-difference step in parameter space

    @model_validator(mode="before")
    @classmethod
    def _blocks_for_geiping_only(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        if raw.get("kind", "geiping_blocks") == "geiping_blocks":
            # Geiping et al.'s blocks: their data.batch_size of 128 (hyp.sub_batch is also 128).
            return raw if raw.get("block_size") is not None else {**raw, "block_size": 128}
        if raw.get("block_size") is not None:
            raise ValueError("block_size: only for kind geiping_blocks (full_gradient penalises the "
                             "gradient of the whole batch)")
        return raw


class Workload(_Frozen):
    dataset: str = "mnist1d"
    dataset_options: dict[str, Any] = Field(default_factory=dict)
    model: str = "mlp"
    model_options: dict[str, Any] = Field(default_factory=dict)
    epochs: int = Field(gt=0, le=MAX_EPOCHS)  # every epoch of every schedule is checked up front
    ghost_batch_size: int | None = Field(default=None, gt=0)
    max_device_batch_size: int | None = Field(default=None, gt=0)
    divergence_loss: float | None = Field(default=None, gt=0)
    # running: train-mode loss/accuracy accumulated over the epoch's batches (free);
    # eval: an eval-mode pass over a fixed training subset as large as the test set.
    train_metrics: Literal["running", "eval"] = "running"
    # Full-batch recipes (Geiping et al. 2021): clip the global gradient norm (after the
    # penalty), and add an explicit gradient-norm regulariser.
    grad_clip_norm: float | None = Field(default=None, gt=0)
    grad_penalty: GradPenalty | None = None
    precise_bn: PreciseBN | None = None
    # End the trial once an epoch's training loss (train_metrics decides which: running or eval)
    # is at or below this; `epochs` is then the most it trains. Compares batch sizes at equal
    # training loss (Keskar et al.'s gap and sharpness) instead of at equal epochs.
    stop_at_train_loss: float | None = Field(default=None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _renamed_penalty(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "grad_norm_penalty" in raw:
            raise ValueError(
                "grad_norm_penalty: replaced by grad_penalty; write grad_penalty: {kind: full_gradient, "
                f"strength: {raw['grad_norm_penalty']}}} for the same penalty, or grad_penalty: "
                "{kind: geiping_blocks, strength: 0.5, block_size: 128} for Geiping et al.'s")
        return raw

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, name: str) -> str:
        return data.DATASETS.check(name)

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        return models.MODELS.check(name)


class LinearRuleLR(_Frozen):
    """ε = reference_lr · (B / reference_batch_size) · [(1−m)/(1−reference_momentum)] · multiplier."""

    reference_batch_size: int = Field(gt=0)
    reference_lr: float = Field(gt=0)
    reference_momentum: float | None = Field(default=None, ge=0, lt=1)
    multipliers: list[float] = Field(min_length=1)

    @field_validator("multipliers")
    @classmethod
    def _positive(cls, values: list[float]) -> list[float]:
        return _all_positive(values)

    def lr_for(self, batch_size: int, momentum: float) -> list[float]:
        base = self.reference_lr * batch_size / self.reference_batch_size
        if self.reference_momentum is not None:
            base *= (1.0 - momentum) / (1.0 - self.reference_momentum)
        return [base * multiplier for multiplier in self.multipliers]


class Grid(_Frozen):
    batch_size: list[int] = Field(min_length=1)
    lr: list[float] | LinearRuleLR
    momentum: list[float] = Field(default_factory=lambda: [0.0], min_length=1)
    nesterov: bool = False
    weight_decay: float = Field(default=0.0, ge=0)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)

    @field_validator("batch_size")
    @classmethod
    def _batch_positive(cls, values: list[int]) -> list[int]:
        return _all_positive(values)

    @field_validator("lr")
    @classmethod
    def _lr_positive(cls, values: list[float] | LinearRuleLR) -> list[float] | LinearRuleLR:
        if isinstance(values, list):
            if not values:
                raise ValueError("must not be empty")
            _all_positive(values)
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


class Schedule(_Frozen):
    kind: str = "constant"
    milestones: list[int] = Field(default_factory=list)
    factor: float = Field(default=5.0, gt=1)
    max_batch_size: int | None = Field(default=None, gt=0)
    warmup_epochs: int = Field(default=0, ge=0)
    momentum_factor: float = Field(default=2.0, gt=1)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        return SCHEDULES.check(kind)

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, values: list[int]) -> list[int]:
        if any(b <= a for a, b in zip(values, values[1:])):
            raise ValueError(f"must be strictly increasing, got {values}")
        if any(v <= 0 for v in values):
            raise ValueError(f"must be epochs > 0, got {values}")
        return values

    @model_validator(mode="after")
    def _hybrid_needs_max(self) -> "Schedule":
        if self.kind == "hybrid" and self.max_batch_size is None:
            raise ValueError("max_batch_size: required for kind hybrid")
        return self

    @property
    def label(self) -> str:
        return self.kind


class Resources(_Frozen):
    workers_per_trial: int = Field(default=1, gt=0)
    cpus_per_worker: float = Field(default=1.0, gt=0)
    gpus_per_worker: float = Field(default=0.0, ge=0)
    max_concurrent_trials: int | None = Field(default=None, gt=0)
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"
    max_failures: int = Field(default=2, ge=0)
    checkpoint_every: int = Field(default=1, gt=0)


class EarlyStopping(_Frozen):
    """ASHA (asynchronous successive halving) on test accuracy, rungs in epochs."""

    kind: Literal["asha"] = "asha"
    grace_period: int = Field(default=1, gt=0)
    reduction_factor: float = Field(default=3.0, gt=1)


class Search(_Frozen):
    """How ε is chosen in each (section, schedule, m, B, seed) cell."""

    algorithm: str = "grid"
    trials_per_cell: int | None = Field(default=None, gt=0)
    lr_range: list[float] | None = Field(default=None, min_length=2, max_length=2)
    step_factor: float = Field(default=2.0, gt=1)
    stop_ratio: float = Field(default=1.25, gt=1)
    min_drop: float = Field(default=0.02, ge=0)  # bracket: an accuracy fall smaller than this is noise
    seed: int = 0
    early_stopping: EarlyStopping | None = None

    @field_validator("algorithm")
    @classmethod
    def _known_algorithm(cls, name: str) -> str:
        from scalestudy.search import SEARCHES

        return SEARCHES.check(name)

    @field_validator("lr_range")
    @classmethod
    def _ordered(cls, values: list[float] | None) -> list[float] | None:
        if values is not None and not 0 < values[0] < values[1]:
            raise ValueError(f"must be [low, high] with 0 < low < high, got {values}")
        return values


class Sharpness(_Frozen):
    """Keskar et al. 2017 ε-sharpness of the final solution, on a fixed training subset."""

    epsilon: float = Field(default=1e-3, gt=0)
    # Always in the full parameter space (metric "sharpness"); also in a random subspace of
    # this many dimensions (metric "sharpness_subspace") unless null.
    subspace_dims: int | None = Field(default=100, gt=0)
    steps: int = Field(default=10, gt=0)
    examples: int = Field(default=2048, gt=0)


class Diagnostics(_Frozen):
    gradient_noise_scale: bool = False  # B_simple per epoch (McCandlish et al. 2018)
    sharpness: Sharpness | None = None
    target_accuracy: float | None = Field(default=None, gt=0, le=1)  # steps-to-target (Shallue et al. 2018)
    # Evaluate the test accuracy every this many updates inside epochs (updates_to_target is then
    # the first evaluated update count at the target); null: interpolate between epoch ends.
    target_eval_every: int | None = Field(default=None, gt=0)
    # Evaluate inside an epoch only when the last evaluated accuracy is within this much of the
    # target; null: from the start.
    target_eval_margin: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _target_options_need_a_target(self) -> "Diagnostics":
        for name in ("target_eval_every", "target_eval_margin"):
            if getattr(self, name) is not None and self.target_accuracy is None:
                raise ValueError(f"{name}: needs target_accuracy")
        if self.target_eval_margin is not None and self.target_eval_every is None:
            raise ValueError("target_eval_margin: needs target_eval_every")
        return self


class Tracking(_Frozen):
    uri: str = "sqlite:///mlflow.db"
    experiment: str | None = None

    @field_validator("uri")
    @classmethod
    def _no_credentials(cls, uri: str) -> str:
        if re.match(r"^[a-z0-9+.-]+://[^/@]+@", uri):
            raise ValueError("must not hold credentials (they would be logged with the spec); set "
                             "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD instead")
        return uri


class Section(_Frozen):
    """A resolved sub-study: the base workload, grid and schedule with a section's overrides merged in."""

    workload: Workload
    grid: Grid
    schedule: list[Schedule] = Field(min_length=1)


class StudySpec(_Frozen):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    description: str = ""
    workload: Workload
    grid: Grid
    schedule: list[Schedule] = Field(default_factory=lambda: [Schedule()], min_length=1)
    sections: dict[str, Section] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)
    tracking: Tracking = Field(default_factory=Tracking)
    search: Search = Field(default_factory=Search)
    diagnostics: Diagnostics = Field(default_factory=Diagnostics)

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
                unknown = set(override) - {"workload", "grid", "schedule"}
                if unknown:
                    raise ValueError(
                        f"sections.{name}: unknown key {sorted(unknown)[0]!r}; allowed: workload, grid, schedule"
                    )
                workload = _deep_merge(raw.get("workload") or {}, override.get("workload") or {})
                grid = _deep_merge(raw.get("grid") or {}, override.get("grid") or {})
                schedule = override.get("schedule", raw.get("schedule", [{}]))
                resolved[name] = {"workload": workload, "grid": grid,
                                  "schedule": [schedule] if isinstance(schedule, dict) else schedule}
            raw["sections"] = resolved
        return raw

    @property
    def experiment_name(self) -> str:
        return self.tracking.experiment or self.name

    def resolved_sections(self) -> dict[str, Section]:
        """The sub-grids that make up the study (the base grid alone when no sections)."""
        return dict(self.sections) or {"main": Section(workload=self.workload, grid=self.grid,
                                                       schedule=self.schedule)}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def spec_hash(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------
# Loading, overrides and error formatting


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` as a float (YAML 1.1 insists on ``1.0e-3``)."""


_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_SpecLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SpecError(f"{source}:{where} is not valid YAML: {problem}") from None
    except RecursionError:
        raise SpecError(f"{source}: nested too deeply to be a spec") from None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``dotted.key=value`` overrides; values are parsed as YAML (``[16, 32]``, ``0.1``)."""
    raw = copy.deepcopy(raw)
    for override in overrides:
        key, sep, text = override.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise SpecError(f"--set: expected dotted.key=value, got {override!r}")
        value = parse_yaml(text, f"--set {key}")
        node = raw
        parts = key.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise SpecError(f"--set {key}: {'.'.join(parts[: depth + 1])} is not a mapping")
            node = child
        node[parts[-1]] = value
    return raw


def load_spec(path: str | Path, overrides: list[str] | None = None) -> StudySpec:
    """Read, override and validate a spec file; raise :class:`SpecError` on any problem."""
    path = Path(path)
    try:
        if path.exists() and not path.is_file():
            raise SpecError(f"{path}: {'a directory' if path.is_dir() else 'not a regular file'}; "
                            "expected a spec file (YAML)")
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise SpecError(f"{path}: {path.stat().st_size} bytes; a spec is a YAML text file of at most "
                            f"{MAX_SPEC_BYTES // 2**20} MiB")
        data = path.read_bytes()
    except OSError as error:
        raise SpecError(f"{path}: cannot read spec ({error.strerror or error})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise SpecError(f"{path}: not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}); "
                        "a spec is a YAML text file") from None
    raw = parse_yaml(text, str(path))
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a spec must be a YAML mapping with name, workload, grid, ...")
    return spec_from_dict(apply_overrides(raw, overrides or []))


def spec_from_dict(raw: dict[str, Any]) -> StudySpec:
    _check_blocks(raw)
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as error:
        raise SpecError(format_validation_error(error)) from None
    except UnknownNameError as error:
        raise SpecError(str(error)) from None
    check_consistency(spec)
    return spec


def _check_blocks(raw: Any) -> None:
    """Blocks where a mapping belongs get one: ``workload: mnist1d`` names the field, not a merge error."""
    if not isinstance(raw, dict):
        raise SpecError(f"spec: must be a mapping with name, workload, grid, ... (got {_shown(raw)})")
    _check_model_blocks(raw, StudySpec, "")
    _check_schedules(raw.get("schedule"), "schedule")
    sections = raw.get("sections")
    if sections is None:
        return
    if not isinstance(sections, dict):
        raise SpecError(f"sections: must be a mapping of section name to overrides (got {_shown(sections)})")
    for name, override in sections.items():
        if override is None:
            continue
        if not isinstance(override, dict):
            raise SpecError(f"sections.{name}: must be a mapping with workload, grid, schedule (got {_shown(override)})")
        for block, model in (("workload", Workload), ("grid", Grid)):
            value = override.get(block)
            if value is not None and not isinstance(value, dict):
                raise SpecError(f"sections.{name}.{block}: must be a mapping ({_keys(model)}) (got {_shown(value)})")
        _check_schedules(override.get("schedule"), f"sections.{name}.schedule")


def _check_model_blocks(raw: dict[str, Any], model: Any, where: str) -> None:
    for name, info in model.model_fields.items():
        if name not in raw:
            continue
        block = _block_model(info.annotation)
        value = raw[name]
        if block is None or (value is None and not info.is_required() and info.default is None):
            continue
        if not isinstance(value, dict):
            raise SpecError(f"{where}{name}: must be a mapping ({_keys(block)}) (got {_shown(value)})")
        _check_model_blocks(value, block, f"{where}{name}.")


def _block_model(annotation: Any) -> Any:
    """The model of a field that is a model or an optional model (not a list, dict or other union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    args = [arg for arg in getattr(annotation, "__args__", ()) if arg is not type(None)]
    if len(args) == 1 and isinstance(args[0], type) and issubclass(args[0], BaseModel) \
            and len(getattr(annotation, "__args__", ())) == 2:
        return args[0]
    return None


def _check_schedules(value: Any, where: str) -> None:
    items = [value] if isinstance(value, dict) else value if isinstance(value, list) else None
    if value is not None and items is None:
        raise SpecError(f"{where}: must be a mapping or a list of mappings ({_keys(Schedule)}) (got {_shown(value)})")
    for i, item in enumerate(items or []):
        if not isinstance(item, dict):
            raise SpecError(f"{where}[{i}]: must be a mapping ({_keys(Schedule)}) (got {_shown(item)})")


def _keys(model: Any) -> str:
    return "keys: " + ", ".join(model.model_fields)


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _location(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif "[" in part or part in {model.__name__ for model in _Frozen.__subclasses__()}:
            continue  # a union branch pydantic names by its type ("list[float]", "LinearRuleLR"): not a field
        else:
            text += f".{part}" if text else str(part)
    return text or "spec"


def format_validation_error(error: ValidationError) -> str:
    """The first (most specific) pydantic error as ``field: message (got value)``."""
    errors = error.errors(include_url=False)
    # Prefer errors that are not just "wrong union branch" noise.
    first = min(errors, key=lambda e: (e["type"] in ("model_type", "list_type") and len(errors) > 1, 0))
    message = first["msg"].removeprefix("Value error, ")
    field = _location(tuple(first["loc"]))
    if first["type"] == "extra_forbidden":
        parent, _, key = field.rpartition(".")
        allowed = _allowed_keys(tuple(first["loc"])[:-1])
        where = f"{parent}: " if parent else ""
        return f"{where}unknown key {key!r}; allowed: {', '.join(allowed)}"
    if first["type"] == "missing":
        return f"{field}: required field is missing"
    value = first.get("input")
    shown = "" if isinstance(value, (dict, list)) or first["type"] == "value_error" else f" (got {value!r})"
    message = message.rstrip(".")
    if message.startswith("["):
        return f"{field}{message}"
    return f"{field}: {message}{shown}"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model at ``loc``; keys of dict fields (section names) are skipped."""
    model: Any = StudySpec
    for part in loc:
        fields = getattr(model, "model_fields", {})
        if isinstance(part, str) and part in fields:
            model = _model_in(fields[part].annotation)
    return list(getattr(model, "model_fields", {}))


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _all_positive(values: list[float]) -> list[float]:
    for i, value in enumerate(values):
        if not value > 0 or math.isinf(value):
            raise ValueError(f"[{i}] must be > 0, got {value}")
    return values


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# ---------------------------------------------------------------------------------------
# Cross-field checks that need the registries and the schedule trajectories


def check_consistency(spec: StudySpec) -> None:
    """Checks across fields: options, dataset size, every epoch of every schedule of every section."""
    _check_search(spec)
    for section_name, section in spec.resolved_sections().items():
        where = f"sections.{section_name}." if spec.sections else ""
        _check_section(spec, section, where)


def _check_section(spec: StudySpec, section: Section, where: str) -> None:
    workload = section.workload
    # Errors name the field where the user wrote it: the base workload unless the section overrides it.
    prefix = f"{where}workload" if where else "workload"
    try:
        dataset_opts = data.dataset_options(workload.dataset, workload.dataset_options)
    except ValidationError as error:
        raise SpecError(_prefixed(f"{prefix}.dataset_options", error)) from None
    try:
        has_batch_norm = models.has_batch_norm(workload.model, workload.model_options)
    except ValidationError as error:
        raise SpecError(_prefixed(f"{prefix}.model_options", error)) from None
    dataset_size = data.train_size(workload.dataset, dataset_opts)
    workers = spec.resources.workers_per_trial
    ghost = workload.ghost_batch_size
    if ghost is not None and not has_batch_norm:
        raise SpecError(f"{prefix}.ghost_batch_size: must be null for a model with norm: none "
                        "(there is no batch norm to make ghost)")
    if workload.precise_bn is not None and not has_batch_norm:
        raise SpecError(f"{prefix}.precise_bn: must be null for a model with norm: none "
                        "(there are no batch-norm statistics to recompute)")
    plain_bn = has_batch_norm and ghost is None
    if plain_bn and spec.diagnostics.gradient_noise_scale and workers == 1:
        raise SpecError(
            f"diagnostics.gradient_noise_scale: needs two batch sizes per step, and with one worker that "
            f"splits the step, which would change plain batch norm's BN batch ({prefix}.ghost_batch_size "
            f"is null); set {prefix}.ghost_batch_size, model_options.norm: none, or resources.workers_per_trial ≥ 2")
    penalty = workload.grad_penalty
    if penalty is not None and penalty.kind == "geiping_blocks" and spec.diagnostics.gradient_noise_scale:
        raise SpecError(f"diagnostics.gradient_noise_scale: not with {prefix}.grad_penalty kind geiping_blocks "
                        "(its blocks replace the micro-batches the estimate needs); use kind full_gradient or "
                        "measure without the penalty")
    for i, schedule in enumerate(section.schedule):
        field = f"{where}schedule[{i}]"
        if schedule.milestones and schedule.milestones[-1] >= workload.epochs:
            raise SpecError(
                f"{field}.milestones: must be below workload.epochs={workload.epochs}, got {schedule.milestones}"
            )
        if schedule.warmup_epochs >= workload.epochs:
            raise SpecError(f"{field}.warmup_epochs: must be below workload.epochs={workload.epochs}")
        if schedule.max_batch_size is not None and schedule.max_batch_size > dataset_size:
            raise SpecError(
                f"{field}.max_batch_size: must be ≤ the training-set size {dataset_size}, got {schedule.max_batch_size}"
            )
        for batch_size in section.grid.batch_size:
            initial = Hyper(batch_size, 1.0, section.grid.momentum[0])
            try:
                batches = {h.batch_size for h in trajectory(schedule, initial, workload.epochs)}
            except ValueError as error:
                raise SpecError(f"{field}: {error}") from None
            for batch in sorted(batches):
                _check_batch(batch, batch_size, field, where, dataset_size, workers, ghost, workload, plain_bn)


def _check_search(spec: StudySpec) -> None:
    search = spec.search
    if search.algorithm == "grid":
        if search.trials_per_cell is not None:
            raise SpecError("search.trials_per_cell: only for algorithms quasi_random, optuna, bracket "
                            "(grid runs every listed learning rate)")
    else:
        minimum = 3 if search.algorithm == "bracket" else 1
        if search.trials_per_cell is None or search.trials_per_cell < minimum:
            what = "a bracket needs the best ε and one point on each side" if minimum == 3 else "a budget"
            raise SpecError(f"search.trials_per_cell: {search.algorithm} needs at least {minimum} trials per "
                            f"cell ({what}), got {search.trials_per_cell}")
    stopping = search.early_stopping
    epochs = min(section.workload.epochs for section in spec.resolved_sections().values())
    if stopping is not None and stopping.grace_period >= epochs:
        raise SpecError(f"search.early_stopping.grace_period: must be below workload.epochs="
                        f"{epochs}, got {stopping.grace_period}")


def _check_batch(batch, initial, field, where, dataset_size, workers, ghost, workload, plain_bn) -> None:
    grown = "" if batch == initial else f" (reached by {field} from batch size {initial})"
    if batch > dataset_size:
        raise SpecError(
            f"{where}grid.batch_size: {batch}{grown} exceeds the training-set size {dataset_size}"
        )
    if batch % workers:
        raise SpecError(
            f"{where}grid.batch_size: {batch}{grown} is not divisible by resources.workers_per_trial={workers}"
        )
    local = batch // workers
    if ghost is not None and local % ghost:
        raise SpecError(
            f"{where}grid.batch_size: per-worker batch {local}{grown} is not a multiple of "
            f"workload.ghost_batch_size={ghost}"
        )
    limit = workload.max_device_batch_size
    if micro_batch_size(local, limit, ghost) is None:
        raise SpecError(
                f"workload.max_device_batch_size: per-worker batch {local} cannot be split into equal "
                f"micro-batches ≤ {limit}" + (f" that are multiples of ghost_batch_size={ghost}" if ghost else "")
            )
    if plain_bn and limit is not None and local > limit:
        # Plain BN normalises over whatever it is given: micro-batches would silently become its batch.
        raise SpecError(
            f"{where}workload.max_device_batch_size: per-worker batch {local}{grown} above {limit} would be split "
            f"into micro-batches, which would change plain batch norm's BN batch ({where}workload.ghost_batch_size "
            f"is null); set {where}workload.ghost_batch_size (a divisor of the micro-batch) or raise the limit")
    _check_penalty_blocks(batch, local, grown, where, ghost, workload, plain_bn)


def _check_penalty_blocks(batch, local, grown, where, ghost, workload, plain_bn) -> None:
    """geiping_blocks: every worker holds whole blocks, each of whole ghost batches, each fits the device."""
    penalty = workload.grad_penalty
    if penalty is None or penalty.kind != "geiping_blocks":
        return
    field = f"{where}workload.grad_penalty.block_size"
    block = penalty_block_size(batch, penalty.block_size)
    if local % block:
        raise SpecError(f"{field}: the per-worker batch {local} (global batch {batch}{grown}) is not a multiple "
                        f"of the block of {block} examples")
    if ghost is not None and block % ghost:
        raise SpecError(f"{field}: the block of {block} examples is not a multiple of "
                        f"workload.ghost_batch_size={ghost}")
    if plain_bn and block < local:
        # Each block is its own forward pass: plain BN would normalise over the block instead of B/W.
        raise SpecError(f"{field}: blocks of {block} examples would change plain batch norm's BN batch (the "
                        f"per-worker batch {local}{grown}; {where}workload.ghost_batch_size is null); set "
                        f"{where}workload.ghost_batch_size to a divisor of the block")
    limit = workload.max_device_batch_size
    if limit is not None and block > limit:
        raise SpecError(f"{field}: the block of {block} examples exceeds workload.max_device_batch_size={limit} "
                        "(a block is one forward pass)")


def _prefixed(prefix: str, error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    field = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"{prefix}: unknown option {field!r}"
    return f"{prefix}.{field}: {first['msg'].removeprefix('Value error, ')}"
