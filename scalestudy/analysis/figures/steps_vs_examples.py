"""steps_vs_examples.png: updates against examples to the target, log–log (McCandlish et al. 2018,
Figure 1 and eq. 2.11): each fitted line's points, its hyperbola and asymptotes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scalestudy.analysis.figures.style import pyplot, save_png
from scalestudy.analysis.fits.steps_to_target import StepsToTarget


@dataclass(frozen=True)
class StepsExamplesLine:
    """One line of the steps-vs-examples figure (McCandlish et al. 2018, Fig. 1 and eq. 2.11)."""

    label: str
    batch_sizes: tuple[int, ...]
    examples: tuple[float, ...]  # measured E [examples]
    updates: tuple[float, ...]  # measured S [updates]
    curve_examples: tuple[float, ...]  # the fitted hyperbola (S/S_min − 1)(E/E_min − 1) = 1, traced over B
    curve_updates: tuple[float, ...]
    min_updates: float  # S_min: the horizontal asymptote (no gain from more batch) [updates]
    min_examples: float  # E_min: the vertical asymptote, perfect scaling (examples constant) [examples]
    critical: float  # B_crit [examples]
    critical_ci95: tuple[float, float] | None
    censored: tuple[bool, ...] = ()  # per point, as StepsCurve's (not on the fitted hyperbola's data)


@dataclass(frozen=True)
class StepsVsExamplesInfo:
    target: float | None
    lines: tuple[StepsExamplesLine, ...]


def steps_vs_examples(steps: StepsToTarget) -> StepsVsExamplesInfo:
    """Updates against examples to the target, log–log, for each line with a fitted B_crit: the points,
    the hyperbola through them and its asymptotes (perfect scaling E = E_min; S = S_min)."""
    lines = []
    for line in steps.lines:
        fit = line.transition
        if fit is None:
            continue
        low, high = min(fit.batch_sizes), max(fit.batch_sizes)
        grid = np.geomspace(min(low, fit.value) / 4, max(high, fit.value) * 4, 80)
        updates = np.array([fit.updates_at(b) for b in grid])
        lines.append(StepsExamplesLine(
            line.label, tuple(p.batch_size for p in line.points), tuple(p.examples for p in line.points),
            tuple(p.updates for p in line.points), tuple(updates * grid), tuple(updates), fit.min_updates,
            fit.min_examples, fit.value, fit.ci95, tuple(p.censored for p in line.points)))
    return StepsVsExamplesInfo(steps.target, tuple(lines))


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
