"""lr_opt_vs_dataset_size.png: the dataset-size axis, ε* against N at each (B, m) with the law's N^γ."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scalestudy.analysis.figures.style import batch_colors, pyplot, save_png
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


def draw_lr_vs_dataset_size(info: LrVsDatasetInfo, path: Path) -> Path:
    """ε* against N (log–log) per (B, m): cells with their 95 % intervals, the law's N^γ as lines."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.6, 4.8), layout="constrained")
    colors = batch_colors(sorted({s.batch_size for s in info.series}))
    markers = dict(zip(sorted({s.momentum for s in info.series}), "osD^v<>"))
    for s in info.series:
        color = colors[s.batch_size]
        lr = np.array(s.lr_opt)
        ax.errorbar(s.dataset_sizes, lr, yerr=[lr - np.array(s.low), np.array(s.high) - lr], fmt=markers[s.momentum],
                    color=color, ms=5, capsize=2, label=f"B = {s.batch_size}, m = {s.momentum:g}")
        if s.law_lr:
            ax.plot(s.law_sizes, s.law_lr, "-", color=color, lw=1.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("dataset size N (training examples)")
    ax.set_ylabel("optimal learning rate ε* (per update)")
    ax.set_title(info.title, fontsize=9)
    ax.legend(fontsize=7, loc="best", ncol=2)
    return save_png(fig, path)
