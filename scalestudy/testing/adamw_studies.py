"""Simulated AdamW studies with a known answer: λ swept at a fixed ε (a known τ*_epoch, λ* ∝ B), and
ε swept under a surge or a monotone ε*(B) (tests and ``scalestudy bench coverage``).

λ studies. The truth is Wang & Aitchison's (ICML 2025, eq. 8): a constant τ*_epoch, so at the study's
fixed ε, λ*(B) = B/(ε·τ*·N), which is Power Lines' λ* ∝ B (Bergsma et al. 2025). The objective over
x = ln(λ/λ*) is a peak of :class:`~scalestudy.testing.realistic.PeakShape`: a Gaussian (``planted``)
or asymmetric and flat-topped like real curves (a slow shoulder at small λ, where the weights forget
too slowly, a cliff at large λ), with a seed noise drawn per cell and a part each seed shares, on a
×2 grid the user centred on a rule that is not the truth (λ ∝ B^½ through a guess up to 2× off), so
that the truth drifts across the grid with B.

ε studies. ε*(B) is Li et al.'s surge (2024, §3), ε_max/(½(√(B_noise/B) + √(B/B_noise))), or a
monotone law (:class:`~scalestudy.testing.realistic.RealisticLaw`: a power law, a smooth bend that
saturates, a hinge flat above it), each cell's grid off the truth by up to 2× either way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalestudy.trial.readback import KEY
from scalestudy.testing.realistic import (
    ACC_MIN,
    PeakShape,
    RealisticDesign,
    RealisticLaw,
    RealisticStudy,
    _row,
    random_shape,
    realistic_study,
)

DATASET_SIZE = 4000  # N of every trial (realistic._row's)
GAUSSIAN = PeakShape(left=1.0, right=1.0, power=2.0, left_drop=0.55, right_floor=ACC_MIN)  # the fits' own model


@dataclass(frozen=True)
class DecayDesign:
    batch_sizes: Sequence[int] = (16, 32, 64, 128, 256, 512)
    momenta: Sequence[float] = (0.9,)
    seeds: int = 3
    lr: float = 1e-3  # the fixed ε of every trial
    lrs: Sequence[float] = ()  # several ε (a study that sweeps both); () = (lr,)
    multipliers: Sequence[float] = tuple(2.0 ** k for k in range(-4, 5))  # ×2 steps around the user's λ rule
    rule_exponent: float = 0.5  # the user's λ ∝ B^rule_exponent
    miss: float = 2.0  # the rule's λ at the middle B misses λ* by up to this factor either way
    noise: tuple[float, float] = (0.005, 0.015)  # range of the cells' seed sd (log-uniform)
    seed_share: tuple[float, float] = (0.5, 1.5)
    beta2_half_life: float | None = 2.0e4  # beta2_half_life_examples held fixed by the grid (None: column absent)
    lr_width: float = 1.5  # e-folds: how the objective falls away from the best ε (several ε only)


@dataclass(frozen=True)
class DecayStudy:
    frame: pd.DataFrame
    tau_epoch: float  # the planted τ*_epoch
    lr: float  # the ε the truth λ* is quoted at

    def weight_decay_opt(self, batch_size: float, lr: float | None = None) -> float:
        """λ* = B/(ε·τ*·N): Wang & Aitchison's constant τ*_epoch at the cell's ε."""
        return float(batch_size) / ((lr or self.lr) * self.tau_epoch * DATASET_SIZE)


def decay_study(rng: np.random.Generator, design: DecayDesign = DecayDesign(), *, tau_epoch: float | None = None,
                shape: PeakShape | None = None) -> DecayStudy:
    """One λ study: τ*_epoch ~ log-U(1, 20) epochs unless given, one peak shape (random real-like unless
    given), each cell's noise drawn."""
    tau = tau_epoch if tau_epoch is not None else math.exp(rng.uniform(0.0, math.log(20.0)))
    shape = shape or random_shape(rng)
    sizes = np.asarray(design.batch_sizes, float)
    middle = math.exp(np.log(sizes).mean())
    study = DecayStudy(pd.DataFrame(), tau, design.lr)
    guess = study.weight_decay_opt(middle) * math.exp(rng.uniform(-math.log(design.miss), math.log(design.miss)))
    lrs = tuple(design.lrs) or (design.lr,)
    rows = []
    for batch_size in design.batch_sizes:
        sd = math.exp(rng.uniform(*np.log(design.noise)))
        top = 0.66 - 0.01 * math.log2(batch_size / sizes.min())
        decays = guess * (batch_size / middle) ** design.rule_exponent * np.asarray(design.multipliers, float)
        for momentum in design.momenta:
            for lr in lrs:
                x = np.log(decays / study.weight_decay_opt(batch_size, lr))
                off_lr = top - 0.05 * (math.log(lr / design.lr) / design.lr_width) ** 2  # best at design.lr
                mean = shape.accuracy(x, off_lr)
                for seed in range(design.seeds):
                    shared = rng.normal(0.0, sd * rng.uniform(*design.seed_share))
                    acc = np.clip(mean + shared + rng.normal(0.0, sd, len(decays)), 0.0, 1.0)
                    for decay, a in zip(decays, acc):
                        rows.append(_decay_row(batch_size, float(lr), momentum, seed, float(a), float(decay),
                                               design.beta2_half_life))
    return DecayStudy(pd.DataFrame(rows), tau, design.lr)


def _decay_row(batch_size, lr, momentum, seed, acc, decay, beta2_half_life) -> dict:
    row = _row(batch_size, lr, momentum, seed, acc, False)
    row.update(optimizer="adamw", weight_decay=decay, tau_epoch=batch_size / (lr * decay * DATASET_SIZE),
               **{KEY: f"{row[KEY]}-wd{decay:.6g}"})
    if beta2_half_life is not None:
        row.update(beta2=0.5 ** (batch_size / beta2_half_life), beta2_half_life_examples=beta2_half_life)
    return row


@dataclass(frozen=True)
class SurgeLaw:
    """Li et al.'s (2024, §3) ε*(B) = ε_max/(½(√(B_noise/B) + √(B/B_noise))): rises, peaks at B_noise, falls."""

    lr_max: float
    noise_batch: float

    def lr_opt(self, batch_size: float, momentum: float) -> float:
        ratio = float(batch_size) / self.noise_batch
        return self.lr_max / (0.5 * (math.sqrt(1.0 / ratio) + math.sqrt(ratio)))


def epsilon_study(rng: np.random.Generator, law, *, seeds: int = 3, shape: PeakShape | None = None,
                  batch_sizes: Sequence[int] = (16, 32, 64, 128, 256, 512, 1024), miss: float = 2.0) -> RealisticStudy:
    """One ε study of ``law`` (a :class:`SurgeLaw` or a monotone :class:`RealisticLaw`), m = 0.9, each cell's
    ×2 grid centred up to ``miss``× off its ε* either way, a random real-like shape unless given."""
    design = RealisticDesign(batch_sizes=tuple(batch_sizes), momenta=(0.9,), seeds=seeds,
                             multipliers=tuple(2.0 ** k for k in range(-4, 4)))
    misses = {b: math.exp(rng.uniform(-math.log(miss), math.log(miss))) for b in batch_sizes}
    return realistic_study(rng, design, law=law, shape=shape or random_shape(rng),
                           centre=lambda b, m: law.lr_opt(b, m) * misses[b])


def monotone_law(rng: np.random.Generator, kind: str) -> RealisticLaw:
    """A non-decreasing ε*(B): ``power`` (α ~ U(0.3, 1)), ``bend`` (saturating at B_noise ~ log-U(64, 512)),
    ``hinge`` (flat above a breakdown ~ log-U(64, 512))."""
    alpha = rng.uniform(0.3, 1.0)
    knee = math.exp(rng.uniform(math.log(64), math.log(512)))
    return {"power": RealisticLaw(alpha, 1.0, 1e-4), "bend": RealisticLaw(alpha, 1.0, 1e-4, bend=knee),
            "hinge": RealisticLaw(alpha, 1.0, 1e-4, breakdown=knee)}[kind]
