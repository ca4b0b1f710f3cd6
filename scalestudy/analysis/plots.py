"""Draw the figure infos of :mod:`figures` to PNG files (matplotlib, Agg backend): the law's
figures here, the diagnostics' in :mod:`plots_diagnostics`, both with the helpers below.

matplotlib is imported inside the functions, so importing the analysis package stays fast.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scalestudy.analysis.figures import AccuracyVsLrInfo, AccuracyVsNoiseInfo, LrLawInfo
from scalestudy.analysis.fits.generalization_gap import GapFit

LR_LABEL = "learning rate ε (per update)"
DPI = 110


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def batch_colors(batch_sizes):
    plt = pyplot()
    values = sorted(set(batch_sizes))
    cmap = plt.get_cmap("viridis")
    span = max(len(values) - 1, 1)
    return {b: cmap(0.9 * i / span) for i, b in enumerate(values)}


def plain_log_axis(ax) -> None:
    """Log x axis labelled 20, 30, 100 rather than 2×10¹."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_locator(LogLocator(subs=(2, 5)))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}"))


def plain_log_y(ax) -> None:
    """Log y axis labelled 0.1, 0.2, 300, 4e+05 rather than 10⁻¹, 2×10⁻¹."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_locator(LogLocator(subs=(2, 5)))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}"))


def log2_axis(ax) -> None:
    """Log base-2 x axis labelled with plain numbers (16, 32, ...), not 2^4."""
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))


def momentum_colors(momenta):
    plt = pyplot()
    momenta = sorted(set(momenta))
    cmap = plt.get_cmap("plasma")
    return {m: cmap(0.8 * i / max(len(momenta) - 1, 1)) for i, m in enumerate(momenta)}


def save_png(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)  # constrained layout: no second "tight" drawing pass
    pyplot().close(fig)
    return path


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


def draw_lr_law(info: LrLawInfo, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.8, 4.8), layout="constrained")
    momenta = sorted({p.momentum for p in info.points} | {line.momentum for line in info.lines}
                     | {e.momentum for e in info.edges})
    colors = momentum_colors(momenta)
    for line in info.lines:
        b, lr, fitted = np.array(line.batch_sizes), np.array(line.lr), np.array(line.fitted)
        color = colors[line.momentum]
        ax.plot(np.where(fitted, b, np.nan), lr, "-", color=color, lw=1.6)
        ax.plot(b, lr, "--", color=color, lw=0.9, alpha=0.6)
        if line.low is not None:
            ax.fill_between(b, line.low, line.high, color=color, alpha=0.15, lw=0)
    for m in momenta:
        for used in (True, False):
            pts = [p for p in info.points if p.momentum == m and p.used == used]
            if not pts:
                continue
            b = np.array([p.batch_size for p in pts], float)
            lr = np.array([p.lr_opt for p in pts])
            err = np.array([[p.lr_opt - p.ci95[0], p.ci95[1] - p.lr_opt] if p.ci95 else [0, 0] for p in pts]).T
            label = f"m = {m:g}" + ("" if used else " (above breakdown, not fitted)")
            ax.errorbar(b, lr, yerr=err, fmt="o" if used else "s", color=colors[m], ms=5, capsize=2,
                        mfc=colors[m] if used else "white", label=label)
    bounded = [p for p in info.points if p.lr_bound is not None]
    for p in bounded:
        ax.plot([p.batch_size, p.batch_size], [p.lr_opt, p.lr_bound], ":", color=colors[p.momentum], lw=1)
        ax.plot([p.batch_size], [p.lr_bound], "_", color=colors[p.momentum], ms=9, mew=1.6)
    if bounded:
        ax.plot([], [], "_", color="gray", ms=9, mew=1.6, label="first diverged lr above ε* (bounded cells)")
    for side, marker in (("low", "v"), ("high", "^")):
        edges = [e for e in info.edges if e.side == side]
        for e in edges:
            ax.plot([e.batch_size], [e.best_lr], marker, color=colors[e.momentum], mfc="white", ms=7)
        if edges:
            bound = "below" if side == "low" else "above"
            ax.plot([], [], marker, color="gray", mfc="white", label=f"optimum {bound} the searched lr (not fitted)")
    if info.breakdown is not None:
        ax.axvline(info.breakdown, color="black", ls=":", lw=1.2, label=f"breakdown B ≈ {info.breakdown:.0f}")
        if info.breakdown_ci95:
            ax.axvspan(*info.breakdown_ci95, color="gray", alpha=0.15, lw=0)
    log2_axis(ax)
    ax.set_yscale("log")
    ax.set_xlabel("batch size B (examples per update)")
    ax.set_ylabel("optimal learning rate ε* (per update)")
    ax.set_title(info.title, fontsize=10)
    ax.legend(fontsize=8, loc="best")
    return save_png(fig, path)


def draw_accuracy_vs_noise(info: AccuracyVsNoiseInfo, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.8, 4.6), layout="constrained")
    colors = batch_colors([p.batch_size for p in info.points])
    markers = dict(zip(sorted({p.momentum for p in info.points}), "o^sDvP*X"))
    for b, color in colors.items():
        for m, marker in markers.items():
            pts = [p for p in info.points if p.batch_size == b and p.momentum == m]
            if pts:
                ax.plot([p.noise_scale for p in pts], [p.test_acc for p in pts], marker, color=color, ms=4,
                        alpha=0.85, label=f"B={b}" if m == min(markers) else None)
    if info.optimum is not None:
        ax.axvline(info.optimum, color="black", ls=":", label=f"g* ≈ {info.optimum:.3g}")
        if info.optimum_ci95:
            ax.axvspan(*info.optimum_ci95, color="gray", alpha=0.15, lw=0)
    for m, marker in markers.items():
        ax.plot([], [], marker, color="gray", label=f"m = {m:g}")
    plain_log_axis(ax)
    ax.set_xlabel("noise scale g = ε/(1−m)·(N/B − 1)  (units of ε)")
    ax.set_ylabel(f"final {info.objective} (mean over seeds)")
    ax.set_title(f"{info.objective.capitalize()} vs SGD noise scale (non-diverged trials)", fontsize=10)
    fig.legend(fontsize=7, loc="outside right center")
    return save_png(fig, path)


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
