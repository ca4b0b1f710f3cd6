"""The gradient noise scale's prediction of the steps-based B_crit, read where that B_crit is measured.

McCandlish et al. (2018, "An Empirical Model of Large-Batch Training", §2.2-2.3) predict
B_crit ≈ B_noise, with B_simple = tr(Σ)/|G|² its practical estimate. B_noise changes as the loss
falls, and the steps-based B_crit describes training to one target, so each trial's B_simple is
read at its target crossing (the trial's ``gradient_noise_scale_at_target``: the smoothed estimate
at the end of the epoch in which it crossed), not at the end of training.

At the crossing every batch size of a line stands at the same test accuracy, so in McCandlish et al.'s
model each batch size's reading (the geometric mean over the seeds of the lr with the fewest updates)
estimates the one B_noise at the target. The estimate is their geometric mean over the line's batch
sizes, and its 95 % interval the Student-t interval of the mean of ln B_simple over them,
exp(mean ± t₀.₉₇₅(k − 1)·sd/√k): an interval for that B_noise, i.e. for the B_crit it predicts,
with the batch sizes as independent replicates (a ratio of noisy sums is closer to log-normal than to
normal, hence the logarithms). It is not the interval of a median of readings pooled over cells at
different points of training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scalestudy.analysis.fits._stats import t_quantile

SOURCE = ("B_simple at the target crossing, geometric mean over the batch sizes of {label} "
          "(Student-t interval of the mean of ln B_simple over them)")


@dataclass(frozen=True)
class NoiseAtTarget:
    """B_simple at the target crossing for one steps-to-target line [examples], or None with a reason."""

    value: float | None
    ci95: tuple[float, float] | None
    batch_sizes: tuple[int, ...]  # the line's batch sizes with a reading
    readings: tuple[float, ...]  # each one's B_simple at the crossing [examples]
    reason: str | None = None  # why value is None, or why ci95 is


def noise_at_target(batch_sizes: Sequence[int], readings: Sequence[float]) -> NoiseAtTarget:
    """The line's estimate from each batch size's reading (NaN or ≤ 0: no reading)."""
    kept = [(int(b), float(v)) for b, v in zip(batch_sizes, readings) if math.isfinite(v) and v > 0]
    sizes, values = tuple(b for b, _ in kept), tuple(v for _, v in kept)
    if not kept:
        return NoiseAtTarget(None, None, (), (), "no trial behind the line has gradient_noise_scale_at_target "
                                                  "(enable diagnostics.gradient_noise_scale with a target)")
    logs = [math.log(v) for v in values]
    mean = sum(logs) / len(logs)
    if len(logs) < 2:
        return NoiseAtTarget(math.exp(mean), None, sizes, values, "one batch size: no interval")
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1))
    half = t_quantile(0.975, len(logs) - 1) * sd / math.sqrt(len(logs))
    return NoiseAtTarget(math.exp(mean), (math.exp(mean - half), math.exp(mean + half)), sizes, values)
