"""SGD noise scale and the gradient noise scale.

* SGD noise scale (Smith & Le 2017; Smith et al. 2018): g = ε/(1−m)·(N/B − 1), with N the
  training-set size and B the batch size, both in examples. Test accuracy tracks g, so
  the optimal ε for a batch size B lies on B ∝ ε/(1−m).
* Gradient noise scale B_simple = tr(Σ)/|G|² (McCandlish et al. 2018, "An Empirical Model of
  Large-Batch Training", §2.2 and appendix A.1), estimated from squared gradient norms of the
  same step measured at two batch sizes: in DDP one worker's local gradient (B/W examples) and the
  all-reduced one (B examples); with one worker the first micro-batch and the whole step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def noise_scale(lr, momentum, dataset_size, batch_size):
    """g = ε/(1−m)·(N/B − 1): dimension of a learning rate (the temperature of SGD).

    The one home of the formula (the loop's per-epoch metric, the analysis' g* per cell, the
    law's prediction). Scalars, or numpy arrays / pandas Series element by element."""
    return lr / (1.0 - momentum) * (dataset_size / batch_size - 1.0)


@dataclass(frozen=True)
class GradientNoiseEstimate:
    """Unbiased estimates of |G|² and tr(Σ) from one pair of measurements."""

    grad_sq: float
    trace_sigma: float


def estimate_gradient_noise(
    small_sq_norm: float, small_batch: int, big_sq_norm: float, big_batch: int
) -> GradientNoiseEstimate:
    """From |G_small|² over ``small_batch`` examples and |G_big|² over ``big_batch`` examples.

    McCandlish et al. 2018, appendix A.1: E|G_B|² = |G|² + tr(Σ)/B (eq. A.1), so two batch sizes
    give both unknowns without bias (eq. A.2):
        |G|²  ≈ (B_big·|G_big|² − B_small·|G_small|²) / (B_big − B_small)
        tr(Σ) ≈ (|G_small|² − |G_big|²) / (1/B_small − 1/B_big)
    Single-step values are noisy (|G|² may come out negative); average them before the ratio.
    """
    if big_batch <= small_batch:
        raise ValueError("big_batch must exceed small_batch")
    grad_sq = (big_batch * big_sq_norm - small_batch * small_sq_norm) / (big_batch - small_batch)
    trace_sigma = (small_sq_norm - big_sq_norm) / (1.0 / small_batch - 1.0 / big_batch)
    return GradientNoiseEstimate(grad_sq, trace_sigma)


class GradientNoiseScale:
    """B_simple = tr(Σ)/|G|², with numerator and denominator smoothed separately.

    The single-step estimates are very noisy (|G|² can come out negative), so, as
    McCandlish et al. recommend, each is averaged with an exponential moving average
    before taking the ratio.
    """

    def __init__(self, smoothing: float = 0.95) -> None:
        self.smoothing = smoothing
        self._grad_sq = 0.0
        self._trace = 0.0
        self._weight = 0.0

    def update_from(self, grad_sq: float, trace_sigma: float) -> None:
        self.update(GradientNoiseEstimate(grad_sq, trace_sigma))

    def update(self, estimate: GradientNoiseEstimate) -> None:
        beta = self.smoothing
        self._grad_sq = beta * self._grad_sq + (1 - beta) * estimate.grad_sq
        self._trace = beta * self._trace + (1 - beta) * estimate.trace_sigma
        self._weight = beta * self._weight + (1 - beta)

    @property
    def value(self) -> float | None:
        """The current B_simple in examples; None before any update or while either smoothed
        estimate is not positive (a ratio of noise, never a batch size to report)."""
        if self._weight == 0.0 or not (self._grad_sq > 0.0 and self._trace > 0.0):
            return None
        value = self._trace / self._grad_sq
        return value if math.isfinite(value) else None

    def state_dict(self) -> dict[str, float]:
        return {"grad_sq": self._grad_sq, "trace": self._trace, "weight": self._weight}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self._grad_sq, self._trace, self._weight = state["grad_sq"], state["trace"], state["weight"]
