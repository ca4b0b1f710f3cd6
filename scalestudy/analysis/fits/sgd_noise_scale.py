"""The SGD noise scale at the optimum, g* = ε*/(1 − m)·(N/B − 1), per cell (the formula:
:func:`scalestudy.noise.noise_scale`; Smith & Le 2017, Smith et al. 2018).

g has the units of a learning rate (ε per update, N and B in examples). If the law
holds with α = 1 and β = 1, g* is the same in every cell below the breakdown: the
fit reports its geometric mean with a 95 % interval, the spread of ln g* between
cells, and the slope of ln g* against ln B (0 when g* is constant).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scalestudy.analysis.fits._stats import fit_line, t_quantile
from scalestudy.analysis.fits.cell_optimum.frontier import CellOptimum
from scalestudy.noise import noise_scale


@dataclass(frozen=True)
class NoiseScaleFit:
    cells: tuple[tuple[int, float, float], ...]  # (B, m, g*) of the cells used
    value: float | None  # geometric mean of g*
    ci95: tuple[float, float] | None
    log_sd: float | None  # sd of ln g* between cells: 0.1 means g* varies by about ±10 %
    slope_vs_log_b: float | None  # d ln g* / d ln B
    slope_ci95: tuple[float, float] | None
    reason: str | None = None


def fit_noise_scale(cells: list[CellOptimum], dataset_size: int | None) -> NoiseScaleFit:
    """g* over the given cells (the law's cells: usable, at or below the breakdown), each at its own
    N in a study over several dataset sizes (``dataset_size`` is the N of a study of one)."""
    n = {c.key: c.dataset_size or dataset_size for c in cells}
    cells = [c for c in cells if c.usable and c.batch_size < n[c.key]]
    if not cells:
        return NoiseScaleFit((), None, None, None, None, None, "no usable cell")
    g = noise_scale(np.array([c.lr_opt for c in cells]), np.array([c.momentum for c in cells]),
                    np.array([n[c.key] for c in cells], float), np.array([c.batch_size for c in cells], float))
    log_g = np.log(g)
    rows = tuple((c.batch_size, c.momentum, float(value)) for c, value in zip(cells, g))
    value = float(np.exp(log_g.mean()))
    if len(cells) < 2:
        return NoiseScaleFit(rows, value, None, None, None, None, "one cell: no interval")
    sd = float(log_g.std(ddof=1))
    half = t_quantile(0.975, len(cells) - 1) * sd / np.sqrt(len(cells))
    ci = (float(np.exp(log_g.mean() - half)), float(np.exp(log_g.mean() + half)))
    u = np.log([c.batch_size for c in cells])
    slope, slope_ci, reason = None, None, None
    if len(np.unique(u)) >= 3:
        line = fit_line(u, log_g)
        slope, slope_ci = line.slope, line.slope_ci95
    else:
        reason = "fewer than 3 batch sizes: no slope"
    return NoiseScaleFit(rows, value, ci, sd, slope, slope_ci, reason)
