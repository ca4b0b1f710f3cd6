"""What a running study shows: its progress (a live display on a terminal, plain lines in logs), ranking
trials by the study's objective at each trial's final epoch (the value the analysis fits), never at its
best epoch, as the summary table printed at the end does (:mod:`scalestudy.run.summary`).

:class:`StudyProgress` is the state (counts, best objective, times), fed by Tune's events through
:class:`ProgressCallback`; ``plain_line`` and ``live_view`` render it. Both are pure functions of
the state and the clock, so they are tested without starting Ray.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from ray.tune import Callback

from scalestudy.run.callbacks import TrialConfigs, trial_failure
from scalestudy.spec import LEGACY_OBJECTIVE, Objective
from scalestudy.trial.record import STATUSES


@dataclass
class StudyProgress:
    """Trials of one study so far. ``total`` is the planned count: an upper bound for the per-cell
    searches, which may stop a cell early; for the adaptive search, whose budget is in trial-epochs,
    the count if every trial ran all its epochs, so trials that diverge early leave room for more (the
    count then grows with the trials started: never "106/105")."""

    name: str
    total: int
    running: set[str] = field(default_factory=set)
    finished: dict[str, str] = field(default_factory=dict)  # trial key → ok | diverged | stopped | error
    best: tuple[float, str] | None = None  # (the objective at a trial's final epoch, run name)
    started_at: float = 0.0  # monotonic seconds
    # The study's; the default is for progress Tune pickled before objectives (test accuracy).
    objective: Objective = LEGACY_OBJECTIVE
    earlier: int = 0  # of ``finished``, the trials that finished before this run (a resumed or extended study)

    def start(self, trial_id: str) -> None:
        self.running.add(trial_id)
        self.total = max(self.total, self.done + len(self.running))

    def finish(self, trial_id: str, status: str, run_name: str = "", final: Mapping[str, Any] | None = None) -> None:
        """A trial ended with ``final``, its last report: its objective there is the best so far if it
        scores higher (a diverged trial never does), as the summary table ranks trials."""
        self.running.discard(trial_id)
        self.finished[trial_id] = status
        objective = self.objective
        best_score = -math.inf if self.best is None else objective.score({objective.metric: self.best[0]})
        if final is not None and objective.score(final) > best_score:
            self.best = (objective.value(final), run_name)

    def count_earlier(self, finished: Mapping[str, str], best: tuple[float, str] | None) -> None:
        """The trials the study finished before this run, by key, and their best: the count goes on."""
        self.finished.update(finished)
        self.earlier = len(finished)
        objective = self.objective
        if best is not None and (self.best is None or objective.score({objective.metric: best[0]})
                                 > objective.score({objective.metric: self.best[0]})):
            self.best = best

    @property
    def done(self) -> int:
        return len(self.finished)

    def count(self, status: str) -> int:
        return sum(1 for s in self.finished.values() if s == status)

    def elapsed(self, now: float) -> float:
        return max(0.0, now - self.started_at)

    def eta(self, now: float) -> float | None:
        """Seconds left at the rate trials have finished in this run (None before the first finishes)."""
        done_now = self.done - self.earlier  # (pickled before it existed: the class default, 0)
        if done_now <= 0:
            return None
        left = max(0, self.total - self.done)
        return self.elapsed(now) / done_now * left


def duration(seconds: float | None) -> str:
    """``75`` → ``1m15s``, ``3725`` → ``1h02m``; None → ``?``."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _counts(state: StudyProgress) -> str:
    return ", ".join(f"{state.count(status)} {name}" for status, name in
                     zip(STATUSES, ("ok", "diverged", "stopped early", "errored")))


def _best(state: StudyProgress) -> str:
    metric = state.objective.metric
    return f"best final {metric} {state.best[0]:.4f} ({state.best[1]})" if state.best else f"best final {metric} -"


def _left(state: StudyProgress, now: float) -> str:
    if state.done >= state.total and not state.running:
        return "finished"
    return f"about {duration(state.eta(now))} left"


def plain_line(state: StudyProgress, now: float) -> str:
    """One line for logs and CI: ``[  2m31s] quickstart: trials 57/198 done (50 ok, ...), 2 running | ...``."""
    left = _left(state, now)
    return (f"[{duration(state.elapsed(now)):>7}] {state.name}: trials {state.done}/{state.total} done "
            f"({_counts(state)}), {len(state.running)} running | {_best(state)} | {left}")


def live_view(state: StudyProgress, now: float):
    """The live display on a terminal (a rich renderable): a bar, the counts, the best trial, the times."""
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold")
    grid.add_column()
    bar = Table.grid(padding=(0, 1))
    bar.add_row(ProgressBar(total=max(state.total, 1), completed=state.done, width=40),
                Text(f"{state.done}/{state.total} trials"))
    grid.add_row(state.name, bar)
    counts = Text()
    counts.append(f"{len(state.running)} running", style="cyan")
    for status, name, style in zip(STATUSES, ("ok", "diverged", "stopped early", "errored"),
                                   ("green", "yellow", "blue", "red")):
        counts.append("  ·  ")
        counts.append(f"{state.count(status)} {name}", style=style if state.count(status) else "dim")
    grid.add_row("trials", counts)
    grid.add_row("best", Text(f"final {state.objective.metric} {state.best[0]:.4f}  {state.best[1]}") if state.best
                 else Text("-"))
    grid.add_row("time", Text(f"{duration(state.elapsed(now))} elapsed  ·  {_left(state, now)}"))
    return grid


class ProgressCallback(Callback):
    """Study progress: one live display that updates in place on a terminal; elsewhere (CI, log
    files) plain lines, at most one every ``every_s`` seconds and one at the end.

    ``live``: None decides by the stream (a terminal gets the live display), True or False forces
    it. The display is drawn by rich from a :class:`~scalestudy.run.progress.StudyProgress` that Tune's
    events update; a lock keeps rich's refresh thread from reading it mid-update.
    """

    def __init__(self, name: str, total: int, stream: TextIO | None = None, every_s: float = 15.0,
                 live: bool | None = None, *, objective: Objective) -> None:
        self.state = StudyProgress(name=name, total=total, started_at=time.monotonic(), objective=objective)
        self.every_s = every_s
        self.stream = stream
        self.live = live
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._trial_configs = TrialConfigs()
        self._lock = threading.Lock()
        self._display = None  # rich.live.Live while the live display is up
        self._last_line = -math.inf

    def __getstate__(self) -> dict[str, Any]:
        runtime = ("stream", "_trial_configs", "_lock", "_display", "_last_line")
        return {k: v for k, v in self.__dict__.items() if k not in runtime}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.stream = None
        self._init_runtime()

    def setup(self, **info) -> None:
        self.state.started_at = time.monotonic()  # also after Tuner.restore unpickles this callback

    def _out(self) -> TextIO:
        return self.stream or sys.stdout

    def _is_live(self) -> bool:
        if self.live is not None:
            return self.live
        from rich.console import Console

        return Console(file=self._out()).is_terminal

    def count_earlier(self, finished: Mapping[str, str], best: tuple[float, str] | None) -> None:
        """See :meth:`StudyProgress.count_earlier`."""
        with self._lock:
            self.state.count_earlier(finished, best)

    # Trials are counted by trial key: a restored trial that finished before re-announces its end once.
    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        key = self._trial_configs(trial).trial_key
        with self._lock:
            self.state.start(key)
        self._show()

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self._show()  # an epoch is no trial's end: the best waits for the trial's final report

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        config, status = self._trial_configs.end(trial)
        with self._lock:
            self.state.finish(config.trial_key, status, config.run_name, trial.last_result)
        self._show()

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        config, status = self._trial_configs.end(trial, errored=True)
        with self._lock:
            self.state.finish(config.trial_key, status, config.run_name, trial.last_result)
        self._show()
        # One line a failed trial, as it fails (above the live display, which rich redraws below it).
        line = f"trial failed: {config.run_name}: {trial_failure(trial).reason()}"
        if self._display is not None:
            self._display.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(line, file=self._out(), flush=True)

    def on_experiment_end(self, trials, **info) -> None:
        self.close()

    def _render(self):
        with self._lock:
            return live_view(self.state, time.monotonic())

    def _show(self) -> None:
        if self._display is not None:
            return  # rich redraws it (4 times a second) from the state
        if self._is_live():
            from rich.console import Console
            from rich.live import Live

            self._display = Live(console=Console(file=self._out()), get_renderable=self._render,
                                 refresh_per_second=4, transient=False)
            self._display.start()
            return
        now = time.monotonic()
        if now - self._last_line >= self.every_s:
            self._line(now)

    def _line(self, now: float) -> None:
        self._last_line = now
        with self._lock:
            text = plain_line(self.state, now)
        print(text, file=self._out(), flush=True)

    def close(self) -> None:
        """Stop the live display (its last frame stays on screen), or print the last plain line."""
        if self._display is not None:
            self._display.stop()
            self._display = None
        elif -math.inf < self._last_line < math.inf:  # a line was printed, and the last one not yet
            self._line(time.monotonic())
            self._last_line = math.inf  # closed: no more lines
