"""A training worker process is killed inside a DDP trial.

Ray Train restarts the worker group from the trial's last checkpoint; with fixed seeds
the final metrics equal those of an uninterrupted run, and MLflow has each epoch once.
"""

import os
import signal
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from faults import epochs_logged, reported_epochs, run_cli, start_cli, trial_histories, wait_for

pytestmark = pytest.mark.slow

EPOCHS = 5


def spec(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name,
        "workload": {"dataset": "synthetic", "dataset_options": {"train_size": 8192, "test_size": 256},
                     "model": "mlp", "model_options": {"hidden": [64]}, "epochs": EPOCHS, "ghost_batch_size": 16},
        "grid": {"batch_size": [64], "lr": [0.05], "momentum": [0.9], "seeds": [3]},
        "resources": {"workers_per_trial": 2, "max_failures": 2, "max_concurrent_trials": 1},
    }))
    return path


def train_worker_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if cmdline.startswith("ray::RayTrainWorker"):
                pids.append(int(entry.name))
    return pids


def final_metrics(db: Path, experiment: str) -> dict[str, float]:
    client = MlflowClient(f"sqlite:///{db}")
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id],
                                "tags.`scalestudy.role` = 'trial'")
    return run.data.metrics


def test_killed_ddp_worker_resumes_exactly(tmp_path):
    reference = run_cli(["run", str(spec(tmp_path, "uninterrupted")), "--quiet"], tmp_path)
    assert reference.returncode == 0, reference.stdout[-3000:] + reference.stderr[-3000:]

    db = tmp_path / "mlflow.db"
    before = set(epochs_logged(db))
    driver = start_cli(["run", str(spec(tmp_path, "interrupted")), "--quiet"], tmp_path, tmp_path / "run.log")
    wait_for(lambda: any(2 <= e < EPOCHS for r, e in epochs_logged(db).items() if r not in before), timeout=420,
             what="the DDP trial to pass epoch 2")
    victims = wait_for(train_worker_pids, timeout=60, what="a Ray Train worker process")
    os.kill(victims[-1], signal.SIGKILL)
    assert driver.wait(600) == 0, (tmp_path / "run.log").read_text()[-4000:]

    (history,) = trial_histories(f"sqlite:///{db}", "interrupted").values()
    for metric, steps in history.items():
        assert steps == list(range(1, EPOCHS + 1)), (metric, steps)
    (study_dir,) = (tmp_path / "ray_results").glob("interrupted-*")
    (reported,) = reported_epochs(study_dir).values()
    assert 1 not in reported[1:], f"the trial restarted from scratch: {reported}"

    expected, got = final_metrics(db, "uninterrupted"), final_metrics(db, "interrupted")
    for key in ("test_loss", "test_acc", "train_loss", "train_acc", "updates", "examples_seen"):
        assert got[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-7), key
