"""Terminal progress for a running study and the summary table at its end."""

from __future__ import annotations

import math
import sys
import time
from collections import defaultdict
from typing import Any, TextIO

from ray.tune import Callback


class ProgressCallback(Callback):
    """Prints trials done / running / diverged and the best test accuracy so far."""

    def __init__(self, total: int, stream: TextIO | None = None, every_s: float = 15.0) -> None:
        self.total = total
        self.every_s = every_s
        self.stream = stream
        self.finished: dict[str, dict[str, Any]] = {}
        self.errored: set[str] = set()
        self.running: set[str] = set()
        self.best: tuple[float, str] | None = None
        self._last_print = 0.0
        self._start = time.monotonic()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "stream": None}

    def setup(self, **info) -> None:
        self._start = time.monotonic()  # also after Tuner.restore unpickles this callback

    def _out(self) -> TextIO:
        return self.stream or sys.stdout

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.running.add(trial.trial_id)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        acc = result.get("test_acc")
        if acc is not None and math.isfinite(acc) and (self.best is None or acc > self.best[0]):
            self.best = (acc, trial.config["trial"]["run_name"])
        if time.monotonic() - self._last_print > self.every_s:
            self._print()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.running.discard(trial.trial_id)
        self.finished[trial.trial_id] = trial.last_result or {}
        self._print()

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.running.discard(trial.trial_id)
        self.errored.add(trial.trial_id)
        self._print()

    def _print(self) -> None:
        self._last_print = time.monotonic()
        done = len(self.finished) + len(self.errored)
        diverged = sum(1 for r in self.finished.values() if r.get("diverged"))
        best = f"best test_acc {self.best[0]:.4f} ({self.best[1]})" if self.best else "best test_acc -"
        elapsed = time.monotonic() - self._start
        print(f"[{elapsed:6.0f}s] trials {done}/{self.total} done, {len(self.running)} running, "
              f"{diverged} diverged, {len(self.errored)} errored | {best}", file=self._out(), flush=True)


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
