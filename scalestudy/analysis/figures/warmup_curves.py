"""warmup_vs_constant.png: the objective against updates for the constant base, the batch warmup
derived from CBS(t) and the late switch (issue 23), each seed a line, with the constant runs' final
objective (the target the steps are counted to) as a horizontal line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scalestudy.analysis.figures.style import plain_log_axis, pyplot, save_png
from scalestudy.analysis.fits.warmup_comparison import WarmupComparison

COLORS = {"constant": "C0", "warmup": "C2", "late_switch": "C3"}


def draw_warmup_curves(curves: pd.DataFrame, comparison: WarmupComparison, objective: str, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    by_kind = {k.kind: k for k in comparison.kinds}
    for (kind, seed), run in curves.sort_values("epoch").groupby(["kind", "seed"]):
        summary = by_kind[kind].steps_ratio
        label = None
        if seed == min(curves.loc[curves["kind"] == kind, "seed"]):
            shown = summary.mean is not None and kind != "constant"
            ratio = f": {summary.mean:.2f}× the constant's steps" if shown else ""
            label = f"{kind.replace('_', ' ')}{ratio}"
        ax.plot(run["updates"], run["loss"], "-", color=COLORS.get(kind, "gray"), lw=1.0, alpha=0.8, label=label)
    for target in sorted(set(comparison.targets.values())):
        ax.axhline(target, color="gray", lw=0.6, ls=":")
    ax.plot([], [], ":", color="gray", label="targets: the constant runs' final loss (per seed)")
    plain_log_axis(ax)
    ax.set_xlabel("updates")
    ax.set_ylabel(objective)
    ax.set_title("Batch warmup from CBS(t) and a late switch against the constant base", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    return save_png(fig, path)
