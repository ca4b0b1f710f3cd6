"""``adaptive``: a law-aware search that spends each trial where it shrinks the law's interval most.

It runs as a Tune ``Searcher`` (:class:`AdaptiveSearch`): ``suggest`` hands out trials while fewer
than the cluster's slots run, results come back in any order, and after each batch of results
(:data:`REFIT_EVERY`) it refits every cell's ε* and the law with the analysis' own estimators and
ranks the next trials by their value for the law's slopes, α and (over several momenta) β
(:mod:`scalestudy.search.adaptive_plan`).
A cell is one (section, schedule, N, B, m) over its seeds: the search chooses ε on a √2 lattice
around the listed ε (:func:`~scalestudy.search.adaptive_plan.lattice`) *and* the seed, from
``grid.seeds`` and then the next integers, up to ``search.max_seeds`` per ε.

It stops when every law group's α interval is as narrow as ``search.target.alpha_ci_width``, when
the next trial would overspend ``search.budget`` (trial-epochs; default a quarter of the full grid's),
or when no trial can still help. Its state is plain data pickled with Tune's experiment, so
``--resume`` continues it; ``--extend`` with a larger budget builds it afresh and :meth:`prime` s it
with the study's finished trials, so no trial runs twice. A trial that fails (after Tune's retries)
is not data and is not proposed again; a diverged one is data.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from ray.tune.search import Searcher

from scalestudy.search import adaptive_plan as plan_rules
from scalestudy.search.adaptive_plan import PointSet, Proposal
from scalestudy.search.cell_search import restore_state, save_state
from scalestudy.search.cells import budget_epochs, is_searched, law_group, planned_trials, reference_lr
from scalestudy.search.plan import SearchPlan, early_stopping_scheduler
from scalestudy.trial.config import Cell
from scalestudy.trial.readback import row_from_result
from scalestudy.trial.record import ERROR

REFIT_EVERY = 4  # results between refits: one fit per batch of results keeps a replay in seconds


class AdaptiveSearch(Searcher):
    """See the module docstring. ``cells``: the spec's cells (one per seed); ``reference(cell)``: ε to
    start from while the law predicts nothing; ``searched(cell)``: False for a cell at one fixed ε."""

    def __init__(self, cells: list[Cell], *, budget: int, target_width: float | None, max_seeds: int,
                 beyond_grid: int, bounds, reference, searched) -> None:
        super().__init__(metric=None, mode=None)
        self.budget = budget
        self.target_width = target_width
        self.templates: dict[tuple, Cell] = {}  # point-set key → a cell of it (seed replaced per trial)
        self.sets: dict[tuple, PointSet] = {}
        self.fixed: list[Cell] = []
        for cell in cells:
            if not searched(cell):
                self.fixed.append(cell)
                continue
            key = (law_group(cell), cell.batch_size, cell.momentum)
            if key not in self.sets:
                seeds = sorted({c.seed for c in cells if (law_group(c), c.batch_size, c.momentum) == key})
                pool = tuple(seeds + [max(seeds) + 1 + i for i in range(max(0, max_seeds - len(seeds)))])[:max_seeds]
                self.templates[key] = cell
                self.sets[key] = PointSet(key, cell.batch_size, cell.momentum,
                                          plan_rules.lattice(cell.lr_grid, beyond_grid, bounds), pool, reference(cell),
                                          tuple(cell.lr_grid))
        self.trials: dict[str, tuple[tuple | None, float, int, int]] = {}  # trial id → (set key, ε, seed, epochs)
        self.resumed: dict[str, tuple[tuple | None, float, int, int]] = {}  # running when the study stopped
        self.rows: list[dict[str, Any]] = []  # finished trials as trial-table rows (what the fits read)
        self.spent = 0  # trial-epochs run by finished trials
        self.queue: list[Proposal] = []
        self.new_results = 0
        self.stopped_because: str | None = None
        self.widths: dict[str, float | None] = {}  # law group → α's 95 % interval width at the last fit
        self.fits = 0
        self.estimates: dict[tuple, float] = {}  # point-set key → ε* at the last fit (see optima)

    # --- Tune's Searcher interface --------------------------------------------------------------

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self.fixed:
            cell = self.fixed.pop(0)
            self.trials[trial_id] = (None, cell.lr_grid[0], cell.seed, cell.workload.epochs)
            return {"trial": cell.trial(cell.lr_grid[0]).to_dict()}
        if self.stopped_because is None and (not self.queue or self.new_results >= REFIT_EVERY):
            self.refit()
        while self.stopped_because is None and self.queue:
            proposal = self.queue.pop(0)
            points = self.sets[proposal.key]
            if (proposal.lr, proposal.seed) in points.runs:
                continue
            cell = replace(self.templates[proposal.key], seed=proposal.seed)
            epochs = cell.workload.epochs
            if self.spent + self._pending_epochs() + epochs > self.budget:
                self.stopped_because = f"budget of {self.budget} trial-epochs spent"
                break
            points.runs[(proposal.lr, proposal.seed)] = "pending"
            self.trials[trial_id] = (proposal.key, proposal.lr, proposal.seed, epochs)
            return {"trial": cell.trial(proposal.lr).to_dict()}
        if not self.trials:
            if self.stopped_because is None:
                self.stopped_because = "no trial left that narrows the law"
            return Searcher.FINISHED
        return None  # waiting for results (a refit may open more)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        entry = self.trials.pop(trial_id, None) or getattr(self, "resumed", {}).pop(trial_id, None)
        if entry is None:
            return
        key, lr, seed, epochs = entry
        result = result or {}
        run = min(int(result.get("epoch") or 0), epochs) if result else 0
        self.spent += run
        if key is None:
            return
        cell = replace(self.templates[key], seed=seed)
        if error:
            self.sets[key].runs[(lr, seed)] = ERROR
        else:
            row = row_from_result(cell.trial(lr), result)
            self.sets[key].runs[(lr, seed)] = row["status"]
            self.rows.append(row)
        self.new_results += 1

    def save(self, checkpoint_path: str) -> None:
        save_state(self, checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        restore_state(self, checkpoint_path)
        # Tune resumes the trials that were running when the study stopped under their own ids: their
        # results still count (epochs spent, rows), and their (ε, seed) is not proposed again. One
        # suggested after Tune's last snapshot is never resumed: it only holds its epochs back from the
        # budget, and does not keep the search from finishing (as an entry of ``trials`` would).
        self.resumed = {**getattr(self, "resumed", {}), **self.trials}
        self.trials.clear()
        self.queue.clear()
        if self.stopped_because and self.stopped_because.startswith("budget"):
            self.stopped_because = None  # a restored search may have a larger budget

    # --- continuing a study (--extend) ----------------------------------------------------------

    def prime(self, finished: dict[str, Any], objective) -> int:
        """Take the study's finished trials (trial key → :class:`~scalestudy.run.study_runs.TrialInStudy`)
        as results of this search: they are never proposed again and count in the budget. Returns how
        many matched a trial of this search."""
        matched = 0
        for key, points in self.sets.items():
            template = self.templates[key]
            for lr in points.lattice:
                for seed in points.seeds:
                    trial = replace(template, seed=seed).trial(lr)
                    state = finished.get(trial.trial_key)
                    if state is None:
                        continue
                    epochs = trial.workload.epochs if state.status == "ok" else max(1, trial.workload.epochs - 1)
                    result = {"epoch": epochs, "diverged": state.status == "diverged",
                              **({objective.metric: state.objective} if state.objective is not None else {})}
                    row = {**row_from_result(trial, result), "status": state.status}
                    points.runs[(lr, seed)] = state.status
                    self.rows.append(row)
                    self.spent += epochs
                    matched += 1
        self.new_results += matched
        return matched

    # --- inside -----------------------------------------------------------------------------------

    def _pending_epochs(self) -> int:
        running = [*self.trials.values(), *getattr(self, "resumed", {}).values()]
        return sum(epochs for *_, epochs in running)

    def refit(self) -> None:
        """Fit every law group's cells and law on the results so far, and rank the next trials."""
        import pandas as pd

        from scalestudy.search.adaptive_fit import group_fit, rank

        self.new_results = 0
        self.fits += 1
        frame = pd.DataFrame(self.rows)
        proposals: list[Proposal] = []
        groups = sorted({key[0] for key in self.sets})
        reached = True
        for group in groups:
            sets = [points for key, points in self.sets.items() if key[0] == group]
            fit = group_fit(frame, sets)
            self.widths[group] = fit.alpha_width
            self.estimates.update({(group, b, m): cell.lr_opt if cell.status == "ok" else cell.best_lr
                                   for (b, m), cell in fit.cells.items() if cell.usable and cell.lr_opt})
            reached = reached and fit.alpha_width is not None and self.target_width is not None \
                and fit.alpha_width <= self.target_width
            proposals += rank(fit, sets)
        if reached and self.target_width is not None:
            self.stopped_because = f"α's interval is {max(self.widths.values()):.3g} wide (target {self.target_width:g})"
            self.queue = []
            return
        needs = [p for p in proposals if math.isinf(p.value)]
        ranked = sorted((p for p in proposals if not math.isinf(p.value)), key=lambda p: -p.value)
        self.queue = [*self._ordered_needs(needs), *ranked][:plan_rules.QUEUE + len(needs)]

    def _ordered_needs(self, needs: list[Proposal]) -> list[Proposal]:
        """Trials a cell needs to be usable at all, cells of extreme B first (they weigh most on α)."""
        if not needs:
            return []
        logs = [math.log(self.sets[p.key].batch_size) for p in needs]
        centre = (max(logs) + min(logs)) / 2
        return sorted(needs, key=lambda p: -abs(math.log(self.sets[p.key].batch_size) - centre))

    def optima(self) -> dict[tuple, float]:
        """Each usable cell's ε* (point-set key: law group, B, m) from a fit on every result so far: an
        interior optimum's vertex; for a cell bounded by divergence its best stable ε (the fit's ε* there
        is extrapolated towards the diverged ε)."""
        if self.new_results and self.rows:
            stopped, queue = self.stopped_because, self.queue
            self.refit()
            self.stopped_because, self.queue = stopped, queue
        return dict(self.estimates)

    def summary(self) -> dict[str, Any]:
        """Facts for logs and tests: what it spent, why it stopped, α's width per law group."""
        return {"spent_trial_epochs": self.spent, "budget_trial_epochs": self.budget, "fits": self.fits,
                "stopped_because": self.stopped_because, "alpha_ci_width": dict(self.widths),
                "trials": len(self.rows)}


def build_adaptive(spec, cells: list[Cell]) -> SearchPlan:
    search = spec.search
    budget = budget_epochs(spec, cells)
    searcher = AdaptiveSearch(
        cells, budget=budget, target_width=search.target.alpha_ci_width if search.target else None,
        max_seeds=search.max_seeds, beyond_grid=search.beyond_grid,
        bounds=tuple(search.lr_range) if search.lr_range is not None else None,
        reference=lambda cell: reference_lr(spec, cell), searched=lambda cell: is_searched(spec, cell))
    # Tune ends the study at num_samples trials: the budget's trial count if every trial stopped after one
    # epoch (diverged early), so that the searcher's own FINISHED ends it; the display shows the planned count.
    return SearchPlan(param_space={}, search_alg=searcher, scheduler=early_stopping_scheduler(spec),
                      num_samples=len(searcher.fixed) + budget, total_trials=planned_trials(spec, cells))


__all__ = ["AdaptiveSearch", "build_adaptive"]
