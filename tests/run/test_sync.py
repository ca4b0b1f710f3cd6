"""``scalestudy sync``: an adaptive search whose ASHA stopped trials, its MLflow runs left open (as
after an outage or a driver that died before its tracking callback could write), then synced."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from scalestudy.trial.record import STATUS_TAG

pytestmark = pytest.mark.slow

# Bracketing with a wide step: the first trial of a cell runs at the predicted ε, the next at ε/8,
# which trails after its first epoch and is stopped by ASHA (one trial at a time, so always in this
# order). A cell converges after three or four trials, below its budget of six: the study ends
# with fewer trials than the upper bound its parent run logged.
SPEC = {
    "name": "synced",
    "workload": {"dataset": "synthetic", "dataset_options": {"train_size": 512, "test_size": 128}, "model": "mlp",
                 "model_options": {"hidden": [32]}, "epochs": 3, "ghost_batch_size": 16},
    "grid": {"batch_size": [32, 64], "momentum": [0.9], "seeds": [0],
             "lr": {"reference_batch_size": 32, "reference_lr": 0.05, "reference_momentum": 0.9,
                    "multipliers": [0.01, 100]}},
    "search": {"algorithm": "bracket", "trials_per_cell": 6, "step_factor": 8, "stop_ratio": 100,
               "early_stopping": {"grace_period": 1, "reduction_factor": 2}},
    "resources": {"max_concurrent_trials": 1},
}


def scalestudy(*args, cwd: Path):
    return subprocess.run([sys.executable, "-m", "scalestudy.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=900)


def test_sync_closes_stopped_trials_and_an_adaptive_study(tmp_path):
    (tmp_path / "synced.yaml").write_text(yaml.safe_dump(SPEC))
    proc = scalestudy("run", "synced.yaml", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = client.get_experiment_by_name("synced").experiment_id
    (parent,) = client.search_runs([experiment_id], "tags.`scalestudy.role` = 'study'")
    runs = client.search_runs([experiment_id], "tags.`scalestudy.role` = 'trial'")
    statuses = {run.data.tags["scalestudy.trial_key"]: run.data.tags[STATUS_TAG] for run in runs}
    assert "stopped" in statuses.values(), statuses  # ASHA stopped a trial
    assert len(runs) < int(parent.data.params["trials"]) == 12  # fewer trials than the upper bound

    # MLflow loses the ends: every run open again, one run gone entirely.
    for run in [parent, *runs]:
        client.update_run(run.info.run_id, status="RUNNING")
    for run in runs:
        client.set_tag(run.info.run_id, STATUS_TAG, "running")
    lost = runs[0]
    client.delete_run(lost.info.run_id)

    proc = scalestudy("sync", "synced", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"synced: {len(runs)} trials read, 1 runs created" in proc.stdout
    after = client.search_runs([experiment_id], "tags.`scalestudy.role` = 'trial'")
    assert {run.data.tags["scalestudy.trial_key"]: run.data.tags[STATUS_TAG] for run in after} == statuses
    assert all(run.info.status == "FINISHED" for run in after)
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"  # every trial of the study ended
    key = lost.data.tags["scalestudy.trial_key"]
    (back,) = [run for run in after if run.data.tags["scalestudy.trial_key"] == key]
    epochs = int(lost.data.metrics["epoch"])
    assert sorted(m.step for m in client.get_metric_history(back.info.run_id, "test_acc")) == list(range(1, epochs + 1))

    again = scalestudy("sync", "synced", cwd=tmp_path)
    assert again.returncode == 0 and "0 runs created, 0 metric points logged, 0 runs closed" in again.stdout
