"""What every part of the spec shares: the one-line error and the strict, frozen model base."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict


class SpecError(ValueError):
    """A study spec or an override is invalid; ``str(error)`` is one line."""


class Frozen(BaseModel):
    # strict: no silent "5" → 5 coercion; extra="forbid": a typo is an error, not a default.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def all_positive(values: list[float]) -> list[float]:
    for i, value in enumerate(values):
        if not value > 0 or math.isinf(value):
            raise ValueError(f"[{i}] must be > 0, got {value}")
    return values

