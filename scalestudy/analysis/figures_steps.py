"""The steps-to-target figures as plain data (Shallue et al. 2018, Figure 1; McCandlish et al. 2018,
Figure 1 and eq. 2.11): built from :class:`~scalestudy.analysis.fits.steps_to_target.StepsToTarget`, drawn by
:mod:`scalestudy.analysis.plots_diagnostics`. Censored points (reached before the first evaluation:
their counts are upper bounds) are flagged per point."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
