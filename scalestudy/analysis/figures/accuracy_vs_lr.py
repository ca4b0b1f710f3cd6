"""accuracy_vs_lr.png: each cell's objective against ε, one panel per momentum, one curve per batch
size, with the fitted ε* (★) and the ε where every trial diverged (×)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scalestudy.analysis.figures.style import LR_LABEL, batch_colors, pyplot, save_png
from scalestudy.analysis.fits.cell_optimum.frontier import Frontier


@dataclass(frozen=True)
class AccuracyCurve:
    batch_size: int
    lrs: tuple[float, ...]
    mean_acc: tuple[float, ...]  # failures included
    sd_acc: tuple[float, ...]
    diverged_lrs: tuple[float, ...]  # ε where every trial diverged
    lr_opt: float | None
    best_acc: float | None
    status: str


@dataclass(frozen=True)
class AccuracyVsLrInfo:
    panels: tuple[tuple[float, tuple[AccuracyCurve, ...]], ...]  # (momentum, curves by B)
    failure_acc: float
    objective: str = "test accuracy"  # what the curves show (the study's objective, for people)


def accuracy_vs_lr(frontier: Frontier, objective: str = "test accuracy") -> AccuracyVsLrInfo:
    panels: dict[float, list[AccuracyCurve]] = {}
    for cell in frontier.cells:
        diverged = cell.diverged_lrs
        panels.setdefault(cell.momentum, []).append(AccuracyCurve(
            cell.batch_size, cell.lrs, cell.mean_acc, cell.sd_acc, diverged, cell.lr_opt, cell.best_acc,
            cell.status))
    return AccuracyVsLrInfo(tuple((m, tuple(curves)) for m, curves in sorted(panels.items())),
                            frontier.failure_acc, objective)


def draw_accuracy_vs_lr(info: AccuracyVsLrInfo, path: Path) -> Path:
    plt = pyplot()
    n = max(len(info.panels), 1)
    ncols = min(n, 3)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols + 1.2, 3.9 * nrows + 0.4), sharey=True,
                             squeeze=False, layout="constrained")
    colors = batch_colors([c.batch_size for _, curves in info.panels for c in curves])
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, (momentum, curves) in zip(axes.flat, info.panels):
        for curve in curves:
            color = colors[curve.batch_size]
            lrs, mean = np.array(curve.lrs), np.array(curve.mean_acc)
            style = "-" if curve.lr_opt is not None else ":"  # dotted: left out of the law
            ax.plot(lrs, mean, style, marker="o", ms=3, color=color, label=f"B={curve.batch_size}")
            if curve.diverged_lrs:
                ax.plot(curve.diverged_lrs, [info.failure_acc] * len(curve.diverged_lrs), "x", color=color, ms=5)
            if curve.lr_opt is not None:
                ax.plot([curve.lr_opt], [curve.best_acc], marker="*", ms=11, color=color, mec="black", mew=0.6)
        ax.set_xscale("log")
        ax.set_xlabel(LR_LABEL)
        ax.set_title(f"momentum m = {momentum:g}")
    for row in axes:
        row[0].set_ylabel(f"final {info.objective} (mean over seeds)")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8, title="batch size")
    fig.suptitle(f"{info.objective.capitalize()} vs learning rate  (★ fitted ε*, × diverged, dotted: optimum at "
                 "the grid edge)", fontsize=10)
    return save_png(fig, path)
