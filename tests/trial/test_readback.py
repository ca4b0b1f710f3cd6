"""A trial's record read back beside its writer: the params, final metrics and tags the tracking writes
become the same trial-table row as the config and last result they were written from; runs closed
before statuses existed get theirs from the status rule; tables of earlier versions keep their columns
readable under the current names."""

import math

import pandas as pd
import pytest

from scalestudy.analysis import TrialTable, load_trials_from_parquet
from scalestudy.spec import spec_from_dict
from scalestudy.trial.config import expand_trials
from scalestudy.trial.readback import (
    EPOCHS_COMPLETED,
    EPOCHS_PLANNED,
    KEY,
    FORMER_NAMES,
    row_from_result,
    rows_from_runs,
    with_current_names,
)
from scalestudy.trial.record import KEY_TAG, STATUS_TAG, EpochReport, trial_params

SPEC = {"name": "t", "workload": {"dataset": "synthetic", "dataset_options": {"train_size": 512}, "model": "mlp",
                                  "model_options": {"hidden": [32]}, "epochs": 3, "ghost_batch_size": 16},
        "grid": {"batch_size": [32, 64], "lr": [0.1, 0.2], "momentum": [0.9], "seeds": [0]}}


def report(epoch: int, diverged: int = 0, train_loss: float = 0.5, test_acc: float = 0.8) -> EpochReport:
    return EpochReport(epoch=epoch, updates=16 * epoch, examples_seen=512 * epoch, batch_size=32, lr=0.1,
                       momentum=0.9, effective_lr=1.0, noise_scale=15.0, train_loss=train_loss, train_acc=0.9,
                       test_loss=0.6, test_acc=test_acc, gen_gap=0.9 - test_acc, running_loss=train_loss,
                       epoch_seconds=1.5, diverged=diverged)


def run_of(config, last: EpochReport, status: str | None, run_id: str = "r") -> dict:
    """One run as MLflow's search gives it: what the tracking wrote for the trial (strings for params)."""
    row = {"run_id": run_id, **{f"params.{k}": v for k, v in trial_params(config.to_dict()).items()},
           **{f"metrics.{k}": float(v) for k, v in last.metrics().items()}, f"tags.{KEY_TAG}": config.trial_key}
    if status is not None:
        row[f"tags.{STATUS_TAG}"] = status
    return row


def test_a_run_reads_back_as_the_row_of_its_config_and_last_result():
    config = expand_trials(spec_from_dict(SPEC))[0]
    last = report(3)
    rows, skipped = rows_from_runs(pd.DataFrame([run_of(config, last, "ok")]))
    from_run = rows.iloc[0]
    from_result = row_from_result(config, last.metrics())
    assert not skipped
    a = TrialTable.from_frame(pd.DataFrame([from_run.to_dict()])).frame
    b = TrialTable.from_frame(pd.DataFrame([from_result])).frame
    shared = [c for c in b.columns if c in a.columns]
    assert set(b.columns) - set(shared) == set()  # everything the result gives, the run gives too
    pd.testing.assert_frame_equal(a[shared], b[shared], check_dtype=False)
    assert from_result[KEY] == config.trial_key and from_result["status"] == "ok"
    assert (from_result[EPOCHS_COMPLETED], from_result[EPOCHS_PLANNED]) == (3.0, 3.0)
    assert (from_result["objective"], from_result["objective_train"]) == (0.8, 0.9)  # test_acc, train_acc


def test_a_minimised_objective_reads_its_value_and_training_counterpart():
    loss = {"objective": {"metric": "test_loss", "direction": "min"}}
    config = expand_trials(spec_from_dict({**SPEC, "analysis": loss}))[0]
    row = row_from_result(config, report(3).metrics())
    assert (row["objective_metric"], row["objective_direction"]) == ("test_loss", "min")
    assert (row["objective"], row["objective_train"]) == (0.6, 0.5)
    from_run = rows_from_runs(pd.DataFrame([run_of(config, report(3), "ok")]))[0].iloc[0]
    assert (from_run["objective"], from_run["objective_train"]) == (0.6, 0.5)


def test_runs_without_a_status_tag_get_the_status_rule():
    """Runs closed before statuses existed: ended when diverged, at their planned epochs or at their
    training-loss target; any other is unfinished (only the tag tells a stopped run from a running one)."""
    configs = expand_trials(spec_from_dict({**SPEC, "workload": {**SPEC["workload"], "stop_at_train_loss": 0.1}}))
    runs = pd.DataFrame([
        run_of(configs[0], report(3), None, "planned"),
        run_of(configs[1], report(1, diverged=1, train_loss=math.inf), None, "blown"),
        run_of(configs[2], report(2, train_loss=0.05), None, "at_loss_target"),
        run_of(configs[3], report(1), None, "unfinished"),
    ])
    rows, skipped = rows_from_runs(runs)
    assert dict(zip(rows["run_id"], rows["status"])) == {"planned": "ok", "blown": "diverged", "at_loss_target": "ok"}
    assert dict(zip(rows["run_id"], rows["diverged"])) == {"planned": False, "blown": True, "at_loss_target": False}
    assert skipped == {"unfinished": 1}


def test_tagged_runs_keep_their_status_and_unfinished_ones_are_counted():
    config = expand_trials(spec_from_dict(SPEC))[0]
    runs = pd.DataFrame([run_of(config, report(1), "stopped", "asha"), run_of(config, report(1), "running", "live"),
                         run_of(config, report(1), "error", "broken")])
    rows, skipped = rows_from_runs(runs)
    assert list(rows["run_id"]) == ["asha"] and list(rows["status"]) == ["stopped"]
    assert skipped == {"running": 1, "error": 1}


def test_tables_of_earlier_versions_read_under_the_current_names(tmp_path):
    old = pd.DataFrame({"batch_size": [32, 64], "lr": [0.1, 0.2], "momentum": [0.9, 0.9], "seed": [0, 0],
                        "dataset_size": [512, 512], "diverged": [False, False], "test_acc": [0.8, 0.7],
                        "train_acc": [0.9, 0.8], "trial_id": ["a", "b"], "epochs": [3.0, 1.0],
                        "planned_epochs": [3.0, 3.0]})
    assert set(FORMER_NAMES) <= set(old.columns)
    renamed = with_current_names(old)
    assert list(renamed[KEY]) == ["a", "b"] and list(renamed[EPOCHS_COMPLETED]) == [3.0, 1.0]
    assert list(renamed[EPOCHS_PLANNED]) == [3.0, 3.0] and not set(FORMER_NAMES) & set(renamed.columns)
    old.to_parquet(tmp_path / "trials.parquet")
    table = load_trials_from_parquet(tmp_path / "trials.parquet").frame
    assert list(table[KEY]) == ["a", "b"] and list(table[EPOCHS_COMPLETED]) == [3.0, 1.0]
    current = renamed.assign(epochs=[9.0, 9.0])  # a current table with an unrelated "epochs" column keeps it
    assert list(with_current_names(current)[EPOCHS_COMPLETED]) == [3.0, 1.0]


@pytest.mark.parametrize("missing", ["epoch", "diverged"])
def test_a_result_without_a_value_reads_as_missing_not_zero(missing):
    config = expand_trials(spec_from_dict(SPEC))[0]
    result = {k: v for k, v in report(3).metrics().items() if k != missing}
    row = row_from_result(config, result)
    if missing == "epoch":
        assert math.isnan(row[EPOCHS_COMPLETED]) and row["status"] == "error"
    else:
        assert row["diverged"] is False and row["status"] == "ok"
