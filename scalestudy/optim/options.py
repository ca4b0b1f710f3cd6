"""The optimizer registry and the built-ins' typed options (torch-free; see the package's docstring)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from scalestudy.registry import Registry, UserOptions

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

