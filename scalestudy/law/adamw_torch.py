"""A plan's AdamW set in a PyTorch loop (plans with ``adamw``, :mod:`scalestudy.law.plan_adamw`):
the optimizer built with the plan's β1, β2 and λ, a scheduler that keeps β2 and λ on the plan's B at
every update (a hybrid plan grows B), and a model EMA whose momentum follows B the same way.

    optimizer = plan_optimizer(model, plan)      # AdamW(ε, (β1, β2), λ) of update 0; SGD(m) without adamw
    scheduler = plan.lr_scheduler(optimizer)     # PlanAdamWScheduler: ε, β1, β2, λ of every update
    ema = plan_ema(model, plan)                  # AveragedModel, ρ = 0.5^(B/h_ema) of every update
    for x, y in loader:
        ...; optimizer.step(); scheduler.step(); ema.update_parameters(model)
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel

from scalestudy.law.records import LawError
from scalestudy.law.pytorch import PlanScheduler

# ``plan`` below is a :class:`scalestudy.law.plan.Plan`.


class PlanAdamWScheduler(PlanScheduler):
    """:class:`PlanScheduler` (ε and β1 of every update) that also sets β2 and the weight decay λ of the
    plan's update in every parameter group with ``betas``: both follow the batch size of its epoch."""

    def step(self, epoch: int | None = None) -> None:  # noqa: D102 - PlanScheduler.step, then β2 and λ
        super().step(epoch)
        self._set_adamw()

    def step_to_current(self) -> None:
        super().step_to_current()
        self._set_adamw()

    def _set_adamw(self) -> None:
        at = self.plan.adamw_at(self._plan_step().step)
        for group in self.optimizer.param_groups:
            if "betas" not in group:
                continue
            if at.beta2 is not None:
                group["betas"] = (group["betas"][0], at.beta2)
            if at.weight_decay is not None:
                group["weight_decay"] = at.weight_decay


def plan_optimizer(model: torch.nn.Module, plan: Any) -> torch.optim.Optimizer:
    """AdamW with the plan's ε, β1, β2 and λ of its first update (β2 and λ as torch's defaults where the
    law has no rule for them); for a plan without ``adamw`` (an SGD law), SGD with its momentum."""
    first = plan.at_step(0)
    if plan.adamw is None:
        return torch.optim.SGD(model.parameters(), lr=first.lr, momentum=plan.momentum)
    at = plan.adamw_at(0)
    options = {"betas": (at.beta1, at.beta2 if at.beta2 is not None else 0.999)}
    if at.weight_decay is not None:
        options["weight_decay"] = at.weight_decay
    return torch.optim.AdamW(model.parameters(), lr=first.lr, **options)


def plan_ema(model: torch.nn.Module, plan: Any) -> AveragedModel:
    """An exponential moving average of ``model`` whose momentum is the plan's ρ at each update (ρ^κ when B
    grows by κ; Busbridge et al. 2023); call ``update_parameters(model)`` after every optimizer step.
    Buffers (batch norm's statistics) are averaged too. A plan without an EMA rule: :class:`LawError`
    (the plan's module imports this one, so not its PlanError)."""
    if plan.adamw is None or plan.adamw.ema is None:
        raise LawError("the plan has no model EMA (its law holds no EMA half-life, law.adamw.ema_half_life)")
    last = plan.total_updates - 1

    def average(averaged: torch.Tensor, current: torch.Tensor, updates: torch.Tensor) -> torch.Tensor:
        # ``updates``: the updates averaged before this one (the first copies the model), so this is update
        # ``updates`` of the plan, at its epoch's B.
        rho = plan.adamw_at(min(int(updates), last)).ema
        return rho * averaged + (1.0 - rho) * current

    return AveragedModel(model, avg_fn=average, use_buffers=True)


__all__ = ["PlanAdamWScheduler", "plan_ema", "plan_optimizer"]
