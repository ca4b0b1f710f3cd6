"""The user's own model: ``build(input_shape, num_classes, **model_options) -> torch.nn.Module``, the
built-ins' own contract, called with the options as keyword arguments and checked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from scalestudy.registry import ContractError, call_user_code


def build_user_model(name: str, builder: Callable[..., Any], input_shape: tuple[int, ...], num_classes: int,
                     options: dict[str, Any]) -> nn.Module:
    """``builder(input_shape, num_classes, **options)``, checked to be a module; :class:`ContractError`
    (``"options"`` for a keyword it does not take, ``"code"`` for anything else)."""
    model = call_user_code(builder, f"{name}(input_shape={input_shape}, num_classes={num_classes}, **model_options)",
                           (input_shape, num_classes), options)
    if not isinstance(model, nn.Module):
        raise ContractError("code", f"{name} returned {type(model).__name__}; expected a torch.nn.Module")
    return model


def batch_norm_types(model: nn.Module) -> set[str]:
    """Names of the batch-norm layer types in ``model`` (what ghost batch norm would replace)."""
    return {type(m).__name__ for m in model.modules() if isinstance(m, _BatchNorm)}


def probe_build(name: str, builder: Callable[..., Any], input_shape: tuple[int, ...], num_classes: int,
                options: dict[str, Any]) -> nn.Module:
    """Build once without touching the caller's random state (validation must not shift a trial's seed)."""
    with torch.random.fork_rng(devices=[]):
        return build_user_model(name, builder, input_shape, num_classes, options)
