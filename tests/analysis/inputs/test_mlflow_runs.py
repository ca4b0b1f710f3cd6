"""MLflow → trial table on real SQLite stores written by hand with MlflowClient, following the
engine's contract (no mocks); and the analysis run logged back under the study's parent run."""

import json
import math

import pandas as pd
import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from scalestudy.analysis import (
    AnalysisError,
    analyze,
    load_trials_from_mlflow,
    load_trials_from_parquet,
    study_compute,
)
from scalestudy.bench.analysis import make_mlflow_store
from scalestudy.law import ScalingLaw
from scalestudy.testing.planted import make_planted_table

EPOCHS = 3


def write_study(uri, frame, experiment="study", tmp=None, extra_runs=()):
    """An experiment, a parent run and one run per trial row with per-epoch metrics."""
    client = MlflowClient(uri)
    experiment_id = client.create_experiment(experiment, artifact_location=(tmp / "artifacts").as_uri(),
                                             tags={"mlflow.experimentKind": "custom_model_development"})
    parent = client.create_run(experiment_id, run_name=f"study {experiment}", tags={
        "scalestudy.role": "study", "scalestudy.spec_hash": "hash123", "scalestudy.version": "0.1.0",
        "scalestudy.study": experiment}).info.run_id
    for row in list(frame.to_dict("records")) + list(extra_runs):
        status = row.pop("status", "diverged" if row["diverged"] else "ok")
        tags = {"mlflow.parentRunId": parent, "scalestudy.role": "trial", "scalestudy.trial_key": row["trial_key"],
                "scalestudy.status": status}
        run_id = client.create_run(experiment_id, tags=tags, run_name=row["trial_key"]).info.run_id
        params = {"dataset": "planted", "model": "none", "dataset_size": row["dataset_size"], "epochs": EPOCHS,
                  "ghost_batch_size": "", "batch_size": row["batch_size"], "lr": row["lr"],
                  "momentum": row["momentum"], "nesterov": False, "weight_decay": 0.0, "seed": row["seed"],
                  "schedule": row["schedule"], "schedule_args": "{}", "section": row["section"], "workers": 1,
                  "trial_key": row["trial_key"]}
        last = 1 if row["diverged"] else int(row.get("epochs_done", EPOCHS))
        metrics = []
        for epoch in range(1, last + 1):
            share = epoch / last
            values = {"epoch": epoch, "updates": row["updates"] * epoch / EPOCHS, "test_acc": row["test_acc"] * share,
                      "train_acc": row["train_acc"] * share, "test_loss": row["test_loss"],
                      "train_loss": row["train_loss"], "diverged": float(row["diverged"] and epoch == last),
                      "batch_size": row["batch_size"], "lr": row["lr"], "momentum": row["momentum"]}
            metrics += [Metric(k, float(v), 0, epoch) for k, v in values.items()]
        client.log_batch(run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()],
                         tags=[RunTag(k, v) for k, v in tags.items()])
        client.set_terminated(run_id)
    return experiment_id, parent


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    frame = make_planted_table(1.0, 1.0, 1e-3, None, batch_sizes=(32, 64, 128, 256, 512), momenta=(0.0, 0.9),
                               lr_points=5, schedules=True, rng=4)
    base = frame.iloc[0].to_dict()
    unfinished = [dict(base, trial_key="running-1", status="running", epochs_done=1),
                  dict(base, trial_key="error-1", status="error", epochs_done=1)]
    experiment_id, parent = write_study(uri, frame, tmp=tmp, extra_runs=unfinished)
    return {"uri": uri, "frame": frame, "experiment_id": experiment_id, "parent": parent, "tmp": tmp}


def test_sql_and_client_reads_agree_and_match_the_trials(store):
    by_sql = load_trials_from_mlflow("study", store["uri"], method="sql", allow_partial=True)
    by_client = load_trials_from_mlflow("study", store["uri"], method="client", allow_partial=True)
    a = by_sql.frame.sort_values("run_id").reset_index(drop=True)
    b = by_client.frame.sort_values("run_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b[a.columns], check_dtype=False)
    planted = store["frame"].set_index("trial_key")
    table = a.set_index("trial_key").loc[planted.index]
    assert len(a) == len(planted)
    for column in ("batch_size", "lr", "momentum", "seed", "dataset_size", "diverged", "schedule"):
        assert (table[column].to_numpy() == planted[column].to_numpy()).all(), column
    assert table["test_acc"].to_numpy() == pytest.approx(planted["test_acc"].to_numpy())
    assert math.isnan(table.loc[table["diverged"], "test_loss"].iloc[0])  # NaN survives the store
    assert set(table["status"]) == {"ok", "diverged"}
    assert (table.loc[~table["diverged"], "epochs_completed"] == EPOCHS).all()
    assert by_sql.warnings[0] == "2 unfinished trial runs left out (error 1, running 1)"
    assert by_sql.warnings[1].startswith("partial study: the study of experiment 'study' did not finish")
    assert by_sql.provenance["parent_run_id"] == store["parent"]
    assert by_sql.provenance["spec_hash"] == "hash123"


def test_missing_experiment_and_missing_store(store, tmp_path):
    with pytest.raises(AnalysisError, match="no MLflow experiment named 'nope'"):
        load_trials_from_mlflow("nope", store["uri"])
    missing = tmp_path / "missing.db"
    with pytest.raises(AnalysisError, match="no MLflow store at"):
        load_trials_from_mlflow("study", f"sqlite:///{missing}")
    assert not missing.exists()


def test_empty_experiment(store):
    MlflowClient(store["uri"]).create_experiment("empty", artifact_location=(store["tmp"] / "a2").as_uri())
    with pytest.raises(AnalysisError, match="experiment 'empty' has no trial runs") as error:
        load_trials_from_mlflow("empty", store["uri"])
    assert "\n" not in str(error.value)


def test_runs_without_a_required_param(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("bad", artifact_location=(tmp_path / "a").as_uri())
    run_id = client.create_run(experiment_id, tags={"scalestudy.role": "trial"}).info.run_id
    client.log_batch(run_id, params=[Param("batch_size", "32"), Param("lr", "0.1")])
    with pytest.raises(AnalysisError, match="lack the param 'momentum'"):
        load_trials_from_mlflow("bad", uri)


def test_analyze_logs_an_analysis_run_under_the_parent(store, tmp_path):
    trials = load_trials_from_mlflow("study", store["uri"], allow_partial=True)
    result = analyze(trials, tmp_path / "out")
    client = MlflowClient(store["uri"])
    run = client.get_run(result.analysis_run_id)
    assert run.data.tags["mlflow.parentRunId"] == store["parent"]
    assert run.data.tags["scalestudy.role"] == "analysis" and run.info.run_name == "analysis"
    assert run.data.metrics["law.alpha"] == pytest.approx(1.0, abs=0.05)
    artifacts = {a.path for a in client.list_artifacts(result.analysis_run_id)}
    assert {"law.json", "law.yaml", "report.md", "trials.parquet", "lr_opt_vs_batch_size.png",
            "schedules.png"} <= artifacts
    # The schedule figure was drawn from per-epoch histories of the schedule runs only.
    law = ScalingLaw.load(tmp_path / "out" / "law.json")
    assert law.provenance.experiment == "study" and law.provenance.spec_hash == "hash123"
    assert law.provenance.tracking_uri == store["uri"]
    # A second analysis of the same store does not read its own analysis run as a trial.
    assert len(load_trials_from_mlflow("study", store["uri"], allow_partial=True)) == len(trials)


def test_trials_parquet_round_trip_keeps_provenance(store, tmp_path):
    trials = load_trials_from_mlflow("study", store["uri"], allow_partial=True)
    path = trials.to_parquet(tmp_path / "trials.parquet")
    again = load_trials_from_parquet(path)
    assert again.provenance["origin"]["experiment"] == "study"
    pd.testing.assert_frame_equal(again.frame, trials.frame, check_dtype=False)
    result = analyze(again, tmp_path / "out")  # from Parquet: no MLflow run, no schedule curves
    assert result.analysis_run_id is None
    assert any("schedule-curve" in note for note in result.figure_notes)
    assert json.loads((tmp_path / "out" / "law.json").read_text())["provenance"]["experiment"] == "study"


def log_trial(client, experiment_id, key, params, epochs, status):
    """One trial run with the given per-epoch metrics ({name: value per epoch, None: not logged})."""
    tags = {"scalestudy.role": "trial", "scalestudy.trial_key": key, "scalestudy.status": status}
    run_id = client.create_run(experiment_id, tags=tags, run_name=key).info.run_id
    metrics = [Metric(name, float(value), 0, step) for step, values in enumerate(epochs, 1)
               for name, value in values.items() if value is not None]
    client.log_batch(run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()])
    client.set_terminated(run_id)


def test_diagnostics_resources_and_stopped_trials_round_trip(store, tmp_path):
    uri = store["uri"]  # a second experiment in the same store: no second schema set-up
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("diag", artifact_location=(tmp_path / "a").as_uri())
    base = {"dataset": "planted", "dataset_size": 1000, "epochs": 3, "batch_size": 100, "lr": 0.1, "momentum": 0.9,
            "seed": 0, "schedule": "constant", "section": "law", "workers": 2, "cpus_per_worker": 2.0,
            "gpus_per_worker": 0.5, "grad_clip_norm": 1.0, "grad_norm_penalty": "", "target_accuracy": 0.5}

    def epoch(step, acc, seconds, **extra):
        return {"epoch": step, "updates": 10 * step, "examples_seen": 1000 * step, "test_acc": acc,
                "train_acc": acc, "diverged": 0, "epoch_seconds": seconds, **extra}

    log_trial(client, experiment_id, "full", base, [
        epoch(1, 0.3, 10, gradient_noise_scale=100),
        epoch(2, 0.6, 20, gradient_noise_scale=200, updates_to_target=20, examples_to_target=2000),
        epoch(3, 0.7, 30, gradient_noise_scale=300, updates_to_target=20, examples_to_target=2000, sharpness=0.4,
              sharpness_subspace=0.05)], "ok")
    log_trial(client, experiment_id, "asha", {**base, "lr": 0.01}, [epoch(1, 0.2, 5, gradient_noise_scale=50)],
              "stopped")
    log_trial(client, experiment_id, "blown", {**base, "lr": 1.0},
              [{**epoch(1, 0.1, 7, gradient_noise_scale=1), "diverged": 1}], "diverged")
    by_sql = load_trials_from_mlflow("diag", uri, method="sql")
    by_client = load_trials_from_mlflow("diag", uri, method="client")
    assert by_sql.warnings == [] and by_sql.provenance["train_seconds"] == "sum of epoch_seconds"
    assert by_client.provenance["train_seconds"] == "estimate: last epoch_seconds × epochs completed"
    a = by_sql.frame.set_index("trial_key").sort_index()
    b = by_client.frame.set_index("trial_key").sort_index()
    assert a["train_seconds"].to_dict() == {"asha": 5, "blown": 7, "full": 60}
    assert b["train_seconds"].to_dict() == {"asha": 5, "blown": 7, "full": 90}
    pd.testing.assert_frame_equal(a.drop(columns="train_seconds"), b[a.columns.drop("train_seconds")],
                                  check_dtype=False)
    assert a["status"].to_dict() == {"asha": "stopped", "blown": "diverged", "full": "ok"}
    assert list(a["epochs_completed"]) == [1, 1, 3] and (a["epochs_planned"] == 3).all()
    full = a.loc["full"]
    assert (full["gradient_noise_scale"], full["updates_to_target"], full["examples_to_target"]) == (300, 20, 2000)
    assert (full["sharpness"], full["sharpness_subspace"], full["target_accuracy"]) == (0.4, 0.05, 0.5)
    assert (full["workers"], full["cpus_per_worker"], full["gpus_per_worker"]) == (2, 2, 0.5)
    assert full["grad_clip_norm"] == 1.0 and math.isnan(full["grad_norm_penalty"])  # "" = unset
    assert a.loc[["asha", "blown"], ["updates_to_target", "sharpness"]].isna().all().all()
    compute = study_compute(by_sql.frame, by_sql.provenance["train_seconds"])
    assert (compute.trials, compute.stopped, compute.diverged, compute.trial_epochs) == (3, 1, 1, 5)
    assert compute.cpu_hours == pytest.approx(72 * 2 * 2 / 3600) and compute.gpu_hours == pytest.approx(72 / 3600)
    client_compute = study_compute(by_client.frame, by_client.provenance["train_seconds"])
    assert client_compute.cpu_hours == pytest.approx(102 * 4 / 3600) and "estimate" in client_compute.notes[-1]


def test_bench_store_reads_through_both_paths(tmp_path):
    uri = f"sqlite:///{tmp_path / 'bench.db'}"
    make_mlflow_store(uri, 120)
    by_sql = load_trials_from_mlflow("bench", uri, method="sql").frame.sort_values("run_id")
    by_client = load_trials_from_mlflow("bench", uri, method="client").frame.sort_values("run_id")
    assert len(by_sql) == 120
    pd.testing.assert_frame_equal(by_sql.reset_index(drop=True), by_client[by_sql.columns].reset_index(drop=True),
                                  check_dtype=False)


def test_analyze_refuses_a_study_that_did_not_finish_unless_partial_is_allowed(store, tmp_path):
    from cli_in_process import run

    args = ["analyze", "--experiment", "study", "--tracking-uri", store["uri"]]
    code, out, err = run([*args, "--out", tmp_path / "refused"])
    assert code == 2 and err.count("\n") == 1 and "did not finish" in err and "--allow-partial" in err, err
    assert not (tmp_path / "refused").exists()
    code, out, err = run([*args, "--out", tmp_path / "partial", "--allow-partial"])
    assert code == 0, err
    assert "partial study: the study of experiment 'study' did not finish" in out
    assert "partial study" in (tmp_path / "partial" / "report.md").read_text()
