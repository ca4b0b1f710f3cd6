"""The noisy quadratic model as a study: `scalestudy run` on local Ray with MLflow on SQLite (no mocks),
SGD with momentum and AdamW, a diverging ε recorded as data."""

import subprocess
import sys

import pytest
import yaml
from mlflow.tracking import MlflowClient

from scalestudy.nqm import Quadratic

pytestmark = pytest.mark.slow

SPEC = {
    "name": "nqm_tiny",
    "workload": {"model": "nqm", "dataset_options": {"dim": 16, "train_size": 512},
                 "model_options": {"noise_scale": 0.5}, "epochs": 2},
    "grid": {"batch_size": [16, 32], "lr": [0.2, 500.0], "momentum": [0.9], "seeds": [0]},
    "sections": {"sgd": {}, "adamw": {"optimizer": {"name": "adamw"}, "grid": {"batch_size": [16], "lr": [0.01]}}},
    "resources": {"max_concurrent_trials": 2},
}


def test_an_nqm_study_runs_under_tune_and_tracks_the_exact_loss(tmp_path):
    (tmp_path / "nqm.yaml").write_text(yaml.safe_dump(SPEC))
    proc = subprocess.run([sys.executable, "-m", "scalestudy.cli", "run", "nqm.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("nqm_tiny")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`scalestudy.role` = 'trial'")
    status = {(r.data.params["batch_size"], r.data.params["lr"], r.data.params.get("optimizer", "")):
              r.data.tags["scalestudy.status"] for r in runs}
    assert len(runs) == 5
    assert sorted(status.values()) == ["diverged", "diverged", "ok", "ok", "ok"]
    initial = float(Quadratic.nqm(16).loss([1.0] * 16))
    for run in runs:
        if run.data.tags["scalestudy.status"] == "ok":
            assert 0 < run.data.metrics["test_loss"] < initial / 2
