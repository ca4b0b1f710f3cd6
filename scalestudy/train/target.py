"""Steps to a target test metric (Shallue et al. 2018), without epoch artefacts.

The target may be on any test metric of the task (``diagnostics.target: {metric, value}``;
``target_accuracy`` is test_acc's shortcut): reached at or above a maximised metric's value, at or
below a minimised one's (a language model's ``test_loss``). Below, "accuracy" stands for it.

Shallue et al.'s measure is the number of training steps until a validation metric first reaches a
target. The evaluations are the initial model (update 0), every epoch end and, with
``diagnostics.target_eval_every`` K, evaluations inside epochs at multiples of K updates of the trial:

* without ``target_eval_margin``: at every multiple of K;
* with a margin m: at every multiple of K while the last evaluation is within m of the target, and in
  the first epoch also at K, 2K, 4K, … (a doubling grid). The first epoch starts from the untrained
  model, far from the target; without evaluations inside it, a crossing there is known only to lie
  in (0, first epoch end] (an audit found a crossing at 47 updates reported as the epoch's 250).
  The doubling grid costs log₂(epoch/K) evaluations and leaves every bracket at most a factor 2 wide
  in updates, which the interpolation below resolves well.

The crossing is interpolated between the evaluations around it, or left-censored when it came
before the first evaluation after the initial model (:mod:`scalestudy.train.crossing`): then
``updates_to_target`` stays unset and ``updates_to_target_at_most`` (``examples_to_target_at_most``)
holds the bound. It is recomputed once more at the evaluation after the first one at the target,
whose slope the interpolant uses; until then (or when training ends first) it uses the evaluations
before it.

B_simple at the crossing: the smoothed gradient noise scale at the end of the epoch in which the
crossing was found (``gradient_noise_scale_at_target``), so that it is compared with the steps-based
B_crit at the same point in training (McCandlish et al. 2018: B_noise changes as the loss falls).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from scalestudy.train.crossing import Crossing, Evaluation, crossing

if TYPE_CHECKING:
    from scalestudy.spec import Diagnostics
    from scalestudy.tasks import TaskInfo

__all__ = ["Crossing", "Evaluation", "TargetTracker", "crossing"]


class TargetTracker:
    """Watches a trial's evaluations for the first at or past the target (``metric``: its name,
    ``maximise``: its direction)."""

    def __init__(self, target: float, every: int | None, margin: float | None, metric: str = "test_acc",
                 maximise: bool = True) -> None:
        self.target = target
        self.metric = metric
        self.sign = 1.0 if maximise else -1.0
        self.every = every
        self.margin = margin
        self.before: tuple[Evaluation, ...] = ()  # the last two evaluations short of the target, latest last
        self.at: Evaluation | None = None  # the first evaluation at or past it
        self.after: Evaluation | None = None  # the one after that: the crossing is then final
        self.fixed: Crossing | None = None  # a crossing from a checkpoint written before these fields
        self.noise_at_target: float | None = None  # B_simple at the end of the crossing's epoch [examples]
        self.noise_read = False  # read once, at the first epoch end after the crossing was found

    @classmethod
    def from_diagnostics(cls, diagnostics: Diagnostics, task: TaskInfo) -> TargetTracker | None:
        target = diagnostics.steps_target
        if target is None:
            return None
        return cls(target.value, diagnostics.target_eval_every, diagnostics.target_eval_margin, target.metric,
                   task.direction(target.metric) != "min")

    @property
    def last(self) -> Evaluation | None:
        """The latest evaluation short of the target."""
        return self.before[-1] if self.before else None

    @property
    def reached(self) -> Crossing | None:
        """The crossing found so far (None: not reached)."""
        if self.fixed is not None or self.at is None:
            return self.fixed
        return crossing(self.before, self.at, self.target, self.after)

    @property
    def settled(self) -> bool:
        """Whether no further evaluation can change the crossing."""
        return self.fixed is not None or self.after is not None

    def _short_of(self, value: float, by: float = 0.0) -> bool:
        """Whether ``value`` is more than ``by`` short of the target (below it, or above a minimised one's)."""
        return self.sign * (value - self.target) < -by

    def observe(self, evaluation: Evaluation) -> None:
        if self.settled:
            return
        if self.at is not None:
            self.after = evaluation
        elif self._short_of(evaluation.value):
            self.before = (*self.before[-1:], evaluation)
        else:
            self.at = evaluation

    def _near(self) -> bool:
        """Whether evaluations run at every multiple of K: no margin, or the last one short of the
        target within it (or already past the target: one more for the crossing's slope)."""
        if self.margin is None or self.at is not None:
            return True
        return self.last is not None and not self._short_of(self.last.value, self.margin)

    def evaluates_in_epoch(self, updates_before: int) -> bool:
        """Whether the epoch starting after ``updates_before`` updates may have in-epoch evaluations
        (the per-update work runs only in the epochs that need it)."""
        if self.every is None or self.settled:
            return False
        return updates_before == 0 or self._near()

    def evaluates_at(self, updates: int, first_epoch: bool) -> bool:
        """Whether to evaluate after ``updates`` updates of the trial (inside an epoch): at multiples
        of K when near the target, else, in the first epoch, on the doubling grid K, 2K, 4K, …"""
        if self.every is None or self.settled or updates % self.every:
            return False
        multiple = updates // self.every
        return self._near() or (first_epoch and (multiple & (multiple - 1)) == 0)

    def read_noise_scale(self, value: float | None) -> None:
        """The gradient noise scale at this epoch's end: kept when the crossing was found in this epoch."""
        if self.reached is not None and not self.noise_read:
            self.noise_at_target, self.noise_read = value, True

    def metrics(self) -> dict[str, float]:
        reached = self.reached
        if reached is None:
            return {}
        suffix = "_at_most" if reached.censored else ""
        values = {f"updates_to_target{suffix}": reached.updates, f"examples_to_target{suffix}": reached.examples}
        if self.noise_at_target is not None:
            values["gradient_noise_scale_at_target"] = self.noise_at_target
        return values

    def state_dict(self) -> dict[str, Any]:
        def plain(value):
            return None if value is None else asdict(value)
        return {"before": [asdict(e) for e in self.before], "at": plain(self.at), "after": plain(self.after),
                "fixed": plain(self.fixed), "noise_at_target": self.noise_at_target, "noise_read": self.noise_read}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "before" not in state:  # a checkpoint from before censoring: {"last": ..., "reached": (u, e)}
            last = state["last"]
            if last is not None and "accuracy" in last:  # ... or from before targets on any metric
                last = {"updates": last["updates"], "examples": last["examples"], "value": last["accuracy"]}
            reached = state["reached"]
            state = {"before": [] if last is None else [last], "at": None, "after": None,
                     "fixed": None if reached is None else {"updates": reached[0], "examples": reached[1]}}
        self.before = tuple(Evaluation(**e) for e in state["before"])
        self.at = None if state["at"] is None else Evaluation(**state["at"])
        self.after = None if state["after"] is None else Evaluation(**state["after"])
        self.fixed = None if state["fixed"] is None else Crossing(**state["fixed"])
        self.noise_at_target = state.get("noise_at_target")
        # A crossing found before B_simple was read at it cannot be read any more.
        self.noise_read = state.get("noise_read", self.reached is not None)
