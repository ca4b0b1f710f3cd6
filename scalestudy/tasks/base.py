"""The task interface the epoch loop calls, and the adapter for a user's own task.

The loop's hot path stays on the device: each forward adds to a few running sums in one
tensor (``add_running``), each evaluation batch returns its sums (``eval_sums``), and the
loop reads them once per epoch. Metrics are named per split: a task's ``acc`` is reported as
``train_acc`` and ``test_acc``; ``train_loss`` and ``test_loss`` always.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from scalestudy.tasks.info import TaskInfo


class Task:
    """A task: its loss, its running (train-mode) sums and its evaluation sums.

    ``running_slots`` sums are kept over an epoch's forwards, slot 0 the sum of the forwards'
    mean losses; ``eval_slots`` sums over the evaluation batches."""

    info: TaskInfo
    running_slots = 1
    eval_slots = 2

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """The batch's mean loss: what backward differentiates."""
        raise NotImplementedError

    def add_running(self, views: tuple[Tensor, ...], outputs: Tensor, targets: Tensor, loss: Tensor) -> None:
        """Add one forward's (detached) contribution to the epoch's running sums, in place."""
        views[0].add_(loss)

    def running_metrics(self, sums: list[float], forwards: int, examples: int) -> dict[str, float]:
        """The epoch's train-mode metrics (no split prefix) from its sums over ``forwards`` forwards of
        ``examples`` examples in all (every rank's)."""
        return {"loss": sums[0] / forwards}

    def eval_sums(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """One evaluation batch's sums (float64, ``eval_slots`` long)."""
        raise NotImplementedError

    def eval_metrics(self, sums: list[float]) -> dict[str, float]:
        """Eval-mode metrics (no split prefix) from the sums over every evaluation batch of every rank."""
        raise NotImplementedError

    def report_metrics(self, train: dict[str, float], test: dict[str, float]) -> dict[str, float]:
        """The epoch report's task metrics beyond the losses, named per split."""
        return {f"{split}_{name}": value for split, values in (("train", train), ("test", test))
                for name, value in values.items() if name != "loss"}

    def divergence_loss(self, num_classes: int) -> float:
        """The training loss above which a trial has diverged when the spec sets no ``divergence_loss``:
        ten times a cross-entropy's loss at chance."""
        return 10.0 * math.log(num_classes)

    def batch_metrics(self, batch_size: int, input_shape: tuple[int, ...]) -> dict[str, float]:
        """Per-epoch metrics of the batch itself (a language model's tokens per batch)."""
        return {}


def exp_or_inf(value: float) -> float:
    """exp without OverflowError (a diverged loss has an infinite perplexity; NaN stays NaN)."""
    return math.inf if value > 709 else math.exp(value)


class UserTask(Task):
    """A user's task, named by import path in ``workload.task``. The contract: an object (or a class,
    instantiated with no arguments) with

    * ``loss(outputs, targets) -> Tensor``: the batch's mean loss (a 0-d tensor), what training
      minimises and what ``train_loss``/``test_loss`` report (the test loss is the example-weighted
      mean of the evaluation batches' means);
    * optionally ``names`` (metric names, e.g. ``("mae",)``) and ``metrics(outputs, targets) ->
      {name: (sum, count)}``: per batch, each metric's numerator and denominator (tensors or
      numbers, on the device: no ``.item()``); the epoch's value is Σ sum / Σ count, reported as
      ``train_<name>`` (train mode, over the epoch's batches) and ``test_<name>``;
    * optionally ``directions`` ({name: "max" | "min"}, default max) and ``objective``
      (``("test_mae", "min")``; default ``("test_loss", "min")``).
    """

    def __init__(self, task: Any, info: TaskInfo) -> None:
        self.task, self.info = task, info
        self.names = info.metrics
        self.running_slots = 1 + 2 * len(self.names)
        self.eval_slots = 2 + 2 * len(self.names)

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return self.task.loss(outputs, targets)

    def _sums(self, outputs: Tensor, targets: Tensor) -> list[Any]:
        values = self.task.metrics(outputs, targets)
        return [part for name in self.names for part in values[name]]

    def add_running(self, views, outputs, targets, loss) -> None:
        views[0].add_(loss)
        if self.names:
            for view, part in zip(views[1:], self._sums(outputs, targets)):
                view.add_(part)

    def running_metrics(self, sums, forwards, examples) -> dict[str, float]:
        metrics = {"loss": sums[0] / forwards}
        for index, name in enumerate(self.names):
            metrics[name] = sums[1 + 2 * index] / sums[2 + 2 * index]
        return metrics

    def eval_sums(self, outputs, targets) -> Tensor:
        count = outputs.shape[0]
        parts = [self.loss(outputs, targets).detach().double() * count, count,
                 *(self._sums(outputs, targets) if self.names else ())]
        return torch.stack([torch.as_tensor(p, dtype=torch.float64, device=outputs.device) for p in parts])

    def eval_metrics(self, sums) -> dict[str, float]:
        metrics = {"loss": sums[0] / sums[1]}
        for index, name in enumerate(self.names):
            metrics[name] = sums[2 + 2 * index] / sums[3 + 2 * index]
        return metrics
