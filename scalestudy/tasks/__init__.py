"""Task registry: what a trial minimises and what it reports besides the loss.

A task owns the loss, the per-batch metric sums (accumulated on the device, read once per epoch)
and the names of its metrics, and says which metric a study optimises by default:

* ``classification``: cross-entropy; ``loss`` and ``acc`` per split (``train_acc``, ``test_acc``,
  and ``gen_gap`` = train_acc − test_acc); objective ``test_acc``, maximised.
* ``language_model``: next-token cross-entropy over every position of each sequence; ``loss``
  (mean per token) and ``perplexity`` = exp(loss) per split, no accuracy; objective ``test_loss``,
  minimised.
* ``nqm``: the noisy quadratic model (``workload: {model: nqm}``): the mean of the model's per-example
  losses; ``loss`` per split, ``test_loss`` = L(θ) exactly; objective ``test_loss``, minimised.
* the user's own, by import path (:class:`scalestudy.tasks.base.UserTask` states the contract).

Importing this package does not import torch: ``scalestudy validate`` checks a task's name, its
metric names and the study's objective from :class:`TaskInfo` alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scalestudy.registry import Registry
from scalestudy.tasks.info import MAX, MIN, TASK_INFO, TaskInfo

if TYPE_CHECKING:
    from scalestudy.tasks.base import Task

__all__ = ["TASKS", "TASK_INFO", "TaskInfo", "build_task", "task_info", "user_task_info"]

TASKS = Registry("task", {
    "classification": "scalestudy.tasks.classification:Classification",
    "language_model": "scalestudy.tasks.language_model:LanguageModel",
    "nqm": "scalestudy.tasks.nqm:NoisyQuadraticTask",
}, import_paths=True, entry_points="scalestudy.tasks",
   contract="an object (or a class) with loss(outputs, targets), and optionally names, metrics, directions, objective")


def _user_object(name: str) -> Any:
    """The object an import path names (a class is instantiated with no arguments)."""
    target = TASKS.get(name)
    return target() if isinstance(target, type) else target


def task_info(name: str) -> TaskInfo:
    """The :class:`TaskInfo` of a registered task, or of the user's task an import path names
    (importing it); ``ValueError`` with one line when the user's object breaks the contract."""
    if name in TASK_INFO:
        return TASK_INFO[name]
    return user_task_info(name, _user_object(name))


def user_task_info(name: str, task: Any) -> TaskInfo:
    """Check a user's task object against the contract (see :class:`scalestudy.tasks.base.UserTask`)."""
    if not callable(getattr(task, "loss", None)):
        raise ValueError(f"task {name!r}: needs a loss(outputs, targets) method returning the batch's mean loss")
    names = tuple(getattr(task, "names", ()) or ())
    if names and not callable(getattr(task, "metrics", None)):
        raise ValueError(f"task {name!r}: names {list(names)} given but no metrics(outputs, targets) method")
    for metric in names:
        if not isinstance(metric, str) or not metric.isidentifier() or metric == "loss":
            raise ValueError(f"task {name!r}: metric names must be identifiers other than 'loss', got {metric!r}")
    directions = dict(getattr(task, "directions", {}) or {})
    for metric, direction in directions.items():
        if metric not in names or direction not in (MAX, MIN):
            raise ValueError(f"task {name!r}: directions must map its metric names {list(names)} to max or min, "
                             f"got {metric!r}: {direction!r}")
    info = TaskInfo(names, ("test_loss", MIN), directions)
    objective = getattr(task, "objective", None) or info.objective
    if (not isinstance(objective, (tuple, list)) or len(objective) != 2 or info.direction(str(objective[0])) is None
            or objective[1] not in (MAX, MIN)):
        raise ValueError(f"task {name!r}: objective must be (metric, max|min) with a metric among "
                         f"{', '.join(info.metric_names())}, got {objective!r}")
    return TaskInfo(names, (str(objective[0]), str(objective[1])), directions)


def build_task(name: str) -> Task:
    """The task object the epoch loop calls (torch is imported here)."""
    target = TASKS.get(name)
    if name in TASK_INFO:
        return target()
    from scalestudy.tasks.base import UserTask

    return UserTask(_user_object(name), task_info(name))
