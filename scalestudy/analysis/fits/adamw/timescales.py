"""AdamW's timescales against B: λ* ∝ B^x and τ*_epoch ∝ B^x across cells, τ*_epoch's common value,
λ* at a reference batch size, and the half-lives the grid held fixed.

Two rules are tested, each by the exponent of a per-cell optimum (:mod:`.exponent`):

- *Power Lines* (Bergsma et al. 2025, arXiv 2505.13738, §3: τ = B/(η·λ·D) is what transfers): at a
  fixed model, data and ε, λ* ∝ B, x = 1;
- *Wang & Aitchison* (ICML 2025, eq. 8): τ*_epoch = B/(ε·λ*·N) is roughly constant across B, x = 0.

When cells were read at different ε (a grid that scales ε with B), λ*'s exponent is that of λ* at
those ε, not at a fixed one: τ*_epoch, which divides ε out, is the quantity to read then.

β2 and the model EMA: Marek et al. (2025, arXiv 2507.07101) hold β2's half-life in examples fixed,
h₂ = B·ln ½/ln β2, and a model EMA scales the same way (Busbridge et al. 2023). A grid that held them
fixed (``beta2_half_life_examples``, ``ema_half_life_examples`` in the trial table) gives
``source = "spec"``: a setting the study kept, not a fitted optimum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalestudy.analysis.fits.adamw.decay_optimum import DecayFrontier, DecayOptimum, fit_decay_optima
from scalestudy.analysis.fits.adamw.exponent import ExponentEstimate, Level, fit_exponent, fit_level

POWER_LINES_X, WANG_AITCHISON_X = 1.0, 0.0
HALF_LIVES = {"beta2": "beta2_half_life_examples", "ema": "ema_half_life_examples"}  # trial-table columns


@dataclass(frozen=True)
class HalfLifeSetting:
    """A half-life in examples the grid held at one value across B."""

    examples: float
    source: str = "spec"


@dataclass(frozen=True)
class AdamWFit:
    """Every AdamW timescale the study measures (``law.adamw``)."""

    decay: DecayFrontier  # λ* and τ*_epoch per cell
    weight_decay_vs_batch: ExponentEstimate  # λ* ∝ B^x, tested against x = 1
    tau_epoch_vs_batch: ExponentEstimate  # τ*_epoch ∝ B^x, tested against x = 0
    tau_epoch: Level  # τ*_epoch's common value over the cells (the geometric mean)
    reference_batch_size: int | None  # where λ* is quoted
    weight_decay_reference: float | None
    weight_decay_reference_ci95: tuple[float, float] | None
    beta1: float | None  # the momentum axis of an Adam-type study, when it has one value
    beta2_half_life: HalfLifeSetting | None
    ema_half_life: HalfLifeSetting | None
    notes: tuple[str, ...] = ()


def fit_adamw(frame: pd.DataFrame) -> AdamWFit:
    """The timescales of a constant-schedule frame of finished trials that sweeps λ (or τ_epoch)."""
    decay = fit_decay_optima(frame)
    cells = decay.usable()
    groups = [_group(cell) for cell in cells]
    b = [cell.batch_size for cell in cells]
    variances = [cell.log_var for cell in cells]
    decay_fit = fit_exponent(b, [c.weight_decay for c in cells], variances, groups, POWER_LINES_X)
    tau_fit = fit_exponent(b, [c.tau_epoch for c in cells], variances, groups, WANG_AITCHISON_X)
    level = fit_level([c.tau_epoch for c in cells], variances) if cells else Level(None, None, 0)
    reference, value, interval = _reference(cells, decay_fit)
    notes = []
    if tau_fit.p_value is not None and tau_fit.p_value < 0.05:
        notes.append(f"τ*_epoch changes with B (x = {tau_fit.exponent:.2f}, p = {tau_fit.p_value:.2g}): its common "
                     "value is an average over the tested batch sizes")
    if len({c.lr for c in cells}) > 1:
        notes.append("the cells' λ* were read at different lr: λ*'s exponent is at those lr, τ*_epoch divides lr out")
    momenta = frame["momentum"].unique()
    adam = "optimizer" in frame.columns and frame["optimizer"].astype(str).str.contains("adam").all()
    return AdamWFit(decay, decay_fit, tau_fit, level, reference, value, interval,
                    float(momenta[0]) if adam and len(momenta) == 1 else None,  # the momentum axis is β1
                    half_life(frame, HALF_LIVES["beta2"]), half_life(frame, HALF_LIVES["ema"]), tuple(notes))


def half_life(frame: pd.DataFrame, column: str) -> HalfLifeSetting | None:
    """The half-life the grid held fixed in ``column`` (one finite value in every trial), else None."""
    if column not in frame.columns:
        return None
    values = pd.to_numeric(frame[column], errors="coerce")
    if values.isna().any() or values.nunique() != 1:
        return None
    return HalfLifeSetting(float(values.iloc[0]))


def _group(cell: DecayOptimum) -> str:
    return f"m={cell.momentum:g} N={cell.dataset_size}"


def _reference(cells: list[DecayOptimum], fit: ExponentEstimate):
    """(B_ref, λ*(B_ref), its interval): at the geometric middle of the fitted batch sizes (the tested
    one nearest it), in the group of the largest momentum and N (the closest to training at scale)."""
    if not cells:
        return None, None, None
    sizes = sorted({c.batch_size for c in cells})
    middle = float(np.exp(np.mean(np.log(sizes))))
    reference = min(sizes, key=lambda b: abs(np.log(b / middle)))
    headline = max(cells, key=lambda c: (c.momentum, c.dataset_size))
    predicted = fit.predict(reference, _group(headline))
    if predicted is not None:
        return reference, predicted[0], predicted[1]
    at = [c for c in cells if c.batch_size == reference and _group(c) == _group(headline)]
    return (reference, at[0].weight_decay, at[0].ci95) if at else (None, None, None)
