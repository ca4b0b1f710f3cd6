"""Steps to a target accuracy against batch size (Shallue et al. 2018).

Per (B, m) cell: the fewest updates needed to first reach the target test accuracy,
over the learning rates searched. An ε qualifies when every trial that ran at it
reached the target (its seed mean is then a measured number, not a lucky seed); a
trial the search stopped before reaching the target is not counted either way (it
might have reached it later). Trials that reached the target count whatever happened
afterwards (stopped or diverged later): the measure is the first time it is reached.
A trial's ``updates_to_target`` is interpolated between the evaluations around its crossing
(``scalestudy.train.target``; the trial's param ``steps_to_target`` says how), so it
resolves less than an epoch and need not be an integer.

Censored crossings: a trial that reached the target before its first evaluation after the initial
model has no count, only a bound (``updates_to_target_at_most``: reached in (0, bound]). An ε's seed
mean is then known to lie in [mean with those at 0, mean with them at their bound], and a cell's
fewest updates in [the smallest lower end, the smallest upper end] over its ε: exact when the two
meet, else **censored** (the point holds the upper end). Censored points are shown as such and left
out of the S(B) fit. Tables written before censoring have no such column and no censored point.
When every count of a line is a whole number of epochs (N // B updates each), the crossings were
read at epoch ends, not resolved inside them: S(B) then follows the epoch grid and a warning says so.

Perfect scaling is updates ∝ 1/B (examples constant); past the critical batch size the
returns diminish. The transition is fitted per (momentum, dataset size) line with McCandlish
et al.'s (2018) form S(B) = S_min·(1 + B_crit/B), equivalently E(B) = E_min·(1 + B/B_crit)
with E_min = S_min·B_crit, by least squares on ln S with a profile-likelihood 95 % interval
of B_crit (:mod:`scalestudy.law.transition`, the one home of the model: the plan reads it too).
Each line also carries B_simple read at the target crossing (:mod:`scalestudy.analysis.fits.gradient_noise_at_target`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalestudy.analysis.fits._stats import f_quantile
from scalestudy.analysis.fits.gradient_noise_at_target import NoiseAtTarget, noise_at_target
from scalestudy.analysis.inputs.trial_table import stopped
from scalestudy.law.transition import MIN_BATCH_SIZES, TransitionFit
from scalestudy.law.transition import fit_transition as fit_curve

__all__ = ["MIN_BATCH_SIZES", "StepsLine", "StepsPoint", "StepsToTarget", "TransitionFit", "fit_steps_to_target",
           "fit_transition"]

CENSORED_COLUMNS = ("updates_to_target_at_most", "examples_to_target_at_most")
NOISE_COLUMN = "gradient_noise_scale_at_target"


@dataclass(frozen=True)
class StepsPoint:
    batch_size: int
    momentum: float
    lr: float  # the ε with the fewest updates to the target [per update]
    updates: float  # seed mean of updates_to_target at that ε [updates]; censored: an upper bound
    examples: float  # seed mean of examples_to_target at that ε [examples]; censored: an upper bound
    n_trials: int  # trials behind the mean (all reached the target)
    censored: bool = False  # the fewest updates are known only to be ≤ ``updates`` (module docstring)
    on_epoch_grid: bool = False  # every count behind it is a whole number of epochs
    noise_at_target: float | None = None  # seed geometric mean of B_simple at the crossing [examples]


@dataclass(frozen=True)
class StepsLine:
    momentum: float
    points: tuple[StepsPoint, ...]  # ascending batch size
    transition: TransitionFit | None  # None when B_crit could not be fitted
    reason: str | None = None  # why there is no transition, or no interval of its B_crit
    dataset_size: int | None = None  # N of the line's trials when the study varies N [examples]
    noise: NoiseAtTarget | None = None  # B_simple at the target crossing (None: not logged)

    @property
    def label(self) -> str:
        return f"m = {self.momentum:g}" + (f", N = {self.dataset_size}" if self.dataset_size is not None else "")

    @property
    def measured(self) -> tuple[StepsPoint, ...]:
        """The points with a count (not censored): those S(B) is fitted through."""
        return tuple(p for p in self.points if not p.censored)


@dataclass(frozen=True)
class StepsToTarget:
    target: float | None  # the target value of ``metric`` (test accuracy [fraction] by default)
    lines: tuple[StepsLine, ...]  # one per momentum
    reason: str | None = None  # why there are no lines, or a note on the target
    metric: str = "test_acc"  # the target's metric (diagnostics.target)
    warnings: tuple[str, ...] = ()  # censored points, counts on the epoch grid

    @property
    def censored(self) -> bool:
        return any(p.censored for line in self.lines for p in line.points)


def fit_steps_to_target(frame: pd.DataFrame) -> StepsToTarget:
    """Fewest updates to the target per (B, m) and the fitted transition per momentum."""
    if "updates_to_target" not in frame.columns and CENSORED_COLUMNS[0] not in frame.columns:
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
    counts = trial_counts(frame)
    if not counts["reached"].any():
        what = "accuracy" if metric == "test_acc" else metric
        return StepsToTarget(target, (), f"no trial reached the target {what}", metric=metric)
    counted = counts[counts["reached"] | ~stopped(frame)]  # stopped short of it: unknown
    per_lr = counted.groupby(["momentum", "dataset_size", "batch_size", "lr"]).agg(
        all_reached=("reached", "all"), n_trials=("reached", "size"), updates=("high", "mean"),
        low=("low", "mean"), examples=("examples", "mean"), on_grid=("on_grid", "all"),
        noise=("log_noise", "mean")).reset_index()
    per_lr = per_lr[per_lr["all_reached"]]
    lines, warnings = [], []
    several_n = per_lr["dataset_size"].nunique() > 1  # lines carry their N only then, as cells do
    for (momentum, dataset_size), part in per_lr.groupby(["momentum", "dataset_size"], sort=True):
        points = tuple(fewest_updates(float(momentum), int(b), group)
                       for b, group in part.groupby("batch_size", sort=True))
        transition, reason = fit_transition(tuple(p for p in points if not p.censored))
        noise = None
        if NOISE_COLUMN in frame.columns:
            read = [p for p in points if p.noise_at_target is not None]
            noise = noise_at_target([p.batch_size for p in read], [p.noise_at_target for p in read])
        line = StepsLine(float(momentum), points, transition, reason, int(dataset_size) if several_n else None, noise)
        lines.append(line)
        warnings += line_warnings(line)
    if not lines:
        return StepsToTarget(target, (), "no learning rate reached the target in every trial run at it", metric=metric)
    return StepsToTarget(target, tuple(lines), note, metric=metric, warnings=tuple(warnings))


def trial_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Per trial: reached, the count's bounds (low = high when measured; 0 to the bound when
    censored), examples (the upper end), on_grid (a measured whole number of epochs) and ln B_simple
    at the crossing. Tables from before censoring lack the bound columns: every count is measured."""
    def column(name: str) -> np.ndarray:
        return frame[name].to_numpy(float) if name in frame.columns else np.full(len(frame), np.nan)

    updates, bound = column("updates_to_target"), column(CENSORED_COLUMNS[0])
    measured = np.isfinite(updates)
    censored = ~measured & np.isfinite(bound)
    high = np.where(measured, updates, bound)
    b = frame["batch_size"].to_numpy(float)
    examples = np.where(measured, column("examples_to_target"), column(CENSORED_COLUMNS[1]))
    examples = np.where(np.isfinite(examples), examples, high * b)  # constant batch size: E = S·B
    epochs = updates / np.maximum(np.floor(frame["dataset_size"].to_numpy(float) / b), 1.0)
    with np.errstate(invalid="ignore"):
        whole = np.abs(epochs - np.round(epochs)) < 1e-9 * np.maximum(epochs, 1)
        on_grid = measured & (np.round(epochs) >= 1) & whole
        noise = column(NOISE_COLUMN)
        log_noise = np.where(np.isfinite(noise) & (noise > 0), np.log(np.where(noise > 0, noise, 1.0)), np.nan)
    return frame.assign(reached=measured | censored, high=high, low=np.where(censored, 0.0, high),
                        examples=examples, on_grid=on_grid, log_noise=log_noise)


def fewest_updates(momentum: float, batch_size: int, per_lr: pd.DataFrame) -> StepsPoint:
    """The cell's fewest updates over its qualifying ε: the smallest upper end, censored when some
    ε's lower end lies below it (module docstring)."""
    best = per_lr.loc[per_lr["updates"].idxmin()]
    censored = bool(per_lr["low"].min() < best["updates"])
    noise = float(np.exp(best["noise"])) if np.isfinite(best["noise"]) else None
    return StepsPoint(batch_size, momentum, float(best["lr"]), float(best["updates"]), float(best["examples"]),
                      int(best["n_trials"]), censored, bool(best["on_grid"]) and not censored, noise)


def line_warnings(line: StepsLine) -> list[str]:
    """What the reader of S(B) must know: censored points left out, counts that are the epoch grid."""
    out = []
    censored = [p for p in line.points if p.censored]
    if censored:
        listing = ", ".join(f"B = {p.batch_size} (≤ {p.updates:,.4g})" for p in censored)
        out.append(f"steps to target, {line.label}: {listing} reached the target before the first evaluation "
                   "after the initial model (censored: updates known only as a bound), left out of the S(B) fit")
    measured = line.measured
    if len(measured) >= 2 and all(p.on_epoch_grid for p in measured):
        counts = ", ".join(f"{p.updates:,.4g}" for p in measured)
        out.append(f"steps to target, {line.label}: every count is a whole number of epochs ({counts} updates "
                   "at B = " + ", ".join(str(p.batch_size) for p in measured) + "): the crossings were read at "
                   "epoch ends, not resolved between evaluations, so S(B) and its B_crit follow the epoch grid "
                   "N/B (trials from before in-epoch interpolation and censoring; rerun with target_eval_every "
                   "and target_eval_margin)")
    return out


def fit_transition(points: tuple[StepsPoint, ...]) -> tuple[TransitionFit | None, str | None]:
    """S(B) = S_min·(1 + B_crit/B) through the line's measured points, with the 95 % interval of B_crit:
    (the fit, or None when B_crit cannot be placed; why, or why it has no interval)."""
    dof = len(points) - 2
    fit = fit_curve([p.batch_size for p in points], [p.updates for p in points],
                    f_quantile(0.95, 1, dof) if dof >= 1 else None)
    return (fit if fit.value is not None else None), fit.reason
