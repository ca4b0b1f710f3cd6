"""When a law is not used: the one home of the refusals of ``recommend``, ``plan`` and ``check-law``.

A law is refused at a point (B, m[, N]) when

- it has **no 95 % interval** of ε* at all: fitted on no more cells than it has parameters (a law
  of 2 cells goes through them exactly and says nothing of its own error), or written before law
  files held the parameters' covariance (``prediction``);
- its interval there is **too wide**: an end lies more than ``max_interval_ratio`` (default 4)
  times above or below ε* — the interval is symmetric in ln ε, so that is a width high/low of at
  most 16. The shipped reference study (8 seeds, 13 lrs in √2 steps) gives ×2.3-2.5 each side inside
  its batch sizes, its first 2 seeds ×3.2-3.4; a law whose interval reaches ×1000 (one the issue
  met: 24.9 [0.026, 23682]) pins nothing down;
- B lies **too far outside** the batch sizes it was fitted on: more than ``max_extrapolation``
  (default 4) times above the largest or below the smallest. ``check-law`` does not apply this one:
  checking the law at the scale one will train at is how an extrapolation is tested.

``force`` turns each refusal into a loud warning. :func:`law_objective` says which objective a law
was fitted on (``check-law`` refuses a check study of another). Standard library only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scalestudy.law.records import LawError
from scalestudy.law.scaling import Prediction, PredictionError, ScalingLaw

MAX_INTERVAL_RATIO = 4.0  # an end of the 95 % interval at most this factor from ε* (high/ε*, ε*/low)
MAX_EXTRAPOLATION = 4.0  # B at most this factor above the largest (below the smallest) fitted batch size
LEGACY_LAW_OBJECTIVE = ("test_acc", "max")  # laws written before objectives were recorded
OBJECTIVE_NOTE = "objective: "  # how those files named another objective, in their notes


class LawRefused(PredictionError):
    """A law this use refuses (no interval, too wide, too far out); ``str(error)`` is one line."""


@dataclass(frozen=True)
class Guard:
    """How far a law may be trusted (the ``--max-interval-ratio``, ``--max-extrapolation`` and
    ``--force`` flags); ``max_extrapolation`` None: not checked."""

    max_interval_ratio: float = MAX_INTERVAL_RATIO
    max_extrapolation: float | None = MAX_EXTRAPOLATION
    force: bool = False

    def __post_init__(self) -> None:
        for flag, value in (("--max-interval-ratio", self.max_interval_ratio),
                            ("--max-extrapolation", self.max_extrapolation)):
            if value is not None and not (math.isfinite(value) and value >= 1):
                raise LawError(f"{flag}: must be a number ≥ 1, got {value}")


def interval_factor(prediction: Prediction) -> float | None:
    """How far the 95 % interval of ε* reaches from it: max(high/ε*, ε*/low); None without one."""
    if prediction.lr_ci95 is None:
        return None
    low, high = prediction.lr_ci95
    return max(high / prediction.lr, prediction.lr / low) if low > 0 else math.inf


def extrapolation_factor(law: ScalingLaw, batch_size: float) -> float:
    """How far B lies outside the fitted batch sizes: B/largest above them, smallest/B below, 1 inside."""
    span = law.domain.batch_size
    if span is None:
        return 1.0
    return max(batch_size / span.high, span.low / batch_size, 1.0)


def parameter_count(law: ScalingLaw) -> int:
    """ln k and the exponents the law fitted."""
    return 1 + sum(value is not None for value in (law.alpha, law.beta, law.gamma))


def no_interval_reason(law: ScalingLaw) -> str | None:
    """Why the law gives no 95 % interval of ε* (None when it gives one), and what to run."""
    if law.prediction is not None:
        return None
    cells, parameters = law.fitted_on.cells, parameter_count(law)
    if cells <= parameters:
        lost = ", ".join(law.fitted_on.excluded_cells[:3])
        where = (f"the cells that lost their optimum ({lost}{', ...' if len(law.fitted_on.excluded_cells) > 3 else ''})"
                 if lost else "each cell")
        return (f"the law was fitted on {cells} cell{'s' if cells != 1 else ''}: a law needs ≥ {parameters + 1} for "
                f"a 95 % interval of ε* (more cells than its {parameters} parameters); add lrs around the optimum "
                f"in {where}, or seeds, or more batch sizes, and analyze again")
    return ("the law file has no 'prediction' (the covariance of its parameters, which files written by earlier "
            "versions lack): no 95 % interval of ε* can be given; analyze the study again with this version")


def refusals(law: ScalingLaw, prediction: Prediction, guard: Guard) -> list[str]:
    """Every reason to refuse the law at ``prediction``'s point, each with what to run instead."""
    where = _point(prediction)
    reasons = []
    missing = no_interval_reason(law)
    if missing is not None:
        reasons.append(missing)
    far = extrapolation_factor(law, prediction.batch_size)
    span = law.domain.batch_size
    if guard.max_extrapolation is not None and far > guard.max_extrapolation:
        side, edge = ("largest", span.high) if prediction.batch_size > span.high else ("smallest", span.low)
        reasons.append(f"B={prediction.batch_size:g} is ×{far:.3g} beyond the {side} batch size the law was fitted "
                       f"on ({edge:g}; limit ×{guard.max_extrapolation:g}, --max-extrapolation): run a few cells at "
                       f"B={prediction.batch_size:g} and check-law the law there, or refit with them")
    factor = interval_factor(prediction)
    if factor is not None and factor > guard.max_interval_ratio:
        low, high = prediction.lr_ci95
        hint = (f"it widens away from the fitted batch sizes {span.low:g}-{span.high:g}: run cells nearer "
                f"B={prediction.batch_size:g} and refit" if far > 1 else
                "add seeds, and lrs around each cell's optimum, and analyze again")
        reasons.append(f"the law's 95 % interval of ε* at {where} is [{low:.3g}, {high:.3g}], up to ×{factor:.3g} "
                       f"from its {prediction.lr:.3g} (limit ×{guard.max_interval_ratio:g}, --max-interval-ratio): "
                       f"it does not pin the learning rate down; {hint}")
    return reasons


def enforce(law: ScalingLaw, predictions: list[Prediction], guard: Guard) -> list[str]:
    """Raise :class:`LawRefused` on the first refusal at any of ``predictions``; with ``guard.force``,
    return the refusals as loud warnings instead (empty when there are none)."""
    found: list[str] = []
    for prediction in predictions:
        found += [reason for reason in refusals(law, prediction, guard) if reason not in found]
    if found and not guard.force:
        raise LawRefused(f"{found[0]} (--force to use it anyway)")
    return [f"FORCED (--force), this learning rate may be far off: {reason}" for reason in found]


def law_objective(law: ScalingLaw) -> tuple[str, str]:
    """(metric, direction) the law's ε* maximise or minimise: the file's ``objective``; in files
    written before it, the note that named a non-default objective, else test accuracy."""
    if law.objective is not None:
        return law.objective.metric, law.objective.direction
    for note in law.notes:
        if note.startswith(OBJECTIVE_NOTE):
            metric, _, rest = note[len(OBJECTIVE_NOTE):].partition(", ")
            return metric, "min" if rest.startswith("min") else "max"
    return LEGACY_LAW_OBJECTIVE


def _point(prediction: Prediction) -> str:
    n = f", N={prediction.dataset_size}" if prediction.dataset_size else ""
    return f"B={prediction.batch_size:g}, m={prediction.momentum:g}{n}"


__all__ = ["MAX_EXTRAPOLATION", "MAX_INTERVAL_RATIO", "Guard", "LawRefused", "enforce", "extrapolation_factor",
           "interval_factor", "law_objective", "no_interval_reason", "parameter_count", "refusals"]
