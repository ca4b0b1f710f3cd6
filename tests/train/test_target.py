"""Steps-to-target bookkeeping: which updates are evaluated, and where the target is crossed, against
closed-form curves (scalestudy.train.crossing's docstring)."""

import math

import numpy as np
import pytest
from scipy import stats

from scalestudy.law.transition import fit_transition
from scalestudy.spec import SpecError, spec_from_dict
from scalestudy.trial.config import expand_trials
from scalestudy.trial.record import trial_params
from scalestudy.train.target import Crossing, Evaluation, TargetTracker, crossing


def evaluations(curve, updates, batch_size=32):
    return [Evaluation(u, u * batch_size, curve(u)) for u in updates]


def tracked(curve, updates, target, batch_size=32, **options):
    """The tracker's crossing over these evaluations (every=None, margin=None unless given)."""
    tracker = TargetTracker(target, options.get("every"), options.get("margin"))
    for evaluation in evaluations(curve, updates, batch_size):
        tracker.observe(evaluation)
    return tracker


def test_a_curve_straight_in_log_updates_is_crossed_exactly():
    """a(u) = c + d·ln u: every secant in ln u has one slope, so the interpolant is exact; the chord
    in u between u₀ and 2u₀ with the target half-way would give 1.5·u₀ instead of √2·u₀."""
    curve = lambda u: 0.1 + 0.1 * math.log(u)  # noqa: E731
    target = curve(100 * math.sqrt(2))  # half-way in a between 100 and 200
    for updates in ((100, 200), (50, 100, 200), (100, 200, 400), (50, 100, 200, 400)):
        before = [e for e in evaluations(curve, updates) if e.updates <= 100]
        after = [e for e in evaluations(curve, updates) if e.updates > 200]
        found = crossing(before, evaluations(curve, [200])[0], target, after[0] if after else None)
        assert found.updates == pytest.approx(100 * math.sqrt(2), rel=1e-9)
        assert found.examples == pytest.approx(32 * 100 * math.sqrt(2), rel=1e-9) and not found.censored
    linear = 100 + (target - curve(100)) / (curve(200) - curve(100)) * 100
    assert linear == pytest.approx(150)  # what linear interpolation in u said


@pytest.mark.parametrize("epoch", [50, 64, 80, 100])
def test_a_concave_curve_is_crossed_within_one_percent_from_epoch_ends(epoch):
    """a(u) = u/(u + c) reaches t at u* = c·t/(1 − t). From evaluations at epoch ends (the crossing in
    the second or third epoch), the interpolant in ln u with its neighbours is within 1 % where the
    chord in u is 2.5-9 % late."""
    c, target = 30.0, 0.8
    truth = c * target / (1 - target)  # 120 updates
    curve = lambda u: u / (u + c)  # noqa: E731
    grid = [k * epoch for k in range(12)]
    found = tracked(curve, grid, target).reached
    assert found.updates == pytest.approx(truth, rel=0.01) and not found.censored
    u0 = max(u for u in grid if curve(u) < target)
    chord = u0 + (target - curve(u0)) / (curve(u0 + epoch) - curve(u0)) * epoch
    assert chord > truth * 1.02  # linear in u: late


def test_a_crossing_before_the_first_evaluation_is_censored_not_counted():
    """Reached inside the first epoch, with no evaluation between the initial model and the epoch end:
    known only to be ≤ 250; never reported as a count of 250."""
    curve = lambda u: 1 - math.exp(-u / 20)  # noqa: E731 - crosses 0.9 at 20·ln 10 ≈ 46 updates
    tracker = tracked(curve, [0, 250, 500], 0.9, batch_size=16)
    assert tracker.reached == Crossing(250.0, 4000.0, censored=True)
    assert tracker.metrics() == {"updates_to_target_at_most": 250.0, "examples_to_target_at_most": 4000.0}
    assert crossing([Evaluation(0, 0, 0.1)], Evaluation(1, 16, 0.95), 0.9) == Crossing(1.0, 16.0)  # one update
    assert crossing([], Evaluation(0, 0, 0.95), 0.9) == Crossing(0.0, 0.0)  # met by the untrained model


@pytest.mark.parametrize("margin, then, within", [
    (0.2, list(range(34, 51, 2)), 1e-4),  # 0.79 at 32 is within 0.2 of 0.9: every K from there
    (0.1, [64, 66], 0.03),  # ... but not within 0.1: the doubling grid brackets it by [32, 64]
])
def test_the_margin_mode_resolves_a_crossing_at_47_updates_inside_the_first_epoch(margin, then, within):
    """Epochs of 250 updates, K = 2: the first epoch is evaluated at 2, 4, 8, …, then at every second
    update once within the margin (and once past the target, for its slope); a(u) = 1 − e^(−r·u)
    crosses 0.9 at u = 47, which comes out within ``within`` (the audit's bound: ±25 %)."""
    rate = math.log(10) / 47
    curve = lambda u: 1 - math.exp(-rate * u)  # noqa: E731
    tracker = TargetTracker(0.9, every=2, margin=margin)
    tracker.observe(Evaluation(0, 0, curve(0)))
    assert tracker.evaluates_in_epoch(0)
    evaluated = []
    for u in range(1, 250):
        if tracker.evaluates_at(u, first_epoch=True):
            evaluated.append(u)
            tracker.observe(Evaluation(u, 16 * u, curve(u)))
    assert evaluated == [2, 4, 8, 16, 32, *then]
    assert tracker.settled and tracker.reached.updates == pytest.approx(47, rel=within)
    assert not tracker.reached.censored and not tracker.evaluates_in_epoch(250)


def test_linear_interpolation_biased_b_crit_late_and_the_ln_updates_one_does_not():
    """Noise-free steps to target planted on S(B) = S_min·(1 + B_crit/B) (McCandlish et al. 2018,
    eq. 2.11) with B_crit = 256, each B's accuracy a(u) = u/(u + c_B) evaluated at its epoch ends
    (N = 4096): the tracker's counts give B_crit within 1 %; the chord in u (the interpolation
    before) gives one more than 10 % high, its interval above 256."""
    batch_sizes, target = np.array([16, 32, 64, 128, 256, 512, 1024]), 0.8
    truth = 20 * (1 + 256 / batch_sizes)
    found, chord = [], []
    for b, s in zip(batch_sizes, truth):
        curve = lambda u, c=s * (1 / target - 1): u / (u + c)  # noqa: E731 - a(S) = target
        grid = [k * (4096 // b) for k in range(40)]
        found.append(tracked(curve, grid, target, batch_size=b).reached.updates)
        u0 = max(u for u in grid if curve(u) < target)
        chord.append(u0 + (target - curve(u0)) / (curve(u0 + 4096 // b) - curve(u0)) * (4096 // b))
    quantile = stats.f.ppf(0.95, 1, len(batch_sizes) - 2)
    fit = fit_transition(batch_sizes, found, quantile)
    assert fit.value == pytest.approx(256, rel=0.01)
    late = fit_transition(batch_sizes, chord, quantile)
    assert late.value > 1.1 * 256 and late.ci95[0] > 256


def test_interpolating_tracker_keeps_the_first_crossing():
    tracker = TargetTracker(0.6, every=None, margin=None)
    for evaluation in (Evaluation(0, 0, 0.1), Evaluation(10, 320, 0.5), Evaluation(20, 640, 0.7),
                       Evaluation(30, 960, 0.4), Evaluation(40, 1280, 0.8)):
        tracker.observe(evaluation)
    found = tracker.metrics()
    assert 10 < found["updates_to_target"] < 20 and found["examples_to_target"] == 32 * found["updates_to_target"]
    assert tracker.reached == crossing([Evaluation(10, 320, 0.5)], Evaluation(20, 640, 0.7), 0.6,
                                       Evaluation(30, 960, 0.4))
    assert not tracker.evaluates_in_epoch(40)  # no in-epoch evaluations without target_eval_every


def test_evaluations_fall_on_multiples_of_k_of_the_trial():
    tracker = TargetTracker(0.9, every=4, margin=None)
    assert [u for u in range(1, 20) if tracker.evaluates_at(u, first_epoch=u < 10)] == [4, 8, 12, 16]
    tracker.observe(Evaluation(4, 128, 0.95))
    assert tracker.evaluates_at(8, first_epoch=False)  # one more, for the crossing's slope
    tracker.observe(Evaluation(8, 256, 0.97))
    assert tracker.settled and not tracker.evaluates_at(12, first_epoch=False)


def test_the_margin_gates_evaluations_after_the_first_epoch():
    tracker = TargetTracker(0.9, every=4, margin=0.1)
    assert tracker.evaluates_in_epoch(0) and not tracker.evaluates_at(12, first_epoch=True)  # not 2^k·K
    tracker.observe(Evaluation(10, 320, 0.75))
    assert not tracker.evaluates_in_epoch(10)  # 0.75 < 0.9 − 0.1
    assert not tracker.evaluates_at(16, first_epoch=False)  # the doubling grid is the first epoch's
    tracker.observe(Evaluation(20, 640, 0.8))
    assert tracker.evaluates_in_epoch(20) and tracker.evaluates_at(24, first_epoch=False)


def test_state_round_trip():
    tracker = TargetTracker(0.9, every=4, margin=0.1)
    tracker.observe(Evaluation(20, 640, 0.8))
    again = TargetTracker(0.9, every=4, margin=0.1)
    again.load_state_dict(tracker.state_dict())
    assert again.last == tracker.last and again.reached is None
    tracker.observe(Evaluation(24, 768, 0.95))
    tracker.read_noise_scale(300.0)
    again.load_state_dict(tracker.state_dict())
    assert again.metrics() == tracker.metrics() and 20 < again.metrics()["updates_to_target"] < 24
    assert again.metrics()["gradient_noise_scale_at_target"] == 300.0


def test_checkpoints_from_before_censoring_load():
    tracker = TargetTracker(0.9, every=4, margin=0.1)
    tracker.load_state_dict({"last": {"updates": 20, "examples": 640, "accuracy": 0.8}, "reached": None})
    assert tracker.last == Evaluation(20, 640, 0.8) and tracker.reached is None
    tracker.load_state_dict({"last": None, "reached": [24.0, 768.0]})
    assert tracker.metrics() == {"updates_to_target": 24.0, "examples_to_target": 768.0} and tracker.settled


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
    assert interpolated["steps_to_target"] == ("interpolated in ln(updates) between epoch ends; censored before "
                                               "the first evaluation")
    every = {"target_accuracy": 0.8, "target_eval_every": 25, "target_eval_margin": 0.05}
    method = trial_params(expand_trials(_spec(every))[0].to_dict())["steps_to_target"]
    assert method == ("interpolated in ln(updates) between evaluations every 25 updates within 0.05 of the target "
                      "(the first epoch also at 25·2^k); censored before the first evaluation")
    assert "steps_to_target" not in trial_params(expand_trials(_spec({}))[0].to_dict())
