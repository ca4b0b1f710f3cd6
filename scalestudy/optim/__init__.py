"""Optimizer registry: ``sgd``, ``adamw``, and the user's own by import path.

This module stays torch-free (spec validation imports it); the builders live in :mod:`.builders`.

Contract of an optimizer: ``build(params, lr, momentum, **optimizer_options) -> torch.optim.Optimizer``.
The epoch loop then sets the learning rate through ``param_groups[i]["lr"]`` (every epoch, and every
update during a warmup) and, when a schedule changes the momentum, the momentum through
:func:`scalestudy.optim.builders.set_momentum`: the optimizer's own ``set_momentum(m)`` method if it
has one, else ``param_groups[i]["momentum"]`` (SGD-like) or the first of ``betas`` (Adam-like).

* ``sgd``: ``torch.optim.SGD``; its ``nesterov`` and ``weight_decay`` are the grid's settings
  (``grid.nesterov``, ``grid.weight_decay``), as they were before optimizers were pluggable; no options.
* ``adamw``: ``torch.optim.AdamW(lr, betas=(m, beta2), eps, weight_decay)`` (Loshchilov & Hutter 2019):
  the spec's momentum axis is β1; options ``beta2``, ``eps``, ``weight_decay`` (decoupled).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from scalestudy.registry import Registry, UserOptions

__all__ = ["OPTIMIZERS", "OPTIMIZER_OPTIONS", "AdamWOptions", "SGDOptions", "noise_scale_holds", "optimizer_options",
           "probe_optimizer"]

OPTIMIZERS = Registry(
    "optimizer",
    {"sgd": "scalestudy.optim.builders:sgd", "adamw": "scalestudy.optim.builders:adamw"},
    import_paths=True, entry_points="scalestudy.optimizers",
    contract="build(params, lr, momentum, **optimizer_options) -> torch.optim.Optimizer",
)


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class SGDOptions(_Options):
    """None: SGD's nesterov and weight decay are ``grid.nesterov`` and ``grid.weight_decay``."""


class AdamWOptions(_Options):
    """AdamW's settings besides lr and β1 (the grid's ε and m)."""

    beta2: float = Field(0.999, ge=0, lt=1, description="decay of the second-moment average")
    eps: float = Field(1e-8, gt=0, description="added to the square root of the second moment")
    weight_decay: float = Field(0.01, ge=0, description="decoupled weight decay (torch's default)")


OPTIMIZER_OPTIONS: dict[str, type[BaseModel]] = {"sgd": SGDOptions, "adamw": AdamWOptions}


def optimizer_options(name: str, raw: Mapping[str, Any] | BaseModel | None = None) -> BaseModel:
    """Validated, frozen options of optimizer ``name`` (free-form for the user's own); pydantic's
    ``ValidationError`` for an unknown or bad option of a built-in."""
    plain = raw.model_dump() if isinstance(raw, BaseModel) else dict(raw or {})
    if not OPTIMIZERS.is_builtin(OPTIMIZERS.check(name)):
        return raw if isinstance(raw, UserOptions) else UserOptions.model_validate(plain)
    cls = OPTIMIZER_OPTIONS[name]
    return raw if isinstance(raw, cls) else cls.model_validate(plain)


def noise_scale_holds(name: str) -> bool:
    """Whether the SGD noise scale g = ε/(1−m)·(N/B − 1) (:func:`scalestudy.noise.noise_scale`) describes
    this optimizer: it is the temperature of SGD with momentum (Smith & Le 2017, Smith et al. 2018);
    AdamW's update is normalised per coordinate and averages its gradients (β1 does not scale the step
    by 1/(1−m)), so neither g nor its constancy along the law applies there, nor to an unknown optimizer."""
    return name == "sgd"


def probe_optimizer(name: str, options: BaseModel, lr: float, momentum: float) -> bool:
    """Whether a schedule can change optimizer ``name``'s momentum (True for the built-ins); the user's is
    built once (per process and options) over a dummy parameter, which checks its options and return
    type. Raises ``ImportPathError`` or ``ContractError`` (one line) for the user's code."""
    if OPTIMIZERS.is_builtin(OPTIMIZERS.check(name)):
        return True
    return _probe_user_optimizer(OPTIMIZERS.portable(name),
                                 json.dumps(optimizer_options(name, options).model_dump(mode="json"), sort_keys=True),
                                 float(lr), float(momentum))


@functools.lru_cache(maxsize=16)
def _probe_user_optimizer(name: str, options_json: str, lr: float, momentum: float) -> bool:
    from scalestudy.optim.builders import probe_user_optimizer

    return probe_user_optimizer(name, OPTIMIZERS.get(name), lr, momentum, json.loads(options_json))
