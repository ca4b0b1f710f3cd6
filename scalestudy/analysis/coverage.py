"""Simulated coverage of the analysis' intervals on planted studies (``scalestudy bench coverage``).

A planted study is shaped like the quickstart: batch sizes from 16 up by doublings, momenta
0 and 0.9, the spec's linear-rule lr grid (multipliers 0.125–8 and a ×512 probe around
ε = 0.02·(B/64)·(1−m)/0.1), 2–5 seeds. The truth differs from the rule the grid is
centred on, as it does in practice: α ~ U(0.6, 1), β ~ U(0.8, 1.2), and the reference lr
is off from the true ε* at (64, 0.9) by a factor up to 2 either way. Accuracy is a Gaussian
peak in ln ε of width U(0.8, 1.5) e-folds with seed noise sd 0.01 (the quickstart's seed-to-
seed sd was 0.013); trials diverge above 4·ε* at B = 16, closer to ε* at larger B (down to
1.25·ε*, so the largest batch sizes are bounded by divergence, as on real grids).

Each study runs the analysis itself (:func:`fit_frontier`, :func:`fit_law`) and counts how
often the reported 95 % intervals hold the planted value: ε* of each usable cell, and the
law's α, β and k; and how often a breakdown is declared on single-law studies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scalestudy.analysis.frontier import BOUNDED, fit_frontier
from scalestudy.analysis.lawfit import LawFit, fit_law
from scalestudy.analysis.planted import make_planted_table, planted_lr
from scalestudy.spec import LinearRuleLR

QUICKSTART_GRID = LinearRuleLR(reference_batch_size=64, reference_lr=0.02, reference_momentum=0.9,
                               multipliers=[0.125, 0.25, 0.5, 1, 2, 4, 8, 512])
BATCH_SIZES = (16, 32, 64, 128, 256, 512)
NOISE = 0.01


@dataclass(frozen=True)
class PlantedStudy:
    """A simulated study's trial table and the law it was planted with."""

    frame: pd.DataFrame
    alpha: float
    beta: float
    k: float
    breakdown: float | None

    def lr_opt(self, batch_size: int, momentum: float) -> float:
        return float(planted_lr(batch_size, momentum, self.alpha, self.beta, self.k, self.breakdown))


def planted_study(rng: np.random.Generator, seeds: int, *, batch_sizes: Sequence[int] = BATCH_SIZES,
                  momenta: Sequence[float] = (0.0, 0.9), breakdown: float | None = None,
                  noise: float = NOISE) -> PlantedStudy:
    """One quickstart-like study with a randomly drawn true law (see the module docstring)."""
    alpha, beta = rng.uniform(0.6, 1.0), rng.uniform(0.8, 1.2)
    reference = QUICKSTART_GRID.reference_lr * math.exp(rng.uniform(-math.log(2), math.log(2)))
    k = reference / (QUICKSTART_GRID.reference_batch_size ** alpha * (1 - QUICKSTART_GRID.reference_momentum) ** beta)
    smallest = min(batch_sizes)
    diverge = {b: max(1.25, 4.0 * (b / smallest) ** -0.4) for b in batch_sizes}
    frame = make_planted_table(alpha, beta, k, breakdown, noise=noise, seeds=tuple(range(seeds)),
                               batch_sizes=tuple(batch_sizes), momenta=tuple(momenta), lr_grid=QUICKSTART_GRID,
                               diverge_factor=diverge, width=rng.uniform(0.8, 1.5), rng=rng)
    return PlantedStudy(frame, alpha, beta, k, breakdown)


@dataclass
class Tally:
    """How often an interval held the truth."""

    hits: int = 0
    total: int = 0

    def add(self, hit: bool) -> None:
        self.hits += int(hit)
        self.total += 1

    @property
    def rate(self) -> float | None:
        return self.hits / self.total if self.total else None


@dataclass
class CoverageResult:
    """Coverage over ``studies`` simulated studies with ``seeds`` seeds each."""

    seeds: int
    studies: int
    cell_ci: Tally = field(default_factory=Tally)  # per-cell Student-t 95 % intervals, all usable cells
    bounded_ci: Tally = field(default_factory=Tally)  # ... of the cells bounded by divergence
    seed_range: Tally = field(default_factory=Tally)  # per-cell seed ranges (not 95 % intervals)
    usable_cells: int = 0
    cell_widths: list[float] = field(default_factory=list)  # high/low of each 95 % interval
    law: dict[str, Tally] = field(default_factory=lambda: {name: Tally() for name in ("alpha", "beta", "k")})
    breakdowns: dict[str, int] = field(default_factory=lambda: {"breakdown": 0, "none": 0, "inconclusive": 0})
    last_batch_sizes: list[int] = field(default_factory=list)  # largest batch size in the law, per declared breakdown

    @property
    def with_interval(self) -> float | None:
        """Share of usable cells that got a 95 % interval."""
        return self.cell_ci.total / self.usable_cells if self.usable_cells else None


def simulate_coverage(seeds: int, studies: int, *, rng: int = 0, **design) -> CoverageResult:
    """Analyse ``studies`` planted studies with ``seeds`` seeds; ``design``: options of :func:`planted_study`."""
    generator = np.random.default_rng(rng)
    result = CoverageResult(seeds, studies)
    for index in range(studies):
        study = planted_study(generator, seeds, **design)
        frontier = fit_frontier(study.frame)
        law = fit_law(list(frontier.cells), seed=index)
        _count_cells(result, study, frontier.usable())
        _count_law(result, study, law)
    return result


def _count_cells(result: CoverageResult, study: PlantedStudy, cells) -> None:
    for cell in cells:
        result.usable_cells += 1
        truth = study.lr_opt(cell.batch_size, cell.momentum)
        if cell.ci95 is not None:
            low, high = cell.ci95
            result.cell_ci.add(low <= truth <= high)
            result.cell_widths.append(high / low)
            if cell.status == BOUNDED:
                result.bounded_ci.add(low <= truth <= high)
        elif cell.seed_range is not None:
            result.seed_range.add(cell.seed_range[0] <= truth <= cell.seed_range[1])


def _count_law(result: CoverageResult, study: PlantedStudy, law: LawFit) -> None:
    result.breakdowns[law.breakdown.outcome] += 1
    if law.breakdown.last_batch_size is not None:
        result.last_batch_sizes.append(law.breakdown.last_batch_size)
    k = study.k
    if law.beta is None and law.domain.get("momentum"):  # one momentum: k holds its (1 − m)^β
        k *= (1 - law.domain["momentum"][0]) ** study.beta
    for name, truth in (("alpha", study.alpha), ("beta", study.beta), ("k", k)):
        interval = law.ci95.get(name)
        if interval is not None:
            result.law[name].add(interval[0] <= truth <= interval[1])
