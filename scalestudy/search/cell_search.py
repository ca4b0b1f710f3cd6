"""A Tune ``Searcher`` that runs one ε search per cell, cells concurrently.

:class:`CellSearch` is the dispatcher the adaptive algorithms share (``bracket``,
``optuna``): it owns the cells' order and budgets, routes Tune's ``suggest`` and
``on_trial_complete`` to the right cell's strategy, turns ε into trial configs with
:meth:`Cell.trial <scalestudy.trial.config.Cell.trial>` (never the same ε twice in a cell), and
keeps the law fitted so far, from
which each new cell's search starts.

A strategy is a small object per cell with ``propose(trial_id) -> ε | None`` (None:
nothing to run until a result arrives), ``tell(trial_id, ε, outcome)``, ``finished``,
``optimum() -> ε | None`` (its best ε once it lies between worse ones), and optionally
``report(trial_id, epoch, score)`` for each epoch's objective score. Strategies are pure Python and
need neither Ray nor a trainer, so they are tested as state machines.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ray.tune.search import Searcher

from scalestudy.search.cells import law_group, predict_lr
from scalestudy.spec import Objective
from scalestudy.trial.config import Cell
from scalestudy.trial.record import DIVERGED, ERROR, STOPPED, PlannedWork, trial_status


# An unfinished trial ranks below every finished one: its score is shifted down by far more than an
# objective spreads over one cell's ε (float64 still resolves 1e-7 at this shift).
STOPPED_SHIFT = 1e9


@dataclass(frozen=True)
class Outcome:
    """How a trial ended, from its last Tune result."""

    objective_score: float  # the study's objective, higher is better (Objective.score; −inf: none)
    epochs: int  # epochs it ran
    diverged: bool = False
    stopped: bool = False  # ended early by the scheduler (search.early_stopping), neither finished nor diverged
    error: bool = False

    @classmethod
    def from_result(cls, result: dict[str, Any] | None, plan: PlannedWork, objective: Objective,
                    error: bool = False) -> Outcome:
        """``plan``: the trial's workload (what the status rule reads); ``objective``: the study's."""
        status = trial_status(plan, result, error)
        result = result or {}
        return cls(objective.score(result), int(result.get("epoch") or 0), diverged=status == DIVERGED,
                   stopped=status == STOPPED, error=status == ERROR)

    @property
    def score(self) -> float:
        """Ranks outcomes, higher is better: finished trials by the objective, then stopped ones (below
        every finished trial), then failures (−inf)."""
        if self.error or self.diverged or not math.isfinite(self.objective_score):
            return -math.inf
        return self.objective_score - STOPPED_SHIFT if self.stopped else self.objective_score

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Pickled by a search before objectives: its trials' test accuracy, which was then the objective.
        if "test_acc" in state:
            state = {"objective_score": state.pop("test_acc"), **state}
        self.__dict__.update(state)


class Strategy(Protocol):
    finished: bool

    def propose(self, trial_id: str) -> float | None: ...

    def tell(self, trial_id: str, lr: float, outcome: Outcome) -> None: ...

    def optimum(self) -> float | None: ...


class FixedLR:
    """A cell that is not searched: its one listed ε, once."""

    def __init__(self, lr: float) -> None:
        self.lr = lr
        self.issued = False
        self.finished = False
        self.points: dict[float, float] = {}

    def propose(self, trial_id: str) -> float | None:
        if self.issued:
            return None
        self.issued = True
        return self.lr

    def tell(self, trial_id: str, lr: float, outcome: Outcome) -> None:
        self.points[lr] = outcome.score
        self.finished = True

    def optimum(self) -> float | None:
        return None  # one ε says nothing about the optimum


@dataclass
class CellRun:
    """A cell's bookkeeping inside :class:`CellSearch`."""

    index: int  # position in CellSearch.runs
    cell: Cell
    budget: int
    fixed_lr: float | None  # set for cells that are not searched
    strategy: Any = None  # created when the cell starts
    start_lr: float | None = None
    issued: set[float] = field(default_factory=set)  # ε already run or running
    pending: dict[str, float] = field(default_factory=dict)  # trial id → ε
    results: list[tuple[float, Outcome]] = field(default_factory=list)

    @property
    def started(self) -> bool:
        return self.strategy is not None

    @property
    def done(self) -> bool:
        return self.started and not self.pending and (self.strategy.finished or len(self.issued) >= self.budget)


class CellSearch(Searcher):
    """Tune Searcher: one strategy per cell; cells start in order of batch size (momenta
    interleaved) as the running ones wait for results, so later cells start from the law
    fitted on the earlier ones.

    ``make_strategy(cell, start_lr)`` builds a cell's strategy; ``start_lr`` is the law
    fitted so far on the cell's group (same section and schedule), or
    ``reference(cell)`` while nothing of that group is measured. ``in_flight`` caps the
    trials one cell runs at once (the rest of the concurrency goes to other cells).
    """

    def __init__(self, cells: list[Cell], *, budget: int, make_strategy: Callable[[Cell, float], Any],
                 reference: Callable[[Cell], float], searched: Callable[[Cell], bool], in_flight: int = 2) -> None:
        super().__init__(metric=None, mode=None)
        self.make_strategy = make_strategy
        self.reference = reference
        self.in_flight = in_flight
        self.runs = [CellRun(i, cell, budget if searched(cell) else 1,
                             None if searched(cell) else cell.lr_grid[0]) for i, cell in enumerate(cells)]
        groups = {law_group(cell): i for i, cell in reversed(list(enumerate(cells)))}
        self.order = sorted(range(len(cells)), key=lambda i: (
            groups[law_group(cells[i])], cells[i].batch_size, cells[i].momentum, cells[i].seed, i))
        self.next_start = 0
        self.trials: dict[str, int] = {}  # trial id → index in runs
        self.optima: dict[str, list[tuple[int, float, float]]] = {}  # law group → (B, m, ε*) of done cells

    # --- Tune's Searcher interface --------------------------------------------------------------

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        for run in self._started():
            lr = self._propose(run, trial_id)
            if lr is not None:
                return self._issue(run, trial_id, lr)
        while self.next_start < len(self.order):
            run = self._start(self.runs[self.order[self.next_start]])
            self.next_start += 1
            lr = self._propose(run, trial_id)
            if lr is not None:
                return self._issue(run, trial_id, lr)
        if all(run.done for run in self.runs):
            return Searcher.FINISHED
        return None  # waiting for results

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        index = self.trials.get(trial_id)
        if index is not None and hasattr(self.runs[index].strategy, "report"):
            run = self.runs[index]
            run.strategy.report(trial_id, int(result.get("epoch") or 0), run.cell.objective.score(result))

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        index = self.trials.pop(trial_id, None)
        if index is None:
            return
        run = self.runs[index]
        lr = run.pending.pop(trial_id)
        outcome = Outcome.from_result(result, run.cell.workload, run.cell.objective, error)
        run.results.append((lr, outcome))
        run.strategy.tell(trial_id, lr, outcome)
        if run.done:
            best = run.strategy.optimum()
            if best is not None:
                self.optima.setdefault(law_group(run.cell), []).append(
                    (run.cell.batch_size, run.cell.momentum, best))

    def save(self, checkpoint_path: str) -> None:
        save_state(self, checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        restore_state(self, checkpoint_path)
        for run in self.runs:  # a search saved by an earlier version holds its cells as dicts
            if isinstance(run.cell, dict):
                run.cell = Cell.from_dict(run.cell)
        # Keyed afresh: the law groups' key (cells.law_group) may have changed since the state was saved.
        self.optima = {}
        for run in self.runs:
            best = run.strategy.optimum() if run.done and run.strategy is not None else None
            if best is not None:
                self.optima.setdefault(law_group(run.cell), []).append((run.cell.batch_size, run.cell.momentum, best))

    # --- inside -----------------------------------------------------------------------------------

    def _started(self) -> list[CellRun]:
        return [self.runs[i] for i in self.order[:self.next_start] if not self.runs[i].done]

    def _start(self, run: CellRun) -> CellRun:
        if run.fixed_lr is not None:
            run.strategy = FixedLR(run.fixed_lr)
            return run
        cell = run.cell
        predicted = predict_lr(self.optima.get(law_group(cell), []), cell.batch_size, cell.momentum)
        run.start_lr = predicted if predicted is not None else self.reference(cell)
        run.strategy = self.make_strategy(cell, run.start_lr)
        return run

    def _propose(self, run: CellRun, trial_id: str) -> float | None:
        if len(run.issued) >= run.budget or len(run.pending) >= self.in_flight or run.strategy.finished:
            return None
        lr = run.strategy.propose(trial_id)
        if lr is None:
            return None
        return _unique(lr, run.issued)

    def _issue(self, run: CellRun, trial_id: str, lr: float) -> dict[str, Any]:
        run.issued.add(lr)
        run.pending[trial_id] = lr
        self.trials[trial_id] = run.index
        return {"trial": run.cell.trial(lr).to_dict()}

    def summary(self) -> list[dict[str, Any]]:
        """One line of facts per cell (for logs and tests)."""
        return [{"cell": run.cell.label, "start_lr": run.start_lr, "trials": len(run.results),
                 "optimum": run.strategy.optimum() if run.started else None,
                 "status": getattr(run.strategy, "status", "done" if run.done else "running")}
                for run in self.runs]


def save_state(searcher: Searcher, checkpoint_path: str) -> None:
    """A search's whole state, pickled with Tune's experiment (searches are plain data by design)."""
    with open(checkpoint_path, "wb") as out:
        pickle.dump(searcher.__dict__, out)


def restore_state(searcher: Searcher, checkpoint_path: str) -> None:
    with open(checkpoint_path, "rb") as stream:
        searcher.__dict__.update(pickle.load(stream))


def _unique(lr: float, taken: set[float]) -> float:
    """``lr`` or, if the cell already ran it, the nearest ε it has not (±0.1 % steps): a cell never
    runs one ε twice."""
    lr = float(lr)
    step = 0
    candidate = lr
    while candidate in taken:
        step += 1
        factor = 1.0 + 1e-3 * ((step + 1) // 2)
        candidate = lr * factor if step % 2 else lr / factor
    return candidate
