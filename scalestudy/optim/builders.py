"""The optimizers' builders and the loop's momentum hook (torch)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

import torch

from scalestudy.optim.options import OPTIMIZERS, optimizer_options
from scalestudy.registry import ContractError, call_user_code


def build_optimizer(name: str, params: Iterable[torch.nn.Parameter], lr: float, momentum: float, options: Any, *,
                    nesterov: bool = False, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Optimizer ``name`` over ``params``; ``nesterov`` and ``weight_decay`` (the grid's) are SGD's alone."""
    opts = optimizer_options(name, options)
    if name == "sgd":
        return sgd(params, lr, momentum, nesterov=nesterov, weight_decay=weight_decay)
    if OPTIMIZERS.is_builtin(name):
        return OPTIMIZERS.get(name)(params, lr, momentum, **opts.model_dump())
    return build_user_optimizer(name, OPTIMIZERS.get(name), params, lr, momentum, opts.model_dump())


def sgd(params: Iterable[torch.nn.Parameter], lr: float, momentum: float, *, nesterov: bool = False,
        weight_decay: float = 0.0) -> torch.optim.SGD:
    # Nesterov needs momentum: at m = 0 (a grid point, or before increase_momentum) it is plain SGD.
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0,
                           weight_decay=weight_decay)


def adamw(params: Iterable[torch.nn.Parameter], lr: float, momentum: float, *, beta2: float = 0.999,
          eps: float = 1e-8, weight_decay: float = 0.01) -> torch.optim.AdamW:
    """AdamW with β1 = ``momentum``: the spec's momentum axis is Adam's first-moment decay."""
    return torch.optim.AdamW(params, lr=lr, betas=(momentum, beta2), eps=eps, weight_decay=weight_decay)


def build_user_optimizer(name: str, builder: Callable[..., Any], params: Iterable[torch.nn.Parameter], lr: float,
                         momentum: float, options: dict[str, Any]) -> torch.optim.Optimizer:
    """``builder(params, lr, momentum, **options)``, checked to be a ``torch.optim.Optimizer``; a torch
    optimizer class itself (``torch.optim:AdamW``) is built by :func:`torch_optimizer`."""
    if inspect.isclass(builder) and issubclass(builder, torch.optim.Optimizer):
        return torch_optimizer(name, builder, params, lr, momentum, options)
    optimizer = call_user_code(builder, f"{name}(params, lr={lr:g}, momentum={momentum:g}, **optimizer_options)",
                               (params, lr, momentum), options)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ContractError("code", f"{name} returned {type(optimizer).__name__}; expected a torch.optim.Optimizer")
    return optimizer


def torch_optimizer(name: str, cls: type[torch.optim.Optimizer], params: Iterable[torch.nn.Parameter], lr: float,
                    momentum: float, options: dict[str, Any]) -> torch.optim.Optimizer:
    """An optimizer class named by path: its third positional argument is not the momentum (AdamW's is
    ``betas``), so the spec's m goes where the class takes it, as for the built-ins: ``momentum=m``
    (SGD-like), else β1 of ``betas=(m, beta2)`` (Adam-like; option ``beta2``, else the class's default);
    the options are the class's other keywords."""
    keywords = inspect.signature(cls.__init__).parameters
    options = dict(options)
    if "betas" in options:
        raise ContractError("options", f"{name}: betas is (the grid's momentum, beta2): give beta2 alone")
    mapped: dict[str, Any] = {}
    if "momentum" in keywords:
        mapped["momentum"] = momentum
    elif "betas" in keywords:
        default = keywords["betas"].default
        beta2 = options.pop("beta2", default[1] if isinstance(default, tuple) else 0.999)
        mapped["betas"] = (momentum, beta2)
    elif momentum != 0:
        raise ContractError("code", f"{name} takes neither momentum nor betas, so the grid's momentum "
                                    f"{momentum:g} means nothing to it: set grid.momentum: [0], or name a "
                                    "build(params, lr, momentum, **options) that says what m is")
    shown = ", ".join(f"{key}={value!r}" for key, value in mapped.items())
    return call_user_code(cls, f"{name}(params, lr={lr:g}{', ' + shown if shown else ''}, **optimizer_options)",
                          (params,), {"lr": lr, **mapped, **options})


def can_set_momentum(optimizer: torch.optim.Optimizer) -> bool:
    """Whether :func:`set_momentum` can change this optimizer's momentum."""
    if callable(getattr(optimizer, "set_momentum", None)):
        return True
    return all("momentum" in group or "betas" in group for group in optimizer.param_groups)


def set_momentum(optimizer: torch.optim.Optimizer, momentum: float) -> None:
    """The optimizer's ``set_momentum(m)`` if it has one, else each param group's ``momentum`` (SGD) or the
    first of its ``betas`` (Adam's β1)."""
    setter = getattr(optimizer, "set_momentum", None)
    if callable(setter):
        setter(momentum)
        return
    for group in optimizer.param_groups:
        if "momentum" in group:
            group["momentum"] = momentum
        elif "betas" in group:
            group["betas"] = (momentum, *tuple(group["betas"])[1:])
        else:
            raise ValueError(f"{type(optimizer).__name__}: no momentum to set (no set_momentum method, and its "
                             "param groups hold neither 'momentum' nor 'betas')")


def probe_user_optimizer(name: str, builder: Callable[..., Any], lr: float, momentum: float,
                         options: dict[str, Any]) -> bool:
    """Build the user's optimizer once over one dummy parameter: its options and return type are checked
    (:class:`ContractError`); returns whether a schedule can change its momentum."""
    parameter = torch.nn.Parameter(torch.zeros(1))
    return can_set_momentum(build_user_optimizer(name, builder, [parameter], lr, momentum, options))
