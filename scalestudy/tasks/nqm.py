"""The noisy quadratic model's task: the loss is the mean of the ``nqm`` model's per-example losses; no
other metric. ``test_loss`` is L(θ) exactly (the test inputs are x = 0) and the default objective, minimised."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from scalestudy.tasks.base import Task
from scalestudy.tasks.info import TASK_INFO


class NoisyQuadraticTask(Task):
    """``outputs``: per-example losses (n,); ``targets``: unused."""

    info = TASK_INFO["nqm"]

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return outputs.mean()

    def eval_sums(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return torch.stack([outputs.detach().double().sum(),
                            torch.tensor(float(outputs.shape[0]), dtype=torch.float64, device=outputs.device)])

    def eval_metrics(self, sums) -> dict[str, float]:
        return {"loss": sums[0] / sums[1]}

    def divergence_loss(self, num_classes: int) -> float:
        # The loss has no scale a threshold could come from (θ₀ and σ set it): a run diverges when it overflows.
        return math.inf
