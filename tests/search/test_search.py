"""Search algorithms: bracket as a state machine, quasi-random points, the Optuna dispatcher,
per-cell ASHA, one-line errors, and each algorithm end to end through the CLI (no mocks)."""

import dataclasses
import json
import math
import pickle
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from scalestudy.search import SEARCHES
from scalestudy.search.bracket import Bracket
from scalestudy.search.cell_search import Outcome
from scalestudy.search.cells import (
    fit_law_so_far,
    is_searched,
    predict_lr,
    reference_lr,
)
from scalestudy.search.quasi_random import quasi_random_lrs
from scalestudy.search.replay import replay, trial_rows
from scalestudy.spec import Objective, spec_from_dict
from scalestudy.trial.config import expand_cells

REPO = Path(__file__).resolve().parents[2]


def tiny_spec(algorithm: str, trials_per_cell: int | None = 5, **search) -> object:
    return spec_from_dict({
        "name": "search-unit",
        "workload": {"dataset": "synthetic", "dataset_options": {"train_size": 512, "test_size": 128},
                     "model": "mlp", "model_options": {"hidden": [32]}, "epochs": 3, "ghost_batch_size": 16},
        "grid": {"batch_size": [16, 32, 64, 128],
                 "lr": {"reference_batch_size": 32, "reference_lr": 0.05, "reference_momentum": 0.9,
                        "multipliers": [0.0625, 16]},
                 "momentum": [0.0, 0.9], "seeds": [0]},
        "search": {"algorithm": algorithm, "trials_per_cell": trials_per_cell, **search},
    })


# A synthetic response: accuracy is a bump in ln ε around ε*(B, m) = 0.04·(B/32)^0.5·(1−m)/0.1
# (α = 0.5, far from the linear rule's 1), and ε above 6·ε* diverges.
ALPHA, BETA = 0.5, 1.0


def lr_star(batch_size: float, momentum: float) -> float:
    return 0.04 * (batch_size / 32) ** ALPHA * ((1 - momentum) / 0.1) ** BETA


def bump(lr: float, optimum: float, diverge_above: float = 6.0) -> Outcome:
    if lr > diverge_above * optimum:
        return Outcome(math.nan, 1, diverged=True)
    x = math.log(lr / optimum)
    return Outcome(0.1 + 0.8 * math.exp(-x * x / 2), 3)


def evaluate(trial) -> dict:
    outcome = bump(trial.lr, lr_star(trial.batch_size, trial.momentum))
    return {"test_acc": outcome.objective_score, "diverged": int(outcome.diverged), "epoch": outcome.epochs,
            "updates": outcome.epochs * math.ceil(trial.workload.dataset_size / trial.batch_size)}


def drive(bracket: Bracket, response) -> int:
    """Run a bracket to its end, answering each ε with ``response``; returns the trials run."""
    trials = 0
    while not bracket.finished:
        batch = []
        while (lr := bracket.propose()) is not None:
            batch.append(lr)
        if not batch:
            break
        for lr in batch:
            bracket.tell(None, lr, response(lr))
            trials += 1
    return trials


# --- bracket ------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [1.0, 1 / 9, 12.0])
def test_bracket_converges_within_stop_ratio(offset):
    optimum = 0.1
    bracket = Bracket(start=optimum * offset, step_factor=2.0, stop_ratio=1.25)
    trials = drive(bracket, lambda lr: bump(lr, optimum, diverge_above=1e9))
    lo, hi = bracket.bracket
    assert bracket.status == "converged"
    assert hi / lo < 1.25 and lo < optimum < hi
    assert bracket.optimum() == pytest.approx(optimum, rel=0.15)
    # 3 first points, one outward step per factor 2 of distance, about 4 golden-section steps.
    steps_out = math.ceil(abs(math.log2(offset)) - 0.5) if offset != 1 else 0
    assert trials <= 3 + steps_out + 5


def test_bracket_waits_for_results_between_steps():
    bracket = Bracket(start=1.0, step_factor=2.0, stop_ratio=1.25)
    first = [bracket.propose() for _ in range(3)]
    assert sorted(first) == [0.5, 1.0, 2.0]
    assert bracket.propose() is None  # the next step needs all three results
    bracket.tell(None, 1.0, 0.5)
    bracket.tell(None, 0.5, 0.4)
    assert bracket.propose() is None
    bracket.tell(None, 2.0, 0.6)  # still rising at the top: step up
    assert bracket.propose() == 4.0


def test_bracket_counts_divergence_as_falling():
    optimum = 0.1
    # ε above 1.5·ε* diverges: the upper side of the bracket is a diverged trial.
    bracket = Bracket(start=optimum, step_factor=2.0, stop_ratio=1.25)
    drive(bracket, lambda lr: bump(lr, optimum, diverge_above=1.5))
    assert bracket.status == "converged"
    assert bracket.points[0.2] == -math.inf
    # Starting far above, where everything diverges, it steps down until it brackets ε*.
    high = Bracket(start=optimum * 40, step_factor=2.0, stop_ratio=1.25)
    drive(high, lambda lr: bump(lr, optimum, diverge_above=1.5))
    assert high.status == "converged"
    lo, hi = high.bracket
    assert lo < optimum < hi
    assert sum(score == -math.inf for score in high.points.values()) >= 3


def test_bracket_spans_a_noisy_plateau_with_min_drop():
    """A flat top with ripples (noise) around ε* = 0.1: any ripple looks like a bracket unless a
    fall must exceed min_drop; then the bracket spans the plateau and its centre is ε*."""
    def plateau(lr):
        x = math.log(lr / 0.1)
        return 0.7 - 0.1 * max(0.0, abs(x) - 1.5) ** 2 + 0.006 * math.sin(9 * x)

    strict = Bracket(start=0.3, step_factor=2.0, stop_ratio=1.25, min_drop=0.0)
    drive(strict, plateau)
    tolerant = Bracket(start=0.3, step_factor=2.0, stop_ratio=1.25, min_drop=0.02)
    trials = drive(tolerant, plateau)
    lo, hi = tolerant.bracket
    assert tolerant.status == "converged" and trials <= 14
    assert lo < 0.1 * math.exp(-1.5) and hi > 0.1 * math.exp(1.5)  # the whole plateau is inside
    assert abs(math.log(tolerant.optimum() / 0.1)) < 0.3
    assert abs(math.log(tolerant.optimum() / 0.1)) < abs(math.log(strict.optimum() / 0.1))


def test_bracket_stops_at_a_bound():
    bracket = Bracket(start=0.1, step_factor=2.0, stop_ratio=1.25, bounds=(0.05, 1.0))
    drive(bracket, lambda lr: bump(lr, 0.001, diverge_above=1e9))  # optimum far below the range
    assert bracket.status == "edge_low"
    assert min(bracket.points) == 0.05
    assert bracket.optimum() is None


def _best(bracket: Bracket) -> float:
    """The bracket's best ε so far, by its own rule (highest score; on a tie, nearest its start)."""
    return max(bracket.points, key=lambda lr: (bracket.points[lr], -abs(math.log(lr / bracket.start))))


def drive_checking_outward_first(bracket: Bracket, response) -> None:
    """``drive``, failing if the bracket ever refines (proposes an ε strictly inside the ε it has tried)
    while its best ε is an end of what it has tried: it must step outward first."""
    while not bracket.finished:
        batch = []
        while (lr := bracket.propose()) is not None:
            tried = sorted(bracket.points)
            if len(tried) >= 3 and tried[0] < lr < tried[-1]:
                best = _best(bracket)
                assert tried[0] < best < tried[-1], (f"refines at {lr:.4g} with the best {best:.4g} at an end of "
                                                     f"{[f'{x:.3g}' for x in tried]}")
            batch.append(lr)
        if not batch:
            break
        for lr in batch:
            bracket.tell(None, lr, response(lr))


@pytest.mark.parametrize("case", range(40))
def test_bracket_steps_outward_until_the_best_is_inside_before_it_refines(case):
    """Peaks far from the start (above, below), asymmetric and flat ones, noisy ones, divergence above the
    peak and a bound short of it: whatever the curve, no refinement while the best ε tried is the lowest
    or highest tried; the search ends converged with the best inside, or at the bound it hit."""
    rng = np.random.default_rng(case)
    optimum = 0.1 * 10 ** rng.uniform(-2, 2)
    start = 0.1 * 10 ** rng.uniform(-1, 1)
    left, right = rng.uniform(0.3, 3), rng.uniform(0.3, 3)  # widths of the two shoulders, in ln ε
    noise = rng.choice([0.0, 0.005, 0.02])
    diverge = rng.choice([1e9, 1.5, 4.0])
    bounds = (start / 20, start * 20) if case % 4 == 0 else None
    min_drop = rng.choice([0.0, 0.02])

    def response(lr: float) -> Outcome:
        if lr > diverge * optimum:
            return Outcome(math.nan, 1, diverged=True)
        x = math.log(lr / optimum) / (left if lr < optimum else right)
        return Outcome(0.1 + 0.8 * math.exp(-x * x / 2) + noise * rng.standard_normal(), 3)

    bracket = Bracket(start, step_factor=2.0, stop_ratio=1.25, bounds=bounds, min_drop=min_drop)
    drive_checking_outward_first(bracket, response)
    tried = sorted(bracket.points)
    if bracket.status == "converged":
        assert tried[0] < _best(bracket) < tried[-1]
    else:
        assert bracket.status in ("edge_low", "edge_high", "all_diverged") and bounds is not None
        assert _best(bracket) in (min(bounds), max(bounds)) or bracket.status == "all_diverged"


def test_outcome_ranks_finished_then_stopped_then_failed():
    cell = expand_cells(tiny_spec("bracket"))[0]
    plan, objective = dataclasses.replace(cell.workload, epochs=10), cell.objective
    finished = Outcome.from_result({"test_acc": 0.3, "epoch": 10, "diverged": 0}, plan, objective)
    stopped = Outcome.from_result({"test_acc": 0.9, "epoch": 2, "diverged": 0}, plan, objective)
    diverged = Outcome.from_result({"test_acc": 0.1, "epoch": 1, "diverged": 1}, plan, objective)
    errored = Outcome.from_result(None, plan, objective, error=True)
    at_loss_target = Outcome.from_result({"test_acc": 0.4, "epoch": 2, "diverged": 0, "train_loss": 0.1},
                                         dataclasses.replace(plan, stop_at_train_loss=0.2), objective)
    assert not at_loss_target.stopped
    assert stopped.stopped and not finished.stopped and not diverged.stopped
    assert finished.score > stopped.score > diverged.score == errored.score == -math.inf


def test_outcome_ranks_by_a_minimised_objective_and_stopped_below_every_finished():
    plan = dataclasses.replace(expand_cells(tiny_spec("bracket"))[0].workload, epochs=10)
    objective = Objective(metric="test_loss", direction="min")
    low, high = (Outcome.from_result({"test_loss": loss, "epoch": 10, "diverged": 0}, plan, objective)
                 for loss in (0.5, 30.0))
    stopped = Outcome.from_result({"test_loss": 0.1, "epoch": 2, "diverged": 0}, plan, objective)
    diverged = Outcome.from_result({"test_loss": 0.05, "epoch": 1, "diverged": 1}, plan, objective)
    assert low.score > high.score > stopped.score > diverged.score == -math.inf


# --- the law fitted so far ------------------------------------------------------------------------


def test_law_so_far_fits_measured_cells_and_falls_back_on_the_linear_rule():
    optima = [(b, m, lr_star(b, m)) for b in (16, 32, 64, 128, 256) for m in (0.0, 0.9)]
    _, alpha, beta = fit_law_so_far(optima)
    # Pulled towards the linear rule α = β = 1, but the ten measured cells dominate.
    assert ALPHA < alpha < (ALPHA + 1) / 2 and beta == pytest.approx(BETA, abs=1e-6)
    # One measured cell: the linear rule anchored on it.
    assert predict_lr([(32, 0.9, 0.04)], 128, 0.9) == pytest.approx(0.16)
    assert predict_lr([(32, 0.9, 0.04)], 32, 0.0) == pytest.approx(0.4)
    assert predict_lr([], 32, 0.9) is None


def test_bracket_study_starts_later_cells_from_the_fitted_law():
    spec = tiny_spec("bracket", trials_per_cell=8)
    plan = SEARCHES.get("bracket")(spec, expand_cells(spec))
    done = replay(plan, evaluate, concurrency=2)
    keys = [item.trial.trial_key for item in done]
    assert len(keys) == len(set(keys))
    assert len(plan.search_alg.summary()) == 8
    rule_error, start_error = [], []
    for run in plan.search_alg.runs:
        b, m = run.cell.batch_size, run.cell.momentum
        assert 3 <= len(run.results) <= 8
        assert run.strategy.optimum() == pytest.approx(lr_star(b, m), rel=0.25)
        if b == 128:  # started last, from the law fitted on the smaller batch sizes
            rule_error.append(abs(math.log(reference_lr(spec, run.cell) / lr_star(b, m))))
            start_error.append(abs(math.log(run.start_lr / lr_star(b, m))))
    # The linear rule (α = 1) is a factor 2.5 off at B=128; the law fitted so far much less.
    assert max(start_error) < 0.5 * min(rule_error)
    assert len(done) < 8 * 8  # cells stop once bracketed


# --- quasi-random ---------------------------------------------------------------------------------


def test_quasi_random_points_are_low_discrepancy_in_range_and_seeded():
    low, high = 1e-3, 1.0
    lrs = quasi_random_lrs(low, high, 8, seed=7)
    assert len(set(lrs)) == 8 and all(low <= lr <= high for lr in lrs)
    assert quasi_random_lrs(low, high, 8, seed=7) == lrs
    assert quasi_random_lrs(low, high, 8, seed=8) != lrs
    # A scrambled base-2 Halton set of 8 points has exactly one point in each eighth of ln ε.
    unit = np.log(np.array(lrs) / low) / np.log(high / low)
    assert sorted(np.floor(unit * 8).astype(int)) == list(range(8))
    # Prefixes are spread too: the first 4 points fill the four quarters.
    assert sorted(np.floor(unit[:4] * 4).astype(int)) == [0, 1, 2, 3]


def test_quasi_random_plan_per_cell_round_robin_and_single_lr_cells():
    spec = spec_from_dict({**tiny_spec("quasi_random", 6).model_dump(mode="json"),
                           "sections": {"law": {"grid": {"seeds": [0, 1]}},
                                        "fixed": {"grid": {"batch_size": [32], "lr": [0.05], "momentum": [0.9]}}}})
    cells = expand_cells(spec)
    plan = SEARCHES.get("quasi_random")(spec, cells)
    trials = plan.param_space["trial"]["grid_search"]
    assert plan.search_alg is None and plan.total_trials == len(trials) == 16 * 6 + 1
    by_cell = {}
    for trial in trials:
        by_cell.setdefault((trial["section"], trial["batch_size"], trial["momentum"], trial["seed"]), []).append(
            trial["lr"])  # Tune's param space: the configs' plain dicts
    assert by_cell[("fixed", 32, 0.9, 0)] == [0.05]  # one listed ε and no lr_range: not searched
    assert by_cell[("law", 64, 0.9, 0)] == by_cell[("law", 64, 0.9, 1)]  # seeds share ε
    assert by_cell[("law", 64, 0.9, 0)] != by_cell[("law", 128, 0.9, 0)]  # cells get their own scramble
    low, high = 0.05 * 2 * 0.0625, 0.05 * 2 * 16
    assert all(low * 0.999 <= lr <= high * 1.001 for lr in by_cell[("law", 64, 0.9, 0)])
    # Round robin: the first trials cover every cell once.
    first = {(t["section"], t["batch_size"], t["momentum"], t["seed"]) for t in trials[:len(by_cell)]}
    assert len(first) == len(by_cell)
    assert len({t["trial_key"] for t in trials}) == len(trials)


def test_search_summary_says_what_will_run():
    from scalestudy.search.cells import search_summary

    spec = tiny_spec("bracket", 5, early_stopping={"grace_period": 1})
    assert search_summary(spec, expand_cells(spec)) == (
        "bracket: at most 40 trials (5 bracketing trials per cell × 8 cells), "
        "ASHA per cell (grace period 1 epochs, reduction factor 3)")


def test_explicit_lr_range_searches_every_cell():
    spec = tiny_spec("quasi_random", 4, lr_range=[1e-3, 1.0])
    cell = expand_cells(spec)[0]
    assert is_searched(spec, dataclasses.replace(cell, lr_grid=(0.05,)))
    assert reference_lr(spec, cell) == pytest.approx(0.05 * 16 / 32 * 10)  # the rule at B=16, m=0



def test_the_reference_lr_is_the_rule_s_own_multiplier_1_point():
    """The spec defines ε = reference_lr·(B/reference_batch_size)·(1−m)/(1−reference_momentum)·multiplier:
    a search starts at the rule itself, the grid's multiplier-1 ε exactly (the same trial key). Reading it
    back from the first grid point divided by its multiplier lands an ulp off for many cells."""
    raw = tiny_spec("bracket", 4).model_dump(mode="json")
    raw["grid"].update(batch_size=[16, 32, 256], momentum=[0.0, 0.9, 0.99],
                       lr={"reference_batch_size": 64, "reference_lr": 0.007, "reference_momentum": 0.9,
                           "multipliers": [0.7, 1.0, 3.0]})
    spec = spec_from_dict(raw)
    cells = expand_cells(spec)
    assert all(reference_lr(spec, cell) == cell.lr_grid[1] for cell in cells)  # exactly, not approximately
    backwards = [cell.lr_grid[0] / 0.7 for cell in cells]  # the first grid point over its multiplier
    assert any(lr != cell.lr_grid[1] for lr, cell in zip(backwards, cells))

# --- optuna ---------------------------------------------------------------------------------------


def test_optuna_dispatcher_routes_per_cell_and_spends_the_budget():
    spec = tiny_spec("optuna", trials_per_cell=5)
    cells = expand_cells(spec)
    plan = SEARCHES.get("optuna")(spec, cells)
    assert plan.param_space == {} and plan.num_samples == plan.total_trials == 8 * 5
    done = replay(plan, evaluate, concurrency=4)
    assert len({item.trial.trial_key for item in done}) == len(done) == 40
    counts = Counter((item.trial.batch_size, item.trial.momentum) for item in done)
    assert set(counts.values()) == {5}
    for run in plan.search_alg.runs:
        study = run.strategy.search._ot_study
        told = sorted(round(t.value, 9) for t in study.trials)
        ran = sorted(round(r.score, 9) for _, r in run.results)  # a diverged trial's: −inf
        assert told == ran  # each cell's TPE heard exactly its own cell's results
        lo, hi = 0.05 * run.cell.batch_size / 32 * (1 - run.cell.momentum) / 0.1 * np.array([0.0625, 16])
        assert all(lo * 0.999 <= lr <= hi * 1.001 for lr, _ in run.results)
    first = plan.search_alg.runs[plan.search_alg.order[0]]
    assert first.results[0][0] == pytest.approx(reference_lr(spec, first.cell), rel=1e-3)  # enqueued start
    # Tune checkpoints the searcher by pickling it (resume).
    restored = pickle.loads(pickle.dumps(plan.search_alg))
    assert restored.suggest("after-the-end") == "FINISHED"


def test_optuna_and_bracket_recover_the_planted_law():
    from scalestudy.analysis import fit_frontier, fit_law

    for algorithm, budget in (("optuna", 6), ("bracket", 6), ("quasi_random", 6)):
        spec = tiny_spec(algorithm, trials_per_cell=budget)
        done = replay(SEARCHES.get(algorithm)(spec, expand_cells(spec)), evaluate)
        law = fit_law(list(fit_frontier(pd.DataFrame(trial_rows(done)), n_boot=0).cells))
        assert law.alpha == pytest.approx(ALPHA, abs=0.1), algorithm
        assert law.beta == pytest.approx(BETA, abs=0.1), algorithm


# --- ASHA per cell --------------------------------------------------------------------------------


def test_asha_compares_trials_within_their_cell_only():
    from scalestudy.search.plan import early_stopping_scheduler

    spec = tiny_spec("quasi_random", 6, early_stopping={"grace_period": 1, "reduction_factor": 2})
    asha = early_stopping_scheduler(spec)
    cells = {b: next(c for c in expand_cells(spec) if c.batch_size == b and c.momentum == 0.9)
             for b in (16, 128)}

    def trial(i, batch_size):
        return SimpleNamespace(trial_id=f"t{i}", config={"trial": cells[batch_size].trial(0.01 * (i + 1)).to_dict()})

    small = [trial(i, 16) for i in range(3)]
    large = [trial(i + 3, 128) for i in range(3)]
    for t in small + large:
        asha.on_trial_add(None, t)
    # After one epoch B=16 leads whatever its ε; B=128 trials are compared among themselves.
    for t, acc in zip(small, (0.8, 0.82, 0.84)):
        assert asha.on_trial_result(None, t, {"epoch": 1, "test_acc": acc}) == "CONTINUE"
    actions = [asha.on_trial_result(None, t, {"epoch": 1, "test_acc": acc})
               for t, acc in zip(large, (0.30, 0.35, 0.20))]
    assert actions == ["CONTINUE", "CONTINUE", "STOP"]


# --- one-line errors ------------------------------------------------------------------------------


def scalestudy(*args, cwd: Path, timeout=900):
    return subprocess.run([sys.executable, "-m", "scalestudy.cli", *args], cwd=cwd, capture_output=True, text=True,
                          check=False, timeout=timeout)


@pytest.mark.parametrize("overrides, message", [
    (["search.algorithm=hyperband"], "search.algorithm: unknown search algorithm 'hyperband'; known: adaptive, bracket, grid"),
    (["search.trials_per_cell=2"], "search.trials_per_cell: bracket needs at least 3 trials per cell"),
    (["search.algorithm=optuna", "search.trials_per_cell=null"], "search.trials_per_cell: optuna needs"),
    (["search.early_stopping={grace_period: 10}"], "search.early_stopping.grace_period: must be below"),
    (["search.lr_range=[0.1, 0.01]"], "search.lr_range: must be [low, high]"),
    (["search.stop_ratio=1.0"], "search.stop_ratio"),
])
def test_bad_search_settings_are_one_line_errors_before_anything_starts(tmp_path, overrides, message):
    args = [a for o in overrides for a in ("--set", o)]
    proc = scalestudy("run", str(REPO / "search_spaces" / "search_bracket.yaml"), *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "ray_results").exists()


# --- end to end, through the CLI ------------------------------------------------------------------

TINY = ["--set", "workload.dataset=synthetic", "--set", "workload.dataset_options={train_size: 512, test_size: 128}",
        "--set", "workload.model_options={hidden: [32]}", "--set", "workload.epochs=3",
        "--set", "grid.batch_size=[32, 64]", "--set", "grid.momentum=[0.9]",
        "--set", "resources.max_concurrent_trials=2"]


@pytest.mark.slow
@pytest.mark.parametrize("name, overrides, expected_trials", [
    ("search_quasi_random", ["search.trials_per_cell=4"], 8),
    ("search_optuna", ["search.trials_per_cell=4"], 8),
    ("search_bracket", ["search.trials_per_cell=4"], None),  # at most 8: a cell stops once bracketed
    ("search_adaptive", ["search.budget={trial_epochs: 30}", "search.target=null", "grid.seeds=[0, 1]"], 10),
    ("search_asha", ["search.trials_per_cell=6", "workload.epochs=4",
                     "search.early_stopping={grace_period: 1, reduction_factor: 2}",
                     "grid.lr.multipliers=[0.01, 1000]"], 12),
])
def test_each_algorithm_runs_from_its_spec_and_yields_a_law(tmp_path, name, overrides, expected_trials):
    args = [*TINY, *[a for o in overrides for a in ("--set", o)]]
    proc = scalestudy("run", str(REPO / "search_spaces" / f"{name}.yaml"), *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], "tags.`scalestudy.role` = 'trial'", max_results=1000)
    keys = [run.data.tags["scalestudy.trial_key"] for run in runs]
    assert len(keys) == len(set(keys))
    if expected_trials is None:
        assert 6 <= len(runs) <= 8
    else:
        assert len(runs) == expected_trials
    per_cell = Counter(run.data.params["batch_size"] for run in runs)
    assert set(per_cell) == {"32", "64"}
    if name == "search_asha":
        early = [run for run in runs if run.data.metrics["epoch"] < 4 and not run.data.metrics["diverged"]]
        assert early, "ASHA stopped no trial"
        assert {run.data.tags["scalestudy.status"] for run in early} == {"stopped"}

    out = tmp_path / "analysis"
    proc = scalestudy("analyze", "--experiment", name, "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    law = json.loads((out / "law.json").read_text())
    assert "alpha" in law
