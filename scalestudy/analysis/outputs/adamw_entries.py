"""The AdamW fits → law.json's ``adamw`` and ``surge`` records (:mod:`scalestudy.law.adamw_fields`)."""

from __future__ import annotations

from scalestudy.analysis.fits.adamw.exponent import ExponentEstimate
from scalestudy.analysis.fits.adamw.timescales import AdamWFit, HalfLifeSetting
from scalestudy.analysis.fits.surge import SurgeFit
from scalestudy.law.adamw_fields import AdamWTimescales, DecayCell, ExponentFit, HalfLife, SurgeTest
from scalestudy.law.records import Interval


def adamw_entry(fit: AdamWFit | None) -> AdamWTimescales | None:
    """``law.adamw``: None unless the study swept the weight decay."""
    if fit is None:
        return None
    cells = tuple(DecayCell(c.batch_size, c.momentum, c.lr, c.dataset_size, c.status, c.weight_decay,
                            _interval(c.ci95), c.tau_epoch, _interval(c.tau_epoch_ci95)) for c in fit.decay.cells)
    return AdamWTimescales(
        beta1=fit.beta1, tau_epoch=fit.tau_epoch.value, tau_epoch_ci95=_interval(fit.tau_epoch.ci95),
        tau_epoch_vs_batch=_exponent(fit.tau_epoch_vs_batch), weight_decay_vs_batch=_exponent(fit.weight_decay_vs_batch),
        weight_decay_reference=fit.weight_decay_reference,
        weight_decay_reference_ci95=_interval(fit.weight_decay_reference_ci95),
        reference_batch_size=fit.reference_batch_size, beta2_half_life=_half_life(fit.beta2_half_life),
        ema_half_life=_half_life(fit.ema_half_life),
        notes=fit.notes + tuple(r for r in (fit.weight_decay_vs_batch.reason, fit.tau_epoch_vs_batch.reason) if r),
        cells=cells)


def surge_entry(fit: SurgeFit | None) -> SurgeTest | None:
    if fit is None:
        return None
    return SurgeTest(fit.verdict, fit.peak_batch_size, _interval(fit.peak_ci95), fit.p_value, fit.reason, fit.momentum)


def _exponent(fit: ExponentEstimate) -> ExponentFit | None:
    if fit.exponent is None:
        return None
    return ExponentFit(fit.exponent, _interval(fit.ci95), fit.hypothesis, fit.p_value, fit.cells)


def _half_life(setting: HalfLifeSetting | None) -> HalfLife | None:
    return None if setting is None else HalfLife(setting.examples, source=setting.source)


def _interval(pair) -> Interval | None:
    return Interval(*pair) if pair else None
