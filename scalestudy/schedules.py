"""Dynamic (batch size, learning rate, momentum) schedules as pure functions of the epoch.

Every schedule lowers the SGD noise scale g = ε/(1−m)·(N/B − 1) by ``factor`` at each
milestone, each in its own way (Smith, Kindermans, Ying & Le 2018):

* ``constant``          nothing changes;
* ``step_decay_lr``     ε ÷ factor;
* ``increase_batch``    B × factor (ε and m stay);
* ``hybrid``            B × factor while B stays ≤ max_batch_size, then ε ÷ factor;
* ``increase_momentum`` 1−m ÷ momentum_factor and ε lowered so that the effective
                        learning rate ε/(1−m) falls by ``factor``.

Epochs are 0-based indices of the epoch about to be trained; a milestone ``e`` takes
effect from epoch index ``e`` on (the convention of ``torch.optim.lr_scheduler.MultiStepLR``).

Warmup is per update, on top of any schedule (Goyal et al. 2017, §2.2 "gradual warmup": the
learning rate rises linearly at every iteration over the warmup epochs): the U updates of the
first ``warmup_epochs`` epochs (U = Σ_e N // B_e, with the schedule's batch size B_e of each
epoch, as the loop counts them) scale ε by (u+1)/(U+1) at the trial's update u = 0 … U−1,
then by 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

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


SCHEDULES = Registry(
    "schedule",
    {
        "constant": constant,
        "step_decay_lr": step_decay_lr,
        "increase_batch": increase_batch,
        "hybrid": hybrid,
        "increase_momentum": increase_momentum,
    },
)


def hyper_at(schedule: ScheduleParams, initial: Hyper, epoch: int) -> Hyper:
    """The (B, ε, m) the schedule sets for epoch ``epoch`` (0-based), before any warmup."""
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


def update_lrs(schedule: ScheduleParams, initial: Hyper, epoch: int, dataset_size: int) -> list[float] | None:
    """ε of each update of epoch ``epoch`` during warmup; None after it (ε is then the epoch's)."""
    if epoch >= schedule.warmup_epochs:
        return None
    warmup = warmup_updates(schedule, initial, dataset_size)
    first = sum(updates_in_epoch(schedule, initial, e, dataset_size) for e in range(epoch))
    lr = hyper_at(schedule, initial, epoch).lr
    return [lr * warmup_factor(first + step, warmup)
            for step in range(updates_in_epoch(schedule, initial, epoch, dataset_size))]
