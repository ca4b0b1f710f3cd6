"""Steps to a target test accuracy (Shallue et al. 2018), at the resolution of single updates.

Shallue et al.'s measure is the number of training steps until a validation metric first
reaches a target. Evaluating only at epoch ends counts whole epochs of updates, which at
small B is coarse enough to flatten the perfect-scaling regime. Two remedies, chosen by
``diagnostics.target_eval_every``:

* K set: the test accuracy is also evaluated every K updates of the trial (inside epochs),
  from the start or, with ``target_eval_margin`` m, in epochs that begin with the last
  evaluated accuracy at or above target − m. ``updates_to_target`` is the update count of the
  first evaluation at or above the target: a measured number, at most K updates late while the
  in-epoch evaluations run.
* K unset: the evaluations are the initial model (update 0) and every epoch end, and
  ``updates_to_target`` interpolates linearly, in updates, between the last evaluation below
  the target and the first at or above it (:func:`first_crossing`).

``examples_to_target`` is found the same way (B is constant between two consecutive evaluations).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scalestudy.spec import Diagnostics


@dataclass(frozen=True)
class Evaluation:
    updates: int  # optimizer updates before the evaluation
    examples: int  # training examples seen before it
    accuracy: float  # test accuracy [fraction]


def first_crossing(before: Evaluation | None, at: Evaluation, target: float) -> tuple[float, float]:
    """(updates, examples) where the line from ``before`` (below the target) to ``at`` (at or
    above it) crosses ``target``; ``at``'s counts when there is no evaluation before it."""
    if before is None or at.updates == before.updates:
        return float(at.updates), float(at.examples)
    fraction = (target - before.accuracy) / (at.accuracy - before.accuracy)  # in (0, 1]: before < target ≤ at
    return (before.updates + fraction * (at.updates - before.updates),
            before.examples + fraction * (at.examples - before.examples))


class TargetTracker:
    """Watches a trial's evaluations for the first at or above the target accuracy."""

    def __init__(self, target: float, every: int | None, margin: float | None) -> None:
        self.target = target
        self.every = every
        self.margin = margin
        self.last: Evaluation | None = None  # the latest evaluation, while below the target
        self.reached: tuple[float, float] | None = None  # (updates, examples) to the target

    @classmethod
    def from_diagnostics(cls, diagnostics: Diagnostics) -> TargetTracker | None:
        if diagnostics.target_accuracy is None:
            return None
        return cls(diagnostics.target_accuracy, diagnostics.target_eval_every, diagnostics.target_eval_margin)

    def observe(self, evaluation: Evaluation) -> None:
        if self.reached is not None:
            return
        if evaluation.accuracy >= self.target:
            measured = self.every is not None
            self.reached = ((float(evaluation.updates), float(evaluation.examples)) if measured
                            else first_crossing(self.last, evaluation, self.target))
        else:
            self.last = evaluation

    def eval_steps(self, updates_before: int, steps: int) -> range | None:
        """The steps of an epoch (0-based, taken after that many of its updates) to evaluate before."""
        if self.every is None or self.reached is not None:
            return None
        if self.margin is not None and (self.last is None or self.last.accuracy < self.target - self.margin):
            return None
        first = -updates_before % self.every or self.every  # the epoch end is evaluated anyway
        return range(first, steps, self.every) or None

    def metrics(self) -> dict[str, float]:
        if self.reached is None:
            return {}
        updates, examples = self.reached
        return {"updates_to_target": updates, "examples_to_target": examples}

    def state_dict(self) -> dict[str, Any]:
        last = None if self.last is None else asdict(self.last)
        return {"last": last, "reached": self.reached}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last = None if state["last"] is None else Evaluation(**state["last"])
        self.reached = None if state["reached"] is None else tuple(state["reached"])
