"""Schedule comparison: can increasing the batch size replace decaying the learning rate?

Trials are grouped by their baseline cell (section, initial B, ε, m); a group is every
schedule run from the same starting point. Per schedule: final test accuracy (mean ±
sd over seeds), total parameter updates (mean over seeds), and the ratio of updates
to the ``step_decay_lr`` baseline of the group (Smith et al. 2018: same accuracy with
fewer updates when B grows instead of ε decaying).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from scalestudy.analysis.inputs.trial_table import ACCURACY

BASELINE = "step_decay_lr"


@dataclass(frozen=True)
class ScheduleRow:
    schedule: str
    n_trials: int
    n_diverged: int
    test_acc_mean: float | None  # over non-diverged trials [fraction]
    test_acc_sd: float | None  # sd over seeds (None with one seed)
    updates_mean: float | None  # total optimizer steps [updates]
    update_ratio: float | None  # updates / updates of the step_decay_lr baseline
    run_ids: tuple[str, ...] = ()
    acc_vs_baseline: float | None = None  # test_acc_mean − the baseline's [fraction]
    acc_vs_baseline_se: float | None = None  # its standard error over seeds

    @property
    def matches_baseline(self) -> bool | None:
        """Same final accuracy as step_decay_lr within two standard errors (None: cannot tell)."""
        if self.acc_vs_baseline is None or self.acc_vs_baseline_se is None:
            return None
        return abs(self.acc_vs_baseline) <= 2 * self.acc_vs_baseline_se


@dataclass(frozen=True)
class ScheduleGroup:
    section: str | None
    batch_size: int
    lr: float
    momentum: float
    rows: tuple[ScheduleRow, ...]

    @property
    def label(self) -> str:
        where = f"section {self.section!r}, " if self.section else ""
        return f"{where}B={self.batch_size}, lr={self.lr:g}, m={self.momentum:g}"


@dataclass(frozen=True)
class ScheduleComparison:
    groups: tuple[ScheduleGroup, ...]
    reason: str | None = None  # why there is nothing to compare, or why ratios are missing


def compare_schedules(frame: pd.DataFrame) -> ScheduleComparison:
    """Every group of two or more schedules sharing a starting cell."""
    if "schedule" not in frame.columns or frame["schedule"].nunique() < 2:
        return ScheduleComparison((), "a single schedule in this study: nothing to compare")
    keys = ["batch_size", "lr", "momentum"]
    if "section" in frame.columns and frame["section"].notna().any():
        frame = frame.assign(section=frame["section"].fillna(""))
        keys = ["section", *keys]
    groups = []
    for key, group in frame.groupby(keys, sort=True):
        if group["schedule"].nunique() < 2:
            continue
        key = dict(zip(keys, key))
        groups.append(ScheduleGroup(key.get("section") or None, int(key["batch_size"]), float(key["lr"]),
                                    float(key["momentum"]), _rows(group)))
    # Groups with a baseline first, then the most schedules.
    groups.sort(key=lambda g: (not any(r.schedule == BASELINE for r in g.rows), -len(g.rows)))
    if not groups:
        return ScheduleComparison((), "no two schedules start from the same (B, lr, m)")
    reason = None
    if not any(r.schedule == BASELINE for g in groups for r in g.rows):
        reason = f"no {BASELINE} baseline: update ratios are not available"
    elif "updates" not in frame.columns:
        reason = "the trial table has no 'updates' column: update ratios are not available"
    return ScheduleComparison(tuple(groups), reason)


def _rows(group: pd.DataFrame) -> tuple[ScheduleRow, ...]:
    updates = {}
    if "updates" in group.columns:  # diverged trials stop early: their update counts say nothing
        alive = group[~group["diverged"]]
        updates = {name: _mean(part["updates"]) for name, part in alive.groupby("schedule")}
    base = updates.get(BASELINE)
    rows = []
    for name, part in group.groupby("schedule", sort=True):
        alive = part[~part["diverged"]]
        acc = alive["objective" if "objective" in alive.columns else ACCURACY.metric].to_numpy(float)
        acc = acc[np.isfinite(acc)]
        mean_updates = updates.get(name)
        rows.append(ScheduleRow(
            schedule=str(name), n_trials=len(part), n_diverged=int(part["diverged"].sum()),
            test_acc_mean=float(acc.mean()) if len(acc) else None,
            test_acc_sd=float(acc.std(ddof=1)) if len(acc) > 1 else None,
            updates_mean=mean_updates,
            update_ratio=mean_updates / base if mean_updates is not None and base else None,
            run_ids=tuple(str(r) for r in part["run_id"] if r) if "run_id" in part.columns else ()))
    rows.sort(key=lambda r: (r.schedule != BASELINE, r.schedule))
    base_row = next((r for r in rows if r.schedule == BASELINE), None)
    if base_row is None or base_row.test_acc_mean is None:
        return tuple(rows)
    return tuple(_versus(row, base_row) if row is not base_row else row for row in rows)


def _versus(row: ScheduleRow, base: ScheduleRow) -> ScheduleRow:
    if row.test_acc_mean is None:
        return row
    delta = row.test_acc_mean - base.test_acc_mean
    se = None
    if row.test_acc_sd is not None and base.test_acc_sd is not None:
        n_row, n_base = row.n_trials - row.n_diverged, base.n_trials - base.n_diverged
        se = float(np.sqrt(row.test_acc_sd ** 2 / n_row + base.test_acc_sd ** 2 / n_base))
    return replace(row, acc_vs_baseline=delta, acc_vs_baseline_se=se)


def _mean(values: pd.Series) -> float | None:
    values = values.to_numpy(float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else None
