"""The study's objective, and the one rule for ranking trials by it.

The searches, the progress display and the summary table rank trials by :meth:`Objective.score`
(higher is better whatever the direction; −inf for a trial that diverged or has no value); early
stopping hands Ray Tune's ASHA the metric, :attr:`Objective.mode` and :meth:`Objective.value`, and
judges curves by :meth:`Objective.score` (``search.early_stopping`` kind cell_bound).
None of them names a metric or a direction itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from scalestudy.spec.base import Frozen


class Objective(Frozen):
    """The metric a study optimises: ε*, the law, the gap and steps-to-target are computed on it, and
    searches, early stopping and the tables rank trials by it."""

    metric: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")  # a metric the task reports, e.g. test_acc
    direction: Literal["max", "min"]

    @property
    def maximise(self) -> bool:
        return self.direction == "max"

    @property
    def sign(self) -> float:
        """+1 or −1: sign × value is higher for better trials."""
        return 1.0 if self.maximise else -1.0

    @property
    def label(self) -> str:
        """For people: "test accuracy", "test loss", "test perplexity", ..."""
        split, _, name = self.metric.partition("_")
        name = {"acc": "accuracy"}.get(name, name)
        return f"{split} {name}" if split in ("train", "test") and name else self.metric

    @property
    def train_metric(self) -> str | None:
        """The training split's counterpart of the metric (the generalization gap's other side)."""
        return self.train_metric_of(self.metric)

    @staticmethod
    def train_metric_of(metric: str) -> str | None:
        """``train_<m>`` for a test metric ``test_<m>`` (train_acc for test_acc); None for any other metric."""
        return "train_" + metric.removeprefix("test_") if metric.startswith("test_") else None

    @property
    def mode(self) -> Literal["max", "min"]:
        """Ray Tune's ``mode`` for :attr:`metric` (its schedulers and searchers take metric and mode)."""
        return self.direction

    def value(self, reported: Mapping[str, Any]) -> float:
        """The metric in a trial's report (or a summary row) as reported: a finite float, NaN when it is
        missing or not finite (a diverged loss is often inf or NaN)."""
        value = reported.get(self.metric)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return math.nan
        return float(value)

    def score(self, reported: Mapping[str, Any]) -> float:
        """Ranks trials, higher is better: the value (negated when minimised); −inf for a trial that
        diverged (divergence is a failed ε, whatever it reported) or has no value."""
        value = self.value(reported)
        if reported.get("diverged") or math.isnan(value):
            return -math.inf
        return value if self.direction == "max" else -value


# What every study ranked by before objectives existed (all were classification): the objective of
# stored trial configs, MLflow runs and pickled searches that name none.
LEGACY_OBJECTIVE = Objective(metric="test_acc", direction="max")
