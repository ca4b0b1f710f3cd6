"""The grid's optimizer axes in a cell and its trials: λ and β2, directly or by their timescales, and
the model EMA's momentum.

A cell holds each axis in the form the spec gave it, so cells that share a timescale share a law
group while their λ or β2 follow B (and ε). What the optimizer is built with is resolved here, once:

* ``weight_decay: [...]``: λ itself — SGD's ``TrialConfig.weight_decay``, AdamW's ``options.weight_decay``;
* ``tau_epochs: [...]``: λ = B/(ε·N·τ_epoch) at each trial's initial (B, ε) (:meth:`Cell.trial
  <scalestudy.trial.config.Cell.trial>`), so a cell's ε sweep holds the timescale fixed;
* ``beta2: [...]`` and ``beta2_half_life_examples: [...]``: AdamW's ``options.beta2``, the latter
  ½^(B/h) at the cell's initial B;
* ``optimizer.ema``: ρ, or ½^(B/h) at the trial's initial B.

A schedule that changes B or ε during a trial keeps the λ, β2 and ρ of the initial values. A cell without
these axes is built exactly as before them (its trial keys unchanged).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from scalestudy.optim import timescales
from scalestudy.spec import Grid, ModelEMA


@dataclass(frozen=True)
class AxisPoint:
    """One combination of the grid's λ and β2 axes, in the spec's form (None: not an axis)."""

    weight_decay: float | None = None
    tau_epoch: float | None = None
    beta2: float | None = None
    beta2_half_life_examples: float | None = None


def axis_points(grid: Grid) -> list[AxisPoint]:
    """Every (λ form, β2 form) combination of the grid, in a stable order; one empty point without axes."""
    decays = ([AxisPoint(weight_decay=float(v)) for v in grid.weight_decay] if isinstance(grid.weight_decay, list)
              else [AxisPoint(tau_epoch=float(v)) for v in grid.tau_epochs] if grid.tau_epochs is not None
              else [AxisPoint()])
    betas = ([{"beta2": float(v)} for v in grid.beta2] if grid.beta2 is not None
             else [{"beta2_half_life_examples": float(v)} for v in grid.beta2_half_life_examples]
             if grid.beta2_half_life_examples is not None else [{}])
    return [AxisPoint(**{**decay.__dict__, **beta}) for decay, beta in itertools.product(decays, betas)]


def cell_settings(point: AxisPoint, optimizer: str, options: BaseModel, sgd_weight_decay: float,
                  batch_size: int) -> dict[str, Any]:
    """The cell's fields an axis point sets: ``weight_decay`` (SGD's), ``optimizer_options`` (AdamW's λ and
    β2) and ``axes`` (the point itself)."""
    update: dict[str, float] = {}
    decay = sgd_weight_decay
    if point.weight_decay is not None:
        if optimizer == "sgd":
            decay = point.weight_decay
        else:
            update["weight_decay"] = point.weight_decay
    if point.beta2 is not None:
        update["beta2"] = point.beta2
    if point.beta2_half_life_examples is not None:
        update["beta2"] = float(timescales.decay_for_half_life(point.beta2_half_life_examples, batch_size))
    return {"weight_decay": decay, "optimizer_options": options.model_copy(update=update) if update else options,
            "axes": point}


def trial_settings(cell: Any, lr: float) -> dict[str, Any]:
    """What a cell's trial at ε = ``lr`` sets besides ε: λ from the cell's τ_epoch (nothing without one)."""
    tau = cell.axes.tau_epoch
    if tau is None:
        return {}
    decay = float(timescales.weight_decay_for_tau_epoch(tau, cell.batch_size, lr, cell.workload.dataset_size))
    if cell.optimizer == "sgd":
        return {"weight_decay": decay}
    return {"optimizer_options": cell.optimizer_options.model_copy(update={"weight_decay": decay})}


def ema_momentum(ema: ModelEMA | None, batch_size: int) -> float | None:
    """The model EMA's ρ at the trial's initial B (None without an EMA)."""
    if ema is None:
        return None
    if ema.momentum is not None:
        return float(ema.momentum)
    return float(timescales.decay_for_half_life(ema.half_life_examples, batch_size))


def applied_decay(optimizer: str, weight_decay: float, options: BaseModel) -> float | None:
    """The λ the trial's optimizer applies: SGD's field, else its options' (None: it has none)."""
    if optimizer == "sgd":
        return weight_decay
    value = getattr(options, "weight_decay", None)
    return None if value is None else float(value)


def _set(point: AxisPoint) -> dict[str, float]:
    return {key: value for key, value in point.__dict__.items() if value is not None}


def wire_fields(axes: AxisPoint, ema: ModelEMA | None) -> dict[str, Any]:
    """The axes' keys of a config's wire dict, only when set: configs (and keys) without them stay as they were."""
    return {**({"axes": _set(axes)} if _set(axes) else {}),
            **({"ema": ema.model_dump(mode="json")} if ema is not None else {})}


def from_wire(raw: Any) -> dict[str, Any]:
    """``axes`` and ``ema`` of a wire dict (a config stored before them: none)."""
    return {"axes": AxisPoint(**raw.get("axes", {})),
            "ema": ModelEMA.model_validate(raw["ema"]) if raw.get("ema") else None}


def group_values(cell: Any) -> list[Any]:
    """What cells of one law (or one ASHA bracket) share besides section, schedule and N, in a cell
    with these axes: the axis point (timescales where the grid holds one) and the EMA; [] without."""
    return [wire_fields(cell.axes, cell.ema)] if wire_fields(cell.axes, cell.ema) else []


def name_suffix(axes: AxisPoint, ema: ModelEMA | None) -> str:
    """The axes in a run or cell name for people (empty without): `` wd=0.1 b2=0.99``, ``tau=2ep``, ...."""
    shown = {"weight_decay": "wd={:g}", "tau_epoch": "tau={:g}ep", "beta2": "b2={:g}",
             "beta2_half_life_examples": "b2_half={:g}"}
    parts = [shown[key].format(value) for key, value in _set(axes).items()]
    if ema is not None:
        parts.append(f"ema={ema.momentum:g}" if ema.momentum is not None else f"ema_half={ema.half_life_examples:g}")
    return "".join(" " + part for part in parts)


# Written when the grid has the timescale axes or the spec a model EMA (scalestudy.trial.axes): the
# spec's τ_epoch and β2 half-life (the λ and β2 they give are weight_decay and optimizer_options), the
# EMA's ρ at the trial's initial B and the half-life it was given by.
AXIS_PARAM_KEYS = ("tau_epoch", "beta2_half_life_examples", "ema_momentum", "ema_half_life_examples")


def axis_params(wire: Mapping[str, Any]) -> dict[str, Any]:
    """The params of :data:`AXIS_PARAM_KEYS` a trial has (none for a trial without those axes)."""
    values: dict[str, Any] = dict(wire.get("axes") or {})
    values.pop("weight_decay", None), values.pop("beta2", None)  # logged as weight_decay, optimizer_options
    ema = wire.get("ema")
    if ema:
        half = ema.get("half_life_examples")
        values["ema_momentum"] = ema["momentum"]
        if half is not None:
            values["ema_momentum"] = float(timescales.decay_for_half_life(half, wire["batch_size"]))
            values["ema_half_life_examples"] = half
    return values


def cell_axis_params(params: Mapping[str, str]) -> tuple[str, str, str]:
    """A cell's axis values among its trials' MLflow params (as :func:`scalestudy.trial.record.trial_params`
    writes them), the same for every ε of the cell: its λ (or τ_epoch), β2 (or its half-life) and EMA ρ."""
    decay = params.get("tau_epoch") or params.get("weight_decay", "")
    try:
        beta = json.loads(params.get("optimizer_options") or "{}").get("beta2", "")
    except (ValueError, AttributeError):
        beta = ""
    return decay, params.get("beta2_half_life_examples") or str(beta), params.get("ema_momentum", "")
