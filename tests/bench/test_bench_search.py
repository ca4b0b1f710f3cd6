"""bench search's engine: a recorded study replayed under its own spec, each trial answered by the
recorded row it lands on (lookup, snapping, seed permutation), and one real search replayed on a
shipped table. The command line (errors, JSON) is in test_bench_search_cli.py."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from scalestudy.analysis.errors import AnalysisError
from scalestudy.bench.search import replay_search
from scalestudy.calibration.reference import DATA
from scalestudy.search.replay import RecordedAnswers, RecordedStudy, infer_lr_grid, lattice_match, replay_spec
from scalestudy.trial.config import expand_cells

SHIPPED = ("mnist1d_mlp_m0", "mnist1d_mlp_m09", "mnist1d_cnn1d_m09", "text_lm_adamw")


@pytest.fixture(scope="module")
def mlp_m0() -> RecordedStudy:
    return RecordedStudy.from_parquet(DATA / "mnist1d_mlp_m0.parquet")


def cell_grids(spec) -> dict:
    return {(c.workload.dataset_size, c.batch_size, c.momentum): list(c.lr_grid) for c in expand_cells(spec)}


def a_cell(spec, batch_size: int, seed: int):
    return next(c for c in expand_cells(spec) if c.batch_size == batch_size and c.seed == seed)


@pytest.mark.parametrize("name", SHIPPED)
def test_the_replay_specs_lr_grids_are_the_recorded_lrs(name):
    study = RecordedStudy.from_parquet(DATA / f"{name}.parquet")
    spec = replay_spec(study, "grid")
    grids = cell_grids(spec)
    assert set(grids) == set(study.cells)
    for key, cell in study.cells.items():
        np.testing.assert_allclose(sorted(grids[key]), cell.lrs, rtol=1e-12)
    assert lattice_match(study, grids).exact
    assert isinstance(spec.grid.lr.rule, str)  # a rule, not a list: the shipped grids follow one
    assert spec.grid.seeds == list(range(8)) and spec.search.max_seeds == 8 and spec.search.beyond_grid == 0
    assert spec.objective.direction == study.objective.direction


def test_lrs_shared_by_every_cell_become_one_list():
    frame = pd.DataFrame([{"batch_size": b, "lr": lr, "momentum": 0.9, "seed": s, "dataset_size": 1000,
                           "diverged": False, "objective": 0.5, "objective_direction": "max", "epochs_completed": 2.0,
                           "epochs_planned": 2.0} for b in (16, 64, 256) for lr in (0.01, 0.03, 0.1) for s in (0, 1)])
    study = RecordedStudy.from_table(frame, "flat")
    assert infer_lr_grid(study) == [0.01, 0.03, 0.1]
    assert lattice_match(study, cell_grids(replay_spec(study, "grid"))).exact


def test_a_recorded_trial_is_answered_by_its_own_row(mlp_m0):
    spec = replay_spec(mlp_m0, "grid")
    answers = RecordedAnswers(mlp_m0)
    frame = mlp_m0.trials
    for _, row in frame[(frame["batch_size"] == 1024) & (frame["seed"] == 3)].iterrows():
        result = answers(a_cell(spec, 1024, 3).trial(row["lr"]))
        assert result["diverged"] == int(row["diverged"])
        if row["diverged"]:
            assert result["epoch"] == row["epochs_completed"] < 10 and math.isnan(result["test_acc"])
        else:
            assert result["epoch"] == 10 and result["test_acc"] == row["objective"]
    assert frame["diverged"][frame["batch_size"] == 1024].any()  # the table has diverged rows to answer
    assert answers.snapped_far == answers.other_seed == answers.repeats == 0
    assert len(answers.trials()) == 13 and answers.trial_epochs == answers.trials()["epochs_completed"].sum()


def test_a_proposal_snaps_to_the_nearest_recorded_lr_in_ln_lr(mlp_m0):
    cell = a_cell(replay_spec(mlp_m0, "grid"), 64, 0)
    lrs = mlp_m0.cells[(4000, 64, 0.0)].lrs
    answers = RecordedAnswers(mlp_m0)
    expected = [lrs[5], lrs[5], lrs[6], lrs[0], lrs[-1]]
    for lr in (lrs[5] * 1.05, lrs[5] * 1.15, lrs[5] * 1.25, lrs[0] / 100, lrs[-1] * 3):
        answers(cell.trial(lr))
    assert list(answers.study.trials.loc[answers.answered, "lr"]) == expected
    assert answers.snapped_far == 4  # all but the ×1.05 (√2 steps: ×1.15 and ×1.25 are more than ×1.1 off)
    assert answers.repeats == 1 and len(answers.trials()) == 4


def test_the_search_seeds_map_through_the_repetitions_permutation(mlp_m0):
    spec = replay_spec(mlp_m0, "grid")
    reversed_seeds = RecordedAnswers(mlp_m0, seed_order=[7, 6, 5, 4, 3, 2, 1, 0])
    lr = mlp_m0.cells[(4000, 64, 0.0)].lrs[4]
    reversed_seeds(a_cell(spec, 64, 0).trial(lr))
    reversed_seeds(a_cell(spec, 64, 6).trial(lr))
    assert list(mlp_m0.trials.loc[reversed_seeds.answered, "seed"]) == [7, 1]
    one, other = (RecordedAnswers.permuted(mlp_m0, np.random.default_rng(seed)) for seed in (1, 2))
    assert one.seed_map != other.seed_map and sorted(one.seed_map.values()) == list(range(8))
    with pytest.raises(ValueError, match="permute"):
        RecordedAnswers(mlp_m0, seed_order=[0, 1])


def test_a_combination_not_recorded_is_answered_by_the_nearest_seed_at_that_lr(mlp_m0):
    frame = mlp_m0.trials
    lr = mlp_m0.cells[(4000, 64, 0.0)].lrs[4]
    missing = (frame["batch_size"] == 64) & (frame["lr"] == lr) & frame["seed"].isin([3, 4])
    study = RecordedStudy.from_table(frame[~missing].drop(columns="epochs_run"), "gappy")
    answers = RecordedAnswers(study)
    answers(a_cell(replay_spec(study, "grid"), 64, 4).trial(lr))
    answered = study.trials.loc[answers.answered[0]]
    assert (answered["lr"], answered["seed"]) == (lr, 5) and answers.other_seed == 1


def test_a_bracket_replay_on_a_shipped_table_fits_the_law_for_less_than_the_table():
    study = RecordedStudy.from_parquet(DATA / "mnist1d_mlp_m09.parquet")
    run = replay_search(study, "bracket", {"trials_per_cell": 5}, repetition=0)
    assert run.available and run.law.fitted and run.law.width < math.inf
    assert 0 < run.trial_epochs / study.trial_epochs < 1
    assert run.rows <= run.trials <= 5 * 7 * 8  # at most the budget per (B, seed) cell


def test_a_table_the_replay_cannot_use_is_one_line(tmp_path, mlp_m0):
    one_seed = mlp_m0.trials[mlp_m0.trials["seed"] == 0].drop(columns="epochs_run")
    with pytest.raises(AnalysisError, match=r"^t: the law's trials have 1 seed \(0\); a replay needs at least 2"):
        RecordedStudy.from_table(one_seed, "one", where="t")
    two_sizes = mlp_m0.trials[mlp_m0.trials["batch_size"].isin([16, 32])].drop(columns="epochs_run")
    with pytest.raises(AnalysisError, match="2 batch sizes"):
        RecordedStudy.from_table(two_sizes, "two", where="t")
    stepped = mlp_m0.trials.drop(columns="epochs_run").assign(schedule="step_decay_lr")
    with pytest.raises(AnalysisError, match="no constant-schedule trial"):
        RecordedStudy.from_table(stepped, "stepped", where="t")


def test_a_table_over_two_momenta_is_judged_on_beta_too(tmp_path):
    """The shipped MLP tables at m = 0 and m = 0.9 together fit β: its interval's width and coverage are
    judged like α's; a one-momentum table's rows have no β."""
    from scalestudy.bench.search_summary import LawEstimate, SearchRun, fit_alpha, summary_rows

    frame = pd.concat([pd.read_parquet(DATA / f"{name}.parquet") for name in ("mnist1d_mlp_m0", "mnist1d_mlp_m09")],
                      ignore_index=True)
    frame.to_parquet(tmp_path / "two_momenta.parquet")
    study = RecordedStudy.from_parquet(tmp_path / "two_momenta.parquet")
    reference = fit_alpha(frame)
    assert reference.beta_interval is not None and reference.holds_beta(reference.beta)
    low, high = reference.beta_interval
    wide = LawEstimate(reference.alpha, reference.interval, beta=reference.beta, beta_interval=(low - 0.5, high + 0.5))
    off = LawEstimate(reference.alpha, reference.interval, beta=high + 1, beta_interval=(high + 0.5, 2 * high - low + 0.5))
    runs = [SearchRun("adaptive", True, trial_epochs=1.0, law=law) for law in (wide, off, off)]
    whole, row = summary_rows(study, reference, runs)
    assert whole["beta_interval"] == [low, high]
    assert row["beta_width_ratio"] == pytest.approx(1.0) and row["beta_coverage"] == pytest.approx(1 / 3)
    assert row["beta_coverage_interval"] == pytest.approx(list(wilson(1, 3)))
    assert row["coverage"] == 1.0  # α's, untouched
    single = RecordedStudy.from_parquet(DATA / "mnist1d_mlp_m09.parquet")
    _, row = summary_rows(single, fit_alpha(single.trials), runs)
    assert "beta_width_ratio" not in row


def wilson(hits: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson's score interval by its closed form: the roots in p of (hits/n − p)² = z²·p(1 − p)/n."""
    a, b, c = 1 + z * z / n, -(2 * hits / n + z * z / n), (hits / n) ** 2
    root = math.sqrt(b * b - 4 * a * c)
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


@pytest.mark.parametrize("hits, n", [(17, 20), (20, 20), (0, 20), (36, 40)])
def test_coverage_comes_with_its_wilson_interval(hits, n):
    """The share of repetitions that held the reference α is a binomial estimate: 17 of 20 pins a
    90 % coverage only to about 64–95 %. The interval is Wilson's (the quadratic's roots), and at 20/20
    its upper end is 1, not a point."""
    from scalestudy.bench.search_summary import LawEstimate, SearchRun, fit_alpha, summary_rows

    study = RecordedStudy.from_parquet(DATA / "text_lm_adamw.parquet")
    reference = fit_alpha(study.trials)
    low, high = reference.interval
    held, missed = LawEstimate(reference.alpha, (low, high)), LawEstimate(high + 1, (high + 0.5, high + 1.5))
    runs = [SearchRun("adaptive", True, trial_epochs=1.0, law=held if i < hits else missed) for i in range(n)]
    _, row = summary_rows(study, reference, runs)
    expected = wilson(hits, n)
    assert row["coverage"] == pytest.approx(hits / n)
    assert row["coverage_interval"] == pytest.approx(list(expected), abs=1e-9)
    assert row["coverage_interval"][0] <= hits / n <= row["coverage_interval"][1]
    assert row["coverage_95"] == f"{100 * expected[0]:.0f}–{100 * expected[1]:.0f} %"
