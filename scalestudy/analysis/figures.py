"""What each figure shows, as plain data: built from the fits, drawn by :mod:`plots` and
:mod:`plots_diagnostics` (the gap figure draws :class:`~scalestudy.analysis.fits.generalization_gap.GapFit` itself,
already plain data; the steps-to-target figures' in :mod:`figures_steps`).

Tests assert on these info objects; drawing them is the only matplotlib step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# The steps-to-target figures' infos live in figures_steps; imported here, their home before.
from scalestudy.analysis.figures_steps import (  # noqa: F401
    StepsCurve,
    StepsExamplesLine,
    StepsToTargetInfo,
    StepsVsExamplesInfo,
    steps_to_target,
    steps_vs_examples,
)
from scalestudy.analysis.fits.cell_optimum.frontier import Frontier
from scalestudy.analysis.fits.law import LawFit
from scalestudy.analysis.fits.schedule_comparison import ScheduleGroup
from scalestudy.analysis.fits.sgd_noise_scale import NoiseScaleFit
from scalestudy.analysis.fits.sharpness_vs_batch import SharpnessFit
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
