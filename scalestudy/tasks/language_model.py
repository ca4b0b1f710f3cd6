"""Language modelling: next-token cross-entropy over every position of each sequence.

``outputs``: logits (n, L, V); ``targets``: the next token at each position (n, L). The loss is
the mean over all n·L tokens (every sequence has L, so the mean of a step's micro-batch means is
the mean per token too); perplexity = exp(mean token loss), per split. There is no accuracy. A
batch of B sequences holds B·L tokens, logged per epoch as ``tokens_per_batch`` (B follows the
schedule).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from scalestudy.tasks.info import TASK_INFO
from scalestudy.tasks.base import Task, exp_or_inf


class LanguageModel(Task):
    info = TASK_INFO["language_model"]
    running_slots = 1  # Σ minibatch mean token losses
    eval_slots = 2  # Σ token losses, tokens

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(outputs.flatten(0, -2), targets.flatten())

    def running_metrics(self, sums, forwards, examples) -> dict[str, float]:
        loss = sums[0] / forwards
        return {"loss": loss, "perplexity": exp_or_inf(loss)}

    def eval_sums(self, outputs, targets) -> Tensor:
        total = F.cross_entropy(outputs.float().flatten(0, -2), targets.flatten(), reduction="sum").double()
        return torch.stack([total, torch.tensor(float(targets.numel()), dtype=torch.float64, device=total.device)])

    def eval_metrics(self, sums) -> dict[str, float]:
        loss = sums[0] / sums[1]
        return {"loss": loss, "perplexity": exp_or_inf(loss)}

    def batch_metrics(self, batch_size: int, input_shape: tuple[int, ...]) -> dict[str, float]:
        return {"tokens_per_batch": float(batch_size * input_shape[0])}
