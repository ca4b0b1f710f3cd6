"""A plan in Hugging Face's ``Trainer``: the plan's ε and m at every update, and its batch size,
warmup and batch growth (``hybrid``) included, with ``pip install "scalestudy[hf]"``.

    args = TrainingArguments(output_dir="out", **plan.to_hf_training_args())
    trainer = Trainer(model=model, args=args, train_dataset=train,
                      optimizers=plan_optimizers(model, plan),  # SGD(m) + ε of every update
                      callbacks=[PlanCallback(plan)])           # B of every update
    trainer.train()

**ε and m**: HF's schedules cannot follow the plan (its warmup starts at 0, the plan's at ε/(U+1),
and none decays at the plan's milestones), so the scheduler is :class:`PlanScheduler`, the one
:meth:`Plan.lr_scheduler` gives plain PyTorch; the Trainer steps it after every optimizer step,
and logs its ε.

**B**: each update is per-device micro-batch × devices × gradient accumulation steps. The Trainer
reads ``args.gradient_accumulation_steps`` afresh at each epoch's start and chunks its micro-batches
by it from the epoch's first one, so a callback can change it between epochs but not within one.
:class:`PlanCallback` therefore makes HF's epochs the plan's: at each epoch's start it sets the
plan epoch's accumulation steps, and after the epoch's last update it ends HF's epoch
(``should_epoch_stop``: the rest of the pass, at most the plan's ragged tail, is dropped as the
plan drops it). HF must run the plan's epochs and may not run out of micro-batches within one:
the callback checks both when training starts, with the fix in one line.
"""

from __future__ import annotations

import math
from typing import Any

import torch

try:
    from transformers import TrainerCallback
except ImportError as error:  # an optional dependency
    raise ImportError("scalestudy.law.hf needs transformers and accelerate: pip install \"scalestudy[hf]\"") from error

from scalestudy.law.adamw_torch import plan_optimizer
from scalestudy.law.plan import Plan, PlanError
from scalestudy.law.pytorch import PlanScheduler


def plan_optimizers(model: torch.nn.Module, plan: Plan, optimizer: torch.optim.Optimizer | None = None
                    ) -> tuple[torch.optim.Optimizer, PlanScheduler]:
    """``optimizers=`` for the Trainer: ``optimizer`` (by default the study's: SGD with the plan's momentum,
    or AdamW with its β1, β2 and λ for a plan with ``adamw``, :func:`~scalestudy.law.adamw_torch.plan_optimizer`)
    and the plan's scheduler, which sets ε and m (and AdamW's β2 and λ) at every update."""
    if optimizer is None:
        optimizer = plan_optimizer(model, plan)
    return optimizer, plan.lr_scheduler(optimizer)


class PlanCallback(TrainerCallback):
    """The plan's batch size at every update of a Hugging Face Trainer (see the module docstring)."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.steps: tuple[int, ...] = ()  # gradient accumulation steps of each plan epoch
        self._given: int | None = None  # args.gradient_accumulation_steps before training

    def on_train_begin(self, args, state, control, lr_scheduler=None, train_dataloader=None, **kwargs: Any):
        plan = self.plan
        if not (isinstance(lr_scheduler, PlanScheduler) and lr_scheduler.plan == plan):
            raise PlanError(f"the Trainer's lr scheduler is {type(lr_scheduler).__name__}, not the plan's: pass "
                            "optimizers=plan_optimizers(model, plan) to the Trainer")
        self.steps = plan.hf_accumulation_steps(args.per_device_train_batch_size, args.world_size)
        self._given = args.gradient_accumulation_steps
        self._check_loop(state, train_dataloader)
        state.max_steps = plan.total_updates  # HF's count for the epochs it was given may be larger

    def _check_loop(self, state, loader) -> None:
        """HF's loop runs the plan's epochs, each within one of its epochs, updates aligned."""
        plan, epochs, given = self.plan, self.plan.epochs(), self._given
        fix = "use TrainingArguments(**plan.to_hf_training_args(...))"
        if not hasattr(loader.dataset, "__len__"):
            raise PlanError("the training set has no length (an IterableDataset): the plan's epochs are passes "
                            "over N examples; give the Trainer a map-style dataset")
        n = len(loader.dataset)
        if n != plan.dataset_size:
            raise PlanError(f"the training set has {n} examples, the plan's epochs {plan.dataset_size}: "
                            f"make the plan with --dataset-size {n}")
        if state.num_train_epochs < len(epochs):
            raise PlanError(f"the Trainer runs {state.num_train_epochs} epoch(s), the plan {len(epochs)}: {fix}")
        # The Trainer's loop: L micro-batches an epoch, chunked from its first by the accumulation steps g
        # it reads at the epoch's start, into at most ceil(L / given) updates, the last of them L % g.
        length = len(loader)
        most = math.ceil(length / given)
        for epoch, steps in zip(epochs, self.steps):
            if epoch.updates * steps > length or epoch.updates > most or (epoch.updates == most and length % steps):
                raise PlanError(f"HF's epoch of {length} micro-batches holds {most} updates of {given} "
                                f"(gradient_accumulation_steps), the plan's epoch {epoch.epoch} needs "
                                f"{epoch.updates} of {steps}: {fix}")
        # A resumed Trainer skips global_step // most epochs of most updates, each of ``given`` micro-batches.
        aligned = set(self.steps) == {given} and all(e.updates == most for e in epochs[:-1])
        if state.global_step and not aligned:
            raise PlanError(f"the Trainer resumes at update {state.global_step} counting epochs of {most} updates "
                            "of equal batches; the plan's differ: resume it in plain PyTorch (plan.lr_scheduler, "
                            "plan.batch_sampler) or start again")

    def on_epoch_begin(self, args, state, control, **kwargs: Any):
        if state.global_step >= self.plan.total_updates:
            control.should_training_stop = True
            return
        args.gradient_accumulation_steps = self.steps[self.plan.at_step(state.global_step).epoch]

    def on_step_end(self, args, state, control, **kwargs: Any):
        done = state.global_step  # updates taken
        if done >= self.plan.total_updates:
            control.should_training_stop = True
        elif self.plan.at_step(done).epoch != self.plan.at_step(done - 1).epoch:
            control.should_epoch_stop = True  # the plan's epoch ends here: HF's next starts the next one

    def on_train_end(self, args, state, control, **kwargs: Any):
        if self._given is not None:
            args.gradient_accumulation_steps = self._given  # the arguments as given, for another train()


__all__ = ["PlanCallback", "plan_optimizers"]
