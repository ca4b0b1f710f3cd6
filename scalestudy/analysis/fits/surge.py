"""The surge test: does ε*(B) fall past a peak batch size?

Li et al. (2024, "Surge Phenomenon in Optimal Learning Rate and Batch Size Scaling", NeurIPS, §3, the
sign-of-gradient case) show that for Adam-style optimizers the optimal learning rate first rises and
then falls with B, ε_opt(B) = ε_max / (½(√(B_noise/B) + √(B/B_noise))), peaking at B_peak = B_noise;
SGD's rises and saturates (McCandlish et al. 2018). Rather than fit that form (a study rarely has
the batch sizes to tell it from a smooth bend), the test asks what the form's claim is: is ε*(B)
non-decreasing over the tested range, or does it fall somewhere?

On each line of cells of one (m, N), y_i = ln ε*_i at x_i = ln B_i with variance v_i read off each
cell's 95 % interval (:attr:`CellOptimum.log_lr_var`), the statistic is the largest studentized drop

    T = max(0, max_{a<b} (y_a − y_b)/√(v_a + v_b), max_k −slope_k/se_k),

and the negated slope of y on x over each tail of at least 3 batch sizes, studentized alike
(:func:`fall_contrasts`: a surge past its peak falls gently, over several batch sizes). T is
non-decreasing in each such contrast, and every non-decreasing ε*(B) makes each contrast
stochastically no larger than a flat one does, so a flat ε*(B) is the least favourable null (the union–intersection
principle for order restrictions, Robertson, Wright & Dykstra 1988, §2.3, as the ε* set of
:mod:`~scalestudy.analysis.fits.cell_optimum.mode_set` uses it over ln ε). Its p-value is simulated
under that flat null with the cells' variances; lines of several momenta or N are combined by
Bonferroni (L lines: L·min p). A rejection (p ≤ 0.05) is a ``peak``, placed at the vertex of the
parabola through the best cell and its neighbours in ln B, with the 95 % set of the mode of a
unimodal ε*(B) (:func:`~scalestudy.analysis.fits.cell_optimum.mode_set.mode_set`, over ln B) as its
interval; otherwise ``monotone`` over the range, with the p-value. Fewer than 3 batch sizes with an
ε* interval on every line: ``inconclusive``.

The cells' variances are read off intervals that hold the optimum whatever the peak's shape, and so
overstate a vertex's error: the test is conservative where cells agree, as the false-peak rows of
``scalestudy bench coverage`` measure on bends that saturate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scalestudy.analysis.fits._stats import least_squares, random_effects_weights
from scalestudy.analysis.fits.cell_optimum.mode_set import mode_set
from scalestudy.analysis.fits.cell_optimum.optimum import CellOptimum
from scalestudy.analysis.fits.cell_optimum.peak import USABLE, find_peak, interpolate

LEVEL = 0.05
MIN_BATCH_SIZES = 3
SIMULATIONS = 4000
# Floor of the Knapp–Hartung scale of the cells' variances (the law's MIN_SCALE plays this part for α).
# On Gaussian peaks the quadratic fits ε*(B) almost exactly and the vertices are ~7× more precise in sd
# than their intervals say: the law's 0.1 found 4 of 20 planted surges, 0.02 found 14, with no false
# peak in 60 monotone studies either way (scalestudy bench coverage, surge rows).
SCALE_FLOOR = 0.02


@dataclass(frozen=True)
class SurgeFit:
    verdict: str  # peak | monotone | inconclusive
    p_value: float | None  # of "ε*(B) is non-decreasing over the range" (small: a fall)
    peak_batch_size: float | None = None
    peak_ci95: tuple[float, float] | None = None  # None: open on a side (the reason says which)
    momentum: float | None = None  # of the line the peak was found on
    reason: str | None = None


def surge_test(cells: list[CellOptimum], *, seed: int = 0, simulations: int = SIMULATIONS) -> SurgeFit:
    """The test over the usable cells with a variance of ln ε*, line by line of (m, N)."""
    lines: dict[tuple, list[CellOptimum]] = {}
    for cell in cells:
        if cell.status in USABLE and cell.lr_opt and cell.log_lr_var and cell.log_lr_var > 0:
            lines.setdefault((cell.momentum, cell.dataset_size), []).append(cell)
    testable = {key: sorted(line, key=lambda c: c.batch_size) for key, line in lines.items()
                if len({c.batch_size for c in line}) >= MIN_BATCH_SIZES}
    if not testable:
        return SurgeFit("inconclusive", None, reason=f"needs {MIN_BATCH_SIZES} batch sizes with an ε* interval on "
                                                     "one (momentum, N) line")
    rng = np.random.default_rng(seed)
    tested = [(fall_p_value(line, rng, simulations), key, line) for key, line in sorted(testable.items(), key=str)]
    p, key, line = min(tested, key=lambda item: item[0])
    p = min(1.0, p * len(tested))
    if p > LEVEL:
        return SurgeFit("monotone", p, reason=f"ε*(B) non-decreasing over B = {line[0].batch_size}-"
                                             f"{line[-1].batch_size} is not rejected (p = {p:.2g})")
    x, y, v = _coordinates(line)
    peak_x, interval, reason = _peak(x, y, *scaled_variances(x, y, v), seed)
    return SurgeFit("peak", p, float(np.exp(peak_x)), interval, float(key[0]), reason)


def fall_p_value(line: list[CellOptimum], rng: np.random.Generator, simulations: int) -> float:
    """The p-value of T on one line under a flat ε*(B) with the cells' variances as the law weighs them."""
    x, y, v = _coordinates(line)
    v, dof = scaled_variances(x, y, v)
    observed = largest_drop(y[None, :], x, v)[0]
    draws = rng.standard_normal((simulations, len(y))) * np.sqrt(v)[None, :]
    if np.isfinite(dof):
        draws /= np.sqrt(rng.chisquare(dof, simulations) / dof)[:, None]
    null = largest_drop(draws, x, v)
    return float((1 + np.count_nonzero(null >= observed)) / (1 + simulations))


def scaled_variances(x: np.ndarray, y: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, float]:
    """(each point's variance, its degrees of freedom) as the law's fit weighs its cells
    (:mod:`scalestudy.analysis.fits.law`): the intervals' variances vᵢ plus the scatter τ² they do not
    explain, times the Knapp–Hartung scale of the weighted residuals, floored at :data:`SCALE_FLOOR`. The
    residuals are about a quadratic in ln B, which
    follows a rise, a saturation and a surge alike, so the scale measures the noise, not the shape. The
    intervals hold the optimum whatever the peak's shape and overstate a vertex's error about twice in
    sd; the scale takes that back. With fewer than 4 batch sizes there is no residual left: vᵢ as they are
    (known variances, conservative)."""
    if len(y) < 4:
        return v, np.inf
    X = np.column_stack([np.ones_like(x), x - x.mean(), (x - x.mean()) ** 2])
    weights, tau2 = random_effects_weights(X, y, v)
    scale = np.sqrt(weights)
    fit = least_squares(X * scale[:, None], y * scale, ("a", "b", "c"))
    return max(fit.rss / fit.dof, SCALE_FLOOR) / weights, float(fit.dof)


def largest_drop(y: np.ndarray, x: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """T for each row of ``y`` (columns by ascending B at ``x`` = ln B): the largest of the studentized
    falls :func:`fall_contrasts` names, 0 when none is positive."""
    return np.maximum((y @ fall_contrasts(x, variance).T).max(axis=1), 0.0)


def fall_contrasts(x: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """The rows c of the falls T looks for, each studentized (c·y has unit variance): every pairwise drop
    (y_a − y_b)/√(v_a + v_b), a < b, and the negated weighted slope of y on ln B over every tail of at
    least 3 points, which pools a fall spread over several batch sizes (a surge past its peak falls
    gently). For each, c·μ ≤ 0 whenever μ is non-decreasing (its partial sums from the left are all ≥ 0),
    so a flat μ is least favourable for their maximum."""
    k = len(variance)
    rows = []
    for a in range(k):
        for b in range(a + 1, k):
            row = np.zeros(k)
            row[a], row[b] = 1.0, -1.0
            rows.append(row / np.sqrt(variance[a] + variance[b]))
    for start in range(k - 2):
        w = np.zeros(k)
        w[start:] = 1.0 / variance[start:]
        centred = np.where(w > 0, x - (w @ x) / w.sum(), 0.0)
        row = -w * centred  # −(slope)·Σw(x − x̄)²: the slope's numerator, negated
        rows.append(row / np.sqrt(row ** 2 @ variance))
    return np.array(rows)


def _coordinates(line: list[CellOptimum]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ln B, ln ε*, var ln ε*), one entry per batch size (cells of one B averaged by inverse variance)."""
    sizes = sorted({c.batch_size for c in line})
    x, y, v = [], [], []
    for b in sizes:
        at = [c for c in line if c.batch_size == b]
        w = np.array([1.0 / c.log_lr_var for c in at])
        x.append(np.log(b))
        y.append(float(np.sum(w * np.log([c.lr_opt for c in at])) / w.sum()))
        v.append(float(1.0 / w.sum()))
    return np.array(x), np.array(y), np.array(v)


def _peak(x: np.ndarray, y: np.ndarray, v: np.ndarray, dof: float, seed: int):
    """(ln B at the peak, its 95 % interval or None, why it has none)."""
    peak = find_peak(y, np.ones(len(y), bool))
    if peak.status in USABLE and peak.columns:
        centre = interpolate(x, y, peak, 0.0, log=False)[0]
    else:
        centre = float(x[peak.best])
    modes = mode_set(x, y, v, np.ones(len(y)), dof=dof, seed=seed)
    if not modes.bounded:
        side = "below the smallest" if not np.isfinite(modes.low) else "above the largest"
        return centre, None, f"the peak's 95 % set reaches {side} tested batch size"
    return min(max(centre, modes.low), modes.high), (float(np.exp(modes.low)), float(np.exp(modes.high))), None
