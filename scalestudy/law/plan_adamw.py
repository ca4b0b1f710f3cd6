"""A plan's AdamW hyperparameters (``plan.yaml``'s ``adamw``, absent in plans of SGD laws and in older
plans): β1, β2, λ and a model EMA's momentum at the plan's batch size and ε, with their intervals
and rules (:mod:`scalestudy.law.adamw_rules`), and the timescales that give them at every other
(B, ε) of the schedule: a hybrid plan grows B, and β2, ρ and λ must follow it.

Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from scalestudy.law.adamw_rules import adamw_set, decay_for_half_life, weight_decay_for_tau_epoch
from scalestudy.law.records import Interval
from scalestudy.law.scaling import Prediction, ScalingLaw


@dataclass(frozen=True)
class PlanAdamW:
    """AdamW's hyperparameters at the plan's ``batch_size`` and ``lr``, and how each moves with B."""

    beta1: float
    beta2: float | None = None
    beta2_ci95: Interval | None = None
    weight_decay: float | None = None  # torch's AdamW ``weight_decay`` λ (decoupled: per update, times ε)
    weight_decay_ci95: Interval | None = None
    ema: float | None = None  # a model EMA's momentum ρ per update (None: the law has no rule for one)
    ema_ci95: Interval | None = None
    rules: dict[str, str] = field(default_factory=dict)  # name → the rule it came from
    beta2_half_life: float | None = None  # examples: β2 = 0.5^(B/h₂) at any B
    ema_half_life: float | None = None  # examples: ρ = 0.5^(B/h_ema)
    tau_epoch: float | None = None  # epochs: λ = B/(ε·N·τ) at any (B, ε)
    weight_decay_exponent: float | None = None  # without τ: λ ∝ B^x from the plan's batch size


@dataclass(frozen=True)
class AdamWAt:
    """β1, β2, λ and ρ at one epoch of a plan (None where the plan has no rule)."""

    beta1: float
    beta2: float | None
    weight_decay: float | None
    ema: float | None


def plan_adamw(law: ScalingLaw, at_batch: Prediction, lr: float) -> PlanAdamW | None:
    """The plan's AdamW record at ``at_batch``'s B, for training at ``lr`` (the plan's ε); None for a
    law without ``adamw``."""
    found = adamw_set(law, replace(at_batch, lr=lr))
    if found is None:
        return None
    t = law.adamw
    values = {s.name: s for s in found.settings}

    def value(name: str) -> float | None:
        return values[name].value if name in values else None

    def interval(name: str) -> Interval | None:
        return Interval(*values[name].ci95) if name in values and values[name].ci95 else None

    by_tau = t.tau_epoch is not None and found.dataset_size is not None and "weight_decay" in values
    return PlanAdamW(
        beta1=values["beta1"].value, beta2=value("beta2"), beta2_ci95=interval("beta2"),
        weight_decay=value("weight_decay"), weight_decay_ci95=interval("weight_decay"), ema=value("ema"),
        ema_ci95=interval("ema"), rules={s.name: s.rule for s in found.settings if s.name != "lr"},
        beta2_half_life=t.beta2_half_life.examples if t.beta2_half_life else None,
        ema_half_life=t.ema_half_life.examples if t.ema_half_life else None,
        tau_epoch=t.tau_epoch if by_tau else None,
        weight_decay_exponent=(t.weight_decay_vs_batch.exponent
                               if not by_tau and "weight_decay" in values and t.weight_decay_vs_batch else None))


def adamw_at(adamw: PlanAdamW, planned_batch: int, batch_size: int, lr: float, dataset_size: int) -> AdamWAt:
    """The values at an epoch of batch ``batch_size`` and (after-warmup) ε ``lr``: the half-lives and
    τ held fixed (a warmup's smaller ε would inflate B/(ε·N·τ), so the epoch's ε is used)."""
    beta2 = decay_for_half_life(adamw.beta2_half_life, batch_size) if adamw.beta2_half_life else adamw.beta2
    ema = decay_for_half_life(adamw.ema_half_life, batch_size) if adamw.ema_half_life else adamw.ema
    decay = adamw.weight_decay
    if adamw.tau_epoch is not None:
        decay = weight_decay_for_tau_epoch(adamw.tau_epoch, batch_size, lr, dataset_size)
    elif decay is not None and adamw.weight_decay_exponent is not None:
        decay *= (batch_size / planned_batch) ** adamw.weight_decay_exponent
    return AdamWAt(adamw.beta1, beta2, decay, ema)
