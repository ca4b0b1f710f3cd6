"""gap_vs_batch_size.png: the generalization gap at ε* against B and against g*, with its
least-squares trend (the fit, :class:`~scalestudy.analysis.fits.generalization_gap.GapFit`, is already
plain data: it is the figure's info)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scalestudy.analysis.figures.style import log2_axis, momentum_colors, plain_log_axis, pyplot, save_png
from scalestudy.analysis.fits.generalization_gap import GapFit


def draw_gap(info: GapFit, path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.2), sharey=True, layout="constrained")
    momenta = sorted({c.momentum for c in info.cells})
    colors = momentum_colors(momenta)
    for ax, attr, slope, xlabel in (
            (axes[0], "batch_size", info.vs_batch, "batch size B (examples per update)"),
            (axes[1], "noise_scale", info.vs_noise, "noise scale g* at ε* (units of ε)")):
        for m in momenta:
            cells = [c for c in info.cells if c.momentum == m]
            ax.plot([getattr(c, attr) for c in cells], [100 * c.gap for c in cells], "o", color=colors[m],
                    label=f"m = {m:g}")
        if slope is not None:
            x = np.array([getattr(c, attr) for c in info.cells], float)
            grid = np.geomspace(x[x > 0].min(), x.max(), 50)
            ax.plot(grid, 100 * (slope.intercept + slope.value * np.log2(grid)), "k-", lw=1, label="least squares")
            ci = f" [{100 * slope.ci95[0]:+.2f}, {100 * slope.ci95[1]:+.2f}]" if slope.ci95 else ""
            ax.set_title(f"{100 * slope.value:+.2f} points per {slope.per}{ci}", fontsize=9)
        if attr == "batch_size":
            log2_axis(ax)
        else:
            plain_log_axis(ax)
        ax.set_xlabel(xlabel)
    axes[0].set_ylabel("generalization gap at ε*: train − test accuracy (points)")
    axes[0].legend(fontsize=8)
    fig.suptitle("Generalization gap at the optimal learning rate", fontsize=10)
    return save_png(fig, path)
