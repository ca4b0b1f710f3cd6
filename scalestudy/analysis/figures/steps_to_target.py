"""steps_to_target.png: Shallue et al. (2018), Figure 1: the fewest updates (a) and examples (b) to
the target against B per momentum, with perfect scaling, the fitted S_min·(1 + B_crit/B), B_simple and
the lr law's breakdown. Censored points (reached before the first evaluation: their counts are upper
bounds) are flagged per point."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scalestudy.analysis.figures.style import log2_axis, momentum_colors, plain_log_y, pyplot, save_png
from scalestudy.analysis.fits.critical_batch import headline_line
from scalestudy.analysis.fits.gradient_noise_scale import CriticalBatch
from scalestudy.analysis.fits.steps_to_target import StepsToTarget


@dataclass(frozen=True)
class StepsCurve:
    """One momentum: fewest updates (and examples) to the target per batch size."""

    momentum: float
    batch_sizes: tuple[int, ...]
    lrs: tuple[float, ...]  # the ε that got there first
    updates: tuple[float, ...]  # [updates]
    examples: tuple[float, ...]  # [examples]
    perfect_updates: tuple[float, ...]  # perfect scaling through the smallest B: updates(B₀)·B₀/B
    perfect_examples: tuple[float, ...]  # ... in examples: examples(B₀) at every B
    fit_batch_sizes: tuple[float, ...]  # the fitted S_min·(1 + B_crit/B), when there is one
    fit_updates: tuple[float, ...]
    transition: float | None  # its B_crit [examples]
    censored: tuple[bool, ...] = ()  # per point: reached before the first evaluation, updates an upper bound


@dataclass(frozen=True)
class StepsToTargetInfo:
    target: float | None
    curves: tuple[StepsCurve, ...]
    noise_b_crit: float | None  # B_simple from the gradient noise scale [examples]
    breakdown: float | None  # of the lr law [examples]
    breakdown_ci95: tuple[float, float] | None
    noise_read_at: str = "end of training"  # or "target crossing" (the headline line's trials)


def steps_to_target(steps: StepsToTarget, critical: CriticalBatch | None = None) -> StepsToTargetInfo:
    """Shallue et al.'s Figure 1 per line; censored points flagged; B_simple read at the target crossing
    of the headline line when the trials logged it, else the end-of-training median."""
    curves = []
    for line in steps.lines:
        b = np.array([p.batch_size for p in line.points], float)
        updates = np.array([p.updates for p in line.points])
        examples = np.array([p.examples for p in line.points])
        censored = tuple(p.censored for p in line.points)
        # Perfect scaling through the smallest B with a count (a censored point is only a bound).
        first = next((i for i, c in enumerate(censored) if not c), 0)
        fit_b, fit_updates = (), ()
        if line.transition is not None:
            grid = np.geomspace(b.min(), b.max(), 60)
            fit_b, fit_updates = tuple(grid), tuple(line.transition.updates_at(b) for b in grid)
        curves.append(StepsCurve(
            line.momentum, tuple(int(v) for v in b), tuple(p.lr for p in line.points), tuple(updates),
            tuple(examples), tuple(updates[first] * b[first] / b), tuple(np.full(len(b), examples[first])), fit_b,
            fit_updates, line.transition.value if line.transition else None, censored))
    critical = critical or CriticalBatch(None, None, 0, (), None, None)
    headline = headline_line(steps)
    if headline is not None and headline.noise is not None and headline.noise.value is not None:
        return StepsToTargetInfo(steps.target, tuple(curves), headline.noise.value, critical.breakdown,
                                 critical.breakdown_ci95, f"target crossing, {headline.label}")
    return StepsToTargetInfo(steps.target, tuple(curves), critical.value, critical.breakdown, critical.breakdown_ci95)


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
