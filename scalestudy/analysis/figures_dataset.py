"""The dataset-size axis as a figure: ε* against N at each (B, m), with the law's N^γ (info object;
drawn by :func:`scalestudy.analysis.plots_diagnostics.draw_lr_vs_dataset_size`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scalestudy.analysis.fits.cell_optimum.frontier import Frontier
from scalestudy.analysis.fits.law import LawFit


@dataclass(frozen=True)
class DatasetSeries:
    batch_size: int
    momentum: float
    dataset_sizes: tuple[int, ...]  # [examples]
    lr_opt: tuple[float, ...]
    low: tuple[float, ...]  # 95 % interval (the estimate itself where a cell has none)
    high: tuple[float, ...]
    law_sizes: tuple[float, ...]  # the law's ε* over N at this (B, m)
    law_lr: tuple[float, ...]


@dataclass(frozen=True)
class LrVsDatasetInfo:
    series: tuple[DatasetSeries, ...]
    title: str


def lr_vs_dataset_size(frontier: Frontier, law: LawFit) -> LrVsDatasetInfo:
    """One series per (B, m) with usable cells at two or more N."""
    series = []
    keys = sorted({(c.batch_size, c.momentum) for c in frontier.usable() if c.dataset_size is not None})
    for b, m in keys:
        cells = sorted((c for c in frontier.usable() if (c.batch_size, c.momentum) == (b, m)),
                       key=lambda c: c.dataset_size)
        if len(cells) < 2:
            continue
        grid = np.geomspace(cells[0].dataset_size, cells[-1].dataset_size, 30)
        law_lr: tuple[float, ...] = ()
        if law.regression is not None and law.gamma is not None and (law.beta is not None or
                                                                      m == law.domain["momentum"][0]):
            law_lr = tuple(float(np.exp(law.regression.predict(
                {"alpha": np.log(b), "beta": np.log1p(-m), "gamma": np.log(n)})[0])) for n in grid)
        series.append(DatasetSeries(
            b, m, tuple(c.dataset_size for c in cells), tuple(c.lr_opt for c in cells),
            tuple(c.ci95[0] if c.ci95 else c.lr_opt for c in cells),
            tuple(c.ci95[1] if c.ci95 else c.lr_opt for c in cells), tuple(grid) if law_lr else (), law_lr))
    title = "optimal learning rate ε* against the dataset size N"
    if law.gamma is not None:
        ci = law.ci95.get("gamma")
        title = (f"ε* ∝ N^γ, γ = {law.gamma:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
                 + "  (−1: a constant noise scale εN/(B(1−m)))")
    return LrVsDatasetInfo(tuple(series), title)
