"""Checks across fields that need the registries and the schedules' trajectories: every epoch of
every schedule of every section against the ghost batch, the workers and the training-set size."""

from __future__ import annotations

from pydantic import ValidationError

from scalestudy import data, models
from scalestudy.batching import micro_batch_size, penalty_block_size
from scalestudy.schedules import Hyper, trajectory
from scalestudy.spec.base import SpecError
from scalestudy.spec.schema import Section, StudySpec


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

