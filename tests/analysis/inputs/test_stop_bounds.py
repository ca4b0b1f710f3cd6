"""The trial table's objective_bound: recomputed from per-epoch histories with the search's own bound
(scalestudy.trial.curve_bound), on hand-built frames and through a real SQLite MLflow store (both reads)."""

import math

import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from scalestudy.analysis import load_trials_from_mlflow
from scalestudy.analysis.inputs.stop_bounds import objective_bounds
from scalestudy.trial.record import EARLY_STOPPING_TAG

CURVES = {"a": [0.50, 0.60, 0.70, 0.72], "b": [0.30, 0.45, 0.55, 0.60],  # late gains after 2: 0.12, 0.15
          "s": [0.20, 0.25], "t": [0.10], "other": [0.05, 0.06]}


def row(run, batch_size=128, status="ok", lr=0.1):
    return {"run_id": run, "batch_size": batch_size, "momentum": 0.9, "lr": lr, "seed": 0, "dataset_size": 1000,
            "section": "law", "schedule": "constant", "schedule_args": "{}", "epochs_planned": 4.0,
            "status": status, "objective": CURVES[run][-1], "objective_metric": "test_acc",
            "objective_direction": "max", "diverged": False}


def histories(curves=CURVES, key="test_acc"):
    return pd.DataFrame([(run, key, step, value) for run, values in curves.items()
                         for step, value in enumerate(values, 1)], columns=["run_id", "key", "step", "value"])


def test_each_stopped_trial_gets_the_bound_of_its_own_cell_at_its_last_epoch():
    frame = pd.DataFrame([row("a"), row("b"), row("s", status="stopped"), row("t", status="stopped"),
                          row("other", batch_size=256, status="stopped")])
    bounds = objective_bounds(frame, histories())
    assert bounds[2] == pytest.approx(0.25 + 1.5 * 0.15)
    assert bounds[3] == pytest.approx(0.10 + 1.5 * 0.30)  # after epoch 1: gains 0.22, 0.30
    assert math.isnan(bounds[4])  # its cell has no finished trial: no bound
    assert bounds[:2].isna().all()  # finished trials have none


def test_a_minimised_objective_s_bound_is_the_lowest_it_could_reach():
    loss = {run: [1 - v for v in values] for run, values in CURVES.items()}
    frame = pd.DataFrame([row("a"), row("b"), row("s", status="stopped")]).assign(
        objective_metric="test_loss", objective_direction="min")
    bounds = objective_bounds(frame, histories(loss, key="test_loss"))
    assert bounds[2] == pytest.approx(0.75 - 1.5 * 0.15)


# --- through MLflow ---------------------------------------------------------------------------------


def write_study(client, name, tmp, early_stopping):
    experiment_id = client.create_experiment(name, artifact_location=(tmp / name).as_uri())
    tags = {"scalestudy.role": "study", **({EARLY_STOPPING_TAG: early_stopping} if early_stopping else {})}
    parent = client.create_run(experiment_id, tags=tags).info.run_id
    for run, lr, status in (("a", 0.1, "ok"), ("b", 0.2, "ok"), ("s", 0.8, "stopped")):
        tags = {"mlflow.parentRunId": parent, "scalestudy.role": "trial", "scalestudy.trial_key": run,
                "scalestudy.status": status}
        run_id = client.create_run(experiment_id, tags=tags).info.run_id
        params = {"batch_size": 128, "lr": lr, "momentum": 0.9, "seed": 0, "dataset_size": 1000, "epochs": 4,
                  "schedule": "constant", "schedule_args": "{}", "section": "law", "trial_key": run}
        metrics = [Metric(name, value, 0, step) for step, acc in enumerate(CURVES[run], 1)
                   for name, value in (("epoch", float(step)), ("test_acc", acc), ("diverged", 0.0))]
        client.log_batch(run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()],
                         tags=[RunTag(k, v) for k, v in tags.items()])
        client.set_terminated(run_id)
    client.set_terminated(parent)


def test_a_study_stopped_by_the_bound_reads_back_with_its_bounds_and_an_asha_one_without(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    write_study(client, "bound", tmp_path, "cell_bound")
    write_study(client, "asha", tmp_path, "asha")
    for method in ("sql", "client"):
        table = load_trials_from_mlflow("bound", uri, method=method)
        frame = table.frame.set_index("trial_key")
        assert table.provenance["early_stopping"] == "cell_bound"
        assert frame.loc["s", "objective_bound"] == pytest.approx(0.25 + 1.5 * 0.15), method
        assert (frame.loc["s", "epochs_completed"], frame.loc["s", "objective"]) == (2, 0.25)
        assert np.isnan(frame.loc[["a", "b"], "objective_bound"]).all()
        assert "objective_bound" not in load_trials_from_mlflow("asha", uri, method=method).frame.columns
