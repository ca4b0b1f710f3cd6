"""The ``branching:`` block: CBS(t) measured during training from checkpoints of one run (issue 23;
Merrill et al. 2025, "Critical Batch Size Revisited", arXiv 2505.23971, §3).

The grid's one cell is the base run (B_0, ε_0, m). It is checkpointed at ``checkpoints`` points; from
each, one short branch per (factor in ``batch_factors``, seed in ``seeds``) trains over the same
window of examples at B = factor·B_0 with ε = ``scaled_lr(ε_0, B_0, B, rule)`` (factor 1: the
control); ``rule: law`` takes ε = ε_0·(B/B_0)^α from a fitted ``law`` file (:func:`law_exponent`). CBS at the checkpoint is the largest B whose objective at the window's end is within
``tolerance`` of the control's.

Points are snapped to epoch boundaries: the loop's state (its per-epoch seeded data order, its
metric history) is complete only between epochs, so a checkpoint at ``x`` examples (or updates)
is the epoch boundary nearest to it, and a window is the whole number of epochs that covers
``window_examples`` (at least one). :func:`checkpoint_epochs` and :func:`window_epochs` are the one
home of that rule.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from scalestudy.law import LawFileError, ScalingLaw
from scalestudy.spec.base import Frozen


class BranchingSpec(Frozen):
    """Branch short runs at larger batch sizes from checkpoints of the base run (see the module docstring)."""

    checkpoints: int | list[int] = Field(default=6, description=(
        "K, the number of checkpoints (spread by `spacing` over the base run, each before its last "
        "window), or an explicit list of points in `unit`s (each snapped to the nearest epoch boundary)."))
    spacing: Literal["geometric", "linear"] = "geometric"  # of K checkpoints, in examples
    unit: Literal["examples", "updates"] = "examples"  # of an explicit checkpoint list
    batch_factors: list[int] = Field(default_factory=lambda: [1, 2, 4, 8, 16, 32], min_length=2)  # B/B₀; 1 first
    window_examples: int = Field(gt=0)  # each branch's window, rounded up to whole epochs
    # null: linear for sgd, sqrt for adamw (law.batch_warmup.scaled_lr); law: ε·(B/B₀)^α, α the law file's
    rule: Literal["linear", "sqrt", "law"] | None = None
    # The law.json (or law.yaml) whose alpha the ``law`` rule scales the lr by: ε_0·(B/B_0)^alpha.
    law: str | None = Field(default=None, validate_default=True)
    tolerance: float = Field(default=0.01, gt=0)  # in the objective's units
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)  # branch seeds (the control per seed too)
    compare: bool = False  # also train the derived batch warmup and a late switch against the constant base
    # What the warmup's B must not exceed (law.batch_warmup.warmup_from_cbs): CBS's lower 95 % bound
    # (conservative) or the estimate itself (as Merrill et al. 2025, §5, derive theirs).
    warmup_basis: Literal["ci_low", "estimate"] = "ci_low"

    @field_validator("law")
    @classmethod
    def _law_with_its_rule(cls, law: str | None, info: ValidationInfo) -> str | None:
        rule = info.data.get("rule")
        if rule == "law" and law is None:
            raise ValueError("rule law needs the fitted law's file: law: path/to/law.json")
        if rule != "law" and law is not None:
            raise ValueError(f"only with rule: law (rule is {rule}); remove law or set rule: law")
        return law

    @field_validator("checkpoints")
    @classmethod
    def _checkpoints(cls, value: int | list[int]) -> int | list[int]:
        if isinstance(value, int):
            if value < 2:
                raise ValueError(f"must be a count ≥ 2 or a list of points, got {value}")
            return value
        if len(value) < 2 or any(v <= 0 for v in value) or sorted(set(value)) != value:
            raise ValueError(f"a list must hold ≥ 2 increasing points > 0, got {value}")
        return value

    @field_validator("batch_factors")
    @classmethod
    def _factors(cls, values: list[int]) -> list[int]:
        if values[0] != 1 or sorted(set(values)) != values:
            raise ValueError(f"must start with 1 (the control) and increase, got {values}")
        return values

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, values: list[int]) -> list[int]:
        if len(set(values)) != len(values):
            raise ValueError(f"must not repeat a seed, got {values}")
        return values

    def rule_for(self, optimizer: str) -> str:
        """The lr rule of a branch: the spec's, else sqrt for Adam-type optimizers, linear otherwise."""
        if self.rule is not None:
            return self.rule
        return "sqrt" if "adam" in optimizer.lower() else "linear"

    def rule_exponent(self) -> float | None:
        """α of the ``law`` rule (read from the law file: :func:`law_exponent`); None for linear and sqrt."""
        return law_exponent(self.law) if self.rule == "law" else None


def law_exponent(path: str) -> float:
    """The exponent α of the law file at ``path``: the ``law`` rule's lr is ε_0·(B/B_0)^α.

    The law's form is ε = k·B^α·(1−m)^β(·N^γ), so ``ScalingLaw.predict(B)/predict(B_0)`` at the base's
    momentum and N is (B/B_0)^α exactly; predict() applies neither the breakdown nor the smooth bend (it
    warns past the breakdown), and neither does this rule: α is the law's small-B slope, and the
    branches test how far past it B can go. Raises ``ValueError`` naming ``branching.law``."""
    try:
        law = ScalingLaw.load(path)
    except (LawFileError, OSError) as error:
        raise ValueError(f"branching.law: {error}; allowed: a law.json or law.yaml written by scalestudy "
                         "analyze") from None
    if law.alpha is None or not math.isfinite(law.alpha):
        reason = law.reasons.get("alpha", "not fitted")
        raise ValueError(f"branching.law: {path} has no exponent alpha ({reason}); allowed: a law with a "
                         "fitted alpha")
    return float(law.alpha)


def window_epochs(branching: BranchingSpec, dataset_size: int) -> int:
    """Whole epochs a branch trains: the fewest that cover ``window_examples`` (at least one)."""
    return max(1, math.ceil(branching.window_examples / dataset_size))


def checkpoint_epochs(branching: BranchingSpec, epochs: int, dataset_size: int, batch_size: int) -> tuple[int, ...]:
    """The base run's epochs (1-based counts of epochs done) after which it is checkpointed.

    K points spread over [1, E − w] epochs (E the base's epochs, w the window's): geometric or
    linear in examples; or the spec's explicit points, each at the nearest epoch boundary. Raises
    ``ValueError`` (naming ``branching.checkpoints``) when they do not fit or two meet at one epoch."""
    last = epochs - window_epochs(branching, dataset_size)
    if isinstance(branching.checkpoints, list):
        per_epoch = (dataset_size // batch_size) * (batch_size if branching.unit == "examples" else 1)
        points = [max(1, round(x / per_epoch)) for x in branching.checkpoints]
        if len(set(points)) != len(points):
            raise ValueError(f"branching.checkpoints: points {branching.checkpoints} ({branching.unit}) meet at "
                             f"epochs {points}: give points at least one epoch ({per_epoch} {branching.unit}) apart")
    else:
        count = branching.checkpoints
        if last < count:
            raise ValueError(f"branching.checkpoints: {count} checkpoints need ≥ {count} epochs before the last "
                             f"window; the base trains {epochs} epochs with windows of "
                             f"{epochs - last}: raise workload.epochs or lower the count")
        if branching.spacing == "geometric":
            raw = [math.exp(math.log(last) * i / (count - 1)) for i in range(count)]
        else:
            raw = [last * (i + 1) / count for i in range(count)]
        points = []
        for value in raw:  # strictly increasing: a point that rounds onto the one before moves on by one
            points.append(max(round(value), points[-1] + 1 if points else 1))
        points = [min(p, last - (count - 1 - i)) for i, p in enumerate(points)]
    if points[-1] > last:
        raise ValueError(f"branching.checkpoints: the last point is at epoch {points[-1]}, past the last one "
                         f"whose window ends within the base's {epochs} epochs ({last})")
    return tuple(points)
