"""``quasi_random``: scrambled Halton points over ln ε, ``trials_per_cell`` per cell.

The Deep Learning Tuning Playbook's recommendation for exploration: low-discrepancy
points cover a range evenly with any number of trials, unlike a grid (fixed count) or
random search (clumps and gaps). Within a cell, B and m are fixed, so the one
continuous dimension is ln ε over the cell's range (``search.lr_range``, else the
cell's lr grid min..max).

Each (section, schedule, B, m) gets its own scramble, seeded by ``search.seed`` and the
cell, so cells sample different relative ε (better for the law fit than one shared
set) while the training seeds of one (B, m) cell share their ε (the analysis averages
over seeds). Halton rather than Sobol: Sobol's balance needs power-of-two counts.
Trials are ordered round-robin over cells (every cell's first point, then every second
point, ...), so a study cut short still covers every cell.
"""

from __future__ import annotations

import numpy as np

from scalestudy.search.cells import cell_seed, is_searched, lr_bounds
from scalestudy.search.plan import SearchPlan, early_stopping_scheduler
from scalestudy.trial.config import Cell


def quasi_random_lrs(low: float, high: float, n: int, seed: int) -> list[float]:
    """``n`` distinct ε in [low, high]: a scrambled Halton sequence in ln ε."""
    from scipy.stats import qmc

    unit = qmc.Halton(d=1, scramble=True, rng=np.random.default_rng(seed)).random(n)[:, 0]
    lrs = [float(low * (high / low) ** u) for u in unit]
    return list(dict.fromkeys(lrs))  # distinct unless the range is a single ε


def cell_lrs(spec, cell: Cell) -> list[float]:
    """The ε a quasi-random search runs in one cell."""
    if not is_searched(spec, cell):
        return [cell.lr_grid[0]]
    low, high = lr_bounds(spec, cell)
    return quasi_random_lrs(low, high, spec.search.trials_per_cell, cell_seed(spec.search.seed, cell))


def build_quasi_random(spec, cells: list[Cell]) -> SearchPlan:
    from ray import tune

    per_cell = [[cell.trial(lr).to_dict() for lr in cell_lrs(spec, cell)] for cell in cells]
    depth = max(len(trials) for trials in per_cell)
    trials = [trials[k] for k in range(depth) for trials in per_cell if k < len(trials)]
    return SearchPlan(param_space={"trial": tune.grid_search(trials)}, search_alg=None,
                      scheduler=early_stopping_scheduler(spec), num_samples=1, total_trials=len(trials))
