"""The critical batch size three ways, side by side, and whether they agree.

1. **Steps to target** (Shallue et al. 2018; McCandlish et al. 2018, eqs. 2.7–2.11): the fewest
   updates S to the target accuracy at each batch size, fitted with S(B) = S_min·(1 + B_crit/B)
   (:mod:`scalestudy.analysis.fits.steps_to_target`, :mod:`scalestudy.law.transition`), profile-likelihood
   95 % interval. Fitted per (momentum, dataset size) line; the headline is the line at the
   largest momentum (the setting production training usually uses), then the largest N,
   among the lines where B_crit could be placed.
2. **Gradient noise scale**: B_simple = tr(Σ)/|G|², which McCandlish et al. find predicts B_crit
   (to within a factor of a few). Read at the target crossing on the steps line's trials
   (:mod:`scalestudy.analysis.fits.gradient_noise_at_target`: B_noise changes over training, and the steps'
   B_crit is measured at the crossing), with an interval for the B_crit it predicts. Tables without
   ``gradient_noise_scale_at_target`` (or no fitted steps line) fall back to the median of the final
   B_simple over the trials at each cell's best lr (:mod:`scalestudy.analysis.fits.gradient_noise_scale`), read at
   the end of training, and its source says so.
3. **Breakdown of the lr law**: the batch size where ε*(B) stops following one power law, with
   the profile-likelihood interval of the breakdown test (:mod:`scalestudy.analysis.fits.breakdown`).

They measure related things (where more batch stops buying fewer updates; where the lr can no
longer grow with B), so they agree when their 95 % intervals overlap, or, for an estimate
without an interval, when the values lie within a factor of :data:`FACTOR` of each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from scalestudy.analysis.fits.breakdown import Breakdown
from scalestudy.analysis.fits.gradient_noise_at_target import SOURCE as AT_TARGET
from scalestudy.analysis.fits.gradient_noise_scale import CriticalBatch
from scalestudy.analysis.fits.steps_to_target import StepsLine, StepsToTarget

FACTOR = 2.0  # values without an interval agree when within this factor of each other
METHODS = {"steps_to_target": "steps to target", "gradient_noise": "gradient noise scale",
           "lr_breakdown": "breakdown of the lr law"}
END_OF_TRAINING = ("median B_simple at the end of training over the trials at each cell's best lr (distribution-free "
                   "interval of the median; not read at the target crossing, where the steps' B_crit is measured)")


@dataclass(frozen=True)
class CriticalEstimate:
    """One way's B_crit [examples] with its 95 % interval, or None with the reason."""

    method: str  # steps_to_target | gradient_noise | lr_breakdown
    value: float | None
    ci95: tuple[float, float] | None
    reason: str | None = None  # why value is None, or why ci95 is
    source: str | None = None  # how it was taken, when a method has several ways (the gradient noise scale)

    @property
    def label(self) -> str:
        return METHODS[self.method]


@dataclass(frozen=True)
class CriticalBatchComparison:
    steps_to_target: CriticalEstimate
    gradient_noise: CriticalEstimate
    lr_breakdown: CriticalEstimate
    steps_line: StepsLine | None  # the line the steps-to-target estimate comes from
    all_lines: tuple[StepsLine, ...]  # every line whose B_crit was placed
    target: float | None  # its target accuracy [fraction]
    verdict: str  # agree | disagree | single (one estimate) | none
    agreement: str  # one or two sentences for the report

    @property
    def estimates(self) -> tuple[CriticalEstimate, ...]:
        return self.steps_to_target, self.gradient_noise, self.lr_breakdown

    def smallest(self) -> CriticalEstimate | None:
        """The smallest estimate with a value (the limit a plan respects first)."""
        known = [e for e in self.estimates if e.value is not None]
        return min(known, key=lambda e: e.value) if known else None


def headline_line(steps: StepsToTarget) -> StepsLine | None:
    """The line whose B_crit is reported: largest momentum, then largest N, among fitted lines."""
    fitted = [line for line in steps.lines if line.transition is not None]
    return max(fitted, key=lambda line: (line.momentum, line.dataset_size or 0)) if fitted else None


def critical_batch_sizes(steps: StepsToTarget, noise: CriticalBatch, breakdown: Breakdown) -> CriticalBatchComparison:
    line = headline_line(steps)
    if line is not None:
        fit = line.transition
        by_steps = CriticalEstimate("steps_to_target", fit.value, fit.ci95, line.reason)
    else:
        reasons = [f"{line.label}: {line.reason}" for line in steps.lines]
        by_steps = CriticalEstimate("steps_to_target", None, None,
                                    "; ".join(reasons) if reasons else (steps.reason or "no line reached the target"))
    by_noise = noise_estimate(line, noise)
    if breakdown.batch_size is not None:
        by_breakdown = CriticalEstimate("lr_breakdown", breakdown.batch_size, breakdown.ci95)
    else:
        by_breakdown = CriticalEstimate("lr_breakdown", None, None, f"breakdown test {breakdown.outcome}: "
                                                                    f"{breakdown.reason}")
    verdict, sentence = agreement((by_steps, by_noise, by_breakdown))
    fitted = tuple(other for other in steps.lines if other.transition is not None)
    return CriticalBatchComparison(by_steps, by_noise, by_breakdown, line, fitted, steps.target, verdict, sentence)


def noise_estimate(line: StepsLine | None, noise: CriticalBatch) -> CriticalEstimate:
    """B_simple at the target crossing of the headline steps line, else the end-of-training median."""
    at_target = line.noise if line is not None else None
    if at_target is not None and at_target.value is not None:
        return CriticalEstimate("gradient_noise", at_target.value, at_target.ci95, at_target.reason,
                                AT_TARGET.format(label=line.label))
    return CriticalEstimate("gradient_noise", noise.value, noise.ci95,
                            noise.reason if noise.value is None else noise.ci95_reason, END_OF_TRAINING)


def consistent(a: CriticalEstimate, b: CriticalEstimate) -> bool:
    """Overlapping 95 % intervals; without both intervals, values within :data:`FACTOR`."""
    if a.ci95 is not None and b.ci95 is not None:
        return a.ci95[0] <= b.ci95[1] and b.ci95[0] <= a.ci95[1]
    return max(a.value, b.value) / min(a.value, b.value) <= FACTOR


def agreement(estimates: tuple[CriticalEstimate, ...]) -> tuple[str, str]:
    """(verdict, sentence) over the estimates that have a value."""
    known = [e for e in estimates if e.value is not None]
    if not known:
        return "none", "None of the three could be estimated from this study."
    if len(known) == 1:
        return "single", f"Only the {known[0].label} gives an estimate; there is nothing to compare it with."
    spread = max(e.value for e in known) / min(e.value for e in known)
    apart = [(a, b) for a, b in combinations(known, 2) if not consistent(a, b)]
    names = " and ".join(e.label for e in known) if len(known) == 2 else "the three"
    if not apart:
        return "agree", (f"{names[0].upper() + names[1:]} agree: their 95 % intervals overlap (or, without an "
                         f"interval, the values lie within a factor of {FACTOR:g}); the largest is {spread:.2g}× "
                         "the smallest.")
    pairs = "; ".join(f"the {a.label} ({a.value:.4g}) and the {b.label} ({b.value:.4g}) differ "
                      f"{max(a.value, b.value) / min(a.value, b.value):.2g}×, {_apart_by(a, b)}" for a, b in apart)
    return "disagree", (f"They disagree: {pairs}. McCandlish et al. find B_simple "
                        "close to B_crit only up to a factor of a few, and the lr law can break down before "
                        "or after the steps stop scaling; plan with the smallest.")


def _apart_by(a: CriticalEstimate, b: CriticalEstimate) -> str:
    """How two inconsistent estimates were judged apart: by their intervals, or (an estimate without
    one, e.g. a B_crit the batch sizes tested cannot bound above) by more than :data:`FACTOR`, which
    says less, so the missing interval's reason is given."""
    if a.ci95 is not None and b.ci95 is not None:
        return "beyond their intervals"
    lacking = "; ".join(f"the {e.label} has no interval" + (f" ({e.reason})" if e.reason else "")
                        for e in (a, b) if e.ci95 is None)
    return f"more than a factor of {FACTOR:g} apart ({lacking})"
