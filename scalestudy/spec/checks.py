"""Checks across fields that need the registries and the schedules' trajectories: every epoch of
every schedule of every section against the ghost batch, the workers and the training-set size; the
workload's own code (:mod:`~scalestudy.spec.user_code`) first, since N and the model's batch norm come
from it."""

from __future__ import annotations

from pydantic import ValidationError

from scalestudy import data, models, tasks
from scalestudy.batching import micro_batch_size, penalty_block_size
from scalestudy.schedules import Hyper, trajectory
from scalestudy.spec.base import SpecError
from scalestudy.spec.branch_checks import branch_batch_sizes, check_branching
from scalestudy.spec.schema import Section, StudySpec
from scalestudy.spec.user_code import check_optimizer, import_shipped_code, needs_dry_run, prefixed, resolve_workload


def check_consistency(spec: StudySpec) -> None:
    """Checks across fields: options, the user's code, dataset size, every epoch of every schedule of
    every section."""
    _check_search(spec)
    import_shipped_code(spec)
    for section_name, section in spec.resolved_sections().items():
        where = f"sections.{section_name}." if spec.sections else ""
        _check_section(spec, section, where)
        _check_task(spec, section, where)
        if needs_dry_run(section):
            # Imported here: the dry run imports torch, which a spec of built-ins alone never needs.
            from scalestudy.spec.dry_run import dry_run

            dry_run(section, where)


def _check_task(spec: StudySpec, section: Section, where: str) -> None:
    """The objective and the steps-to-target metric are metrics the section's task reports."""
    name = section.workload.task
    try:
        info = tasks.task_info(name)
    except ValueError as error:
        raise SpecError(f"{where}workload.task {name}: {error}") from None
    objective = spec.objective
    field = "analysis.objective" if spec.analysis.objective is not None else f"{where}workload.task"
    if info.direction(objective.metric) is None:
        raise SpecError(f"{field}: metric {objective.metric!r} is not reported by task {name!r} "
                        f"(it reports {', '.join(info.metric_names())})")
    target = spec.diagnostics.steps_target
    if target is not None and info.direction(target.metric) is None:
        which = "target_accuracy" if spec.diagnostics.target_accuracy is not None else "target.metric"
        raise SpecError(f"diagnostics.{which}: metric {target.metric!r} is not reported by task {name!r} "
                        f"(it reports {', '.join(m for m in info.metric_names() if m.startswith('test_'))})")


def _check_section(spec: StudySpec, section: Section, where: str) -> None:
    workload = section.workload
    # Errors name the field where the user wrote it: the base workload unless the section overrides it.
    prefix = f"{where}workload" if where else "workload"
    resolved = resolve_workload(workload, prefix)
    has_batch_norm = resolved.has_batch_norm
    dataset_size = min(_dataset_sizes(section, resolved.dataset_size, where))  # every batch must fit the smallest N
    without = ("without batch-norm layers" if resolved.user_model else
               f"with norm: {getattr(models.model_options(workload.model, workload.model_options), 'norm', 'none')}")
    workers = spec.resources.workers_per_trial
    ghost = workload.ghost_batch_size
    if ghost is not None and not has_batch_norm:
        raise SpecError(f"{prefix}.ghost_batch_size: must be null for a model {without} "
                        "(there is no batch norm to make ghost)")
    if ghost is not None and resolved.not_ghostable:
        raise SpecError(f"{prefix}.ghost_batch_size: the model has {', '.join(resolved.not_ghostable)} layers, "
                        "which ghost batch norm cannot replace (only nn.BatchNorm1d and nn.BatchNorm2d); set it "
                        "to null")
    if workload.precise_bn is not None and not has_batch_norm:
        raise SpecError(f"{prefix}.precise_bn: must be null for a model {without} "
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
    check_branching(spec, dataset_size)
    momentum_changes = False
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
                hypers = trajectory(schedule, initial, workload.epochs)
            except ValueError as error:
                raise SpecError(f"{field}: {error}") from None
            batches = {h.batch_size for h in hypers} | set(branch_batch_sizes(spec, batch_size))
            momentum_changes |= len({h.momentum for h in hypers}) > 1
            for batch in sorted(batches):
                _check_batch(batch, batch_size, field, where, dataset_size, workers, ghost, workload, plain_bn)
    _check_optimizer_axes(section, where)  # before check_optimizer, which may build the user's optimizer
    check_optimizer(section, where, momentum_changes)


def _dataset_sizes(section: Section, workload_size: int, where: str) -> list[int]:
    """The N of each trial: the grid's dataset sizes, each valid as the dataset's train_size or, for a
    dataset scalestudy subsamples, at most its training-set size ``workload_size``; or that one N."""
    sizes, workload = section.grid.dataset_size, section.workload
    if sizes is None:
        return [workload_size]
    for size in sizes:
        try:
            _, subset = data.at_dataset_size(workload.dataset, workload.dataset_options, size,
                                             section.grid.dataset_subset_seed)
        except ValidationError as error:
            raise SpecError(prefixed(f"{where}grid.dataset_size: {size}: dataset_options", error)) from None
        if subset is not None and size > workload_size:
            raise SpecError(f"{where}grid.dataset_size: {size} exceeds the training-set size {workload_size} of "
                            f"dataset {workload.dataset!r} (each N is a subset of its training split)")
    return list(sizes)


def min_trials_per_cell(algorithm: str) -> int:
    """The fewest ``search.trials_per_cell`` a per-cell search accepts: a bracket needs its best ε and one
    point on each side."""
    return 3 if algorithm == "bracket" else 1


def _check_search(spec: StudySpec) -> None:
    search = spec.search
    if search.algorithm != "adaptive":
        for name in ("target", "budget"):
            if getattr(search, name) is not None:
                raise SpecError(f"search.{name}: only for algorithm adaptive (got algorithm {search.algorithm!r})")
    if search.algorithm in ("grid", "adaptive"):
        if search.trials_per_cell is not None:
            why = ("grid runs every listed learning rate" if search.algorithm == "grid" else
                   "adaptive spends search.budget where the law's interval shrinks most")
            raise SpecError(f"search.trials_per_cell: only for algorithms quasi_random, optuna, bracket ({why})")
    else:
        minimum = min_trials_per_cell(search.algorithm)
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



# Optimizers whose λ a grid axis may set (SGD's weight_decay argument, AdamW's option), and whose β2.
DECAY_AXIS_OPTIMIZERS, BETA2_OPTIMIZERS = ("sgd", "adamw"), ("adamw",)


def _check_optimizer_axes(section: Section, where: str) -> None:
    """The grid's λ and β2 axes (scalestudy.trial.axes) against the section's optimizer: λ for sgd and
    adamw, β2 for adamw, each set once (by the grid or by the optimizer's options, not both)."""
    grid, optimizer = section.grid, section.optimizer
    name, options = optimizer.name, optimizer.options
    if grid.decay_axis:
        field = f"{where}grid." + ("tau_epochs" if grid.tau_epochs is not None else "weight_decay")
        if name not in DECAY_AXIS_OPTIMIZERS:
            raise SpecError(f"{field}: a weight-decay axis is for optimizers {', '.join(DECAY_AXIS_OPTIMIZERS)}; "
                            f"optimizer {name} takes its own in {where}optimizer.options")
        if "weight_decay" in options:
            raise SpecError(f"{field}: sets AdamW's weight decay per cell; remove "
                            f"{where}optimizer.options.weight_decay (give λ once)")
    for axis in ("beta2", "beta2_half_life_examples"):
        if getattr(grid, axis) is None:
            continue
        if name not in BETA2_OPTIMIZERS:
            raise SpecError(f"{where}grid.{axis}: AdamW's second-moment decay; allowed with optimizer "
                            f"{', '.join(BETA2_OPTIMIZERS)} only, not {name}")
        if "beta2" in options:
            raise SpecError(f"{where}grid.{axis}: sets β2 per cell; remove {where}optimizer.options.beta2 "
                            "(give β2 once)")
