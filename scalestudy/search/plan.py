"""What a search algorithm hands the Tuner: a param space, a searcher, a scheduler."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class SearchPlan:
    param_space: dict[str, Any]
    search_alg: Any | None  # a ray.tune.search.Searcher, or None for a plain grid
    scheduler: Any | None  # a ray.tune.schedulers.TrialScheduler (ASHA), or None
    num_samples: int
    total_trials: int  # for progress; an upper bound for adaptive searches


def early_stopping_scheduler(spec) -> Any | None:
    """ASHA on test accuracy with rungs in epochs, or None."""
    stopping = spec.search.early_stopping
    if stopping is None:
        return None
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(time_attr="epoch", metric="test_acc", mode="max", max_t=spec.workload.epochs,
                         grace_period=stopping.grace_period, reduction_factor=stopping.reduction_factor)
