"""What the ε searches share: a cell's range, reference ε and budget, the law fitted so far.

A *cell* (:class:`scalestudy.trial.config.Cell`) is a trial config but for ε: section, schedule,
m, B, seed, .... Every search proposes ε per cell and builds trial configs with
:meth:`Cell.trial <scalestudy.trial.config.Cell.trial>` only, from the exact ε it chose (the trial
key is made from exact values, so no search rounds ε).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from scalestudy.trial.axes import group_values

if TYPE_CHECKING:
    from scalestudy.trial.config import Cell

# ln ε* = a + α·ln B + β·ln(1−m) is fitted with a pull of this weight (in squared ln ε
# units) towards the linear rule α = β = 1, so that one or two measured cells still give
# a prediction (the rule anchored on them) and many cells outweigh the prior.
LAW_PRIOR = {"alpha": 1.0, "beta": 1.0}
LAW_PRIOR_WEIGHT = 2.0


def law_group(cell: Cell) -> str:
    """Cells that share one law: same section, schedule and optimizer, N in a study over several dataset
    sizes, and the grid's λ and β2 axes (their timescales where the grid holds one) and model EMA when
    it has them (:func:`scalestudy.trial.axes.group_values`); B, m and seed vary within."""
    n = cell.workload.shown_dataset_size
    return json.dumps([cell.section, cell.schedule.model_dump(mode="json"), *([n] if n is not None else []),
                       cell.optimizer, *group_values(cell)], sort_keys=True)


def stable_seed(*parts: Any) -> int:
    """A 32-bit seed from any JSON-able values, the same in every process and Python run."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def cell_seed(search_seed: int, cell: Cell) -> int:
    """The search's random seed for a cell. The training seed is left out on purpose: the
    seeds of one (B, m) cell then get the same ε, which the analysis averages over."""
    return stable_seed(search_seed, cell.section, cell.schedule.model_dump(mode="json"), cell.batch_size,
                       cell.momentum)


def lr_bounds(spec, cell: Cell) -> tuple[float, float]:
    """[low, high] of ε for the cell: ``search.lr_range``, else the cell's lr grid min..max."""
    if spec.search.lr_range is not None:
        low, high = spec.search.lr_range
        return float(low), float(high)
    return float(min(cell.lr_grid)), float(max(cell.lr_grid))


def is_searched(spec, cell: Cell) -> bool:
    """False for a cell whose spec lists one ε and no ``search.lr_range`` (a schedule
    comparison at a fixed ε, say): such a cell runs that ε once, whatever the algorithm."""
    low, high = lr_bounds(spec, cell)
    return high > low


DEFAULT_GRID_FRACTION = 0.25  # the adaptive search's budget when the spec sets none: this share of the full grid


def full_grid_epochs(cells: list[Cell]) -> int:
    """Trial-epochs of the full grid: every listed ε of every cell (each seed is a cell) × its epochs."""
    return sum(len(cell.lr_grid) * cell.workload.epochs for cell in cells)


def budget_epochs(spec, cells: list[Cell]) -> int:
    """The adaptive search's budget in trial-epochs (``search.budget``; default a quarter of the full grid)."""
    budget = spec.search.budget
    if budget is not None and budget.trial_epochs is not None:
        return int(budget.trial_epochs)
    fraction = budget.grid_fraction if budget is not None else DEFAULT_GRID_FRACTION
    return max(1, int(round(fraction * full_grid_epochs(cells))))


def cell_budget(spec, cell: Cell, cells: list[Cell] | None = None) -> int:
    """Trials the search runs in the cell: every listed ε for the grid, else ``search.trials_per_cell``
    (at most, for bracket), or one for a cell that is not searched. The adaptive search spends one
    budget over all cells (``cells``: the study's): its share per searched cell, at most."""
    if spec.search.algorithm == "grid":
        return len(cell.lr_grid)
    if not is_searched(spec, cell):
        return 1
    if spec.search.algorithm == "adaptive":
        cells = cells or [cell]
        searched = [c for c in cells if is_searched(spec, c)]
        trials = budget_epochs(spec, cells) / max(1, min(c.workload.epochs for c in searched))
        return max(1, math.ceil(trials / len(searched)))
    return spec.search.trials_per_cell


def planned_trials(spec, cells: list[Cell]) -> int:
    """The study's trial count: exact for grid and quasi_random, an upper bound for adaptive searches."""
    if spec.search.algorithm == "adaptive":  # one budget: the searched cells' trials, then one per fixed cell
        searched = [cell for cell in cells if is_searched(spec, cell)]
        epochs = min((cell.workload.epochs for cell in searched), default=1)
        return len(cells) - len(searched) + (budget_epochs(spec, cells) // max(1, epochs) if searched else 0)
    return sum(cell_budget(spec, cell, cells) for cell in cells)


def reference_lr(spec, cell: Cell) -> float:
    """The ε a cell's search starts from when nothing is measured yet: the rule itself (multiplier 1,
    :meth:`~scalestudy.spec.LinearRuleLR.rule_lr`) when the spec's lr is relative to it, else the
    geometric centre of the cell's ε range."""
    from scalestudy.spec import LinearRuleLR

    grid = spec.resolved_sections()[cell.section].grid
    if isinstance(grid.lr, LinearRuleLR):
        # The rule's ε itself, exactly as the grid's multiplier-1 point has it (not the first grid
        # point divided by its multiplier, which floats round: a start an ulp off is another trial).
        return float(grid.lr.rule_lr(cell.batch_size, cell.momentum))
    low, high = lr_bounds(spec, cell)
    return math.sqrt(low * high)


def fit_law_so_far(optima: list[tuple[int, float, float]]) -> tuple[float, float, float] | None:
    """(a, α, β) of ln ε* = a + α·ln B + β·ln(1−m) from measured (B, m, ε*) optima: the
    analysis' law regression (:func:`scalestudy.analysis.fits.law.regress_law`) pulled towards
    α = β = 1 (see ``LAW_PRIOR_WEIGHT``); None without optima."""
    if not optima:
        return None
    # Imported here: the analysis package loads pandas, which `scalestudy validate` (and this
    # module's other users) do not need.
    from scalestudy.analysis.fits.law import LawPrior, regress_law

    b, m, lr = (np.asarray(column, float) for column in zip(*optima))
    prior = LawPrior(alpha=LAW_PRIOR["alpha"], beta=LAW_PRIOR["beta"], weight=LAW_PRIOR_WEIGHT)
    fit = regress_law(np.log(b), np.log1p(-m), np.log(lr), ("alpha", "beta"), prior=prior)
    a, alpha, beta = fit.coef
    return a, alpha, beta


def predict_lr(optima: list[tuple[int, float, float]], batch_size: int, momentum: float) -> float | None:
    """ε* the law fitted so far predicts for (B, m); None when nothing is measured."""
    law = fit_law_so_far(optima)
    if law is None:
        return None
    a, alpha, beta = law
    return float(math.exp(a + alpha * math.log(batch_size) + beta * math.log1p(-momentum)))


def interior_best(points: dict[float, float]) -> float | None:
    """The best-scoring ε if some lower-scoring ε lies on each side of it, else None."""
    if len(points) < 3:
        return None
    lrs = sorted(points)
    scores = [points[lr] for lr in lrs]
    best = int(np.argmax(scores))
    if not math.isfinite(scores[best]):
        return None
    below = any(s < scores[best] for s in scores[:best])
    above = any(s < scores[best] for s in scores[best + 1:])
    return lrs[best] if below and above else None


def search_summary(spec, cells: list[Cell]) -> str:
    """What the spec's search will run, in one phrase (``scalestudy validate``)."""
    search = spec.search
    total = planned_trials(spec, cells)
    if search.algorithm == "grid":
        text = f"grid: {total} trials"
    elif search.algorithm == "adaptive":
        budget, full = budget_epochs(spec, cells), full_grid_epochs(cells)
        text = (f"adaptive: at most {total} trials ({budget} trial-epochs, {budget / full:.2g}× the full grid's "
                f"{full}"
                + (f"; stops earlier once α's 95 % interval is ≤ {search.target.alpha_ci_width:g} wide"
                   if search.target else "")
                + f"), ε on a √2 lattice around each cell's listed ε (up to {search.beyond_grid} factors of 2 past "
                  f"them), up to {search.max_seeds} seeds per ε)")
    else:
        searched = sum(is_searched(spec, cell) for cell in cells)
        how = {"quasi_random": "quasi-random ε", "optuna": "TPE trials", "bracket": "bracketing trials"}
        text = (f"{search.algorithm}: {'at most ' if search.algorithm == 'bracket' else ''}{total} trials "
                f"({search.trials_per_cell} {how.get(search.algorithm, 'trials')} per cell × {searched} cells"
                + (f", {len(cells) - searched} cells at their one listed ε" if searched < len(cells) else "") + ")")
    stopping = search.early_stopping
    if stopping is not None and stopping.kind == "cell_bound":
        text += (f", early stopping per cell by a bound on the final objective (grace period "
                 f"{stopping.grace_period} epochs, margin {stopping.margin:g})")
    elif stopping is not None:
        text += (f", ASHA per cell (grace period {stopping.grace_period} epochs, "
                 f"reduction factor {stopping.reduction_factor:g})")
    return text
