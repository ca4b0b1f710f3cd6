"""schedules.png: Smith et al. (2018), Figure 2: test accuracy against epochs and against updates
for each schedule of one group, from its runs' per-epoch histories."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from scalestudy.analysis.figures.style import pyplot, save_png
from scalestudy.analysis.fits.schedule_comparison import ScheduleGroup


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
