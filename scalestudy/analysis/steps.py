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
returns diminish. The transition is fitted per momentum with McCandlish et al.'s (2018)
form S(B) = S_min·(1 + B_crit/B), equivalently E(B) = E_min·(1 + B/B_crit) with
E_min = S_min·B_crit, by least squares on the relative error (linear in S_min, E_min).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalestudy.analysis.table import stopped

MIN_BATCH_SIZES = 3  # to fit a two-parameter transition with a residual


@dataclass(frozen=True)
class StepsPoint:
    batch_size: int
    momentum: float
    lr: float  # the ε with the fewest updates to the target [per update]
    updates: float  # seed mean of updates_to_target at that ε [updates]
    examples: float  # seed mean of examples_to_target at that ε [examples]
    n_trials: int  # trials behind the mean (all reached the target)


@dataclass(frozen=True)
class Transition:
    """S(B) = S_min·(1 + B_crit/B): the perfect-scaling regime below B_crit, diminishing returns above."""

    min_updates: float  # S_min, the updates needed at very large B [updates]
    min_examples: float  # E_min = S_min·B_crit, the examples needed at very small B [examples]

    @property
    def batch_size(self) -> float:
        """B_crit = E_min / S_min [examples]."""
        return self.min_examples / self.min_updates

    def updates(self, batch_size):
        return self.min_updates + self.min_examples / np.asarray(batch_size, float)


@dataclass(frozen=True)
class StepsLine:
    momentum: float
    points: tuple[StepsPoint, ...]  # ascending batch size
    transition: Transition | None
    reason: str | None = None  # why there is no transition


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
    per_lr = counted.groupby(["momentum", "batch_size", "lr"]).agg(
        all_reached=("reached", "all"), n_trials=("reached", "size"), updates=("updates_to_target", "mean"),
        examples=("examples_to_target", "mean")).reset_index()
    per_lr = per_lr[per_lr["all_reached"]]
    lines = []
    for momentum, part in per_lr.groupby("momentum", sort=True):
        best = part.loc[part.groupby("batch_size")["updates"].idxmin()].sort_values("batch_size")
        points = tuple(StepsPoint(int(r.batch_size), float(momentum), float(r.lr), float(r.updates),
                                  float(r.examples), int(r.n_trials)) for r in best.itertuples())
        transition, reason = fit_transition(points)
        lines.append(StepsLine(float(momentum), points, transition, reason))
    if not lines:
        return StepsToTarget(target, (), "no learning rate reached the target in every trial run at it", metric=metric)
    return StepsToTarget(target, tuple(lines), note, metric=metric)


def fit_transition(points: tuple[StepsPoint, ...]) -> tuple[Transition | None, str | None]:
    """S_min and E_min of S(B) = S_min + E_min/B, least squares on (S − Ŝ)/S."""
    if len(points) < MIN_BATCH_SIZES:
        return None, f"needs {MIN_BATCH_SIZES} batch sizes that reached the target, found {len(points)}"
    b = np.array([p.batch_size for p in points], float)
    s = np.array([p.updates for p in points], float)
    design = np.column_stack([1.0 / s, 1.0 / (b * s)])  # (S_min + E_min/B)/S ≈ 1
    (s_min, e_min), *_ = np.linalg.lstsq(design, np.ones_like(s), rcond=None)
    if e_min <= 0:
        return None, "updates do not fall with the batch size: no perfect-scaling regime in the range"
    if s_min <= 0:
        return None, "updates fall as 1/B throughout: the critical batch size is above the largest B tested"
    return Transition(float(s_min), float(e_min)), None
