"""The adaptive search's view of its results: one law group's cells and law, fitted with the analysis'
own estimators, and the trials ranked by their value for α (rules: :mod:`scalestudy.search.adaptive_plan`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from scalestudy.search import adaptive_plan as rules
from scalestudy.search.adaptive_plan import PointSet, Proposal


@dataclass(frozen=True)
class GroupFit:
    cells: dict[tuple[int, float], object]  # (B, m) → CellOptimum of the cells with trials
    law: object | None  # LawFit, None before any cell has trials
    alpha_width: float | None  # width of α's 95 % interval (None: no interval yet)


def group_fit(frame, sets: list[PointSet]) -> GroupFit:
    """Frontier and law of one law group, on its finished trials (the analysis' law trials: constant
    schedule, not stopped early)."""
    from scalestudy.analysis.fits.cell_optimum.frontier import fit_frontier
    from scalestudy.analysis.fits.law import fit_law
    from scalestudy.analysis.fits.study import law_trials

    keys = {(p.batch_size, p.momentum) for p in sets}
    if frame.empty:
        return GroupFit({}, None, None)
    mine = frame[[(b, m) in keys for b, m in zip(frame["batch_size"], frame["momentum"])]]
    mine, _ = law_trials(mine)
    if mine.empty or mine["diverged"].all():
        return GroupFit({}, None, None)
    frontier = fit_frontier(mine)
    law = fit_law(list(frontier.cells))
    interval = law.ci95.get("alpha")
    width = None if interval is None else float(interval[1] - interval[0])
    return GroupFit({(c.batch_size, c.momentum): c for c in frontier.cells}, law, width)


def rank(fit: GroupFit, sets: list[PointSet]) -> list[Proposal]:
    """Every trial worth running next in this group, valued (inf: a cell needs it to be usable)."""
    optima = [(c.batch_size, c.momentum, c.lr_opt) for c in fit.cells.values() if c.usable and c.lr_opt]
    started = [p for p in sets if p.started]
    proposals: list[Proposal] = []
    # Two seeds per ε until the usable cells' seeds give a noise level (the analysis pools it over their
    # best ε): it sets every cell's interval and weight.
    noise_known = any(c.usable and c.log_lr_var is not None for c in fit.cells.values())
    seeds_first = 1 if noise_known or any(len(p.seeds_at(lr)) >= 2 for p in started for lr in p.lrs()) \
        else rules.COARSE_SEEDS_FIRST_CELLS
    gains, M, terms, law_cells = _gains(fit)
    for points in sets:
        cell = fit.cells.get((points.batch_size, points.momentum))
        if not points.started or cell is None:
            if any(status == "pending" for status in points.runs.values()):
                continue
            centre = _predicted(fit.law, points) or points.start_lr
            value = math.inf if len(optima) < 3 or M is None else _new_cell_value(points, fit, M, terms) / 3
            proposals += [Proposal(p.key, p.lr, p.seed, value, p.why)
                          for p in rules.coarse(points, centre, seeds_first)]
            continue
        if cell.status in ("edge_low", "edge_high", "all_diverged", "too_few_points"):
            if any(status == "pending" for status in points.runs.values()):
                continue  # its next step waits for what runs
            side = {"edge_low": "low", "edge_high": "high", "all_diverged": "low"}.get(cell.status)
            if side is None:
                centre = cell.best_lr or points.start_lr
                proposals += rules.coarse(points, centre, 1)
            else:
                step = [] if side in points.exhausted else \
                    rules.outward(points, side, 4.0 if cell.status == "all_diverged" else 2.0)
                proposals += step or ([] if cell.status == "all_diverged" else rules.firm_up(points, side))
            continue
        best = cell.lr_opt or cell.best_lr
        refine = rules.refinement(points, best, cell.ci95)
        index = law_cells.get((points.batch_size, points.momentum))
        if cell.log_lr_var is None and refine and not noise_known:
            proposals += [replace(p, value=math.inf, why="more seeds: the seeds' noise is unknown") for p in refine]
            continue
        if index is None or cell.log_lr_var is None or not refine:
            continue  # usable but outside the law (past a breakdown): nothing it adds to α
        value = rules.trial_value(float(gains[index]), rules.top_trials(points, best, cell.ci95), len(refine))
        proposals += [replace(p, value=value) for p in refine]
    return proposals


def _predicted(law, points: PointSet) -> float | None:
    """ε* the group's law predicts for a cell not started yet: only from a law with an α interval (three
    cells or more); before that the spec's own rule (``start_lr``) centres the cell, not a prior."""
    if law is None or law.k is None or law.alpha is None or law.ci95.get("alpha") is None:
        return None
    if law.beta is not None:
        return float(law.k * points.batch_size ** law.alpha * (1 - points.momentum) ** law.beta)
    if all(c.momentum == points.momentum for c in law.cells):
        return float(law.k * points.batch_size ** law.alpha)
    return None


def _gains(fit: GroupFit):
    """(each law cell's gain, :func:`~scalestudy.search.adaptive_plan.cell_gains`; M; the law's terms;
    (B, m) → row of the law's cells)."""
    law = fit.law
    if law is None or law.alpha is None or not law.cells:
        return None, None, (), {}
    from scalestudy.analysis.fits.breakdown import law_coordinates, law_design, log_dataset_sizes
    from scalestudy.analysis.fits.law import MIN_SCALE

    cells = list(law.cells)
    u, v, y = law_coordinates(cells)
    terms = tuple(name for name in ("alpha", "beta", "gamma") if getattr(law, name) is not None)
    X = law_design(u, v, terms, log_dataset_sizes(cells))
    variances = np.array([c.log_lr_var if c.log_lr_var is not None else np.nan for c in cells], float)
    if not np.isfinite(variances).all():
        return None, None, (), {}
    weights = 1.0 / (variances + (law.scatter or 0.0))
    gains, M = rules.cell_gains(X, y, variances, weights, _slopes(terms), MIN_SCALE)
    return gains, M, terms, {(c.batch_size, c.momentum): i for i, c in enumerate(cells)}


def _slopes(terms: tuple[str, ...]) -> tuple[int, ...]:
    """Columns of the law's design (intercept first) whose intervals the search narrows: α, and β where the
    cells span several momenta (γ, over N, is not the search's to move: it adds no N)."""
    return tuple(1 + i for i, name in enumerate(terms) if name in ("alpha", "beta"))


def _new_cell_value(points: PointSet, fit: GroupFit, M: np.ndarray, terms: tuple[str, ...]) -> float:
    """Drop of the slopes' variances (as shares, :func:`~scalestudy.search.adaptive_plan.new_row_value`) when
    this cell joins the law with a typical variance (the law cells' median)."""
    law = fit.law
    variances = [c.log_lr_var for c in law.cells if c.log_lr_var is not None]
    weight = 1.0 / (float(np.median(variances)) + (law.scatter or 0.0))
    columns = {"alpha": math.log(points.batch_size), "beta": math.log1p(-points.momentum), "gamma": 0.0}
    x = np.array([1.0, *(columns[t] for t in terms)])
    if "gamma" in terms:
        return 0.0  # a new N is not this search's to add
    return rules.new_row_value(M, x, weight, _slopes(terms))
