"""Why a trial failed: the exception, the user's object at fault and where in the user's code.

A trial that raises is status ``error`` (:func:`~scalestudy.trial.record.trial_status`); the study goes
on. Its reason travels with it: the trainable turns whatever the trial raised into a
:class:`TrialError` carrying a :class:`TrialFailure` (:func:`explained`, in the Ray worker, where the
user's modules and frames are), Ray pickles it to the driver, and :func:`failure_of` finds it again in
whatever Ray wrapped it in (a task error, a Ray Train worker-group error). The driver writes it to the
trial's MLflow run (the tag ``scalestudy.error_reason``, the traceback as ``error.txt``) and the
summary table names the trial by its run name with the reason.

The reason is one line: ``RuntimeError: out of widgets at mypkg/models.py:12 (workload.model
mypkg.models:build)`` — the type and first line of the exception the user's code raised, the
innermost frame in the user's code (not scalestudy's, torch's or the standard library's), and the
spec field and import path of the user's object whose code that is.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalestudy import data, models, optim, tasks
from scalestudy.registry import ContractError, DataError
from scalestudy.usercode import UserExit, in_roots, is_users, module_roots, shown_path, user_frame

MAX_MESSAGE = 300  # characters of the exception's message in the one-line reason


@dataclass(frozen=True)
class TrialFailure:
    """Why a trial failed (see the module's docstring); ``traceback`` is the full text."""

    error: str  # the exception's type name ("" for the user's code exiting: SystemExit is in the message)
    message: str  # its first line
    field: str | None = None  # workload.model | workload.dataset | workload.task | optimizer.name
    target: str | None = None  # the user's object there (import path)
    location: str | None = None  # "mypkg/models.py:12", the innermost frame in the user's code
    traceback: str = ""

    def reason(self) -> str:
        """The one line: ``Type: message at file:line (field import.path)``."""
        text = f"{self.error}: {self.message}" if self.error else self.message
        where = f" at {self.location}" if self.location else ""
        whose = f" ({self.field} {self.target})" if self.field else ""
        return f"{text}{where}{whose}"


class TrialError(RuntimeError):
    """What a failed trial raises to Tune: its :class:`TrialFailure`, pickled whole."""

    def __init__(self, failure: TrialFailure) -> None:
        super().__init__(failure.reason())
        self.failure = failure

    def __reduce__(self):
        return type(self), (self.failure,)


def users_objects(config: Any) -> list[tuple[str, str]]:
    """(spec field, import path) of each of the trial's objects that is the user's code."""
    workload = config.workload
    found = [(field, name) for field, registry, name in (
        ("workload.model", models.MODELS, workload.model), ("workload.dataset", data.DATASETS, workload.dataset),
        ("workload.task", tasks.TASKS, workload.task), ("optimizer.name", optim.OPTIMIZERS, config.optimizer))
        if not registry.is_builtin(name)]
    return found


def _whose(error: BaseException, frame: traceback.FrameSummary | None,
           objects: list[tuple[str, str]]) -> tuple[str | None, str | None]:
    """The user's object at fault: a data error's dataset; the object whose module (else package) holds the
    frame; else the one the error's message names (a contract's message names the call)."""
    if isinstance(error, DataError):
        return next((o for o in objects if o[0] == "workload.dataset"), ("workload.dataset", None))
    if frame is not None:
        modules = [(field, path, path.partition(":")[0]) for field, path in objects]
        for field, path, module in modules:  # the object's own module first, then its package
            location = getattr(sys.modules.get(module), "__file__", None)
            if location is not None and in_roots(frame.filename, (str(Path(location).resolve()),)):
                return field, path
        for field, path, module in modules:
            if in_roots(frame.filename, module_roots([module])):
                return field, path
    return next(((field, path) for field, path in objects if path in str(error)), (None, None))


def describe(error: BaseException, config: Any) -> TrialFailure:
    """The failure of a trial whose config is ``config`` (a ``TrialConfig``) that raised ``error``."""
    shown = error
    # The user's code failed inside a contract's call: describe what it raised (the contract's message
    # names the call; the original keeps the user's frames).
    while isinstance(shown, ContractError) and not isinstance(shown, DataError) and shown.__context__ is not None:
        shown = shown.__context__
    objects = users_objects(config)
    roots = module_roots(path.partition(":")[0] for _, path in objects)
    frame = user_frame(shown.__traceback__, roots)
    field, target = _whose(error, frame, objects)
    lines = [line.strip() for line in str(shown).splitlines() if line.strip()]
    message = (lines[0] if lines else "")[:MAX_MESSAGE]
    kind = "" if isinstance(shown, UserExit) else type(shown).__name__
    location = f"{shown_path(frame.filename)}:{frame.lineno}" if frame is not None else None
    return TrialFailure(kind, message, field, target, location, "".join(traceback.format_exception(error)))


@contextlib.contextmanager
def explained(config: Any) -> Iterator[None]:
    """Run a trial: whatever it raises leaves as a :class:`TrialError` with its reason. ``SystemExit`` and
    ``KeyboardInterrupt`` only when the user's code raised them: Ray stops a trial with ``sys.exit(0)``."""
    try:
        yield
    except TrialError:
        raise
    except BaseException as error:
        if not isinstance(error, Exception):
            roots = module_roots(path.partition(":")[0] for _, path in users_objects(config))
            frames = traceback.extract_tb(error.__traceback__)
            if not frames or not is_users(frames[-1].filename, roots):
                raise
        raise TrialError(describe(error, config)) from None


def failure_of(error: BaseException | None) -> TrialFailure | None:
    """The :class:`TrialFailure` inside whatever Ray wrapped a trial's :class:`TrialError` in, else None."""
    seen: set[int] = set()
    pending = [error]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        failure = getattr(current, "failure", None)
        if isinstance(failure, TrialFailure):
            return failure
        workers = getattr(current, "worker_failures", None)  # Ray Train: rank → the worker's exception
        pending += [getattr(current, "cause", None), getattr(current, "controller_failure", None),
                    *(workers.values() if isinstance(workers, dict) else ()), current.__cause__, current.__context__]
    return None


def failure_from(error: BaseException | str | None) -> TrialFailure:
    """A failed trial's reason from what Tune kept of its error: ours when it carries one, else the error's
    type and first line (an actor that died, a node that went away)."""
    if isinstance(error, BaseException):
        found = failure_of(error)
        if found is not None:
            return found
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        return TrialFailure(type(error).__name__, (lines[0] if lines else "")[:MAX_MESSAGE],
                            traceback="".join(traceback.format_exception(error)))
    text = error or "no error was recorded"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return TrialFailure("", (lines[-1] if lines else text)[:MAX_MESSAGE], traceback=text)
