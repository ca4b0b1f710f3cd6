"""The adaptive search interrupted and resumed, then extended with a larger budget: the real CLI in a
subprocess, local Ray, MLflow on SQLite, tiny real training. No trial is repeated, none is lost,
and the finished ones are not rerun.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from faults import epochs_logged, run_cli, wait_for
from scalestudy.trial import record

pytestmark = pytest.mark.slow

EPOCHS = 2


def adaptive_spec(budget: int) -> dict:
    return {"name": "adaptive_cut",
            "workload": {"dataset": "synthetic", "dataset_options": {"train_size": 2048, "test_size": 256},
                         "model": "mlp", "model_options": {"hidden": [32]}, "epochs": EPOCHS, "ghost_batch_size": 16},
            "grid": {"batch_size": [32, 64], "lr": [0.0125, 0.05, 0.2, 0.8], "momentum": [0.9], "seeds": [0, 1]},
            "search": {"algorithm": "adaptive", "budget": {"trial_epochs": budget}, "max_seeds": 3},
            "resources": {"max_concurrent_trials": 1}}


def trial_runs(db: Path) -> list:
    client = MlflowClient(f"sqlite:///{db}")
    experiment_id = client.get_experiment_by_name("adaptive_cut").experiment_id
    return client.search_runs([experiment_id], f"tags.`{record.ROLE_TAG}` = '{record.TRIAL_ROLE}'", max_results=1000)


def finished(runs) -> dict[str, str]:
    """trial key → run id of the trials that ended ok."""
    return {run.data.tags[record.KEY_TAG]: run.info.run_id for run in runs
            if run.data.tags.get(record.STATUS_TAG) == "ok"}


def test_adaptive_search_resumed_and_extended_repeats_and_loses_no_trial(tmp_path: Path):
    spec = tmp_path / "cut.yaml"
    spec.write_text(yaml.safe_dump(adaptive_spec(budget=14)))
    db = tmp_path / "mlflow.db"
    with (tmp_path / "out.log").open("w") as out, (tmp_path / "err.log").open("w") as err:
        driver = subprocess.Popen([sys.executable, "-m", "scalestudy.cli", "run", str(spec), "--quiet"], cwd=tmp_path,
                                  stdout=out, stderr=err, start_new_session=True)
        try:
            wait_for(lambda: sum(step == EPOCHS for step in epochs_logged(db).values()) >= 3, timeout=600,
                     what="three finished trials")
            os.killpg(driver.pid, signal.SIGINT)
            code = driver.wait(300)
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
    stderr = (tmp_path / "err.log").read_text()
    assert code == 130, stderr[-3000:]
    assert "--resume" in stderr
    before = finished(trial_runs(db))
    assert len(before) >= 3

    resumed = run_cli(["run", str(spec), "--resume", "--quiet"], tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    runs = trial_runs(db)
    keys = [run.data.tags[record.KEY_TAG] for run in runs]
    assert len(keys) == len(set(keys)), "a trial ran twice"
    assert not [run for run in runs if run.info.status == "RUNNING"]
    after_resume = finished(runs)
    assert {key: after_resume.get(key) for key in before} == before  # the finished trials were not rerun
    assert len(after_resume) == 14 // EPOCHS  # the whole budget, nothing lost to the interruption

    grown = ["--set", "search.budget.trial_epochs=20"]
    extended = run_cli(["run", str(spec), *grown, "--extend", "--quiet"], tmp_path)
    assert extended.returncode == 0, extended.stdout[-3000:] + extended.stderr[-3000:]
    runs = trial_runs(db)
    keys = [run.data.tags[record.KEY_TAG] for run in runs]
    assert len(keys) == len(set(keys)), "the extension repeated a trial"
    after_extend = finished(runs)
    assert {key: after_extend.get(key) for key in after_resume} == after_resume
    assert len(after_extend) == 20 // EPOCHS

    smaller = run_cli(["run", str(spec), "--set", "search.budget.trial_epochs=8", "--extend"], tmp_path, timeout=300)
    assert smaller.returncode == 2 and smaller.stderr.startswith("error: search.budget"), smaller.stderr
