"""accuracy_vs_noise_scale.png: every (B, m, ε) point's objective against the SGD noise scale
g = ε/(1−m)·(N/B − 1), with the fitted g* and its interval (SGD studies only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from scalestudy.analysis.figures.style import batch_colors, plain_log_axis, pyplot, save_png
from scalestudy.analysis.fits.sgd_noise_scale import NoiseScaleFit
from scalestudy.analysis.inputs.trial_table import ACCURACY
from scalestudy.noise import noise_scale


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


def accuracy_vs_noise(frame: pd.DataFrame, noise: NoiseScaleFit,
                      objective: str = "test accuracy") -> AccuracyVsNoiseInfo:
    column = "objective" if "objective" in frame.columns else ACCURACY.metric
    alive = frame[~frame["diverged"] & np.isfinite(frame[column])]
    alive = alive[alive["batch_size"] < alive["dataset_size"]]
    means = alive.groupby(["batch_size", "momentum", "lr", "dataset_size"])[column].mean().reset_index()
    g = noise_scale(means["lr"], means["momentum"], means["dataset_size"], means["batch_size"])
    points = tuple(NoisePoint(int(b), float(m), float(x), float(a))
                   for b, m, x, a in zip(means["batch_size"], means["momentum"], g, means[column]))
    return AccuracyVsNoiseInfo(points, noise.value, noise.ci95, objective)


def draw_accuracy_vs_noise(info: AccuracyVsNoiseInfo, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.8, 4.6), layout="constrained")
    colors = batch_colors([p.batch_size for p in info.points])
    markers = dict(zip(sorted({p.momentum for p in info.points}), "o^sDvP*X"))
    for b, color in colors.items():
        for m, marker in markers.items():
            pts = [p for p in info.points if p.batch_size == b and p.momentum == m]
            if pts:
                ax.plot([p.noise_scale for p in pts], [p.test_acc for p in pts], marker, color=color, ms=4,
                        alpha=0.85, label=f"B={b}" if m == min(markers) else None)
    if info.optimum is not None:
        ax.axvline(info.optimum, color="black", ls=":", label=f"g* ≈ {info.optimum:.3g}")
        if info.optimum_ci95:
            ax.axvspan(*info.optimum_ci95, color="gray", alpha=0.15, lw=0)
    for m, marker in markers.items():
        ax.plot([], [], marker, color="gray", label=f"m = {m:g}")
    plain_log_axis(ax)
    ax.set_xlabel("noise scale g = ε/(1−m)·(N/B − 1)  (units of ε)")
    ax.set_ylabel(f"final {info.objective} (mean over seeds)")
    ax.set_title(f"{info.objective.capitalize()} vs SGD noise scale (non-diverged trials)", fontsize=10)
    fig.legend(fontsize=7, loc="outside right center")
    return save_png(fig, path)
