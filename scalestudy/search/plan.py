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
    """ASHA on the study's objective with rungs in epochs, kept per cell (see early_stopping.py), or None."""
    stopping = spec.search.early_stopping
    if stopping is None:
        return None
    from scalestudy.search.early_stopping import CellASHA

    epochs = max(section.workload.epochs for section in spec.resolved_sections().values())
    return CellASHA(objective=spec.objective, time_attr="epoch", max_t=epochs, grace_period=stopping.grace_period,
                    reduction_factor=stopping.reduction_factor)
