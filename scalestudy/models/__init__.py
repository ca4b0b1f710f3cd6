"""Model registry: name → builder, typed options per model, and ``build_model``.

Importing this package does not import torch: ``scalestudy validate`` checks model names and
options (``MODELS.check``, ``model_options``) without it. Builders are imported on first use.

Every builder is called as ``builder(input_shape, num_classes, **options)``, where
``input_shape`` excludes the batch dimension: (40,) for mnist1d, (3, 32, 32) for CIFAR.
Ghost batch norm is not a model option: ``build_model(..., ghost_batch_size=G)`` converts the
model's BatchNorm layers (see ``scalestudy.models.ghost_bn``), because G is a property of the
trial (DESIGN decision 4), not of the architecture.

The user's own model (``package.module:attribute``, a name registered with
``scalestudy.register_model`` or an entry point) keeps the same contract with free-form options;
whether it has batch norm is known once it is built (:func:`probe_model`, once in the driver).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from scalestudy.registry import Registry, UnknownNameError, UserOptions

if TYPE_CHECKING:
    import torch

__all__ = [
    "MODELS",
    "MODEL_OPTIONS",
    "CNN1dOptions",
    "MLPOptions",
    "NQMOptions",
    "ResNetOptions",
    "TransformerOptions",
    "UnknownNameError",
    "WideResNetOptions",
    "ModelProbe",
    "build_model",
    "has_batch_norm",
    "model_options",
    "probe_model",
]


class _ModelOptions(BaseModel):
    """Options common to every model; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    norm: Literal["batch", "none"] = "batch"
    """"batch": BatchNorm layers (ghost BN when the trial sets a ghost batch size); "none": no normalisation."""


class MLPOptions(_ModelOptions):
    hidden: tuple[PositiveInt, ...] = (256, 256)
    """Widths of the hidden layers."""


class CNN1dOptions(_ModelOptions):
    channels: PositiveInt = 32
    """Channels of each of the three conv layers."""


class ResNetOptions(_ModelOptions):
    width: PositiveInt = 16
    """Channels of the first stage (16 in He et al.); the stages have width, 2·width, 4·width."""


class TransformerOptions(BaseModel):
    """The small decoder-only transformer (``models/transformer.py``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    norm: Literal["layer"] = "layer"
    """LayerNorm: no batch statistics (ghost batch norm and precise BN do not apply)."""
    d_model: PositiveInt = 128
    n_layers: PositiveInt = 2
    n_heads: PositiveInt = 4
    seq_len: PositiveInt | None = None
    """Positions the model embeds (default: the data's sequence length)."""


class NQMOptions(BaseModel):
    """The noisy quadratic model (``models/nqm.py``): θ and its per-example loss; the data's ``dim`` sets θ's size."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    norm: Literal["none"] = "none"
    """No normalisation layer (ghost batch norm and precise BN do not apply)."""
    exponent: float = Field(1.0, ge=0.0)
    """Spectrum hᵢ = i^(−exponent), i = 1..dim (Zhang et al. 2019 use 1)."""
    theta0_scale: float = 1.0
    """θ₀ = theta0_scale·(1, …, 1), whatever the seed."""
    noise_scale: float = Field(1.0, ge=0.0)
    """σ: a batch of B has gradient noise of covariance σ²H/B."""


class WideResNetOptions(_ModelOptions):
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout probability between the two convs of each block (0.3 in the WRN paper's CIFAR runs)."""


MODELS = Registry("model", {
    "mlp": "scalestudy.models.mlp:MLP",
    "cnn1d": "scalestudy.models.cnn1d:CNN1d",
    "resnet8": "scalestudy.models.resnet_cifar:resnet8",
    "resnet20": "scalestudy.models.resnet_cifar:resnet20",
    "resnet32": "scalestudy.models.resnet_cifar:resnet32",
    "wrn16_4": "scalestudy.models.wrn:wrn16_4",
    "transformer": "scalestudy.models.transformer:Transformer",
    "nqm": "scalestudy.models.nqm:NoisyQuadratic",
}, import_paths=True, entry_points="scalestudy.models",
   contract="build(input_shape, num_classes, **model_options) -> torch.nn.Module")

MODEL_OPTIONS: dict[str, type[BaseModel]] = {
    "mlp": MLPOptions,
    "cnn1d": CNN1dOptions,
    "resnet8": ResNetOptions,
    "resnet20": ResNetOptions,
    "resnet32": ResNetOptions,
    "wrn16_4": WideResNetOptions,
    "transformer": TransformerOptions,
    "nqm": NQMOptions,
}


def model_options(name: str, raw: Mapping[str, Any] | None = None) -> BaseModel:
    """Validate the options of model ``name``.

    Raises ``UnknownNameError`` for an unknown model and ``pydantic.ValidationError`` for an
    unknown option or a bad value (the caller formats it).
    """
    if not MODELS.is_builtin(MODELS.check(name)):
        return raw if isinstance(raw, UserOptions) else UserOptions.model_validate(
            raw.model_dump() if isinstance(raw, BaseModel) else dict(raw or {}))
    return MODEL_OPTIONS[name].model_validate(dict(raw.model_dump() if isinstance(raw, BaseModel) else raw or {}))


@dataclass(frozen=True)
class ModelProbe:
    """What the spec's checks need to know of a user's model, learnt by building it once on CPU."""

    has_batch_norm: bool  # any nn.BatchNorm* layer
    not_ghostable: tuple[str, ...]  # batch-norm layer types ghost BN cannot replace (only BatchNorm1d/2d)


def probe_model(name: str, options: BaseModel | Mapping[str, Any] | None, input_shape: Sequence[int],
                num_classes: int) -> ModelProbe:
    """Build the user's model once (cached per process) to see its batch-norm layers; built-ins from their
    options. Raises ``ImportPathError`` or ``ContractError`` (one line) for the user's code."""
    opts = model_options(name, options)
    if MODELS.is_builtin(name):
        return ModelProbe(opts.norm == "batch", ())  # type: ignore[attr-defined]
    return _probe_user_model(MODELS.portable(name), json.dumps(opts.model_dump(mode="json"), sort_keys=True),
                             tuple(int(d) for d in input_shape), int(num_classes))


@functools.lru_cache(maxsize=16)
def _probe_user_model(name: str, options_json: str, input_shape: tuple[int, ...], num_classes: int) -> ModelProbe:
    from scalestudy.models.user import batch_norm_types, probe_build

    model = probe_build(name, MODELS.get(name), input_shape, num_classes, json.loads(options_json))
    found = batch_norm_types(model)
    return ModelProbe(bool(found), tuple(sorted(kind for kind in found if kind not in ("BatchNorm1d", "BatchNorm2d"))))


def has_batch_norm(name: str, raw: Mapping[str, Any] | BaseModel | None = None,
                   input_shape: Sequence[int] | None = None, num_classes: int | None = None) -> bool:
    """Whether model ``name`` with options ``raw`` has batch-norm layers: ``norm: batch`` for a built-in
    (without torch); the user's model is built once for it (``input_shape`` and ``num_classes`` needed)."""
    if MODELS.is_builtin(MODELS.check(name)):
        return model_options(name, raw).norm == "batch"  # type: ignore[attr-defined]
    if input_shape is None or num_classes is None:
        raise ValueError(f"has_batch_norm: model {name!r} is the user's: its input shape and classes are needed")
    return probe_model(name, raw, input_shape, num_classes).has_batch_norm


def build_model(name: str, *, input_shape: Sequence[int], num_classes: int,
                options: BaseModel | Mapping[str, Any] | None = None,
                ghost_batch_size: int | None = None) -> torch.nn.Module:
    """Build model ``name`` for inputs of ``input_shape`` (no batch dimension).

    ``options`` is a validated options object or a plain mapping (validated here). With
    ``ghost_batch_size`` set, every BatchNorm1d/2d becomes a GhostBatchNorm of that size;
    a model without BatchNorm layers (``norm="none"``) then raises ``ValueError``, since the
    setting would silently do nothing.
    """
    opts = model_options(name, options)
    if MODELS.is_builtin(name):
        model = MODELS.get(name)(tuple(input_shape), num_classes, **dict(opts))
    else:
        from scalestudy.models.user import build_user_model

        model = build_user_model(name, MODELS.get(name), tuple(input_shape), num_classes, opts.model_dump())
    if ghost_batch_size is not None:
        from scalestudy.models.ghost_bn import (
            GhostBatchNorm1d,
            GhostBatchNorm2d,
            convert_to_ghost_bn,
        )

        model = convert_to_ghost_bn(model, ghost_batch_size)
        if not any(isinstance(m, (GhostBatchNorm1d, GhostBatchNorm2d)) for m in model.modules()):
            raise ValueError(f"ghost_batch_size={ghost_batch_size} was given but model {name!r} with "
                             f"options {opts.model_dump()} has no BatchNorm layer to make ghost (nn.BatchNorm1d or 2d)")
    return model
