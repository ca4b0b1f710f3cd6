"""``bracket``: per cell, bracket ε* by stepping outward from a predicted ε, then refine.

For one (section, schedule, m, B, seed) cell, :class:`Bracket` is a pure state machine:

1. Start from ε₀ — the law fitted so far on the cells already bracketed (the linear rule
   anchored on them while few are; see :mod:`scalestudy.search.cells`), or the spec's
   reference ε for the first cells — and run ε₀/f, ε₀, ε₀·f at once (f = ``step_factor``).
2. Expand: while no ε below (above) the best is clearly worse by the study's objective — by
   more than ``min_drop`` in the objective's units, so that noise on a flat peak is not taken
   for a fall — run the lowest ε/f (the highest ε·f). A diverged trial counts as falling
   (score −inf); so does one stopped early (search.early_stopping), which ranks below every finished trial
   (scores: :attr:`Outcome.score <scalestudy.search.cell_search.Outcome.score>`).
3. Refine: with lo < best < hi the nearest clearly worse ε on each side, run a
   golden-section step into the wider side of the best (in ln ε; towards the better
   neighbour on a tie) until hi/lo < ``stop_ratio``. When several ε lie within
   ``min_drop`` of the best (a plateau), bisect the wider of the two gaps between the
   plateau's edges and lo, hi instead, until both are narrower than ``stop_ratio``.

``search.trials_per_cell`` caps each cell; ``search.lr_range``, when given, bounds ε
(a cell whose best ε sits on a bound ends as ``edge_low`` / ``edge_high``). Cells run
concurrently under :class:`~scalestudy.search.cell_search.CellSearch`.
"""

from __future__ import annotations

import math
from functools import partial

from scalestudy.search.cell_search import CellSearch, Outcome
from scalestudy.search.cells import is_searched, planned_trials, reference_lr
from scalestudy.search.plan import SearchPlan, early_stopping_scheduler
from scalestudy.trial.config import Cell

# What a neighbour's objective must lose to count as falling (in the objective's units), until the
# spec has search.min_drop: about 1.5 times the seed-to-seed noise of test accuracy on a 1,000-example
# test set (0.013 on mnist1d). With 0, noise on a flat peak makes a false bracket around a random ε
# (scalestudy bench search).
MIN_DROP = 0.02
GOLDEN = (3 - math.sqrt(5)) / 2  # 0.382: where golden-section search probes the wider side


class Bracket:
    """Bracketing of one cell's ε*: ``propose`` the next ε, ``tell`` its outcome.

    ``status``: running | converged (hi/lo < stop_ratio) | edge_low / edge_high (the best ε
    is on a bound of ``bounds``) | all_diverged (every ε diverged, down to the lower bound).
    A cell stopped by its budget keeps the status it had (``running``: not converged).
    """

    def __init__(self, start: float, step_factor: float = 2.0, stop_ratio: float = 1.25,
                 bounds: tuple[float, float] | None = None, min_drop: float = 0.0) -> None:
        if step_factor <= 1 or stop_ratio <= 1:
            raise ValueError("step_factor and stop_ratio must be > 1")
        self.step_factor = step_factor
        self.stop_ratio = stop_ratio
        self.bounds = bounds
        self.min_drop = min_drop
        self.start = self._clamp(start)
        self.points: dict[float, float] = {}  # ε → score (see Outcome.score)
        self.pending: set[float] = set()
        self.status = "running"

    @property
    def finished(self) -> bool:
        return self.status != "running"

    def propose(self, trial_id: str | None = None) -> float | None:
        """The next ε to run, or None while the next step needs results still running."""
        if self.finished:
            return None
        for lr in self._wanted():
            if lr not in self.points and lr not in self.pending:
                self.pending.add(lr)
                return lr
        return None

    def tell(self, trial_id: str | None, lr: float, outcome: Outcome | float) -> None:
        score = outcome.score if isinstance(outcome, Outcome) else float(outcome)
        self.pending.discard(lr)
        self.points[lr] = score
        if not self.pending:
            self._wanted()  # updates the status (converged, edge) as soon as the data say so

    def optimum(self) -> float | None:
        """Once bracketed, the geometric centre of the ε within ``min_drop`` of the best
        (the best ε itself on a sharp peak): what the law fitted so far uses."""
        edges = self._plateau()
        return None if edges is None else math.sqrt(edges[0] * edges[1])

    @property
    def bracket(self) -> tuple[float, float] | None:
        """(lo, hi): the nearest ε on each side of the best that are clearly worse (by more
        than ``min_drop``; any lower score when it is 0), once there are both."""
        found = self._bracket_indices()
        if found is None:
            return None
        lrs = sorted(self.points)
        return lrs[found[0]], lrs[found[1]]

    def _bracket_indices(self) -> tuple[int, int] | None:
        lrs = sorted(self.points)
        scores = [self.points[lr] for lr in lrs]
        if not lrs or max(scores) == -math.inf:
            return None
        best = max(range(len(lrs)), key=lambda i: (scores[i], -abs(math.log(lrs[i] / self.start))))
        below = [i for i in range(best) if scores[i] < scores[best] - self.min_drop]
        above = [i for i in range(best + 1, len(lrs)) if scores[i] < scores[best] - self.min_drop]
        return (below[-1], above[0]) if below and above else None

    def _plateau(self) -> tuple[float, float] | None:
        found = self._bracket_indices()
        if found is None:
            return None
        lrs = sorted(self.points)
        return lrs[found[0] + 1], lrs[found[1] - 1]

    # --- the steps ------------------------------------------------------------------------------

    def _wanted(self) -> list[float]:
        f = self.step_factor
        first = [self.start, self._clamp(self.start / f), self._clamp(self.start * f)]
        if any(lr not in self.points for lr in first):
            return first  # step 1: the three first points run at once
        if self.pending:
            return []  # every later step needs every result so far
        lrs = sorted(self.points)
        scores = [self.points[lr] for lr in lrs]
        best = max(range(len(lrs)), key=lambda i: (scores[i], -abs(math.log(lrs[i] / self.start))))
        if scores[best] == -math.inf:  # everything diverged: go down
            return self._step(lrs[0] / f, "all_diverged")
        below = [i for i in range(best) if scores[i] < scores[best] - self.min_drop]  # clearly worse
        above = [i for i in range(best + 1, len(lrs)) if scores[i] < scores[best] - self.min_drop]
        if not above:
            return self._step(lrs[-1] * f, "edge_high")
        if not below:
            return self._step(lrs[0] / f, "edge_low")
        lo, hi = below[-1], above[0]
        if lrs[hi] / lrs[lo] < self.stop_ratio:
            self.status = "converged"
            return []
        # The ε between lo and hi are within min_drop of the best (the best alone on a sharp
        # peak). Refine where the bracket is widest: a golden-section step into the wider side
        # of the best on a sharp peak; on a plateau, the middle of the wider edge gap.
        left_edge, right_edge = lo + 1, hi - 1
        if left_edge == right_edge == best:
            left, right = math.log(lrs[best] / lrs[lo]), math.log(lrs[hi] / lrs[best])
            go_left = scores[lo] > scores[hi] if math.isclose(left, right, rel_tol=1e-6) else left > right
            target = lrs[best] * math.exp(-GOLDEN * left if go_left else GOLDEN * right)
        else:
            left, right = math.log(lrs[left_edge] / lrs[lo]), math.log(lrs[hi] / lrs[right_edge])
            if max(left, right) < math.log(self.stop_ratio):
                self.status = "converged"  # both edges of the plateau are located
                return []
            target = (math.sqrt(lrs[lo] * lrs[left_edge]) if left >= right
                      else math.sqrt(lrs[right_edge] * lrs[hi]))
        if target in self.points:  # as fine as floats go: nothing left to refine
            self.status = "converged"
            return []
        return [target]

    def _step(self, lr: float, at_bound: str) -> list[float]:
        lr = self._clamp(lr)
        if lr in self.points:  # the bound is reached and already run
            self.status = at_bound
            return []
        return [lr]

    def _clamp(self, lr: float) -> float:
        if self.bounds is not None:
            lr = min(max(lr, self.bounds[0]), self.bounds[1])
        return float(lr)


def _bracket_for(step_factor: float, stop_ratio: float, bounds: tuple[float, float] | None, min_drop: float,
                 cell: Cell, start: float) -> Bracket:
    return Bracket(start, step_factor, stop_ratio, bounds, min_drop)


def build_bracket(spec, cells: list[Cell]) -> SearchPlan:
    search = spec.search
    # Bounds only when the spec sets lr_range: the lr grid (the default range of the other
    # algorithms) is where a grid would look, not a limit on where ε* may be.
    bounds = tuple(search.lr_range) if search.lr_range is not None else None
    searcher = CellSearch(
        cells, budget=search.trials_per_cell,
        make_strategy=partial(_bracket_for, search.step_factor, search.stop_ratio, bounds,
                              getattr(search, "min_drop", MIN_DROP)),
        reference=partial(reference_lr, spec), searched=partial(is_searched, spec),
        in_flight=3)
    total = planned_trials(spec, cells)
    return SearchPlan(param_space={}, search_alg=searcher, scheduler=early_stopping_scheduler(spec),
                      num_samples=total, total_trials=total)
