"""What a search algorithm hands the Tuner: a param space, a searcher, a scheduler."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class SearchPlan:
    param_space: dict[str, Any]
    search_alg: Any | None  # a ray.tune.search.Searcher, or None for a plain grid
    scheduler: Any | None  # a ray.tune.schedulers.TrialScheduler (search.early_stopping), or None
    num_samples: int
    total_trials: int  # for progress; an upper bound for adaptive searches


def early_stopping_scheduler(spec) -> Any | None:
    """The scheduler ``search.early_stopping`` asks for, or None: ASHA on the study's objective with rungs in
    epochs (``asha``, early_stopping.py) or the bound on the final objective (``cell_bound``, cell_bound.py),
    both per cell."""
    stopping = spec.search.early_stopping
    if stopping is None:
        return None
    if stopping.kind == "cell_bound":
        from scalestudy.search.cell_bound import CellBoundStopping

        return CellBoundStopping(objective=spec.objective, grace_period=stopping.grace_period, margin=stopping.margin)
    from scalestudy.search.early_stopping import CellASHA

    epochs = max(section.workload.epochs for section in spec.resolved_sections().values())
    return CellASHA(objective=spec.objective, time_attr="epoch", max_t=epochs, grace_period=stopping.grace_period,
                    reduction_factor=stopping.reduction_factor)
