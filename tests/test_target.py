"""Steps-to-target bookkeeping: which updates are evaluated, and the first crossing of the target."""

import pytest

from scalestudy.spec import SpecError, spec_from_dict
from scalestudy.trial.config import expand_trials
from scalestudy.trial.record import trial_params
from scalestudy.train.target import Evaluation, TargetTracker, first_crossing


def test_first_crossing_interpolates_linearly_in_updates_and_examples():
    before, at = Evaluation(100, 3200, 0.5), Evaluation(200, 6400, 0.9)
    assert first_crossing(before, at, 0.6) == pytest.approx((125.0, 4000.0))
    assert first_crossing(before, at, 0.9) == pytest.approx((200.0, 6400.0))  # exactly at the evaluation
    assert first_crossing(None, at, 0.6) == (200.0, 6400.0)  # nothing before it: its own counts


def test_interpolating_tracker_keeps_the_first_crossing():
    tracker = TargetTracker(0.6, every=None, margin=None)
    for evaluation in (Evaluation(0, 0, 0.1), Evaluation(10, 320, 0.5), Evaluation(20, 640, 0.7),
                       Evaluation(30, 960, 0.4), Evaluation(40, 1280, 0.8)):
        tracker.observe(evaluation)
    assert tracker.metrics() == pytest.approx({"updates_to_target": 15.0, "examples_to_target": 480.0})
    assert tracker.eval_steps(40, 16) is None  # no in-epoch evaluations without target_eval_every


def test_measured_tracker_reports_the_evaluation_itself():
    tracker = TargetTracker(0.6, every=5, margin=None)
    tracker.observe(Evaluation(10, 320, 0.5))
    tracker.observe(Evaluation(15, 480, 0.7))
    assert tracker.metrics() == {"updates_to_target": 15.0, "examples_to_target": 480.0}
    assert tracker.eval_steps(15, 16) is None  # reached: no more evaluations


def test_eval_steps_fall_on_multiples_of_k_of_the_trial_inside_the_epoch():
    tracker = TargetTracker(0.9, every=4, margin=None)
    assert list(tracker.eval_steps(0, 10)) == [4, 8]  # step s is evaluated after s updates of the epoch
    assert list(tracker.eval_steps(10, 10)) == [2, 6]  # updates 12 and 16 of the trial
    assert tracker.eval_steps(10, 2) is None  # update 12 is this epoch's end: evaluated anyway
    assert list(TargetTracker(0.9, every=1, margin=None).eval_steps(3, 4)) == [1, 2, 3]


def test_margin_starts_in_epoch_evaluations_near_the_target():
    tracker = TargetTracker(0.9, every=4, margin=0.1)
    assert tracker.eval_steps(0, 10) is None  # nothing evaluated yet
    tracker.observe(Evaluation(10, 320, 0.75))
    assert tracker.eval_steps(10, 10) is None  # 0.75 < 0.9 − 0.1
    tracker.observe(Evaluation(20, 640, 0.8))
    assert list(tracker.eval_steps(20, 10)) == [4, 8]


def test_state_round_trip():
    tracker = TargetTracker(0.9, every=4, margin=0.1)
    tracker.observe(Evaluation(20, 640, 0.8))
    again = TargetTracker(0.9, every=4, margin=0.1)
    again.load_state_dict(tracker.state_dict())
    assert again.last == tracker.last and again.reached is None
    tracker.observe(Evaluation(24, 768, 0.95))
    again.load_state_dict(tracker.state_dict())
    assert again.metrics() == tracker.metrics() == {"updates_to_target": 24.0, "examples_to_target": 768.0}


def _spec(diagnostics):
    return spec_from_dict({"name": "t", "grid": {"batch_size": [64], "lr": [0.1]}, "diagnostics": diagnostics,
                           "workload": {"dataset": "synthetic", "dataset_options": {"train_size": 256, "test_size": 64},
                                        "model": "mlp", "epochs": 2}})


@pytest.mark.parametrize("diagnostics, message", [
    ({"target_eval_every": 10}, "target_eval_every: needs target_accuracy"),
    ({"target_accuracy": 0.8, "target_eval_margin": 0.1}, "target_eval_margin: needs target_eval_every"),
    ({"target_accuracy": 0.8, "target_eval_every": 0}, "diagnostics.target_eval_every: Input should be greater than 0"),
])
def test_target_options_are_one_line_errors(diagnostics, message):
    with pytest.raises(SpecError, match=message):
        _spec(diagnostics)


def test_the_method_is_a_param_of_the_trial():
    interpolated = trial_params(expand_trials(_spec({"target_accuracy": 0.8}))[0].to_dict())
    assert interpolated["steps_to_target"] == "interpolated between epoch ends"
    every = {"target_accuracy": 0.8, "target_eval_every": 25, "target_eval_margin": 0.05}
    method = trial_params(expand_trials(_spec(every))[0].to_dict())["steps_to_target"]
    assert method == "evaluated every 25 updates within 0.05 of the target"
    assert "steps_to_target" not in trial_params(expand_trials(_spec({}))[0].to_dict())
