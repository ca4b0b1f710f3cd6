"""What each figure shows, as plain data: built from the fits, drawn by :mod:`plots` and
:mod:`plots_diagnostics` (the gap figure draws :class:`~scalestudy.analysis.gap.GapFit` itself,
already plain data).

Tests assert on these info objects; drawing them is the only matplotlib step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalestudy.analysis.critical import CriticalBatch
from scalestudy.analysis.critical_sizes import headline_line
from scalestudy.analysis.frontier import Frontier
from scalestudy.analysis.lawfit import LawFit
from scalestudy.analysis.noise import NoiseScaleFit
from scalestudy.analysis.schedules import ScheduleGroup
from scalestudy.analysis.sharpness import SharpnessFit
from scalestudy.analysis.steps import StepsToTarget
from scalestudy.noise import noise_scale


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


@dataclass(frozen=True)
class LawLine:
    momentum: float
    batch_sizes: tuple[float, ...]
    lr: tuple[float, ...]
    low: tuple[float, ...] | None
    high: tuple[float, ...] | None
    fitted: tuple[bool, ...]  # inside the fitted batch-size range


@dataclass(frozen=True)
class LrOptPoint:
    batch_size: int
    momentum: float
    lr_opt: float
    ci95: tuple[float, float] | None
    used: bool  # part of the law fit (False: above the breakdown)
    lr_bound: float | None = None  # bounded by divergence: the first diverged ε, above ε*


@dataclass(frozen=True)
class EdgePoint:
    """A cell whose optimum lies outside its grid: ε* ≤ best_lr (low) or ε* ≥ best_lr (high)."""

    batch_size: int
    momentum: float
    best_lr: float
    side: str  # "low" | "high"


@dataclass(frozen=True)
class LrLawInfo:
    points: tuple[LrOptPoint, ...]
    lines: tuple[LawLine, ...]
    edges: tuple[EdgePoint, ...]
    breakdown: float | None
    breakdown_ci95: tuple[float, float] | None
    title: str


@dataclass(frozen=True)
class NoisePoint:
    batch_size: int
    momentum: float
    noise_scale: float
    test_acc: float  # seed mean of the non-diverged trials


@dataclass(frozen=True)
class AccuracyVsNoiseInfo:
    points: tuple[NoisePoint, ...]
    optimum: float | None
    optimum_ci95: tuple[float, float] | None
    objective: str = "test accuracy"


@dataclass(frozen=True)
class ScheduleCurve:
    schedule: str
    epochs: tuple[float, ...]
    updates: tuple[float, ...]
    test_acc: tuple[float, ...]  # seed mean per epoch


@dataclass(frozen=True)
class ScheduleCurvesInfo:
    title: str
    curves: tuple[ScheduleCurve, ...]


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


@dataclass(frozen=True)
class SharpnessLine:
    momentum: float
    batch_sizes: tuple[int, ...]
    values: tuple[float, ...]  # [percent]


@dataclass(frozen=True)
class SharpnessInfo:
    panels: tuple[tuple[str, tuple[SharpnessLine, ...]], ...]  # (column, one line per momentum)


def accuracy_vs_lr(frontier: Frontier, objective: str = "test accuracy") -> AccuracyVsLrInfo:
    panels: dict[float, list[AccuracyCurve]] = {}
    for cell in frontier.cells:
        diverged = cell.diverged_lrs
        panels.setdefault(cell.momentum, []).append(AccuracyCurve(
            cell.batch_size, cell.lrs, cell.mean_acc, cell.sd_acc, diverged, cell.lr_opt, cell.best_acc,
            cell.status))
    return AccuracyVsLrInfo(tuple((m, tuple(curves)) for m, curves in sorted(panels.items())),
                            frontier.failure_acc, objective)


def lr_law(frontier: Frontier, law: LawFit) -> LrLawInfo:
    """ε* against B per momentum, with the law; at the largest N when the study varies N."""
    used = {c.key for c in law.cells}
    sizes = {c.dataset_size for c in frontier.cells} - {None}
    at_n = max(sizes) if sizes else None
    cells = [c for c in frontier.cells if c.dataset_size == at_n]
    points = tuple(LrOptPoint(c.batch_size, c.momentum, c.lr_opt, c.ci95, c.key in used,
                              c.lr_bound) for c in cells if c.usable)
    lines = []
    if law.regression is not None and law.alpha is not None and points:
        all_b = [p.batch_size for p in points]
        b_lo, b_hi = law.domain["batch_size"]
        grid = np.geomspace(min(all_b), max(all_b), 60)
        for m in sorted({p.momentum for p in points}):
            if law.beta is None and m != law.domain["momentum"][0]:
                continue
            row = {"beta": np.log1p(-m), **({"gamma": np.log(at_n)} if at_n else {})}
            preds = [law.regression.predict({"alpha": np.log(b), **row}) for b in grid]
            y = np.array([p[0] for p in preds])
            half = np.array([p[1] if p[1] is not None else np.nan for p in preds])
            band = not np.isnan(half).any()
            lines.append(LawLine(m, tuple(grid), tuple(np.exp(y)), tuple(np.exp(y - half)) if band else None,
                                 tuple(np.exp(y + half)) if band else None,
                                 tuple(bool(b_lo * 0.999 <= b <= b_hi * 1.001) for b in grid)))
    title = "optimal learning rate ε*"
    if law.alpha is not None:
        ci = law.ci95.get("alpha")
        title = f"ε* ∝ B^α, α = {law.alpha:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
        if law.beta is not None:
            title += f";  ∝ (1−m)^β, β = {law.beta:.3f}"
        if at_n is not None:
            title += f"  (at N = {at_n})"
    edges = tuple(EdgePoint(c.batch_size, c.momentum, c.best_lr, c.status.removeprefix("edge_"))
                  for c in cells if c.status.startswith("edge_"))
    return LrLawInfo(points, tuple(lines), edges, law.breakdown.batch_size, law.breakdown.ci95, title)


def accuracy_vs_noise(frame: pd.DataFrame, noise: NoiseScaleFit,
                      objective: str = "test accuracy") -> AccuracyVsNoiseInfo:
    column = "objective" if "objective" in frame.columns else "test_acc"
    alive = frame[~frame["diverged"] & np.isfinite(frame[column])]
    alive = alive[alive["batch_size"] < alive["dataset_size"]]
    means = alive.groupby(["batch_size", "momentum", "lr", "dataset_size"])[column].mean().reset_index()
    g = noise_scale(means["lr"], means["momentum"], means["dataset_size"], means["batch_size"])
    points = tuple(NoisePoint(int(b), float(m), float(x), float(a))
                   for b, m, x, a in zip(means["batch_size"], means["momentum"], g, means[column]))
    return AccuracyVsNoiseInfo(points, noise.value, noise.ci95, objective)


def schedule_curves(group: ScheduleGroup, histories: pd.DataFrame) -> ScheduleCurvesInfo:
    """``histories``: columns run_id, step (epoch), key, value (from runs.load_histories)."""
    curves = []
    for row in group.rows:
        runs = histories[histories["run_id"].isin(row.run_ids)]
        if runs.empty:
            continue
        wide = runs.pivot_table(index=["run_id", "step"], columns="key", values="value").reset_index()
        if "test_acc" not in wide.columns:
            continue
        mean = wide.groupby("step").mean(numeric_only=True).sort_index()
        epochs = mean["epoch"] if "epoch" in mean.columns else pd.Series(mean.index, index=mean.index)
        updates = mean["updates"] if "updates" in mean.columns else pd.Series(np.nan, index=mean.index)
        curves.append(ScheduleCurve(row.schedule, tuple(epochs.astype(float)), tuple(updates.astype(float)),
                                    tuple(mean["test_acc"].astype(float))))
    return ScheduleCurvesInfo(f"schedules from {group.label}", tuple(curves))


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


def sharpness_vs_batch(fit: SharpnessFit) -> SharpnessInfo:
    panels = []
    for key in fit.keys:
        lines = []
        for m in sorted({c.momentum for c in fit.cells}):
            cells = [c for c in fit.cells if c.momentum == m and np.isfinite(c.value(key))]
            if cells:
                lines.append(SharpnessLine(m, tuple(c.batch_size for c in cells), tuple(c.value(key) for c in cells)))
        if lines:
            panels.append((key, tuple(lines)))
    return SharpnessInfo(tuple(panels))
