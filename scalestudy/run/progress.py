"""What a running study shows: its progress (a live display on a terminal, plain lines in logs)
and the summary table printed at the end.

:class:`StudyProgress` is the state (counts, best accuracy, times), fed by the Tune callback
in :mod:`scalestudy.run.callbacks`; ``plain_line`` and ``live_view`` render it. Both are pure
functions of the state and the clock, so they are tested without Ray.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from scalestudy.trial.record import STATUSES


@dataclass
class StudyProgress:
    """Trials of one study so far. ``total`` is the planned count (an upper bound for searches, which
    may stop a cell early)."""

    name: str
    total: int
    running: set[str] = field(default_factory=set)
    finished: dict[str, str] = field(default_factory=dict)  # trial id → ok | diverged | stopped | error
    best: tuple[float, str] | None = None  # (test accuracy, run name)
    started_at: float = 0.0  # monotonic seconds

    def start(self, trial_id: str) -> None:
        self.running.add(trial_id)

    def result(self, run_name: str, test_acc: Any) -> None:
        if isinstance(test_acc, (int, float)) and math.isfinite(test_acc) and (self.best is None
                                                                             or test_acc > self.best[0]):
            self.best = (float(test_acc), run_name)

    def finish(self, trial_id: str, status: str) -> None:
        self.running.discard(trial_id)
        self.finished[trial_id] = status

    @property
    def done(self) -> int:
        return len(self.finished)

    def count(self, status: str) -> int:
        return sum(1 for s in self.finished.values() if s == status)

    def elapsed(self, now: float) -> float:
        return max(0.0, now - self.started_at)

    def eta(self, now: float) -> float | None:
        """Seconds left at the rate trials have finished so far (None before the first finishes)."""
        if self.done == 0:
            return None
        left = max(0, self.total - self.done)
        return self.elapsed(now) / self.done * left


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
    return f"best test_acc {state.best[0]:.4f} ({state.best[1]})" if state.best else "best test_acc -"


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
    grid.add_row("best", Text(f"test_acc {state.best[0]:.4f}  {state.best[1]}") if state.best else Text("-"))
    grid.add_row("time", Text(f"{duration(state.elapsed(now))} elapsed  ·  {_left(state, now)}"))
    return grid


def summary_table(rows: list[dict[str, Any]]) -> str:
    """Best final test accuracy per (section, schedule, m, B) over ε and seeds."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["section"], row["schedule"], row["momentum"], row["batch_size"])].append(row)
    lines = [f"{'section':<10} {'schedule':<17} {'m':>5} {'B':>6} {'trials':>6} {'div':>4} "
             f"{'best lr':>9} {'test_acc':>8} {'gap':>7}"]
    for key in sorted(groups):
        members = groups[key]
        ok = [r for r in members if not r.get("diverged") and r.get("test_acc") is not None
              and math.isfinite(r["test_acc"])]
        diverged = sum(1 for r in members if r.get("diverged"))
        if ok:
            best = max(ok, key=lambda r: r["test_acc"])
            tail = f"{best['lr']:>9.4g} {best['test_acc']:>8.4f} {best.get('gen_gap', math.nan):>7.4f}"
        else:
            tail = f"{'-':>9} {'-':>8} {'-':>7}"
        section, schedule, momentum, batch = key
        lines.append(f"{section:<10} {schedule:<17} {momentum:>5g} {batch:>6} {len(members):>6} {diverged:>4} {tail}")
    return "\n".join(lines)
