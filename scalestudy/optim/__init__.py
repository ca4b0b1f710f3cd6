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

from pydantic import BaseModel

from scalestudy.optim.options import (
    OPTIMIZER_OPTIONS,
    OPTIMIZERS,
    AdamWOptions,
    SGDOptions,
    noise_scale_holds,
    optimizer_options,
)

__all__ = ["OPTIMIZERS", "OPTIMIZER_OPTIONS", "AdamWOptions", "SGDOptions", "noise_scale_holds", "optimizer_options",
           "probe_optimizer"]


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
