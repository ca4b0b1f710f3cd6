"""``search.early_stopping``: which trials the search may stop before their planned epochs, and by what rule
(the schedulers: :mod:`scalestudy.search.early_stopping`, ASHA, and :mod:`scalestudy.search.cell_bound`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from scalestudy.spec.base import Frozen


class EarlyStopping(Frozen):
    """Early stopping on the study's objective, judged after each epoch within each (section, schedule, B,
    m) cell (docs: Search, "Early stopping"): ``asha`` stops by rank (asynchronous successive
    halving, rungs in epochs; stopped trials are left out of the ε* fit), ``cell_bound`` stops a trial
    whose bound on its final objective, extrapolated from its cell's finished trials, is below the
    cell's best by more than ``margin`` (stopped trials enter the ε* fit censored at that bound)."""

    kind: Literal["asha", "cell_bound"] = "asha"
    grace_period: int = Field(default=1, gt=0)
    reduction_factor: float | None = Field(default=None, gt=1)
    margin: float | None = Field(default=None, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _defaults_of_its_kind(cls, values: Any) -> Any:
        # Each kind's own setting gets its default here, the other kind's stays null: a dumped spec
        # reads back as it was, and a setting of the other kind is an error (below).
        if isinstance(values, dict):
            name, default = {"asha": ("reduction_factor", 3.0), "cell_bound": ("margin", 0.02)}.get(
                values.get("kind", "asha"), (None, None))
            if name is not None and values.get(name) is None:
                values = {**values, name: default}
        return values

    @field_validator("reduction_factor", "margin")
    @classmethod
    def _only_for_its_kind(cls, value: float | None, info) -> float | None:
        own = {"reduction_factor": "asha", "margin": "cell_bound"}[info.field_name]
        kind = info.data.get("kind")
        if value is not None and kind != own:
            raise ValueError(f"only for kind {own} (got kind {kind})")
        return value
