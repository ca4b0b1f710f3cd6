"""lr_opt_vs_batch_size.png: ε* against B per momentum with the fitted law, its band and the
breakdown; cells at a grid edge and cells bounded by divergence marked (at the largest N when the
study varies N)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scalestudy.analysis.figures.style import log2_axis, momentum_colors, pyplot, save_png
from scalestudy.analysis.fits.cell_optimum.frontier import Frontier
from scalestudy.analysis.fits.law import LawFit


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


def draw_lr_law(info: LrLawInfo, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.8, 4.8), layout="constrained")
    momenta = sorted({p.momentum for p in info.points} | {line.momentum for line in info.lines}
                     | {e.momentum for e in info.edges})
    colors = momentum_colors(momenta)
    for line in info.lines:
        b, lr, fitted = np.array(line.batch_sizes), np.array(line.lr), np.array(line.fitted)
        color = colors[line.momentum]
        ax.plot(np.where(fitted, b, np.nan), lr, "-", color=color, lw=1.6)
        ax.plot(b, lr, "--", color=color, lw=0.9, alpha=0.6)
        if line.low is not None:
            ax.fill_between(b, line.low, line.high, color=color, alpha=0.15, lw=0)
    for m in momenta:
        for used in (True, False):
            pts = [p for p in info.points if p.momentum == m and p.used == used]
            if not pts:
                continue
            b = np.array([p.batch_size for p in pts], float)
            lr = np.array([p.lr_opt for p in pts])
            err = np.array([[p.lr_opt - p.ci95[0], p.ci95[1] - p.lr_opt] if p.ci95 else [0, 0] for p in pts]).T
            label = f"m = {m:g}" + ("" if used else " (above breakdown, not fitted)")
            ax.errorbar(b, lr, yerr=err, fmt="o" if used else "s", color=colors[m], ms=5, capsize=2,
                        mfc=colors[m] if used else "white", label=label)
    bounded = [p for p in info.points if p.lr_bound is not None]
    for p in bounded:
        ax.plot([p.batch_size, p.batch_size], [p.lr_opt, p.lr_bound], ":", color=colors[p.momentum], lw=1)
        ax.plot([p.batch_size], [p.lr_bound], "_", color=colors[p.momentum], ms=9, mew=1.6)
    if bounded:
        ax.plot([], [], "_", color="gray", ms=9, mew=1.6, label="first diverged lr above ε* (bounded cells)")
    for side, marker in (("low", "v"), ("high", "^")):
        edges = [e for e in info.edges if e.side == side]
        for e in edges:
            ax.plot([e.batch_size], [e.best_lr], marker, color=colors[e.momentum], mfc="white", ms=7)
        if edges:
            bound = "below" if side == "low" else "above"
            ax.plot([], [], marker, color="gray", mfc="white", label=f"optimum {bound} the searched lr (not fitted)")
    if info.breakdown is not None:
        ax.axvline(info.breakdown, color="black", ls=":", lw=1.2, label=f"breakdown B ≈ {info.breakdown:.0f}")
        if info.breakdown_ci95:
            ax.axvspan(*info.breakdown_ci95, color="gray", alpha=0.15, lw=0)
    log2_axis(ax)
    ax.set_yscale("log")
    ax.set_xlabel("batch size B (examples per update)")
    ax.set_ylabel("optimal learning rate ε* (per update)")
    ax.set_title(info.title, fontsize=10)
    ax.legend(fontsize=8, loc="best")
    return save_png(fig, path)
