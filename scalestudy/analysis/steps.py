"""Steps to a target accuracy against batch size (Shallue et al. 2018).

Per (B, m) cell: the fewest updates needed to first reach the target test accuracy,
over the learning rates searched. An ε qualifies when every trial that ran at it
reached the target (its seed mean is then a measured number, not a lucky seed); a
trial the search stopped before reaching the target is not counted either way (it
might have reached it later). Trials that reached the target count whatever happened
afterwards (stopped or diverged later): the measure is the first time it is reached.
A trial's ``updates_to_target`` is measured every K updates or interpolated between epoch
ends (``scalestudy.train.target``; the trial's param ``steps_to_target`` says which), so it
resolves less than an epoch and need not be an integer.

Perfect scaling is updates ∝ 1/B (examples constant); past the critical batch size the
returns diminish. The transition is fitted per (momentum, dataset size) line with McCandlish
et al.'s (2018) form S(B) = S_min·(1 + B_crit/B), equivalently E(B) = E_min·(1 + B/B_crit)
with E_min = S_min·B_crit, by least squares on ln S with a profile-likelihood 95 % interval
of B_crit (:mod:`scalestudy.law.transition`, the one home of the model: the plan reads it too).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalestudy.analysis._stats import f_quantile
from scalestudy.analysis.table import stopped
from scalestudy.law.transition import MIN_BATCH_SIZES, TransitionFit
from scalestudy.law.transition import fit_transition as fit_curve

__all__ = ["MIN_BATCH_SIZES", "StepsLine", "StepsPoint", "StepsToTarget", "TransitionFit", "fit_steps_to_target",
           "fit_transition"]


@dataclass(frozen=True)
class StepsPoint:
    batch_size: int
    momentum: float
    lr: float  # the ε with the fewest updates to the target [per update]
    updates: float  # seed mean of updates_to_target at that ε [updates]
    examples: float  # seed mean of examples_to_target at that ε [examples]
    n_trials: int  # trials behind the mean (all reached the target)


@dataclass(frozen=True)
class StepsLine:
    momentum: float
    points: tuple[StepsPoint, ...]  # ascending batch size
    transition: TransitionFit | None  # None when B_crit could not be fitted
    reason: str | None = None  # why there is no transition, or no interval of its B_crit
    dataset_size: int | None = None  # N of the line's trials when the study varies N [examples]

    @property
    def label(self) -> str:
        return f"m = {self.momentum:g}" + (f", N = {self.dataset_size}" if self.dataset_size is not None else "")


@dataclass(frozen=True)
class StepsToTarget:
    target: float | None  # the target value of ``metric`` (test accuracy [fraction] by default)
    lines: tuple[StepsLine, ...]  # one per momentum
    reason: str | None = None  # why there are no lines, or a note on the target
    metric: str = "test_acc"  # the target's metric (diagnostics.target)


def fit_steps_to_target(frame: pd.DataFrame) -> StepsToTarget:
    """Fewest updates to the target per (B, m) and the fitted transition per momentum."""
    if "updates_to_target" not in frame.columns:
        return StepsToTarget(None, (), "no updates_to_target in the trial table "
                                       "(set diagnostics.target_accuracy in the spec)")
    target, note = None, None
    # The target's value: target_value (any metric), target_accuracy (test_acc, before targets on any metric).
    column = "target_value" if "target_value" in frame.columns and frame["target_value"].notna().any() \
        else "target_accuracy"
    metric = "test_acc"
    if column == "target_value" and "target_metric" in frame.columns and frame["target_metric"].notna().any():
        metric = str(frame["target_metric"].dropna().iloc[0])
    if column in frame.columns:
        targets = frame[column].dropna()
        if targets.nunique() > 1:
            target = float(targets.mode().iloc[0])
            note = f"several target values: the trials with the most common one ({target:g}) are used"
            frame = frame[frame[column] == target]
        elif len(targets):
            target = float(targets.iloc[0])
    if "examples_to_target" not in frame.columns:  # constant batch size: examples = updates × B
        frame = frame.assign(examples_to_target=frame["updates_to_target"] * frame["batch_size"])
    reached = pd.Series(np.isfinite(frame["updates_to_target"].to_numpy(float)), index=frame.index)
    if not reached.any():
        what = "accuracy" if metric == "test_acc" else metric
        return StepsToTarget(target, (), f"no trial reached the target {what}", metric=metric)
    counted = frame.assign(reached=reached)[reached | ~stopped(frame)]  # stopped short of it: unknown
    per_lr = counted.groupby(["momentum", "dataset_size", "batch_size", "lr"]).agg(
        all_reached=("reached", "all"), n_trials=("reached", "size"), updates=("updates_to_target", "mean"),
        examples=("examples_to_target", "mean")).reset_index()
    per_lr = per_lr[per_lr["all_reached"]]
    lines = []
    several_n = per_lr["dataset_size"].nunique() > 1  # lines carry their N only then, as cells do
    for (momentum, dataset_size), part in per_lr.groupby(["momentum", "dataset_size"], sort=True):
        best = part.loc[part.groupby("batch_size")["updates"].idxmin()].sort_values("batch_size")
        points = tuple(StepsPoint(int(r.batch_size), float(momentum), float(r.lr), float(r.updates),
                                  float(r.examples), int(r.n_trials)) for r in best.itertuples())
        transition, reason = fit_transition(points)
        lines.append(StepsLine(float(momentum), points, transition, reason, int(dataset_size) if several_n else None))
    if not lines:
        return StepsToTarget(target, (), "no learning rate reached the target in every trial run at it", metric=metric)
    return StepsToTarget(target, tuple(lines), note, metric=metric)


def fit_transition(points: tuple[StepsPoint, ...]) -> tuple[TransitionFit | None, str | None]:
    """S(B) = S_min·(1 + B_crit/B) through the line's points, with the 95 % interval of B_crit:
    (the fit, or None when B_crit cannot be placed; why, or why it has no interval)."""
    dof = len(points) - 2
    fit = fit_curve([p.batch_size for p in points], [p.updates for p in points],
                    f_quantile(0.95, 1, dof) if dof >= 1 else None)
    return (fit if fit.value is not None else None), fit.reason
