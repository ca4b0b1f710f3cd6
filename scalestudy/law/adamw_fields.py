"""The AdamW records of a law file: the timescales that move with B besides ε (``law.adamw``) and
the test for a non-monotone ε*(B) (``law.surge``). Absent (null) in laws of SGD and in older files.

- τ_epoch = B/(ε·λ·N): AdamW's weights are an EMA of updates with timescale τ_iter = 1/(ελ)
  iterations, τ_epoch = τ_iter·B/N epochs; the optimum τ*_epoch is roughly constant across B and N
  (Wang & Aitchison, ICML 2025, eq. 8). Equivalently λ* ∝ B at fixed ε-scaling-free model and data
  (Bergsma et al. 2025, "Power Lines", τ = B/(ηλD)).
- β2's half-life in examples, h₂ = B·ln(1/2)/ln β2, held fixed as B changes (Marek et al. 2025):
  β2(B) = 0.5^(B/h₂).
- A model EMA's momentum ρ scaled as ρ^κ when B grows by κ (Busbridge et al. 2023), i.e. a fixed
  half-life in examples, ρ(B) = 0.5^(B/h_ema).
- The surge (Li et al. 2024): Adam's ε*(B) may rise, peak and fall with B.

Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

from scalestudy.law.records import Interval

SURGE_VERDICTS = ("peak", "monotone", "inconclusive")


@dataclass(frozen=True)
class ExponentFit:
    """y* ∝ B^exponent across cells, with its 95 % interval and the test of ``hypothesis``."""

    exponent: float
    ci95: Interval | None
    hypothesis: float  # the exponent a rule predicts (1 for λ* ∝ B, 0 for τ*_epoch constant)
    p_value: float | None  # of exponent == hypothesis
    cells: int  # cells the fit used


@dataclass(frozen=True)
class HalfLife:
    """A half-life in examples: the value at a batch size B is 0.5^(B/examples)."""

    examples: float
    ci95: Interval | None = None
    source: str | None = None  # "fitted" | "spec" (held fixed by the study's grid) | "default"


@dataclass(frozen=True)
class DecayCell:
    """One cell's λ* and τ*_epoch = B/(ε·λ*·N), read on its λ curve at the learning rate ``lr``."""

    batch_size: int
    momentum: float
    lr: float
    dataset_size: int
    status: str  # the ε* machinery's: ok | bounded_by_divergence | edge_low | edge_high | too_few_points | ...
    weight_decay: float | None = None
    weight_decay_ci95: Interval | None = None
    tau_epoch: float | None = None
    tau_epoch_ci95: Interval | None = None


@dataclass(frozen=True)
class AdamWTimescales:
    """``law.adamw``: what besides ε a target B needs, each with where it came from."""

    beta1: float | None = None  # the momentum axis of an AdamW study
    tau_epoch: float | None = None  # τ*_epoch, the optimal weight-EMA timescale in epochs
    tau_epoch_ci95: Interval | None = None
    tau_epoch_vs_batch: ExponentFit | None = None  # τ*_epoch ∝ B^x: x = 0 is "τ_epoch constant"
    weight_decay_vs_batch: ExponentFit | None = None  # λ* ∝ B^x: x = 1 is Power Lines' λ ∝ B
    weight_decay_reference: float | None = None  # λ* at reference_batch_size
    weight_decay_reference_ci95: Interval | None = None
    reference_batch_size: int | None = None
    beta2_half_life: HalfLife | None = None  # β2 = 0.5^(B/h₂)
    ema_half_life: HalfLife | None = None  # model EMA ρ = 0.5^(B/h_ema)
    notes: tuple[str, ...] = ()
    cells: tuple[DecayCell, ...] = ()  # each cell's λ* and τ*_epoch (the exponent fits use those with intervals)


@dataclass(frozen=True)
class SurgeTest:
    """``law.surge``: does ε*(B) fall past a peak batch size (Li et al. 2024)?"""

    verdict: str  # peak | monotone | inconclusive
    peak_batch_size: float | None = None
    peak_ci95: Interval | None = None
    p_value: float | None = None  # of "ε*(B) is monotone over the range" (small: a peak)
    reason: str | None = None
    momentum: float | None = None  # of the (momentum, N) line the peak was found on
