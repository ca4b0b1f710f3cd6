"""What each task reports, without torch: its metrics beyond the loss, their directions and its
default objective (``scalestudy validate`` reads these; the task classes point at them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

MAX, MIN = "max", "min"
SPLITS = ("train", "test")


@dataclass(frozen=True)
class TaskInfo:
    """What a task reports, without torch: its metrics beyond the loss and their directions."""

    metrics: tuple[str, ...]  # per split, beyond "loss": ("acc",) reports train_acc and test_acc
    objective: tuple[str, str]  # the default objective: (metric, "max" | "min")
    directions: Mapping[str, str] = field(default_factory=dict)  # metric (no split prefix) → max | min

    def direction(self, metric: str) -> str | None:
        """``max``/``min`` for a reported metric (``test_acc``, ``train_loss``, ...); None if unknown."""
        split, _, name = metric.partition("_")
        if split not in SPLITS or (name != "loss" and name not in self.metrics):
            return None
        return MIN if name == "loss" else self.directions.get(name, MAX)

    def metric_names(self) -> tuple[str, ...]:
        """Every per-split metric the task reports: train_loss, test_loss, train_<m>, test_<m>."""
        return tuple(f"{split}_{name}" for name in ("loss", *self.metrics) for split in SPLITS)


TASK_INFO: dict[str, TaskInfo] = {
    "classification": TaskInfo(("acc",), ("test_acc", MAX), {"acc": MAX}),
    "language_model": TaskInfo(("perplexity",), ("test_loss", MIN), {"perplexity": MIN}),
    "nqm": TaskInfo((), ("test_loss", MIN)),
}
