"""A branched study's extra trials (issue 23): a branch's config and key, and the comparison's staged
runs (the warmup's stages at the base's epoch boundaries, the late switch) against hand-computed tables."""

from dataclasses import replace

import pytest

from scalestudy.law.batch_warmup import WARMUP_SCHEMA, BatchStage, BatchWarmup
from scalestudy.run.comparison import staged_runs
from scalestudy.schedules import stage_at
from scalestudy.spec import spec_from_dict
from scalestudy.trial.branch import RULE_EXPONENT_TAG, TRUE_CBS_TAG, BranchOrigin, branch_config
from scalestudy.trial.config import expand_trials
from scalestudy.trial.stages import Stage, StagedRun, staged_config

SPEC = {
    "name": "b",
    "workload": {"dataset": "synthetic", "dataset_options": {"train_size": 1024}, "model": "mlp", "epochs": 20},
    "grid": {"batch_size": [16], "lr": [0.05], "momentum": [0.9], "seeds": [0]},
    "analysis": {"objective": {"metric": "train_loss", "direction": "min"}},
    "branching": {"checkpoints": 4, "batch_factors": [1, 2, 4], "window_examples": 1024, "seeds": [0, 1]},
}


def base():
    spec = spec_from_dict(SPEC)
    (trial,) = expand_trials(spec)
    return spec, trial


def origin(epoch: int, factor: int) -> BranchOrigin:
    return BranchOrigin("base-key", 0, epoch, epoch * 1024, epoch * 64, factor, 1, "/ckpt", "linear", 0.01, 1024)


def test_a_branch_trains_its_window_at_its_batch_and_is_keyed_by_its_checkpoint():
    _, trial = base()
    branch = branch_config(trial, origin(19, 4), lr=0.2, seed=1)
    assert (branch.batch_size, branch.lr, branch.seed, branch.workload.epochs) == (64, 0.2, 1, 20)
    # The control at the base's seed, ending where the base ends, is still not the base.
    control = branch_config(trial, origin(19, 1), lr=0.05, seed=0)
    assert control.workload.epochs == trial.workload.epochs and control.trial_key != trial.trial_key
    assert branch_config(trial, origin(18, 1), 0.05, 0).trial_key != branch_config(trial, origin(17, 1), 0.05, 0).trial_key


def test_a_branch_carries_the_law_rules_exponent_and_the_truth_as_tags_only_when_it_has_them():
    plain = origin(3, 2)
    assert RULE_EXPONENT_TAG not in plain.tags() and TRUE_CBS_TAG not in plain.tags()
    law = replace(plain, rule="law", rule_exponent=0.7, true_cbs=91.25)
    assert law.tags()[RULE_EXPONENT_TAG] == "0.7" and float(law.tags()[TRUE_CBS_TAG]) == 91.25
    assert BranchOrigin.from_dict(law.to_dict()) == law
    # The truth does not change what a branch trains: its key stays the same.
    _, trial = base()
    without = replace(law, true_cbs=None)
    assert branch_config(trial, law, 0.1, 0).trial_key == branch_config(trial, without, 0.1, 0).trial_key


def test_stage_at_is_the_last_stage_started():
    starts = [0, 2, 5]
    assert [stage_at(starts, epoch) for epoch in range(8)] == [0, 0, 1, 1, 1, 2, 2, 2]


def test_the_warmups_stages_land_on_the_bases_epochs_and_the_late_switch_at_four_fifths():
    spec, trial = base()  # N = 1024, B₀ = 16: 1024 examples an epoch; 20 epochs
    warmup = BatchWarmup(WARMUP_SCHEMA, 16, 0.05, 0.9, "sgd", "linear", 2, "ci_low", 20 * 1024, 1024,
                         (BatchStage(0, 0, 16, 0.05), BatchStage(2048, 128, 32, 0.1), BatchStage(5100, 224, 64, 0.2)))
    constant, staged, late = staged_runs(spec, trial, warmup)
    assert constant.stages == (Stage(0, 16, 0.05),)
    assert staged.kind == "warmup" and staged.stages == (Stage(0, 16, 0.05), Stage(2, 32, 0.1), Stage(5, 64, 0.2))
    assert late.kind == "late_switch" and late.stages == (Stage(0, 16, 0.05), Stage(16, 64, pytest.approx(0.2)))
    # Each stage's loop ends where the next starts; the last at the run's end.
    assert [staged.stage_config(trial, i).workload.epochs for i in range(3)] == [2, 5, 20]
    assert staged.stage_config(trial, 1).batch_size == 32
    keys = {staged_config(trial, run, seed).trial_key for run in (constant, staged, late) for seed in (0, 1)}
    assert len(keys) == 6 and trial.trial_key not in keys
    flat = replace(warmup, stages=warmup.stages[:1])
    assert staged_runs(spec, trial, flat) == [constant]  # nothing to compare


def test_a_staged_run_round_trips_its_dict():
    run = StagedRun("warmup", (Stage(0, 16, 0.05), Stage(3, 64, 0.2)))
    assert StagedRun.from_dict(run.to_dict()) == run
