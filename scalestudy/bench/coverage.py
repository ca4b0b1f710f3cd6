"""``bench coverage``: do the analysis' 95 % intervals hold 95 %, and how often is a
breakdown declared where there is none? Simulated on planted quickstart-like studies
(:func:`scalestudy.testing.planted.planted_study`), each analysed by the real fits
(:func:`fit_frontier`, :func:`fit_law`), counting how often the reported 95 % intervals hold
the planted value: ε* of each usable cell, and the law's α, β and k; and how often a
breakdown is declared on single-law studies.

Rows: the per-cell ε* interval (all usable cells, and those bounded by divergence), the
law's α, β, k intervals, at 2, 3 and 5 seeds; the breakdown test's outcomes on single-law studies with 5 and 6 batch sizes (one
momentum: the hinged law keeps 1 or 2 residual degrees of freedom; two momenta), and on
studies planted with a breakdown at B = 128. Then the law-to-production rows
(:mod:`scalestudy.bench.coverage_scale`): the critical batch size from steps to target, γ, and
``check-law``'s false failures and power. Then the rows that can fail: misspecified studies
(:mod:`scalestudy.bench.coverage_misspecified`), the smooth bend and the breakdown test under noise that
grows with B (:mod:`scalestudy.bench.coverage_bend`), and subsamples of the real reference studies
(:mod:`scalestudy.bench.coverage_real`); last the AdamW rows (:mod:`scalestudy.bench.coverage_adamw`:
λ*'s and τ*_epoch's exponents, τ*_epoch, the surge test), also a table of their own (``bench coverage_adamw``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scalestudy.analysis.fits.cell_optimum.frontier import BOUNDED, fit_frontier
from scalestudy.analysis.fits.law import LawFit, fit_law
from scalestudy.bench import BenchTable
from scalestudy.bench.coverage_adamw import add_adamw_rows
from scalestudy.bench.coverage_bend import add_bend_rows
from scalestudy.bench.coverage_misspecified import add_misspecified_rows
from scalestudy.bench.coverage_real import add_real_rows
from scalestudy.bench.coverage_scale import add_scale_rows
from scalestudy.testing.planted import QUICKSTART_BATCH_SIZES, PlantedStudy, planted_study

NOMINAL = 0.95
FALSE_ALARM_TARGET = 0.05


def bench_coverage(tiny: bool = False) -> BenchTable:
    studies = 8 if tiny else 200
    table = BenchTable("coverage", ["measure", "design", "n", "rate", "target", "detail"])
    for seeds in (2, 3, 5):
        _coverage_rows(table, seeds, studies)
    for count in (5, 6):
        for momenta in ((0.9,), (0.0, 0.9)):
            _false_alarm_row(table, count, momenta, studies)
    _power_row(table, studies)
    add_scale_rows(table, studies)
    add_bend_rows(table, 2 if tiny else 200, tiny)
    add_misspecified_rows(table, 8 if tiny else 100)
    add_real_rows(table, 4 if tiny else 50)
    if not tiny:  # `bench coverage_adamw --tiny` runs them tiny: once is enough
        add_adamw_rows(table, 100, 60, tiny)
    table.notes += [
        f"{studies} planted studies per design: B = 16, 32, ... (6 batch sizes unless said), m = 0 and 0.9, "
        "the quickstart's linear-rule lr grid, accuracy a Gaussian peak in ln lr with seed sd 0.01, divergence "
        "from 4x the optimum at B = 16 down to 1.25x at large B; the true law drawn per study",
        "coverage of 200 studies is within about ±1.5 points (one sd) of the truth; of cells, about ±0.5",
        "planted rows plant the fits' own model (Gaussian peaks, exact power laws): they cannot fail alone; the "
        "misspecified rows (scalestudy.testing.realistic) and the real rows (subsamples of the shipped reference "
        "studies, scalestudy.calibration) are the ones that can",
    ]
    return table


def _coverage_rows(table: BenchTable, seeds: int, studies: int) -> None:
    result = simulate_coverage(seeds, studies, rng=seeds)
    design = f"planted, {seeds} seeds"
    widths = f"median high/low {np.median(result.cell_widths):.2f}" if result.cell_widths else ""
    share = f"{result.with_interval:.1%} of {result.usable_cells} usable cells have one" if result.usable_cells else ""
    table.add(measure="cell ε* 95 % interval", design=design, n=result.cell_ci.total, rate=result.cell_ci.rate,
              target=NOMINAL, detail=f"{share}; {widths}")
    table.add(measure="  ... cells bounded by divergence", design=design, n=result.bounded_ci.total,
              rate=result.bounded_ci.rate, target=NOMINAL, detail="ε* extrapolated below the first diverged lr")
    for name in ("alpha", "beta", "k"):
        tally = result.law[name]
        table.add(measure=f"law {name} 95 % interval", design=design, n=tally.total, rate=tally.rate,
                  target=f"≥ {NOMINAL}", detail="Knapp–Hartung, scale floored at 0.1 of the cells' set variances")


def _false_alarm_row(table: BenchTable, count: int, momenta: tuple[float, ...], studies: int) -> None:
    result = simulate_coverage(2, studies, rng=100 + count, batch_sizes=QUICKSTART_BATCH_SIZES[:count],
                               momenta=momenta)
    outcomes = result.breakdowns
    design = f"{count} batch sizes, " + ("1 momentum" if len(momenta) == 1 else f"{len(momenta)} momenta")
    table.add(measure="breakdown declared on a single law", design=design, n=studies,
              rate=outcomes["breakdown"] / studies, target=f"≤ {FALSE_ALARM_TARGET}",
              detail=f"inconclusive {outcomes['inconclusive'] / studies:.1%}, none {outcomes['none'] / studies:.1%}")


def _power_row(table: BenchTable, studies: int) -> None:
    result = simulate_coverage(2, studies, rng=7, breakdown=128)
    outcomes = result.breakdowns
    kept = sum(b == 128 for b in result.last_batch_sizes)
    table.add(measure="breakdown declared, planted at B = 128", design="6 batch sizes, 2 momenta", n=studies,
              rate=outcomes["breakdown"] / studies, target="–",
              detail=(f"inconclusive {outcomes['inconclusive'] / studies:.1%}; the law ends at B = 128 in "
                      f"{kept} of {outcomes['breakdown']} declared"))


# ---------------------------------------------------------------------------------------
# The simulation


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
    cell_ci: Tally = field(default_factory=Tally)  # per-cell 95 % intervals, all usable cells
    bounded_ci: Tally = field(default_factory=Tally)  # ... of the cells bounded by divergence
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
