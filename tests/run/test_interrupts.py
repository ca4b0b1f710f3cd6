"""SIGINT and SIGTERM during a study, without Ray: the catcher hands the first signal to Tune's stop
while a fit runs (Tune's SIGUSR1 handler stands in for it here), raises KeyboardInterrupt for a
second one or outside a fit, and puts every handler back; exit codes are 128 + the signal."""

import os
import signal

import pytest

from scalestudy.run.interrupts import SignalCatcher, StudyInterrupted, exit_code


def test_exit_codes_follow_the_shell():
    assert exit_code(signal.SIGINT) == 130 and exit_code(signal.SIGTERM) == 143
    assert StudyInterrupted(signal.SIGTERM, None).signal_name == "SIGTERM"


def test_outside_a_fit_a_signal_interrupts_at_once():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(KeyboardInterrupt), SignalCatcher() as catcher:
        os.kill(os.getpid(), signal.SIGTERM)
    assert catcher.signal_number == signal.SIGTERM
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_during_a_fit_the_first_signal_stops_tune_and_a_second_interrupts():
    stops = []
    usr1_before = signal.getsignal(signal.SIGUSR1)
    with SignalCatcher() as catcher, catcher.forwarded_to_tune():
        # What Tune's loop does when it starts: its stop handler on SIGUSR1 (it sets its "interrupted" event).
        signal.signal(signal.SIGUSR1, lambda sig, frame: stops.append(sig))
        os.kill(os.getpid(), signal.SIGINT)
        assert stops == [signal.SIGINT] and catcher.signal_number == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGUSR1) == usr1_before  # Tune's handler does not outlive the fit


def test_before_tunes_loop_started_a_signal_interrupts_at_once():
    with pytest.raises(KeyboardInterrupt), SignalCatcher() as catcher, catcher.forwarded_to_tune():
        os.kill(os.getpid(), signal.SIGINT)
