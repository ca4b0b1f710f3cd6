"""The driver is SIGKILLed mid-study; ``scalestudy run SPEC --resume`` finishes the job.

Finished trials are not rerun, interrupted trials continue from their checkpoints, and
MLflow ends with exactly one run per trial, each with its complete per-epoch history.
"""

import time
from pathlib import Path

import pytest
import yaml

from faults import epochs_logged, kill_hard, reported_epochs, run_cli, start_cli, trial_histories, wait_for

pytestmark = pytest.mark.slow

EPOCHS = 6
SPEC = {
    "name": "resumable",
    "workload": {"dataset": "synthetic", "dataset_options": {"train_size": 8192, "test_size": 256},
                 "model": "mlp", "model_options": {"hidden": [64]}, "epochs": EPOCHS, "ghost_batch_size": 16},
    "grid": {"batch_size": [32], "lr": [0.02, 0.04, 0.08, 0.16, 0.32], "momentum": [0.9], "seeds": [0]},
    "resources": {"max_concurrent_trials": 2},
}


def test_sigkill_driver_then_resume(tmp_path: Path):
    spec = tmp_path / "resumable.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    db = tmp_path / "mlflow.db"
    driver = start_cli(["run", str(spec), "--quiet"], tmp_path, tmp_path / "first.log")

    def mid_study():
        # Finished: as MLflow has it (checked after the resume). Half-way: as Tune's own record has it,
        # which is what --resume restores from. MLflow's writer lags Tune's by epochs on a loaded
        # machine, so a trial it showed half-way had sometimes finished by the kill (CI, 2026-12-08).
        logged = epochs_logged(db)
        done = [e for e in logged.values() if e == EPOCHS]
        tune = [e for folder in (tmp_path / "ray_results").glob("resumable-*") for e in reported_epochs(folder).values()]
        partial = [e for e in tune if e and 1 <= e[-1] < EPOCHS - 1]
        return logged if done and partial else None

    before = wait_for(mid_study, timeout=420, what="one finished and one half-way trial")
    kill_hard(driver)
    killed_at = time.time()
    finished_before = {run for run, epoch in before.items() if epoch == EPOCHS}
    (study_dir,) = (tmp_path / "ray_results").glob("resumable-*")
    epochs_before = reported_epochs(study_dir)

    proc = run_cli(["run", str(spec), "--resume", "--quiet"], tmp_path, timeout=600)
    assert proc.returncode == 0, (tmp_path / "first.log").read_text()[-2000:] + proc.stdout[-3000:] + proc.stderr[-3000:]

    # One MLflow run per trial, every metric at every epoch exactly once.
    histories = trial_histories(f"sqlite:///{db}", "resumable")
    assert len(histories) == len(SPEC["grid"]["lr"])
    for key, metrics in histories.items():
        for metric, steps in metrics.items():
            assert steps == list(range(1, EPOCHS + 1)), (key, metric, steps)

    # Tune's own record: no trial restarted from epoch 1; finished trials got no new reports.
    epochs_after = reported_epochs(study_dir)
    assert set(epochs_before) <= set(epochs_after)
    for trial, epochs in epochs_after.items():
        assert epochs == sorted(set(epochs)), f"{trial} re-ran epochs: {epochs}"
        assert epochs[-1] == EPOCHS
        previously = epochs_before.get(trial, [])
        if previously and previously[-1] == EPOCHS:
            assert epochs == previously, f"finished trial {trial} was rerun"
    resumed_mid_way = [t for t, e in epochs_before.items() if e and e[-1] < EPOCHS]
    assert resumed_mid_way, epochs_before

    # The runs that had finished before the kill were not written to after it.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    for run_id in finished_before:
        history = client.get_metric_history(run_id, "test_acc")
        assert max(m.timestamp for m in history) / 1000 < killed_at
        assert client.get_run(run_id).data.tags["scalestudy.status"] in ("ok", "diverged")
    assert {client.get_run(r).data.tags["scalestudy.status"] for r in epochs_logged(db)} <= {"ok", "diverged"}
