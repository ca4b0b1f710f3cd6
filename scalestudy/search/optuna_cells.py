"""``optuna``: one TPE search over ln ε per cell (Ray Tune's ``OptunaSearch``), cells concurrently.

Each cell gets its own :class:`ray.tune.search.optuna.OptunaSearch` over
``lr ~ LogUniform(lr_range)`` with a seeded ``TPESampler``; the shared
:class:`~scalestudy.search.cell_search.CellSearch` dispatcher routes Tune's calls to the
cell's searcher under the cell's own trial ids, spends ``trials_per_cell`` per cell and
never runs one ε twice in a cell.

What each cell's TPE maximises is the study's objective as a score, higher is better
(:meth:`Objective.score <scalestudy.spec.Objective.score>`: a minimised loss is told negated):
the final score of a finished trial; −inf for a diverged one (a failed ε must pull TPE away,
and Optuna drops a NaN value as a failed trial instead; TPE only ranks values); a trial stopped
early (search.early_stopping) is told as *pruned*, and Optuna's TPE ranks pruned trials below complete ones by
the last score reported (the dispatcher forwards every epoch's). The first trial of each cell
is the ε the law fitted so far predicts (the spec's reference ε for the first cells), enqueued
like ``points_to_evaluate``.
"""

from __future__ import annotations

import math
from functools import partial

from scalestudy.search.cell_search import CellSearch, Outcome
from scalestudy.search.cells import (
    cell_seed,
    interior_best,
    is_searched,
    lr_bounds,
    planned_trials,
    reference_lr,
)
from scalestudy.search.plan import SearchPlan, early_stopping_scheduler
from scalestudy.trial.config import Cell

METRIC = "objective"  # what OptunaSearch maximises: the study's objective score (Objective.score)


def startup_trials(budget: int) -> int:
    """Trials TPE samples at random before modelling: the enqueued prediction plus about a
    third of the budget (TPE's default of 10 would leave a small budget entirely random)."""
    return max(2, math.ceil(budget / 3))


class OptunaCell:
    """One cell's TPE search over ln ε, behind Ray Tune's OptunaSearch."""

    def __init__(self, low: float, high: float, start: float | None, seed: int, budget: int) -> None:
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # constant_liar: trials of a cell run two at a time; a running trial counts as a bad
        # one so the second suggestion does not land on the first.
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials(budget), constant_liar=True)
        points = [{"lr": min(max(start, low), high)}] if start is not None else None
        self.search = OptunaSearch(space={"lr": optuna.distributions.FloatDistribution(low, high, log=True)},
                                   metric=METRIC, mode="max", sampler=sampler, points_to_evaluate=points)
        self.points: dict[float, float] = {}
        self.finished = False  # the dispatcher's budget ends the cell

    def propose(self, trial_id: str) -> float | None:
        return float(self.search.suggest(trial_id)["lr"])

    def report(self, trial_id: str, epoch: int, score: float) -> None:
        self.search.on_trial_result(trial_id, {METRIC: score, "training_iteration": epoch})

    def tell(self, trial_id: str, lr: float, outcome: Outcome) -> None:
        self.points[lr] = outcome.score
        if outcome.error:
            self.search.on_trial_complete(trial_id, None, error=True)
        elif outcome.stopped:
            self.search.on_trial_complete(trial_id, None)  # no value, no error: pruned
        else:
            self.search.on_trial_complete(trial_id, {METRIC: outcome.score})  # −inf when it diverged

    def optimum(self) -> float | None:
        return interior_best(self.points)


def _optuna_for(spec, budget: int, cell: Cell, start: float) -> OptunaCell:
    low, high = lr_bounds(spec, cell)
    return OptunaCell(low, high, start, cell_seed(spec.search.seed, cell), budget)


def build_optuna(spec, cells: list[Cell]) -> SearchPlan:
    budget = spec.search.trials_per_cell
    searcher = CellSearch(cells, budget=budget, make_strategy=partial(_optuna_for, spec, budget),
                          reference=partial(reference_lr, spec), searched=partial(is_searched, spec), in_flight=2)
    total = planned_trials(spec, cells)
    return SearchPlan(param_space={}, search_alg=searcher, scheduler=early_stopping_scheduler(spec),
                      num_samples=total, total_trials=total)
