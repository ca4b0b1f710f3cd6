"""A training plan, ``plan.yaml`` (schema ``scalestudy.plan/v1``): what ``scalestudy plan`` chose from a
law for a cluster, and the per-update (B, ε, m) that training code follows.

    plan = Plan.load("plan.yaml")
    plan.at_step(0)                      # PlanStep(step=0, epoch=0, batch_size=..., lr=..., momentum=...)
    for step in plan.steps(): ...        # every update of the run
    plan.lr_scheduler(optimizer)         # a torch LRScheduler that sets ε and m at every update
    plan.batch_sampler(seed=0)           # a torch batch sampler with the plan's batch size at every update
    plan.to_hf_training_args()           # Hugging Face TrainingArguments fields (scalestudy.law.hf)

The schedule is the project's own (:mod:`scalestudy.schedules`, the one home of the rules): epochs
are 0-based; a milestone ``e`` takes effect from epoch ``e``; ``hybrid`` multiplies B by
``factor`` at each milestone while B stays ≤ ``max_batch_size`` and divides ε by ``factor`` at
the others (Smith et al. 2018); ``step_decay_lr`` divides ε; ``constant`` changes nothing. An
epoch at batch size B has N // B updates (the ragged tail is dropped, as the study's loop does);
warmup scales ε by (u+1)/(U+1) at update u < U, U the updates of the first ``warmup_epochs``
epochs (Goyal et al. 2017). A plan for a target stops after ``max_updates``, at the ε they were counted at.
Its 300-odd lines are the plan file's records, their checks and the updates they expand into: one read.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator

from scalestudy.law.plan_adamw import AdamWAt, PlanAdamW, adamw_at
from scalestudy.law.records import Interval, LawFileError, read_document, read_record, to_json, write_document
from scalestudy.schedules import Hyper, hyper_at, warmup_factor

PLAN_SCHEMA = "scalestudy.plan/v1"
MAX_PLAN_BYTES = 16 * 2**20
KINDS = ("hybrid", "step_decay_lr", "constant")
LR_BASES = ("law", "steps_to_target")  # Plan.lr_basis


class PlanError(LawFileError):
    """A plan file that cannot be read, or a plan that cannot do what is asked; one line."""


@dataclass(frozen=True)
class PlanSetting:
    """The user's setting the plan was made for."""

    workers: int
    max_batch_per_worker: int  # [examples]
    throughput: float  # examples per second, all workers together
    throughput_source: str  # "8 workers × 1500 examples/s" or "measured"
    dataset_size: int  # N, training examples per epoch
    epochs: int | None = None  # asked for (or None: train to ``target``)
    target: float | None = None  # test accuracy to reach [fraction]


@dataclass(frozen=True)
class BatchLimit:
    """One bound on the batch size, and where it comes from."""

    name: str  # critical batch size (steps to target) | ... (gradient noise) | breakdown | hardware | dataset | ...
    value: float  # [examples]
    ci95: Interval | None = None
    reason: str | None = None  # where the bound comes from, in words (absent in plans of earlier versions)


@dataclass(frozen=True)
class PlanSchedule:
    """The schedule, in the terms :mod:`scalestudy.schedules` reads (a ``ScheduleParams``)."""

    kind: str  # hybrid | step_decay_lr | constant
    initial_batch_size: int  # [examples]
    initial_lr: float  # the law's ε* at initial_batch_size [per update]
    momentum: float
    epochs: int
    milestones: tuple[int, ...] = ()  # [epochs, 0-based]
    factor: float = 5.0
    max_batch_size: int | None = None  # hybrid: B grows up to this
    warmup_epochs: int = 0
    max_updates: int | None = None  # stop after this many updates (plans for a target accuracy)

    @property
    def momentum_factor(self) -> float:
        """Part of ``ScheduleParams``; a plan never changes the momentum."""
        return 1.0


@dataclass(frozen=True)
class PlanPrediction:
    updates: int  # optimizer steps
    examples: int  # examples processed
    wall_seconds: float  # examples / throughput
    updates_ci95: Interval | None = None  # plans for a target: from S(B)'s interval
    wall_seconds_ci95: Interval | None = None


@dataclass(frozen=True)
class PlanSource:
    """The law the plan was made from."""

    file: str | None
    form: str
    k: float
    alpha: float
    beta: float | None = None
    gamma: float | None = None
    experiment: str | None = None
    spec_hash: str | None = None
    created: str | None = None


@dataclass(frozen=True)
class PlanStep:
    step: int  # 0-based update index
    epoch: int  # 0-based
    batch_size: int  # global [examples]
    lr: float  # [per update]
    momentum: float


@dataclass(frozen=True)
class PlanEpoch:
    epoch: int  # 0-based
    first_step: int
    updates: int
    batch_size: int
    lr: float  # after warmup
    momentum: float


@dataclass(frozen=True)
class Plan:
    """The content of a plan file (see the module docstring)."""

    setting: PlanSetting
    batch_size: int  # the largest batch the schedule trains at: ≤ every limit [examples]
    workers: int  # workers used (fewer than the setting's when B is smaller than them)
    per_worker_batch_size: int  # at batch_size [examples]
    lr: float  # the ε to train at B, lr_basis says which
    momentum: float
    schedule: PlanSchedule
    predicted: PlanPrediction
    limits: tuple[BatchLimit, ...]
    limited_by: str
    law: PlanSource
    lr_ci95: Interval | None = None  # 95 % interval of the law's ε* at batch_size (lr_basis law)
    warnings: tuple[str, ...] = ()
    lr_basis: str = "law"  # law: ε*(B) (= scalestudy recommend); steps_to_target: the ε its updates were counted at
    law_lr: float | None = None  # the law's ε*(B) when lr_basis is not "law"
    batch_size_reason: str | None = None  # how B follows from the tightest limit, in words
    initial_lr_ci95: Interval | None = None  # 95 % interval of schedule.initial_lr, the first and peak ε (basis law)
    adamw: PlanAdamW | None = None  # β1, β2, λ, model EMA at batch_size (laws with law.adamw; absent before)
    schema: str = PLAN_SCHEMA

    # ----------------------------------------------------------------- files
    def to_dict(self) -> dict[str, Any]:
        data = to_json(self)
        return {"schema": data.pop("schema"), **data}

    def save(self, path: str | Path) -> Path:
        """YAML for .yaml/.yml, JSON otherwise."""
        return write_document(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        data = read_document(path, "plan file", MAX_PLAN_BYTES, "plan.yaml as written by scalestudy plan")
        return cls.from_dict(data, where=f"plan file {path}")

    @classmethod
    def from_dict(cls, data: Any, where: str = "plan") -> Plan:
        if not isinstance(data, dict):
            raise PlanError(f"{where}: expected a mapping, got {type(data).__name__}")
        if data.get("schema") != PLAN_SCHEMA:
            raise PlanError(f"{where}: schema must be {PLAN_SCHEMA!r}, got {data.get('schema')!r}")
        try:
            plan = read_record(cls, data, where)
        except LawFileError as error:
            raise PlanError(str(error)) from None
        plan.check(where)
        return plan

    def check(self, where: str = "plan") -> None:
        """The plan is one training can follow: positive sizes, a known schedule, whole batch sizes."""
        s = self.schedule
        if s.kind not in KINDS:
            raise PlanError(f"{where}: schedule.kind must be one of {', '.join(KINDS)}, got {s.kind!r}")
        sizes = {"batch_size": self.batch_size, "workers": self.workers, "schedule.epochs": s.epochs,
                 "schedule.initial_batch_size": s.initial_batch_size, "setting.dataset_size": self.dataset_size}
        for name, value in sizes.items():
            if value < 1:
                raise PlanError(f"{where}: {name} must be ≥ 1, got {value}")
        if not (self.lr > 0 and s.initial_lr > 0 and 0 <= self.momentum < 1 and s.momentum == self.momentum):
            raise PlanError(f"{where}: lr and schedule.initial_lr must be > 0 and momentum in [0, 1), the same in "
                            "the plan and its schedule")
        if list(s.milestones) != sorted(set(s.milestones)) or any(not 0 < e < s.epochs for e in s.milestones):
            raise PlanError(f"{where}: schedule.milestones must be increasing epochs in 1-{s.epochs - 1}, "
                            f"got {list(s.milestones)}")
        if self.lr_basis not in LR_BASES:
            raise PlanError(f"{where}: lr_basis must be one of {', '.join(LR_BASES)}, got {self.lr_basis!r}")
        if not s.factor > 1 or s.warmup_epochs < 0 or (s.max_updates is not None and s.max_updates < 1):
            raise PlanError(f"{where}: schedule.factor must be > 1, warmup_epochs ≥ 0, max_updates ≥ 1")
        try:
            largest = max(e.batch_size for e in self.epochs())
        except ValueError as error:  # a batch size the factor does not keep whole, hybrid without a maximum
            raise PlanError(f"{where}: schedule: {error}") from None
        if largest > self.dataset_size:
            raise PlanError(f"{where}: the schedule reaches batch size {largest}, more than the dataset "
                            f"size {self.dataset_size}")

    # ------------------------------------------------------- the schedule
    @property
    def dataset_size(self) -> int:
        return self.setting.dataset_size

    @property
    def total_updates(self) -> int:
        last = self.epochs()[-1]
        return last.first_step + last.updates

    def epochs(self) -> tuple[PlanEpoch, ...]:
        """Every epoch of the run (B, ε after warmup, m, updates), the last one cut at max_updates."""
        return self._epochs

    @cached_property
    def _epochs(self) -> tuple[PlanEpoch, ...]:
        s, out, first = self.schedule, [], 0
        initial = Hyper(s.initial_batch_size, s.initial_lr, s.momentum)
        for epoch in range(s.epochs):
            hyper = hyper_at(s, initial, epoch)
            updates = self.dataset_size // hyper.batch_size
            if s.max_updates is not None:
                updates = min(updates, s.max_updates - first)
            if updates <= 0:
                break
            out.append(PlanEpoch(epoch, first, updates, hyper.batch_size, hyper.lr, hyper.momentum))
            first += updates
        return tuple(out)

    @cached_property
    def warmup_updates(self) -> int:
        """U, the updates of the first ``warmup_epochs`` epochs."""
        return sum(e.updates for e in self.epochs()[:self.schedule.warmup_epochs])

    @cached_property
    def _starts(self) -> list[int]:
        return [e.first_step for e in self.epochs()]

    def at_step(self, step: int) -> PlanStep:
        """(B, ε, m) of update ``step`` (0-based)."""
        if not 0 <= step < self.total_updates:
            raise PlanError(f"step must be in 0-{self.total_updates - 1}, got {step}")
        epoch = self.epochs()[bisect_right(self._starts, step) - 1]
        lr = epoch.lr * warmup_factor(step, self.warmup_updates)
        return PlanStep(step, epoch.epoch, epoch.batch_size, lr, epoch.momentum)

    def steps(self) -> Iterator[PlanStep]:
        """Every update of the run, in order."""
        for epoch in self.epochs():
            for step in range(epoch.first_step, epoch.first_step + epoch.updates):
                yield PlanStep(step, epoch.epoch, epoch.batch_size,
                               epoch.lr * warmup_factor(step, self.warmup_updates), epoch.momentum)

    def adamw_at(self, step: int) -> AdamWAt | None:
        """AdamW's β1, β2, λ and EMA momentum at update ``step`` (its epoch's B and ε); None without ``adamw``."""
        if self.adamw is None:
            return None
        at = self.at_step(step)
        epoch = self.epochs()[at.epoch]
        return adamw_at(self.adamw, self.batch_size, epoch.batch_size, epoch.lr, self.dataset_size)

    @property
    def constant_batch(self) -> bool:
        return len({e.batch_size for e in self.epochs()}) == 1

    # ------------------------------------------------------ training code
    def lr_scheduler(self, optimizer, last_epoch: int = -1):
        """A ``torch.optim.lr_scheduler.LRScheduler`` setting ε and m of every update (torch needed); in a
        plan with ``adamw``, β2 and λ too (:class:`~scalestudy.law.adamw_torch.PlanAdamWScheduler`)."""
        if self.adamw is not None:
            from scalestudy.law.adamw_torch import PlanAdamWScheduler

            return PlanAdamWScheduler(optimizer, self, last_epoch=last_epoch)
        from scalestudy.law.pytorch import PlanScheduler  # torch is optional for reading a plan

        return PlanScheduler(optimizer, self, last_epoch=last_epoch)

    def batch_sampler(self, seed: int = 0, *, rank: int = 0, world_size: int = 1, start_step: int = 0):
        """A torch batch sampler: the indices of every update's batch, in plan order (torch needed)."""
        from scalestudy.law.pytorch import PlanBatchSampler

        return PlanBatchSampler(self, seed=seed, rank=rank, world_size=world_size, start_step=start_step)

    # ---------------------------------------------------------- Hugging Face (scalestudy.law.hf)
    def hf_accumulation_steps(self, per_device_train_batch_size: int, devices: int) -> tuple[int, ...]:
        """Gradient accumulation steps of every epoch when each update is ``devices`` × micro-batches of
        ``per_device_train_batch_size``: B / (per-device batch × devices), or :class:`PlanError`
        naming the per-device sizes that divide every batch size of the plan."""
        sizes = [e.batch_size for e in self.epochs()]
        per_device, common = per_device_train_batch_size, math.gcd(*sizes)
        if per_device < 1 or devices < 1 or common % (per_device * devices):
            allowed = [str(p) for p in range(1, common // max(devices, 1) + 1) if common % (p * devices) == 0]
            raise PlanError(f"the {self.schedule.kind} plan (B {' → '.join(map(str, dict.fromkeys(sizes)))}): "
                            f"per_device_train_batch_size {per_device} × {devices} device(s) does not divide every "
                            f"batch size; per-device sizes that do: {', '.join(allowed) or f'none on {devices} devices'}")
        return tuple(b // (per_device * devices) for b in sizes)

    def to_hf_training_args(self, per_device_train_batch_size: int | None = None,
                            devices: int | None = None) -> dict[str, Any]:
        """Hugging Face ``TrainingArguments`` fields for this plan, as a dict (``TrainingArguments(**d)``),
        to train with ``optimizers=plan_optimizers(model, plan)`` and ``callbacks=[PlanCallback(plan)]``
        (:mod:`scalestudy.law.hf`: HF's lr schedules cannot start a warmup at ε/(U+1), nor change B).

        The per-device micro-batch defaults to each device's share of the plan's smallest batch, at
        most a worker's (it fits a worker), ``devices`` to the plan's workers; ``gradient_accumulation_steps`` is the
        first epoch's. Where the fields alone give every update the plan's batch (one batch size, HF's
        epoch of N // (per-device × devices) micro-batches a whole number of updates), they count
        ``max_steps``; else HF's epochs are the plan's (``num_train_epochs``), which PlanCallback ends
        at the plan's updates, changing the accumulation steps between them."""
        devices = devices or self.workers
        sizes = [e.batch_size for e in self.epochs()]
        # At most a worker's share of the smallest batch, so a micro-batch fits a device.
        per_device = per_device_train_batch_size or max(1, math.gcd(*sizes) // max(devices, self.workers))
        steps = self.hf_accumulation_steps(per_device, devices)
        fields = {"learning_rate": self.schedule.initial_lr, "per_device_train_batch_size": per_device,
                  "gradient_accumulation_steps": steps[0], "lr_scheduler_type": "constant",
                  "dataloader_drop_last": True}
        if self.adamw is not None:  # what HF's own AdamW would take (plan_optimizers builds it from the plan)
            at = self.adamw_at(0)
            fields.update({"adam_beta1": at.beta1, **({"adam_beta2": at.beta2} if at.beta2 is not None else {}),
                           **({"weight_decay": at.weight_decay} if at.weight_decay is not None else {})})
        if self.constant_batch and self.dataset_size // (per_device * devices) % steps[0] == 0:
            return {**fields, "max_steps": self.total_updates}
        return {**fields, "num_train_epochs": len(self.epochs()), "max_steps": -1}


__all__ = ["KINDS", "LR_BASES", "PLAN_SCHEMA", "BatchLimit", "Plan", "PlanEpoch", "PlanError", "PlanPrediction",
           "PlanSchedule", "PlanSetting", "PlanSource", "PlanStep"]
