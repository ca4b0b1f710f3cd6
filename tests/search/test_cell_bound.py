"""Early stopping by a bound on the final objective (search.early_stopping kind cell_bound): the bound
on hand-computed curves, the scheduler as a state machine driven with light trials (no Ray run),
one-line errors for bad settings, and (slow) a study run through the CLI and analysed."""

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from cli_in_process import run
from scalestudy.search import SEARCHES
from scalestudy.search.cell_bound import CellBoundStopping
from scalestudy.search.plan import early_stopping_scheduler
from scalestudy.spec import spec_from_dict
from scalestudy.trial.config import expand_cells
from scalestudy.trial.curve_bound import final_upper_bound, late_gains

REPO = Path(__file__).resolve().parents[2]

# --- the bound ------------------------------------------------------------------------------------


def test_the_bound_adds_the_largest_late_gain_of_the_finished_curves_times_the_safety():
    finished = [{1: 0.50, 2: 0.60, 3: 0.70, 4: 0.72},  # gains 0.22 after epoch 1, 0.12 after 2
                {1: 0.30, 2: 0.45, 3: 0.55, 4: 0.60},  # gains 0.30 after epoch 1, 0.15 after 2
                {1: 0.40}]  # ended at epoch 1 (a loss target): nothing after it to learn from
    assert late_gains(finished, 1) == pytest.approx([0.22, 0.30])
    assert final_upper_bound({1: 0.2}, finished, 1) == pytest.approx(0.2 + 1.5 * 0.30)
    assert final_upper_bound({1: 0.2, 2: 0.25}, finished, 2) == pytest.approx(0.25 + 1.5 * 0.15)
    assert final_upper_bound({1: 0.2, 2: 0.25}, finished, 2, safety=1.0) == pytest.approx(0.40)


def test_falling_curves_bound_a_trial_by_where_it_is_never_below():
    """Finished curves that fell after epoch 1 (overfitting) do not pull the bound below the trial's own score."""
    finished = [{1: 0.8, 2: 0.7}, {1: 0.6, 2: 0.5}]
    assert final_upper_bound({1: 0.4}, finished, 1) == pytest.approx(0.4)


def test_no_bound_without_two_finished_curves_past_the_epoch_or_with_a_diverged_score():
    one = [{1: 0.5, 2: 0.6}]
    assert final_upper_bound({1: 0.2}, one, 1) == math.inf
    assert final_upper_bound({1: 0.2}, [*one, {1: 0.3, 2: 0.4}], 2) == math.inf  # nothing after the last epoch
    assert final_upper_bound({1: -math.inf}, [*one, {1: 0.3, 2: 0.4}], 1) == math.inf
    assert final_upper_bound({}, [*one, {1: 0.3, 2: 0.4}], 1) == math.inf


# --- the scheduler --------------------------------------------------------------------------------


def tiny_spec(**early_stopping):
    return spec_from_dict({
        "name": "stop-unit",
        "workload": {"dataset": "synthetic", "dataset_options": {"train_size": 512, "test_size": 128},
                     "model": "mlp", "model_options": {"hidden": [32]}, "epochs": 4, "ghost_batch_size": 16},
        "grid": {"batch_size": [16, 64], "lr": {"reference_batch_size": 16, "reference_lr": 0.05,
                                                 "multipliers": [0.25, 4]},
                 "momentum": [0.9], "seeds": [0]},
        "search": {"algorithm": "quasi_random", "trials_per_cell": 6,
                   "early_stopping": {"kind": "cell_bound", **early_stopping}},
    })


class Cells:
    """Light Tune trials (an id and a config) of the spec's cells, at any ε."""

    def __init__(self, spec):
        self.cells = {c.batch_size: c for c in expand_cells(spec)}
        self.count = 0

    def trial(self, batch_size, lr):
        self.count += 1
        return SimpleNamespace(trial_id=f"t{self.count}",
                               config={"trial": self.cells[batch_size].trial(lr).to_dict()})


def report(scheduler, trial, epoch, acc, diverged=0):
    return scheduler.on_trial_result(None, trial, {"epoch": epoch, "test_acc": acc, "diverged": diverged})


def finish(scheduler, trial, curve):
    for epoch, acc in enumerate(curve, 1):
        assert report(scheduler, trial, epoch, acc) == "CONTINUE"
    scheduler.on_trial_complete(None, trial, {"epoch": len(curve), "test_acc": curve[-1], "diverged": 0})


def test_the_spec_builds_the_bound_scheduler_with_its_margin():
    scheduler = early_stopping_scheduler(tiny_spec(grace_period=2, margin=0.05))
    assert isinstance(scheduler, CellBoundStopping)
    assert (scheduler.grace_period, scheduler.margin, scheduler.objective.metric) == (2, 0.05, "test_acc")
    assert early_stopping_scheduler(tiny_spec()).margin == 0.02


@pytest.mark.parametrize("algorithm, trials_per_cell", [("grid", None), ("quasi_random", 4), ("optuna", 4),
                                                       ("bracket", 4)])
def test_every_search_hands_tune_the_bound_scheduler_when_asked(algorithm, trials_per_cell):
    spec = spec_from_dict({**tiny_spec().model_dump(mode="json"),
                           "search": {"algorithm": algorithm, "trials_per_cell": trials_per_cell,
                                      "early_stopping": {"kind": "cell_bound"}}})
    assert isinstance(SEARCHES.get(algorithm)(spec, expand_cells(spec)).scheduler, CellBoundStopping)


def test_validate_says_how_the_search_stops_trials():
    code, out, err = run(["validate", REPO / "search_spaces" / "search_asha.yaml",
                          "--set", "search.early_stopping={kind: cell_bound, grace_period: 2, margin: 0.01}"])
    assert code == 0, err
    assert "early stopping per cell by a bound on the final objective (grace period 2 epochs, margin 0.01)" in out


def test_a_trial_is_stopped_once_its_bound_falls_below_its_cell_s_best_and_not_before():
    spec = tiny_spec(grace_period=1)
    scheduler, cells = early_stopping_scheduler(spec), Cells(spec)
    good, fair, bad, early = (cells.trial(16, lr) for lr in (0.05, 0.1, 0.4, 0.01))
    for trial in (good, fair, bad, early):
        scheduler.on_trial_add(None, trial)
    # Nothing finished yet: nothing to extrapolate from, the worst trial goes on.
    assert report(scheduler, early, 1, 0.10) == "CONTINUE"
    finish(scheduler, good, [0.60, 0.75, 0.82, 0.85])  # late gains 0.25, 0.10, 0.03
    assert report(scheduler, early, 2, 0.12) == "CONTINUE"  # one finished curve: still nothing
    finish(scheduler, fair, [0.50, 0.62, 0.70, 0.72])  # late gains 0.22, 0.10, 0.02
    # bad at epoch 1: 0.30 + 1.5·0.25 = 0.675 < 0.85 − 0.02: stopped.
    assert report(scheduler, bad, 1, 0.30) == "STOP"
    stop = scheduler.stopped[bad.trial_id]
    assert (stop.epoch, stop.objective, stop.best) == (1, 0.30, 0.85)
    assert stop.bound == pytest.approx(0.675)
    # early at epoch 3, at 0.80, could still reach 0.80 + 1.5·0.03 = 0.845 > 0.85 − 0.02: it goes on.
    assert report(scheduler, early, 3, 0.80) == "CONTINUE"
    scheduler.on_trial_complete(None, bad, {"epoch": 1, "test_acc": 0.30, "diverged": 0})
    assert sum(map(len, scheduler._finished.values())) == 2  # a stopped trial is no reference
    # The last epoch is never stopped: the trial ends there anyway.
    assert report(scheduler, early, 4, 0.20) == "CONTINUE"


def test_trials_are_judged_within_their_own_cell_and_after_the_grace_period():
    spec = tiny_spec(grace_period=2)
    scheduler, cells = early_stopping_scheduler(spec), Cells(spec)
    small = [cells.trial(16, lr) for lr in (0.05, 0.1)]
    large = cells.trial(64, 0.2)
    for trial in (*small, large):
        scheduler.on_trial_add(None, trial)
    finish(scheduler, small[0], [0.60, 0.75, 0.82, 0.85])
    finish(scheduler, small[1], [0.50, 0.62, 0.70, 0.72])
    # B=64 has no finished trial of its own: B=16's curves do not judge it.
    assert report(scheduler, large, 2, 0.05) == "CONTINUE"
    late = cells.trial(16, 0.4)
    scheduler.on_trial_add(None, late)
    assert report(scheduler, late, 1, 0.05) == "CONTINUE"  # within the grace period
    assert report(scheduler, late, 2, 0.06) == "STOP"


def test_a_minimised_objective_is_bounded_on_its_score_and_reported_in_its_units():
    spec = spec_from_dict({**tiny_spec().model_dump(mode="json"), "analysis": {"objective": {
        "metric": "test_loss", "direction": "min"}}})
    scheduler, cells = early_stopping_scheduler(spec), Cells(spec)
    trials = [cells.trial(16, lr) for lr in (0.05, 0.1, 0.4)]
    for trial in trials:
        scheduler.on_trial_add(None, trial)
    for trial, curve in zip(trials, ([1.0, 0.6, 0.5, 0.45], [1.2, 0.8, 0.7, 0.65])):
        for epoch, loss in enumerate(curve, 1):
            scheduler.on_trial_result(None, trial, {"epoch": epoch, "test_loss": loss, "diverged": 0})
        scheduler.on_trial_complete(None, trial, {"epoch": 4, "test_loss": curve[-1], "diverged": 0})
    assert scheduler.on_trial_result(None, trials[2], {"epoch": 1, "test_loss": 2.0, "diverged": 0}) == "STOP"
    stop = scheduler.stopped[trials[2].trial_id]
    assert stop.bound == pytest.approx(2.0 - 1.5 * 0.55) and stop.best == 0.45  # the lowest loss it could reach


def test_diverged_and_errored_trials_are_no_reference():
    spec = tiny_spec()
    scheduler, cells = early_stopping_scheduler(spec), Cells(spec)
    trials = [cells.trial(16, lr) for lr in (0.05, 0.1, 0.8, 1.6)]
    for trial in trials:
        scheduler.on_trial_add(None, trial)
    finish(scheduler, trials[0], [0.60, 0.75, 0.82, 0.85])
    report(scheduler, trials[2], 1, 0.9, diverged=1)
    scheduler.on_trial_complete(None, trials[2], {"epoch": 1, "test_acc": 0.9, "diverged": 1})
    scheduler.on_trial_error(None, trials[3])
    assert report(scheduler, trials[1], 1, 0.1) == "CONTINUE"  # one reference only


# --- one-line errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("setting, message", [
    ("{kind: cell_bound, margin: -0.1}", "search.early_stopping.margin: Input should be greater than or equal to 0"),
    ("{kind: asha, margin: 0.1}", "search.early_stopping.margin: only for kind cell_bound (got kind asha)"),
    ("{kind: cell_bound, reduction_factor: 2}",
     "search.early_stopping.reduction_factor: only for kind asha (got kind cell_bound)"),
    ("{kind: cell_bound, grace_period: 0}", "search.early_stopping.grace_period: Input should be greater than 0"),
    ("{kind: cell_bound, grace_period: 10}", "search.early_stopping.grace_period: must be below workload.epochs"),
    ("{kind: halving}", "search.early_stopping.kind: Input should be 'asha' or 'cell_bound'"),
])
def test_bad_early_stopping_settings_are_one_line_errors(setting, message):
    code, _, err = run(["validate", REPO / "search_spaces" / "search_asha.yaml",
                        "--set", f"search.early_stopping={setting}"])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err


# --- end to end, through the CLI ------------------------------------------------------------------


@pytest.mark.slow  # starts Ray and trains 12 tiny trials (about a minute on 2 cores)
def test_a_study_stopped_by_the_bound_runs_and_its_analysis_censors_what_it_stopped(tmp_path):
    overrides = ["workload.dataset=synthetic", "workload.dataset_options={train_size: 512, test_size: 128}",
                 "workload.model_options={hidden: [32]}", "workload.epochs=4", "grid.batch_size=[32, 64]",
                 "grid.momentum=[0.9]", "resources.max_concurrent_trials=2", "search.trials_per_cell=6",
                 "grid.lr.multipliers=[0.01, 1000]", "search.early_stopping={kind: cell_bound, margin: 0.0}"]
    spec = REPO / "search_spaces" / "search_asha.yaml"
    proc = subprocess.run([sys.executable, "-m", "scalestudy.cli", "run", str(spec),
                           *[a for o in overrides for a in ("--set", o)]], cwd=tmp_path, capture_output=True,
                          text=True, check=False, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    code, _, err = run(["analyze", "--experiment", "search_asha", "--tracking-uri",
                        f"sqlite:///{tmp_path / 'mlflow.db'}", "--out", tmp_path / "analysis"])
    assert code == 0, err
    trials = pd.read_parquet(tmp_path / "analysis" / "trials.parquet")
    stopped = trials[trials["status"] == "stopped"]
    assert len(stopped) > 0 and (stopped["epochs_completed"] < 4).all()
    assert (stopped["objective_bound"] >= stopped["objective"]).all()  # censored where a bound was found
    cells = json.loads((tmp_path / "analysis" / "law.json").read_text())["cells"]
    assert sum(cell["censored"] for cell in cells) == int(stopped["objective_bound"].notna().sum())
