"""Ctrl-C (SIGINT) and SIGTERM during a study: caught, the study stopped, and said so.

Ray Tune installs its own SIGINT handler inside ``Tuner.fit()``: the first Ctrl-C sets an
"experiment interrupted" event, Tune snapshots its state and ``fit()`` *returns normally*, with
the running trials unfinished; nothing in the returned results says it was interrupted, and SIGTERM
is not caught at all (the driver dies, MLflow keeps every run RUNNING). So the study sets
``TUNE_DISABLE_SIGINT_HANDLER=1`` for its fit and catches both signals itself
(:class:`SignalCatcher`): the first one is recorded and, while the fit runs, handed to Tune's own
stop (the handler Tune keeps on SIGUSR1 for the same purpose, which sets that event), so Tune still
writes its last snapshot and ``--resume`` continues every trial from its checkpoint. A second
signal, or one outside the fit, raises ``KeyboardInterrupt`` at once. Either way the study raises
:class:`StudyInterrupted` once MLflow has been told (the study and its unfinished trial runs
KILLED), and the command exits 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from dataclasses import dataclass

CAUGHT = (signal.SIGINT, signal.SIGTERM)
SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


def exit_code(signal_number: int) -> int:
    """The shell's convention for a process ended by a signal: 128 + its number (SIGINT 130, SIGTERM 143)."""
    return 128 + int(signal_number)


@dataclass
class InterruptedStudy:
    """What an interrupted study leaves: its trials by state, and what MLflow was told."""

    # None when MLflow could not be read: trials of the study that ended (ok, diverged, stopped early,
    # errored), earlier runs included; trial runs that had started and were closed KILLED.
    finished: int | None
    unfinished: int | None
    planned: int  # the study's planned trials (an upper bound for adaptive searches)
    marked: bool  # MLflow has the study's run and its unfinished trial runs marked KILLED


class StudyInterrupted(Exception):
    """The study was stopped by SIGINT or SIGTERM. ``state`` is None when it stopped before its MLflow
    parent run existed (nothing to resume)."""

    def __init__(self, signal_number: int, state: InterruptedStudy | None) -> None:
        self.signal_number = int(signal_number)
        self.state = state
        super().__init__(f"interrupted by {self.signal_name}")

    @property
    def signal_name(self) -> str:
        return SIGNAL_NAMES.get(self.signal_number, f"signal {self.signal_number}")

    @property
    def exit_code(self) -> int:
        return exit_code(self.signal_number)


class SignalCatcher:
    """Catches SIGINT and SIGTERM while the study runs (a context manager; the previous handlers come
    back on exit). ``signal_number`` is the first signal caught, None while there was none.

    Off the main thread (Python allows handlers only there) it catches nothing and the process
    keeps its handlers."""

    def __init__(self) -> None:
        self.signal_number: int | None = None
        self._saved: dict[int, object] = {}
        self._tune_stop = None  # while the fit runs: Tune's stop handler

    def __enter__(self) -> SignalCatcher:
        if threading.current_thread() is threading.main_thread():
            self._saved = {sig: signal.signal(sig, self._handle) for sig in CAUGHT}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)

    @contextlib.contextmanager
    def forwarded_to_tune(self):
        """While ``Tuner.fit()`` runs inside this block, a first signal stops Tune the way its own Ctrl-C
        handler does; Tune's SIGUSR1 handler, which it installs and never removes, is removed again."""
        usr1 = getattr(signal, "SIGUSR1", None)
        before = signal.getsignal(usr1) if usr1 is not None and self._saved else None
        self._tune_stop = lambda: _tune_handler(usr1, before)
        try:
            yield
        finally:
            self._tune_stop = None
            if usr1 is not None and self._saved:
                signal.signal(usr1, before)

    def _handle(self, signal_number: int, frame) -> None:
        first = self.signal_number is None
        if first:
            self.signal_number = signal_number
        stop = self._tune_stop() if first and self._tune_stop is not None else None
        if stop is None:
            raise KeyboardInterrupt  # a second signal, or none of Tune's loop to stop: at once
        stop(signal_number, frame)


def _tune_handler(usr1, before):
    """The stop handler Tune's loop installed on SIGUSR1 (it sets Tune's "interrupted" event), or None
    before Tune's loop has started."""
    if usr1 is None:
        return None
    handler = signal.getsignal(usr1)
    return handler if callable(handler) and handler is not before else None
