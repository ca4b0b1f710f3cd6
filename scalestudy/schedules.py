"""Dynamic (batch size, learning rate, momentum) schedules as pure functions of the epoch and update.

The milestone schedules lower the SGD noise scale g = ε/(1−m)·(N/B − 1) by ``factor`` at each
milestone, each in its own way (Smith, Kindermans, Ying & Le 2018):

* ``constant``          nothing changes;
* ``step_decay_lr``     ε ÷ factor;
* ``increase_batch``    B × factor (ε and m stay);
* ``hybrid``            B × factor while B stays ≤ max_batch_size, then ε ÷ factor;
* ``increase_momentum`` 1−m ÷ momentum_factor and ε lowered so that the effective
                        learning rate ε/(1−m) falls by ``factor``.

``cosine_decay_lr`` has no milestones: it anneals ε every update, ε·½(1 + cos(π·(u − U)/(T − U)))
at update u of the trial's T (Loshchilov & Hutter 2017 without restarts: torch's
``CosineAnnealingLR(T_max = T − U, eta_min = 0)`` stepped per update), from where the U warmup
updates end to 0 at the end of the run, as the warmup-then-cosine schedules of Goyal et al. and
Geiping et al. 2021 do. Epoch by epoch (``hyper_at``) it is ``constant``; like the warmup, its
decay is per update (``update_lrs``), since it needs the run's length T.

Epochs are 0-based indices of the epoch about to be trained; a milestone ``e`` takes
effect from epoch index ``e`` on (the convention of ``torch.optim.lr_scheduler.MultiStepLR``).

Warmup is per update, on top of any schedule (Goyal et al. 2017, §2.2 "gradual warmup": the
learning rate rises linearly at every iteration over the warmup epochs): the U updates of the
first ``warmup_epochs`` epochs (U = Σ_e N // B_e, with the schedule's batch size B_e of each
epoch, as the loop counts them) scale ε by (u+1)/(U+1) at the trial's update u = 0 … U−1,
then by 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

from scalestudy.registry import Registry


class ScheduleParams(Protocol):
    """What a schedule reads from the spec (``scalestudy.spec.Schedule`` satisfies it)."""

    kind: str
    milestones: Sequence[int]
    factor: float
    max_batch_size: int | None
    warmup_epochs: int
    momentum_factor: float


@dataclass(frozen=True)
class Hyper:
    """The hyperparameters of one epoch: global batch size (examples), lr, momentum."""

    batch_size: int
    lr: float
    momentum: float

    @property
    def effective_lr(self) -> float:
        return self.lr / (1.0 - self.momentum)


def milestones_passed(schedule: ScheduleParams, epoch: int) -> int:
    """Number of milestones at or before ``epoch`` (0-based)."""
    return sum(1 for milestone in schedule.milestones if milestone <= epoch)


def _scaled_batch(batch_size: int, factor: float) -> int:
    scaled = batch_size * factor
    if abs(scaled - round(scaled)) > 1e-9:
        raise ValueError(f"batch size {batch_size} × factor {factor} is not an integer")
    return int(round(scaled))


def constant(schedule: ScheduleParams, initial: Hyper, epoch: int) -> Hyper:
    return initial


def step_decay_lr(schedule: ScheduleParams, initial: Hyper, epoch: int) -> Hyper:
    k = milestones_passed(schedule, epoch)
    return Hyper(initial.batch_size, initial.lr / schedule.factor**k, initial.momentum)


def increase_batch(schedule: ScheduleParams, initial: Hyper, epoch: int) -> Hyper:
    k = milestones_passed(schedule, epoch)
    return Hyper(_scaled_batch(initial.batch_size, schedule.factor**k), initial.lr, initial.momentum)


def hybrid(schedule: ScheduleParams, initial: Hyper, epoch: int) -> Hyper:
    if schedule.max_batch_size is None:
        raise ValueError("hybrid needs max_batch_size")
    batch_size, lr = initial.batch_size, initial.lr
    for _ in range(milestones_passed(schedule, epoch)):
        grown = _scaled_batch(batch_size, schedule.factor)
        if grown <= schedule.max_batch_size:
            batch_size = grown
        else:
            lr /= schedule.factor
    return Hyper(batch_size, lr, initial.momentum)


def increase_momentum(schedule: ScheduleParams, initial: Hyper, epoch: int) -> Hyper:
    k = milestones_passed(schedule, epoch)
    rho = schedule.momentum_factor
    momentum = 1.0 - (1.0 - initial.momentum) / rho**k
    # ε/(1−m) must fall by factor**k while (1−m) fell by rho**k: ε falls by (factor·rho)**k.
    lr = initial.lr / (schedule.factor * rho) ** k
    return Hyper(initial.batch_size, lr, momentum)


def cosine_decay_lr(schedule: ScheduleParams, initial: Hyper, epoch: int) -> Hyper:
    return initial  # the decay is per update: cosine_factor, applied by update_lrs


def cosine_factor(update: int, warmup: int, total: int) -> float:
    """Multiplier of ε at the trial's update ``update`` (0-based) of ``total`` under cosine annealing
    after a warmup of ``warmup`` updates: 1 during the warmup (whose own factor applies), then
    ½(1 + cos(π·(u − U)/(T − U))), 1 at the first update after it, → 0 at the end of the run."""
    if update < warmup:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * (update - warmup) / (total - warmup)))


SCHEDULES = Registry(
    "schedule",
    {
        "constant": constant,
        "step_decay_lr": step_decay_lr,
        "increase_batch": increase_batch,
        "hybrid": hybrid,
        "increase_momentum": increase_momentum,
        "cosine_decay_lr": cosine_decay_lr,
    },
)

# Kinds whose ε changes every update: the multiplier of update u given (u, U warmup updates, T updates).
PER_UPDATE_DECAY: dict[str, Callable[[int, int, int], float]] = {"cosine_decay_lr": cosine_factor}


def hyper_at(schedule: ScheduleParams, initial: Hyper, epoch: int) -> Hyper:
    """The (B, ε, m) the schedule sets for epoch ``epoch`` (0-based), before the per-update factors
    (warmup, a per-update decay: ``update_lrs``)."""
    return SCHEDULES.get(schedule.kind)(schedule, initial, epoch)


def trajectory(schedule: ScheduleParams, initial: Hyper, epochs: int) -> list[Hyper]:
    """The hyperparameters of every epoch, e.g. for validation up front."""
    return [hyper_at(schedule, initial, epoch) for epoch in range(epochs)]


def updates_in_epoch(schedule: ScheduleParams, initial: Hyper, epoch: int, dataset_size: int) -> int:
    """Optimizer updates of epoch ``epoch``: N // B (the ragged tail is dropped)."""
    return dataset_size // hyper_at(schedule, initial, epoch).batch_size


def warmup_updates(schedule: ScheduleParams, initial: Hyper, dataset_size: int) -> int:
    """U, the updates of the first ``warmup_epochs`` epochs."""
    return sum(updates_in_epoch(schedule, initial, epoch, dataset_size) for epoch in range(schedule.warmup_epochs))


def warmup_factor(update: int, warmup: int) -> float:
    """Multiplier of ε at the trial's update ``update`` (0-based) of a warmup of ``warmup`` updates."""
    return (update + 1) / (warmup + 1) if update < warmup else 1.0


def update_lrs(schedule: ScheduleParams, initial: Hyper, epoch: int, dataset_size: int,
               epochs: int) -> list[float] | None:
    """ε of each update of epoch ``epoch`` of a run of ``epochs`` where it changes within the epoch
    (warmup, a per-update decay); None where every update trains at the epoch's ε (``hyper_at``)."""
    decay = PER_UPDATE_DECAY.get(schedule.kind)
    if epoch >= schedule.warmup_epochs and decay is None:
        return None
    # Update counts of the epochs needed: up to this one, the warmup's, and the whole run's for a decay.
    horizon = max(epoch + 1, schedule.warmup_epochs, epochs if decay is not None else 0)
    counts = [updates_in_epoch(schedule, initial, e, dataset_size) for e in range(horizon)]
    warmup, total, first = sum(counts[:schedule.warmup_epochs]), sum(counts[:epochs]), sum(counts[:epoch])
    lr = hyper_at(schedule, initial, epoch).lr
    return [lr * warmup_factor(u, warmup) * (decay(u, warmup, total) if decay is not None else 1.0)
            for u in range(first, first + counts[epoch])]


def stage_at(start_epochs: Sequence[int], epoch: int) -> int:
    """Index of the stage of a staged run (a batch warmup, a late switch: ``scalestudy.trial.stages``) that
    trains epoch ``epoch`` (0-based): the last whose start epoch is ≤ it; ``start_epochs`` increase from 0.
    Each stage is a constant (B, ε) from its start to the next one's (Merrill et al. 2025, §5)."""
    index = 0
    for i, start in enumerate(start_epochs):
        if start <= epoch:
            index = i
    return index
