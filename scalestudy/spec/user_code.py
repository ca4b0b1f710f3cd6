"""The workload's code, checked in the driver before any trial starts: names and options of the built-ins,
and the user's own model, dataset and optimizer, imported and called once.

* a dataset by import path is loaded once (per process and options) to learn N, the input shape and the
  number of classes, so that B ≤ N, B_max ≤ N and the ghost-batch divisibility are checked up front;
* a model by import path is built once on CPU for that shape, to see its batch-norm layers (the rules
  for plain BN, ghost BN and precise BN depend on them);
* an optimizer by import path is built once over a dummy parameter (its options, its return type, and
  whether a schedule can change its momentum);
* then a section with any of the user's code is trained one step on CPU (:mod:`~scalestudy.spec.dry_run`,
  :func:`needs_dry_run`).

Every failure is a :class:`SpecError` naming the field: ``workload.model: cannot import 'mypkg.models'
(No module named 'mypkg')``, ``workload.dataset_options: mypkg.data:load(**dataset_options): got an
unexpected keyword argument 'size'``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from pydantic import ValidationError

from scalestudy import data, models, optim, tasks
from scalestudy.registry import ContractError, ImportPathError
from scalestudy.spec.base import SpecError
from scalestudy.spec.schema import LinearRuleLR, Section, StudySpec
from scalestudy.spec.workload import Workload


@dataclass(frozen=True)
class ResolvedWorkload:
    """What the cross-field checks need of a section's workload."""

    dataset_size: int  # N, training examples
    has_batch_norm: bool
    not_ghostable: tuple[str, ...]  # batch-norm layer types ghost BN cannot replace
    user_model: bool  # the user's model (its batch norm seen by building it), not a built-in's options


def import_shipped_code(spec: StudySpec) -> None:
    """Put the local folders ``resources.runtime_env`` ships to the workers on the driver's path too: the
    driver imports the same code to check the spec."""
    runtime_env = spec.resources.runtime_env
    for root in reversed(runtime_env.import_roots() if runtime_env is not None else []):
        if root not in sys.path:
            sys.path.insert(0, root)


def _field_error(fields: tuple[str, str], error: Exception) -> SpecError:
    """The one-line error of the user's code: ``fields`` = (the entry's field, its options' field)."""
    field = fields[1] if isinstance(error, ContractError) and error.field == "options" else fields[0]
    return SpecError(f"{field}: {error}")


def resolve_workload(workload: Workload, prefix: str) -> ResolvedWorkload:
    """N and the model's batch norm; the user's dataset loaded and model built once. ``prefix``: where the
    workload is written (``workload`` or ``sections.NAME.workload``)."""
    try:
        dataset_opts = data.dataset_options(workload.dataset, workload.dataset_options)
    except ValidationError as error:
        raise SpecError(prefixed(f"{prefix}.dataset_options", error)) from None
    try:
        info = data.dataset_info(workload.dataset, dataset_opts)
    except (ImportPathError, ContractError) as error:
        raise _field_error((f"{prefix}.dataset", f"{prefix}.dataset_options"), error) from None
    except ValueError as error:  # a built-in dataset counted on disk (image_folder): its folders
        raise SpecError(f"{prefix}.dataset_options.{error}") from None
    try:
        probe = models.probe_model(workload.model, workload.model_options, info.input_shape, info.num_classes)
    except ValidationError as error:
        raise SpecError(prefixed(f"{prefix}.model_options", error)) from None
    except (ImportPathError, ContractError) as error:
        raise _field_error((f"{prefix}.model", f"{prefix}.model_options"), error) from None
    return ResolvedWorkload(info.train_size, probe.has_batch_norm, probe.not_ghostable,
                            not models.MODELS.is_builtin(workload.model))


def needs_dry_run(section: Section) -> bool:
    """Whether the section runs any of the user's code (model, dataset, task, optimizer) or reads the
    user's files (``image_folder``): then :mod:`scalestudy.spec.dry_run` trains it for one step first."""
    workload = section.workload
    users = [not registry.is_builtin(name) for registry, name in (
        (models.MODELS, workload.model), (data.DATASETS, workload.dataset), (tasks.TASKS, workload.task),
        (optim.OPTIMIZERS, section.optimizer.name))]
    return any(users) or data.DATASET_OPTIONS[workload.dataset].reads_users_files


def check_optimizer(section: Section, where: str, momentum_changes: bool) -> None:
    """The section's optimizer: its options, the grid settings that are SGD's alone, the lr rule's momentum
    factor, and (for the user's optimizer) that a schedule changing the momentum can set it."""
    optimizer, grid = section.optimizer, section.grid
    name, field = optimizer.name, f"{where}optimizer"
    try:
        options = optim.optimizer_options(name, optimizer.options)
    except ValidationError as error:
        hint = " (sgd takes none: its nesterov and weight_decay are grid.nesterov and grid.weight_decay)" \
            if name == "sgd" else ""
        raise SpecError(prefixed(f"{field}.options", error) + hint) from None
    if name != "sgd":
        decay = f"set {field}.options.weight_decay" if name == "adamw" else f"pass it in {field}.options"
        if grid.sgd_weight_decay:
            raise SpecError(f"{where}grid.weight_decay: SGD's weight decay; optimizer {name} has its own ({decay})")
        if grid.nesterov:
            raise SpecError(f"{where}grid.nesterov: SGD's Nesterov momentum; not for optimizer {name}")
    if name == "adamw" and isinstance(grid.lr, LinearRuleLR) and grid.lr.reference_momentum is not None:
        raise SpecError(f"{where}grid.lr.reference_momentum: the (1−m) factor is SGD's (its step is ε/(1−m)); "
                        "AdamW's first moment is an average of gradients, so its step does not grow with β1: "
                        "leave it null")
    try:
        settable = optim.probe_optimizer(name, options, grid.learning_rates(grid.batch_size[0], grid.momentum[0])[0],
                                         grid.momentum[0])
    except (ImportPathError, ContractError) as error:
        raise _field_error((f"{field}.name", f"{field}.options"), error) from None
    if momentum_changes and not settable:
        raise SpecError(f"{where}schedule: changes the momentum, but optimizer {name} offers no way to set it (no "
                        "set_momentum(m) method, and its param groups hold neither 'momentum' nor 'betas')")


def prefixed(prefix: str, error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    field = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"{prefix}: unknown option {field!r}"
    message = first["msg"].removeprefix("Value error, ")
    # A model-level validator has no field; its message starts with the field it names.
    return f"{prefix}.{field}: {message}" if field else f"{prefix}.{message}"
