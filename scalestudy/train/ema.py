"""A model EMA beside the trained weights (``optimizer.ema``; Busbridge et al. 2023, "How to Scale Your EMA").

After every optimizer step, w_ema ← ρ·w_ema + (1 − ρ)·w, starting from the initial weights
(w_ema = w_0), so after t steps w_ema = ρ^t·w_0 + (1 − ρ)·Σ_{s=1..t} ρ^(t−s)·w_s. ρ is the trial's
``ema_momentum`` (given, or ½^(B/h) from a half-life of h examples: their ρ^κ rule).

Batch norm: the running statistics are averaged like the weights (timm's ModelEmaV2 does the same):
the EMA weights are evaluated with an EMA of the statistics the trained weights gathered (precise
BN recomputes the trained model's only). Integer buffers (BN's ``num_batches_tracked``) are copied.
Not ``torch.optim.swa_utils.AveragedModel(..., multi_avg_fn=get_ema_multi_avg_fn(ρ), use_buffers=True)``:
its foreach lerp chooses the floating-point path from the first tensor of a list that also holds
BN's integer counters.

DDP: the EMA follows the loop's own module (never the DDP wrapper); the weights are the same on every
rank after each all-reduced step, so their EMA is too, and each rank's EMA of its own BN statistics
is averaged over the ranks before the EMA model is evaluated, as the loop does for the trained
model's (:meth:`scalestudy.train.distributed.Distributed.average_`).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from scalestudy.models.ghost_bn import running_stat_buffers


class EMAWeights:
    """An EMA copy of ``model`` (eval mode, no gradients), updated by :meth:`update` after each step."""

    def __init__(self, model: torch.nn.Module, momentum: float) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"EMA momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        pairs = list(zip(_tensors(self.module), _tensors(model)))
        floating = [(ema, live) for ema, live in pairs if ema.is_floating_point()]
        self._ema_floats = [ema for ema, _ in floating]
        self._live_floats = [live.detach() for _, live in floating]
        self._copied = [(ema, live) for ema, live in pairs if not ema.is_floating_point()]

    @torch.no_grad()
    def update(self) -> None:
        """One EMA step towards the model's current weights and buffers."""
        if self._ema_floats:
            torch._foreach_lerp_(self._ema_floats, self._live_floats, 1.0 - self.momentum)
        for ema, live in self._copied:
            ema.copy_(live)

    def statistics_to_average(self) -> list[torch.Tensor]:
        """The EMA model's BN running statistics (what DDP ranks average before evaluating it)."""
        return running_stat_buffers(self.module)

    def state_dict(self) -> dict[str, Any]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state)


def _tensors(model: torch.nn.Module) -> list[torch.Tensor]:
    """Parameters then buffers, in registration order (the same in a deep copy)."""
    return [*model.parameters(), *model.buffers()]
