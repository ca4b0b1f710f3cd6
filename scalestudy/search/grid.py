"""The full grid: every listed ε of every cell, as one Tune grid search."""

from __future__ import annotations

from scalestudy.search.plan import SearchPlan, early_stopping_scheduler
from scalestudy.trial.config import Cell


def build_grid(spec, cells: list[Cell]) -> SearchPlan:
    from ray import tune

    trials = [cell.trial(lr).to_dict() for cell in cells for lr in cell.lr_grid]
    return SearchPlan(param_space={"trial": tune.grid_search(trials)}, search_alg=None,
                      scheduler=early_stopping_scheduler(spec), num_samples=1, total_trials=len(trials))
