"""Classification: cross-entropy over class logits; loss and accuracy per split, and the
generalization gap train_acc − test_acc."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from scalestudy.tasks.info import TASK_INFO
from scalestudy.tasks.base import Task


class Classification(Task):
    """``outputs``: logits (n, C); ``targets``: class indices (n,)."""

    info = TASK_INFO["classification"]
    running_slots = 2  # Σ minibatch mean losses, Σ correct predictions
    eval_slots = 3  # Σ example losses, Σ correct, examples

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(outputs, targets)

    def add_running(self, views, outputs, targets, loss) -> None:
        views[0].add_(loss)
        views[1].add_((outputs.argmax(1) == targets).sum())

    def running_metrics(self, sums, forwards, examples) -> dict[str, float]:
        return {"loss": sums[0] / forwards, "acc": sums[1] / examples}

    def eval_sums(self, outputs, targets) -> Tensor:
        logits = outputs.float()
        return torch.stack([F.cross_entropy(logits, targets, reduction="sum").double(),
                            (logits.argmax(1) == targets).sum().double(),
                            torch.tensor(float(targets.shape[0]), dtype=torch.float64, device=logits.device)])

    def eval_metrics(self, sums) -> dict[str, float]:
        loss, correct, count = sums
        return {"loss": loss / count, "acc": correct / count}

    def report_metrics(self, train, test) -> dict[str, float]:
        return {"train_acc": train["acc"], "test_acc": test["acc"], "gen_gap": train["acc"] - test["acc"]}
