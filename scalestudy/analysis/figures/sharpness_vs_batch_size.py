"""sharpness_vs_batch_size.png: ε-sharpness at each cell's best lr against B, one panel per space
(Keskar et al. 2017)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scalestudy.analysis.figures.style import log2_axis, momentum_colors, plain_log_y, pyplot, save_png
from scalestudy.analysis.fits.sharpness_vs_batch import SharpnessFit


@dataclass(frozen=True)
class SharpnessLine:
    momentum: float
    batch_sizes: tuple[int, ...]
    values: tuple[float, ...]  # [percent]


@dataclass(frozen=True)
class SharpnessInfo:
    panels: tuple[tuple[str, tuple[SharpnessLine, ...]], ...]  # (column, one line per momentum)


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


def draw_sharpness(info: SharpnessInfo, path: Path) -> Path:
    """ε-sharpness at each cell's best lr against batch size, one panel per space."""
    plt = pyplot()
    n = len(info.panels)
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.2), squeeze=False, layout="constrained")
    colors = momentum_colors([line.momentum for _, lines in info.panels for line in lines])
    for ax, (key, lines) in zip(axes[0], info.panels):
        for line in lines:
            ax.plot(line.batch_sizes, line.values, "o-", color=colors[line.momentum], ms=4,
                    label=f"m = {line.momentum:g}")
        log2_axis(ax)
        if all(v > 0 for line in lines for v in line.values):
            plain_log_y(ax)
        ax.set_xlabel("batch size B (examples per update)")
        space = {"sharpness": "full parameter space", "sharpness_subspace": "random subspace"}.get(
            key, f"random {key[len('sharpness_p'):]}-dim subspace")
        ax.set_title(f"{key}: {space}", fontsize=9)
    axes[0][0].set_ylabel("ε-sharpness at the best lr (percent)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Sharpness of the final solution (Keskar et al. 2017: larger at large B)", fontsize=10)
    return save_png(fig, path)
