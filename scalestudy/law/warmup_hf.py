"""A batch warmup in Hugging Face's ``Trainer``, which has no batch-size schedule of its own
(transformers #31222): a fixed micro-batch m per device and gradient accumulation steps that change
at the warmup's steps, with ``pip install "scalestudy[hf]"``.

    warmup = BatchWarmup.load("batch_warmup.json")
    args = TrainingArguments(output_dir="out", **warmup_training_args(warmup, per_device_train_batch_size=8))
    trainer = Trainer(model=model, args=args,
                      train_dataset=WarmupDataset(train, warmup, seed=0),  # the warmup's order of examples
                      optimizers=warmup_optimizers(model, warmup),         # each stage's lr
                      callbacks=[WarmupCallback(warmup)])                   # each stage's B
    trainer.train()

**Why this works** (transformers 5.25, ``Trainer._run_epoch``): the loop reads
``args.gradient_accumulation_steps`` (g) afresh before every update to fetch g micro-batches, and
syncs and steps the optimizer after micro-batch ``step`` when ``(step + 1) % g == 0``, ``step``
counted from its epoch's start; the Trainer hands Accelerate g = 1 and scales the loss over the
micro-batches it fetched. So :class:`WarmupCallback` sets g = B/(m·devices) after the update
before each stage, and the update boundaries stay where the warmup puts them because each stage
starts at a whole multiple of its B (:mod:`.batch_warmup`). The whole run is one HF epoch over
:class:`~scalestudy.law.warmup_pytorch.WarmupDataset` read in order (``train_sampling_strategy=
"sequential"``); on several devices Accelerate deals its micro-batches to the ranks in turn, so
the W·g micro-batches of an update are B consecutive examples of the stream. A Trainer resumed
from a checkpoint would count its place in micro-batches of the first g: the callback refuses it.
"""

from __future__ import annotations

from typing import Any

import torch

try:
    from transformers import TrainerCallback
except ImportError as error:  # an optional dependency
    raise ImportError("scalestudy.law.warmup_hf needs transformers and accelerate: pip install \"scalestudy[hf]\"") \
        from error

from scalestudy.law.batch_warmup import BatchWarmup
from scalestudy.law.records import LawError
from scalestudy.law.warmup_pytorch import WarmupDataset, WarmupLRScheduler


def accumulation_steps(warmup: BatchWarmup, per_device_train_batch_size: int, devices: int = 1) -> tuple[int, ...]:
    """g of each stage: B / (m · devices), which must be whole for every stage."""
    micro = per_device_train_batch_size * devices
    uneven = [s.batch_size for s in warmup.stages if s.batch_size % micro]
    if per_device_train_batch_size < 1 or devices < 1 or uneven:
        fits = [m for m in range(1, warmup.base_batch_size + 1) if all(s.batch_size % (m * devices) == 0
                                                                        for s in warmup.stages)]
        sizes = ", ".join(str(s.batch_size) for s in warmup.stages)
        raise LawError(f"per_device_train_batch_size {per_device_train_batch_size} × {devices} device(s) does not "
                       f"divide every batch size of the warmup ({sizes}); "
                       f"per-device sizes that do: {', '.join(map(str, fits)) or f'none on {devices} devices'}")
    return tuple(s.batch_size // micro for s in warmup.stages)


def warmup_training_args(warmup: BatchWarmup, per_device_train_batch_size: int, devices: int = 1) -> dict[str, Any]:
    """The ``TrainingArguments`` fields the callback needs: m, the first stage's g, the warmup's
    updates, and the stream read in order."""
    steps = accumulation_steps(warmup, per_device_train_batch_size, devices)
    return {"per_device_train_batch_size": per_device_train_batch_size, "gradient_accumulation_steps": steps[0],
            "max_steps": warmup.total_steps, "train_sampling_strategy": "sequential"}


def warmup_optimizers(model: torch.nn.Module, warmup: BatchWarmup, optimizer: torch.optim.Optimizer | None = None
                      ) -> tuple[torch.optim.Optimizer, WarmupLRScheduler]:
    """``optimizers=`` for the Trainer: ``optimizer`` (by default SGD with the warmup's momentum, for
    a study run with SGD; pass your own otherwise) and the scheduler that sets each stage's lr."""
    if optimizer is None:
        if warmup.optimizer != "sgd":
            raise LawError(f"the warmup was measured with {warmup.optimizer}: pass that optimizer, "
                           "warmup_optimizers(model, warmup, optimizer)")
        optimizer = torch.optim.SGD(model.parameters(), lr=warmup.base_lr, momentum=warmup.momentum)
    return optimizer, WarmupLRScheduler(optimizer, warmup)


class WarmupCallback(TrainerCallback):
    """The warmup's batch size at every update of a Hugging Face Trainer (see the module docstring)."""

    def __init__(self, warmup: BatchWarmup):
        self.warmup = warmup
        self.steps: tuple[int, ...] = ()  # g of each stage
        self._given: int | None = None  # args.gradient_accumulation_steps before training

    def on_train_begin(self, args, state, control, lr_scheduler=None, train_dataloader=None, **kwargs: Any):
        warmup = self.warmup
        fields = "use TrainingArguments(**warmup_training_args(warmup, per_device_train_batch_size=...))"
        if not (isinstance(lr_scheduler, WarmupLRScheduler) and lr_scheduler.warmup == warmup):
            raise LawError(f"the Trainer's lr scheduler is {type(lr_scheduler).__name__}, not the warmup's: pass "
                           "optimizers=warmup_optimizers(model, warmup) to the Trainer")
        dataset = getattr(train_dataloader, "dataset", None)
        if not (isinstance(dataset, WarmupDataset) and dataset.warmup == warmup):
            raise LawError("the training set is not the warmup's stream: pass train_dataset=WarmupDataset(train, "
                           "warmup, seed=...) to the Trainer")
        if args.train_sampling_strategy != "sequential":
            raise LawError(f"train_sampling_strategy is {args.train_sampling_strategy!r}: the warmup's stream must be "
                           f"read in order (it is shuffled already): {fields}")
        if args.max_steps != warmup.total_steps:
            raise LawError(f"max_steps is {args.max_steps}, the warmup's updates {warmup.total_steps}: {fields}")
        if state.global_step:
            raise LawError(f"the Trainer resumes at update {state.global_step}, counting micro-batches in updates of "
                           "one size; the warmup's differ: resume in plain PyTorch "
                           "(WarmupBatchSampler(start_step=...)) or start again")
        self.steps = accumulation_steps(warmup, args.per_device_train_batch_size, args.world_size)
        if args.gradient_accumulation_steps > self.steps[0]:  # HF's one epoch must hold every update
            raise LawError(f"gradient_accumulation_steps {args.gradient_accumulation_steps} is more than the first "
                           f"stage's {self.steps[0]}: {fields}")
        self._given = args.gradient_accumulation_steps
        args.gradient_accumulation_steps = self.steps[0]

    def on_step_end(self, args, state, control, **kwargs: Any):
        # The next update's g: read by the Trainer before it fetches that update's micro-batches.
        step = min(state.global_step, self.warmup.total_steps - 1)
        args.gradient_accumulation_steps = self.steps[self.warmup.stages.index(self.warmup.at_step(step))]

    def on_train_end(self, args, state, control, **kwargs: Any):
        if self._given is not None:
            args.gradient_accumulation_steps = self._given  # the arguments as given, for another train()


__all__ = ["WarmupCallback", "accumulation_steps", "warmup_optimizers", "warmup_training_args"]
