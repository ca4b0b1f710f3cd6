"""Misspecified simulated studies: accuracy curves shaped like real ones, not like any fit's model.

:mod:`scalestudy.testing.planted` plants Gaussian bumps whose floor is the diverged score, exact power
laws and grids centred on the truth: the estimators' own models, which cannot fail. Real curves
(``scalestudy demo``, the reference studies in :mod:`scalestudy.calibration`) look different, and
these studies plant what they show:

- a peak in x = ln(ε/ε*) that is asymmetric and flat-topped: a split generalised Gaussian
  exp(−½·|x/σ|^p) with σ_left > σ_right (a slow shoulder at small ε, a cliff at large ε) and
  p ≥ 2 (p = 4 is flat on top), as shallow as the reference studies' (a few points of accuracy
  over a factor 10-30 of ε, against a seed sd of about one point);
- a floor at small ε far above the diverged score (training that is too slow still learns);
- divergence that comes on gradually: a trial at ε diverges with a probability rising from 0 to 1
  over a factor ~2 of ε above a cell's threshold;
- seed noise that differs between cells (sd log-uniform over a range, growing with B), is
  larger near the cliff, and has a part each seed shares across the cell's ε (its initialisation
  and data order: in the reference studies that part is about as large as the rest);
- laws that are not exact power laws: a McCandlish et al. (2018) smooth bend
  ε* = ε_max/(1 + B_noise/B) generalised with the momentum factor, or a hinge between tested B;
- an lr grid placed by the user's rule (×2 steps through a reference lr that misses the truth),
  not centred on ε*.

The truth of each cell is the mode of its noise-free curve, ε*(B, m), by construction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scalestudy.trial.readback import EPOCHS_COMPLETED, KEY

ACC_MIN = 0.1  # what a diverged trial scores (chance of 10 classes)


@dataclass(frozen=True)
class PeakShape:
    """The noise-free accuracy curve around ε* (x = ln(ε/ε*)): from ``top`` down by ``left_drop``
    at small ε (σ ``left``) and to ``right_floor`` at large ε before divergence (σ ``right``)."""

    left: float = 2.0  # σ below ε* [e-folds]: the slow shoulder
    right: float = 0.8  # σ above ε* [e-folds]: the cliff
    power: float = 3.0  # 2: Gaussian; 4: flat-topped
    left_drop: float = 0.1  # top − accuracy far below ε* (training too slowly still learns)
    right_floor: float = 0.3  # accuracy far above ε*, before divergence

    def accuracy(self, x: np.ndarray, top: float) -> np.ndarray:
        sigma = np.where(x < 0, self.left, self.right)
        depth = np.where(x < 0, self.left_drop, top - self.right_floor)
        return top - depth * (1.0 - np.exp(-0.5 * np.abs(x / sigma) ** self.power))


@dataclass(frozen=True)
class RealisticLaw:
    """ε*(B, m) = k·B^α·(1−m)^β below a hinge at ``breakdown`` (flat above), or with ``bend`` (B_noise):
    k·B^α·(1−m)^β / (1 + B/B_noise)^α, McCandlish et al.'s ε_max/(1 + B_noise/B) for α = 1."""

    alpha: float
    beta: float
    k: float
    breakdown: float | None = None
    bend: float | None = None

    def lr_opt(self, batch_size: float, momentum: float) -> float:
        b = float(batch_size) if self.breakdown is None else min(float(batch_size), self.breakdown)
        lr = self.k * b ** self.alpha * (1.0 - momentum) ** self.beta
        if self.bend is not None:
            lr /= (1.0 + batch_size / self.bend) ** self.alpha
        return lr


@dataclass(frozen=True)
class RealisticDesign:
    """What a user searches and how noisy her trials are."""

    batch_sizes: Sequence[int] = (16, 32, 64, 128, 256, 512)
    momenta: Sequence[float] = (0.0, 0.9)
    seeds: int = 2
    multipliers: Sequence[float] = (0.125, 0.25, 0.5, 1, 2, 4, 8)  # ×2 steps around the user's rule
    reference_batch_size: int = 64
    rule_alpha: float = 1.0  # the user's rule: ε ∝ B^rule_alpha·(1−m)
    miss: float = 2.0  # the user's reference lr misses ε*(64, 0.9) by up to this factor either way
    noise: tuple[float, float] = (0.005, 0.015)  # range of the cells' seed sd (log-uniform; the reference: 0.009)
    noise_growth: float = 0.25  # sd ∝ (B/B_min)^noise_growth on top of the draw
    seed_share: tuple[float, float] = (0.5, 1.5)  # sd of each seed's shared offset, × the cell's sd
    diverge: tuple[float, float] = (2.0, 4.0)  # onset of divergence, ×ε*: at the largest, smallest B
    shapes: Sequence[PeakShape] = field(default_factory=lambda: (PeakShape(),))


@dataclass(frozen=True)
class RealisticStudy:
    frame: pd.DataFrame
    law: RealisticLaw

    def lr_opt(self, batch_size: int, momentum: float) -> float:
        return self.law.lr_opt(batch_size, momentum)


def random_shape(rng: np.random.Generator) -> PeakShape:
    """A peak like the reference studies' (mnist1d MLP, 8 seeds on a √2 grid): accuracy within 3-10
    points of its top over a factor 10-30 of ε below ε* (left σ 1.5-3 e-folds, a drop of 4-20
    points far below), a cliff above (σ 0.5-1.2, down to 0.1-0.45 before divergence), power 2-4."""
    return PeakShape(left=rng.uniform(1.5, 3.0), right=rng.uniform(0.5, 1.2), power=rng.uniform(2.0, 4.0),
                     left_drop=rng.uniform(0.04, 0.2), right_floor=rng.uniform(0.1, 0.45))


def realistic_study(rng: np.random.Generator, design: RealisticDesign = RealisticDesign(), *,
                    law: RealisticLaw | None = None, shape: PeakShape | None = None,
                    centre: Callable[[int, float], float] | None = None) -> RealisticStudy:
    """One study: a law drawn like the quickstart's truth (α ~ U(0.5, 1), β ~ U(0.6, 1.1)) unless
    given, one peak shape for the study (``shape`` or a random one), each cell's noise drawn.
    ``centre(B, m)``: where each cell's grid is centred instead of the user's rule (a check study
    centred on a fitted law)."""
    if law is None:
        law = RealisticLaw(alpha=rng.uniform(0.5, 1.0), beta=rng.uniform(0.6, 1.1), k=1.0)
    truth_at_reference = law.lr_opt(design.reference_batch_size, 0.9)
    reference = truth_at_reference * math.exp(rng.uniform(-math.log(design.miss), math.log(design.miss)))
    shape = shape or random_shape(rng)
    smallest, largest = min(design.batch_sizes), max(design.batch_sizes)
    rows = []
    for batch_size in design.batch_sizes:
        depth = math.log(batch_size / smallest) / max(math.log(largest / smallest), 1e-9)
        onset = design.diverge[1] * (design.diverge[0] / design.diverge[1]) ** depth
        sd = math.exp(rng.uniform(*np.log(design.noise))) * (batch_size / smallest) ** design.noise_growth
        top = 0.66 - 0.01 * math.log2(batch_size / smallest)
        for momentum in design.momenta:
            truth = law.lr_opt(batch_size, momentum)
            middle = (centre(batch_size, momentum) if centre is not None else
                      reference * (batch_size / design.reference_batch_size) ** design.rule_alpha * (1 - momentum) / 0.1)
            lrs = middle * np.asarray(design.multipliers, float)
            x = np.log(lrs / truth)
            mean = shape.accuracy(x, top)
            # Divergence: probability 0 below onset·ε*, 1 above 2·onset·ε*, log-linear between.
            p_diverge = np.clip(np.log(lrs / (onset * truth)) / math.log(2.0), 0.0, 1.0)
            near_cliff = 1.0 + 2.0 * np.exp(-0.5 * ((x - math.log(onset)) / 0.5) ** 2)
            for seed in range(design.seeds):
                diverged = rng.random(len(lrs)) < p_diverge
                shared = rng.normal(0.0, sd * rng.uniform(*design.seed_share))
                acc = np.clip(mean + shared + rng.normal(0.0, sd, len(lrs)) * near_cliff, 0.0, 1.0)
                for lr, a, d in zip(lrs, acc, diverged):
                    rows.append(_row(batch_size, float(lr), momentum, seed, float(a), bool(d)))
    return RealisticStudy(pd.DataFrame(rows), law)


def _row(batch_size: int, lr: float, momentum: float, seed: int, acc: float, diverged: bool) -> dict:
    return {"batch_size": batch_size, "lr": lr, "momentum": momentum, "seed": seed, "dataset_size": 4000,
            "schedule": "constant", "section": "law", EPOCHS_COMPLETED: 1.0 if diverged else 10.0, "updates": 10.0,
            KEY: f"B{batch_size}-lr{lr:.6g}-m{momentum:g}-s{seed}", "diverged": diverged,
            "test_acc": ACC_MIN if diverged else acc, "train_acc": ACC_MIN if diverged else min(acc + 0.03, 1.0),
            "test_loss": math.nan if diverged else 2.3 * (1 - acc), "train_loss": math.inf if diverged else 2.3 * (1 - acc)}
