"""Coverage measured on real curves: subsample a dense reference table the way users sample it,
analyse each subsample with the real fits, and count how often the reported 95 % intervals hold
the reference values.

A subsample keeps ``seeds`` of the reference's seeds (drawn without replacement), every
``grid_step``-th lr of each cell (×2 steps from a √2 grid, with a random phase: a user's grid is
not centred on the truth), and a contiguous window of ``batch_sizes`` of the reference's batch sizes.
The truths are the reference's: each cell's ε* from all seeds on the fine grid
(:func:`reference_cells`), and α, β of the law fitted on the full table over the same batch sizes.
Seeds of a subsample are seeds of the reference, so the two are not independent: this is the
honest comparison the data allow (the reference uses 8 seeds and twice the lrs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scalestudy.analysis.fits.cell_optimum.frontier import fit_frontier
from scalestudy.analysis.fits.law import fit_law
from scalestudy.calibration.reference import reference_cells


@dataclass(frozen=True)
class SubsampleDesign:
    seeds: int = 2
    grid_step: int = 2  # keep every grid_step-th lr (2: ×2 steps from the reference's √2 grid)
    batch_sizes: int | None = None  # a contiguous window of this many batch sizes (None: all)

    @property
    def label(self) -> str:
        window = f", {self.batch_sizes} batch sizes" if self.batch_sizes else ""
        return f"{self.seeds} seeds, every {self.grid_step} lr{window}"


@dataclass
class SubsampleResult:
    design: SubsampleDesign
    draws: int = 0
    candidates: int = 0  # cells with a reference ε* over all subsamples, usable or not
    cells: int = 0  # usable cells over all subsamples (with a reference ε*)
    with_interval: int = 0
    covered: int = 0
    widths: list[float] = field(default_factory=list)  # high/low of each cell interval
    law_hits: dict[str, int] = field(default_factory=lambda: {"alpha": 0, "beta": 0})
    law_total: dict[str, int] = field(default_factory=lambda: {"alpha": 0, "beta": 0})

    @property
    def cell_rate(self) -> float | None:
        return self.covered / self.with_interval if self.with_interval else None

    @property
    def interval_share(self) -> float | None:
        return self.with_interval / self.cells if self.cells else None

    def law_rate(self, name: str) -> float | None:
        return self.law_hits[name] / self.law_total[name] if self.law_total[name] else None


def subsample(frame: pd.DataFrame, design: SubsampleDesign, rng: np.random.Generator) -> pd.DataFrame:
    """One subsample of a reference table (see the module docstring)."""
    seeds = np.sort(rng.choice(np.unique(frame["seed"]), size=design.seeds, replace=False))
    out = frame[frame["seed"].isin(seeds)]
    batch_sizes = np.unique(out["batch_size"])
    if design.batch_sizes and design.batch_sizes < len(batch_sizes):
        start = rng.integers(0, len(batch_sizes) - design.batch_sizes + 1)
        out = out[out["batch_size"].isin(batch_sizes[start:start + design.batch_sizes])]
    phase = int(rng.integers(0, design.grid_step))
    keep = []
    for _, cell in out.groupby(["batch_size", "momentum"]):
        lrs = np.unique(cell["lr"])
        keep.append(cell[cell["lr"].isin(lrs[phase::design.grid_step])])
    return pd.concat(keep, ignore_index=True)


def subsample_coverage(frame: pd.DataFrame, design: SubsampleDesign, draws: int, *, seed: int = 0) -> SubsampleResult:
    """Coverage of the cell ε* intervals and the law's α, β over ``draws`` subsamples of ``frame``."""
    rng = np.random.default_rng(seed)
    truths = reference_cells(frame)
    laws: dict[tuple[int, ...], object] = {}
    result = SubsampleResult(design)
    for draw in range(draws):
        sample = subsample(frame, design, rng)
        cells = fit_frontier(sample).cells
        result.draws += 1
        for cell in cells:
            truth = truths.get((cell.batch_size, cell.momentum))
            if truth is None:
                continue
            result.candidates += 1
            if not cell.usable:
                continue
            result.cells += 1
            if cell.ci95 is not None:
                result.with_interval += 1
                result.covered += int(cell.ci95[0] <= truth.lr_opt <= cell.ci95[1])
                result.widths.append(cell.ci95[1] / cell.ci95[0])
        batch_sizes = tuple(sorted(np.unique(sample["batch_size"]).tolist()))
        if batch_sizes not in laws:
            laws[batch_sizes] = fit_law(list(fit_frontier(frame[frame["batch_size"].isin(batch_sizes)]).cells))
        _count_law(result, fit_law(list(cells), seed=draw), laws[batch_sizes])
    return result


def _count_law(result: SubsampleResult, law, reference) -> None:
    for name in ("alpha", "beta"):
        truth, interval = getattr(reference, name), law.ci95.get(name)
        if truth is None or interval is None:
            continue
        result.law_total[name] += 1
        result.law_hits[name] += int(interval[0] <= truth <= interval[1])
