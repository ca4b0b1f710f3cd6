"""End to end on local Ray with a real MLflow SQLite store (no mocks)."""

import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from scalestudy.trial.record import METRIC_KEYS

pytestmark = pytest.mark.slow

SPEC = {
    "name": "tiny",
    "workload": {"dataset": "synthetic", "dataset_options": {"train_size": 512, "test_size": 128},
                 "model": "mlp", "model_options": {"hidden": [32]}, "epochs": 3, "ghost_batch_size": 16},
    "grid": {"batch_size": [32, 64], "lr": [0.05, 5000.0], "momentum": [0.9], "seeds": [0]},
    "sections": {
        "law": {},
        "schedules": {"grid": {"batch_size": [32], "lr": [0.05]},
                      "schedule": [{"kind": "step_decay_lr", "milestones": [1], "factor": 2},
                                   {"kind": "increase_batch", "milestones": [1], "factor": 2}]},
    },
    "resources": {"max_concurrent_trials": 2},
}


def scalestudy(*args, cwd: Path, timeout=600):
    return subprocess.run([sys.executable, "-m", "scalestudy.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def trial_runs(client, experiment_id):
    return client.search_runs([experiment_id], filter_string="tags.`scalestudy.role` = 'trial'", max_results=1000)


def test_run_tracks_every_trial_and_epoch(tmp_path):
    spec_path = tmp_path / "tiny.yaml"
    spec_path.write_text(yaml.safe_dump(SPEC))
    proc = scalestudy("run", str(spec_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "trials 6/6 done" in proc.stdout
    assert "mlflow ui --backend-store-uri sqlite:///mlflow.db" in proc.stdout
    assert "?workflowType=machine_learning" in proc.stdout

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    parents = client.search_runs([experiment.experiment_id], filter_string="tags.`scalestudy.role` = 'study'")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.data.tags["scalestudy.spec_hash"]
    assert "spec.yaml" in [a.path for a in client.list_artifacts(parent.info.run_id)]

    runs = trial_runs(client, experiment.experiment_id)
    assert len(runs) == 6
    by_status = {}
    for run in runs:
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        by_status.setdefault(run.data.tags["scalestudy.status"], []).append(run)
        for key in ("batch_size", "lr", "momentum", "seed", "schedule", "dataset_size"):
            assert key in run.data.params
        epochs = int(run.data.metrics["epoch"])
        for key in METRIC_KEYS:
            history = client.get_metric_history(run.info.run_id, key)
            assert sorted(m.step for m in history) == list(range(1, epochs + 1)), key
    # The huge ε diverges at both batch sizes; the study still completes.
    assert len(by_status["diverged"]) == 2
    assert all(float(r.data.params["lr"]) == 5000.0 for r in by_status["diverged"])
    assert len(by_status["ok"]) == 4
    for run in by_status["ok"]:
        assert run.data.metrics["epoch"] == 3
        assert run.data.metrics["test_acc"] > 0.4

    grow = next(r for r in runs if r.data.params["schedule"] == "increase_batch")
    sizes = [m.value for m in sorted(client.get_metric_history(grow.info.run_id, "batch_size"), key=lambda m: m.step)]
    assert sizes == [32, 64, 64]


def test_ddp_trial_matches_single_worker_trial(tmp_path):
    """A W=2 DDP trial through Ray Train and a W=1 trial: same global batch, ghost size, seed."""
    curves = {}
    for workers in (1, 2):
        spec = dict(SPEC, name=f"ddp{workers}", sections={},
                    grid={"batch_size": [64], "lr": [0.05], "momentum": [0.9], "seeds": [0]},
                    resources={"workers_per_trial": workers, "max_concurrent_trials": 1})
        path = tmp_path / f"ddp{workers}.yaml"
        path.write_text(yaml.safe_dump(spec))
        proc = scalestudy("run", str(path), cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
        (run,) = trial_runs(client, client.get_experiment_by_name(f"ddp{workers}").experiment_id)
        assert run.data.params["workers"] == str(workers)
        curves[workers] = {key: [m.value for m in sorted(client.get_metric_history(run.info.run_id, key),
                                                         key=lambda m: m.step)]
                           for key in ("test_acc", "train_loss", "updates")}
    assert curves[1]["updates"] == curves[2]["updates"] == [8, 16, 24]
    for a, b in zip(curves[1]["test_acc"], curves[2]["test_acc"]):
        assert a == pytest.approx(b, abs=0.03)
    for a, b in zip(curves[1]["train_loss"], curves[2]["train_loss"]):
        assert math.isfinite(b) and a == pytest.approx(b, rel=0.05)
