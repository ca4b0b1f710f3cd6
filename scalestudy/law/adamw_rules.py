"""The whole AdamW set at a target batch size B: ε from the law, then β1, β2, λ and a model EMA's
momentum from ``law.adamw`` (:mod:`scalestudy.law.adamw_fields`), each with its 95 % interval and the
rule it came from; and the surge past ε*(B)'s peak (``recommend`` refuses a B past it unless forced, ``plan`` warns).
``recommend`` and ``plan`` read it.

The conversions (the same formulas as the spec side's ``scalestudy.optim.timescales``, which uses
numpy; the law is read where only the standard library is installed):

- λ = B/(ε·N·τ*_epoch) (Wang & Aitchison 2025): τ_epoch = B/(ε·λ·N) is the weights' EMA
  timescale in epochs. Its interval is τ*_epoch's alone: λ is what the ε one trains at needs, so
  the ε interval does not widen it. Without τ*_epoch (or N), λ = λ*_ref·(B/B_ref)^x from the
  fitted exponent (Power Lines 2025: x = 1), its interval from λ*_ref's and x's, combined in ln.
- β2 = 0.5^(B/h₂) (Marek et al. 2025) and ρ = 0.5^(B/h_ema) (Busbridge et al. 2023): a half-life h
  in examples held fixed as B changes; their intervals are h's mapped through the same formula.

Standard library only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scalestudy.law.adamw_fields import AdamWTimescales, HalfLife
from scalestudy.law.guards import Guard, LawRefused
from scalestudy.law.scaling import Prediction, ScalingLaw


def decay_for_half_life(half_life_examples: float, batch_size: float) -> float:
    """ρ = 0.5^(B/h): the per-update decay (β2, a model EMA's momentum) whose half-life is h examples."""
    return 0.5 ** (batch_size / half_life_examples)


def weight_decay_for_tau_epoch(tau_epoch: float, batch_size: float, lr: float, dataset_size: float) -> float:
    """λ = B/(ε·N·τ_epoch): the weight decay whose EMA timescale is ``tau_epoch`` epochs."""
    return batch_size / (lr * dataset_size * tau_epoch)


@dataclass(frozen=True)
class Setting:
    """One hyperparameter of the set, its 95 % interval (None: none known) and the rule it came from."""

    name: str  # lr | beta1 | beta2 | weight_decay | ema
    value: float
    ci95: tuple[float, float] | None
    rule: str


@dataclass(frozen=True)
class AdamWSet:
    """Every AdamW hyperparameter the law gives at ``batch_size``; those it has no rule for are absent."""

    batch_size: float
    dataset_size: int | None
    settings: tuple[Setting, ...]
    missing: tuple[str, ...]  # "beta2: the law has no half-life for it", ...

    def get(self, name: str) -> Setting | None:
        return next((s for s in self.settings if s.name == name), None)

    def lines(self) -> list[str]:
        """The set as ``recommend`` prints it: one aligned line per hyperparameter."""
        out = [f"AdamW set at B={self.batch_size:g}" + (f", N={self.dataset_size}" if self.dataset_size else "") + ":"]
        for s in self.settings:
            interval = f" [{s.ci95[0]:.6g}, {s.ci95[1]:.6g}]" if s.ci95 else ""
            out.append(f"  {s.name:<13}{s.value:.6g}{interval}   {s.rule}")
        out += [f"  {why}" for why in self.missing]
        return out


def adamw_set(law: ScalingLaw, prediction: Prediction) -> AdamWSet | None:
    """The set at the prediction's B (and N): None for a law without ``adamw`` (SGD, older files)."""
    timescales = law.adamw
    if timescales is None:
        return None
    b, lr, n = float(prediction.batch_size), prediction.lr, prediction.dataset_size
    settings = [Setting("lr", lr, prediction.lr_ci95, f"the law {law.form}")]
    # β1 is the study's momentum axis: the one ε* was predicted at (law.adamw.beta1 names the study's when it
    # held one fixed, the m predict() defaults to then), so ε and β1 always belong together.
    settings.append(Setting("beta1", prediction.momentum, None,
                            "the momentum ε* was predicted at (the study's β1 axis)"))
    missing = []
    decay = _weight_decay(timescales, b, lr, n)
    if isinstance(decay, Setting):
        settings.append(decay)
    else:
        missing.append(f"weight_decay: {decay}")
    for name, half_life, label, source in (("beta2", timescales.beta2_half_life, "h₂", "Marek et al. 2025"),
                                           ("ema", timescales.ema_half_life, "h_ema", "Busbridge et al. 2023")):
        if half_life is None:
            missing.append(f"{name}: the law has no half-life for it")
            continue
        settings.append(_half_life_setting(name, half_life, b, label, source))
    return AdamWSet(b, n, tuple(settings), tuple(missing))


def _half_life_setting(name: str, half_life: HalfLife, batch_size: float, label: str, source: str) -> Setting:
    ci = half_life.ci95
    interval = None
    if ci is not None and ci[0] > 0:  # a longer half-life is a decay nearer 1
        high = decay_for_half_life(ci[1], batch_size) if math.isfinite(ci[1]) else 1.0
        interval = (decay_for_half_life(ci[0], batch_size), high)
    where = f", {half_life.source}" if half_life.source else ""
    return Setting(name, decay_for_half_life(half_life.examples, batch_size), interval,
                   f"{name} = 0.5^(B/{label}), {label} = {half_life.examples:.4g} examples{where} ({source})")


def _weight_decay(t: AdamWTimescales, batch_size: float, lr: float, n: int | None) -> Setting | str:
    """λ from τ*_epoch when the law has it and N is known, else from λ*'s exponent fit; else why not."""
    if t.tau_epoch is not None and n:
        ci = t.tau_epoch_ci95
        interval = None
        if ci is not None and ci[0] > 0:  # a longer timescale is a smaller λ
            interval = (weight_decay_for_tau_epoch(ci[1], batch_size, lr, n) if math.isfinite(ci[1]) else 0.0,
                        weight_decay_for_tau_epoch(ci[0], batch_size, lr, n))
        return Setting("weight_decay", weight_decay_for_tau_epoch(t.tau_epoch, batch_size, lr, n), interval,
                       f"λ = B/(ε·N·τ*_epoch), τ*_epoch = {t.tau_epoch:.4g} epochs (Wang & Aitchison 2025)")
    fit, reference, b_ref = t.weight_decay_vs_batch, t.weight_decay_reference, t.reference_batch_size
    if fit is not None and reference is not None and b_ref:
        ratio = batch_size / b_ref
        value = reference * ratio ** fit.exponent
        interval = None
        ref_ci = t.weight_decay_reference_ci95
        if ref_ci is not None and fit.ci95 is not None and ref_ci[0] > 0:
            # ln λ = ln λ_ref + x·ln(B/B_ref): each side's half-widths added in quadrature (independent)
            log_ratio = math.log(ratio)
            ends = [x * log_ratio for x in fit.ci95]
            down = math.hypot(math.log(reference / ref_ci[0]), fit.exponent * log_ratio - min(ends))
            up = math.hypot(math.log(ref_ci[1] / reference), max(ends) - fit.exponent * log_ratio)
            interval = (value * math.exp(-down), value * math.exp(up))
        return Setting("weight_decay", value, interval,
                       f"λ = λ*_ref·(B/B_ref)^x, λ*_ref = {reference:.4g} at B_ref = {b_ref}, "
                       f"x = {fit.exponent:.3g} (Power Lines 2025: x = 1)")
    if t.tau_epoch is not None:
        return "λ = B/(ε·N·τ*_epoch) needs the dataset size N (--dataset-size)"
    return "the law has neither τ*_epoch nor a fit of λ* against B"


def surge_warning(law: ScalingLaw, batch_size: float) -> str | None:
    """A warning when B lies past the peak of a law whose ε*(B) rises and then falls (Li et al. 2024)."""
    surge = law.surge
    if surge is None or surge.verdict != "peak" or surge.peak_batch_size is None:
        return None
    if batch_size <= surge.peak_batch_size:
        return None
    ci = f" (95 % interval {surge.peak_ci95[0]:.4g} to {surge.peak_ci95[1]:.4g})" if surge.peak_ci95 else ""
    return (f"batch size {batch_size:g} is past the peak of ε*(B) at B ≈ {surge.peak_batch_size:.4g}{ci}: there "
            "ε* falls as B grows (the surge, Li et al. 2024), so the power law's ε is likely too large; train "
            "at or below the peak, or check the law there (check-law)")


def enforce_surge(law: ScalingLaw, batch_size: float, guard: Guard) -> list[str]:
    """Refuse (:class:`LawRefused`) a batch size past the surge's peak, or with ``guard.force`` return
    the refusal as a loud warning, as :func:`scalestudy.law.guards.enforce` does."""
    found = surge_warning(law, batch_size)
    if found is None:
        return []
    if not guard.force:
        raise LawRefused(f"{found} (--force to use it anyway)")
    return [f"FORCED (--force), this learning rate may be far off: {found}"]
