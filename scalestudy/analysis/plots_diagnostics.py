"""Draw the diagnostics' figure infos of :mod:`figures` to PNG files: the schedule comparison,
steps to target and sharpness (matplotlib, Agg backend; helpers from :mod:`plots`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scalestudy.analysis.figures import ScheduleCurvesInfo, SharpnessInfo, StepsToTargetInfo, StepsVsExamplesInfo
from scalestudy.analysis.figures_dataset import LrVsDatasetInfo
from scalestudy.analysis.plots import batch_colors, log2_axis, momentum_colors, plain_log_y, pyplot, save_png


def draw_schedules(info: ScheduleCurvesInfo, path: Path) -> Path:
    """Smith et al. (2018), Figure 2 layout: test accuracy against epochs and against updates."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.2), sharey=True, layout="constrained")
    from matplotlib.ticker import MaxNLocator, StrMethodFormatter

    for curve in info.curves:
        marker = "o" if len(curve.epochs) <= 30 else None
        axes[0].plot(curve.epochs, np.array(curve.test_acc) * 100, "-", marker=marker, ms=3, lw=1.5,
                     label=curve.schedule)
        axes[1].plot(curve.updates, np.array(curve.test_acc) * 100, "-", marker=marker, ms=3, lw=1.5,
                     label=curve.schedule)
    axes[0].set_xlabel("epochs")
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].set_xlabel("parameter updates (optimizer steps)")
    axes[1].xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    axes[0].set_ylabel("test accuracy (%, mean over seeds)")
    axes[0].set_title("a) against epochs", fontsize=9)
    axes[1].set_title("b) against parameter updates", fontsize=9)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(info.title, fontsize=10)
    return save_png(fig, path)


def draw_steps_to_target(info: StepsToTargetInfo, path: Path) -> Path:
    """Shallue et al. (2018), Figure 1 layout: updates (a) and examples (b) to the target against B."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.4), layout="constrained")
    colors = momentum_colors([c.momentum for c in info.curves])
    for curve in info.curves:
        color = colors[curve.momentum]
        censored = np.array(curve.censored or [False] * len(curve.batch_sizes))
        b = np.array(curve.batch_sizes, float)
        for ax, values in ((axes[0], np.array(curve.updates)), (axes[1], np.array(curve.examples))):
            ax.plot(b[~censored], values[~censored], "o-", color=color, ms=4, label=f"m = {curve.momentum:g}")
            # Censored: reached before the first evaluation, only an upper bound (open, pointing down).
            ax.plot(b[censored], values[censored], "v", color=color, ms=6, mfc="none")
        axes[0].plot(curve.batch_sizes, curve.perfect_updates, "--", color=color, lw=0.9, alpha=0.7)
        axes[1].plot(curve.batch_sizes, curve.perfect_examples, "--", color=color, lw=0.9, alpha=0.7)
        if curve.fit_updates:
            b = np.array(curve.fit_batch_sizes)
            axes[0].plot(b, curve.fit_updates, ":", color=color, lw=1.2)
            axes[1].plot(b, np.array(curve.fit_updates) * b, ":", color=color, lw=1.2)
    for ax in axes:
        ax.plot([], [], "--", color="gray", label="perfect scaling (through the smallest B)")
        if any(c.fit_updates for c in info.curves):
            ax.plot([], [], ":", color="gray", label="fit S_min·(1 + B_crit/B)")
        if any(any(c.censored) for c in info.curves):
            ax.plot([], [], "v", color="gray", mfc="none", label="censored: reached before the first evaluation (≤)")
        if info.noise_b_crit is not None:
            ax.axvline(info.noise_b_crit, color="tab:green", ls="-.", lw=1.1,
                       label=f"B_simple ≈ {info.noise_b_crit:.0f} ({info.noise_read_at})")
        if info.breakdown is not None:
            ax.axvline(info.breakdown, color="black", ls=":", lw=1.2,
                       label=f"lr-law breakdown B ≈ {info.breakdown:.0f}")
            if info.breakdown_ci95:
                ax.axvspan(*info.breakdown_ci95, color="gray", alpha=0.15, lw=0)
        log2_axis(ax)
        plain_log_y(ax)
        ax.set_xlabel("batch size B (examples per update)")
    axes[0].set_ylabel("updates to reach the target")
    axes[1].set_ylabel("examples to reach the target")
    axes[0].set_title("a) parameter updates (slope −1: perfect scaling)", fontsize=9)
    axes[1].set_title("b) training examples (flat: perfect scaling)", fontsize=9)
    axes[0].legend(fontsize=7, loc="best")
    target = f"test accuracy {100 * info.target:.4g}%" if info.target is not None else "the target accuracy"
    fig.suptitle(f"Steps to {target} at the best lr of each batch size", fontsize=10)
    return save_png(fig, path)


def draw_steps_vs_examples(info: StepsVsExamplesInfo, path: Path) -> Path:
    """Updates against examples to the target (log–log): measured points labelled by B, the fitted
    hyperbola (S/S_min − 1)(E/E_min − 1) = 1, perfect scaling E = E_min and the floor S = S_min."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8), layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, line in enumerate(info.lines):
        color = colors[index % len(colors)]
        ci = f" [{line.critical_ci95[0]:.0f}, {line.critical_ci95[1]:.0f}]" if line.critical_ci95 else ""
        ax.plot(line.curve_examples, line.curve_updates, "-", color=color, lw=1.3,
                label=f"{line.label}: fit, B_crit = {line.critical:.0f}{ci}")
        censored = np.array(line.censored or [False] * len(line.examples))
        examples, updates = np.array(line.examples), np.array(line.updates)
        ax.plot(examples[~censored], updates[~censored], "o", color=color, ms=5)
        ax.plot(examples[censored], updates[censored], "v", color=color, ms=6, mfc="none")  # upper bounds
        for b, e, s in zip(line.batch_sizes, line.examples, line.updates):
            ax.annotate(f"B={b}", (e, s), textcoords="offset points", xytext=(4, 3), fontsize=7, color=color)
        ax.axvline(line.min_examples, color=color, ls="--", lw=0.9, alpha=0.8)
        ax.axhline(line.min_updates, color=color, ls=":", lw=0.9, alpha=0.8)
        ax.plot([2 * line.min_examples], [2 * line.min_updates], "*", color=color, ms=10)
    ax.plot([], [], "--", color="gray", label="perfect scaling: E = E_min (doubling B halves S)")
    ax.plot([], [], ":", color="gray", label="no scaling: S = S_min")
    ax.plot([], [], "*", color="gray", label="B = B_crit: 2·E_min, 2·S_min")
    if any(any(line.censored) for line in info.lines):
        ax.plot([], [], "v", color="gray", mfc="none", label="censored: reached before the first evaluation (≤)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training examples to reach the target")
    ax.set_ylabel("parameter updates to reach the target")
    ax.legend(fontsize=7, loc="upper right")
    target = f"test accuracy {100 * info.target:.4g}%" if info.target is not None else "the target"
    ax.set_title(f"Steps vs examples to {target} (McCandlish et al. 2018)", fontsize=10)
    return save_png(fig, path)


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


def draw_sharpness(info: SharpnessInfo, path: Path) -> Path:
    """ε-sharpness at each cell's best lr against batch size, one panel per space."""
    plt = pyplot()
    n = len(info.panels)
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.2), squeeze=False, layout="constrained")
    colors = momentum_colors([line.momentum for _, lines in info.panels for line in lines])
    for ax, (key, lines) in zip(axes[0], info.panels):
        for line in lines:
            ax.plot(line.batch_sizes, line.values, "o-", color=colors[line.momentum], ms=4,
                    label=f"m = {line.momentum:g}")
        log2_axis(ax)
        if all(v > 0 for line in lines for v in line.values):
            plain_log_y(ax)
        ax.set_xlabel("batch size B (examples per update)")
        space = {"sharpness": "full parameter space", "sharpness_subspace": "random subspace"}.get(
            key, f"random {key[len('sharpness_p'):]}-dim subspace")
        ax.set_title(f"{key}: {space}", fontsize=9)
    axes[0][0].set_ylabel("ε-sharpness at the best lr (percent)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Sharpness of the final solution (Keskar et al. 2017: larger at large B)", fontsize=10)
    return save_png(fig, path)
