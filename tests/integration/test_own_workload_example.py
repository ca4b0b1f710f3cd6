"""examples/own_workload, as its README says to run it, at a tiny size (issue 13, item 7).

A copy of the example folder in a temporary directory is the working directory, and the real CLI runs
there: ``scalestudy validate``, ``scalestudy run`` (local Ray, MLflow on SQLite in that folder) and
``scalestudy analyze``. Nothing tells scalestudy about the user's package but the spec's import paths
(the test's PYTHONPATH holds scalestudy, not the example).
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "own_workload"
# The README's study, shrunk: 3 batch sizes × 3 learning rates (law) and the two schedules, 1 seed, 2 epochs.
TINY = ["--set", "workload.epochs=2", "--set", "grid.batch_size=[32,64,128]", "--set", "grid.seeds=[0]",
        "--set", "grid.lr.multipliers=[0.25,1,4]",
        "--set", "sections.schedules.schedule=[{kind: step_decay_lr, milestones: [1], factor: 4},"
                 "{kind: increase_batch, milestones: [1], factor: 4}]"]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scalestudy.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=900)


def test_the_example_validates_runs_and_fits_its_law(tmp_path):
    folder = tmp_path / "own_workload"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__", "mlflow.db", "ray_results", "out"))

    proc = cli("validate", "own_workload.yaml", *TINY, cwd=folder)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("own_workload: valid; 11 trials (law 9, schedules 2)"), proc.stdout
    assert "dataset my_workload.data:load_blobs (N=2048), model my_workload.models:build" in proc.stdout

    proc = cli("run", "own_workload.yaml", *TINY, "--quiet", cwd=folder)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "11 ok, 0 diverged, 0 stopped early, 0 errored" in proc.stdout

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("own_workload").experiment_id
    runs = client.search_runs([experiment], "tags.`scalestudy.role` = 'trial'")
    assert len(runs) == 11
    for run in runs:
        params = run.data.params
        assert (params["model"], params["optimizer"]) == ("my_workload.models:build", "my_workload.optim:build_lion")
        assert params["bn_batch_size"] == "16"  # the user's BatchNorm1d became ghost BN over 16 examples
        assert run.data.metrics["test_acc"] > 0.5  # four classes: chance is 0.25
    schedules = {run.data.params["schedule"]: run for run in runs if run.data.params["section"] == "schedules"}
    assert {run.data.params["dataset"] for run in schedules.values()} == {"my_workload.data:load_blobs_map"}
    batch_sizes = [m.value for m in client.get_metric_history(schedules["increase_batch"].info.run_id, "batch_size")]
    assert batch_sizes == [32, 128]  # the dynamic schedule: B × 4 from epoch 1

    proc = cli("analyze", "--experiment", "own_workload", "--out", "out", cwd=folder)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    law = json.loads((folder / "out" / "law.json").read_text())
    assert law["schema"] == "scalestudy.law/v1"
    # α is fitted where the cells have interior optima; otherwise the law file says why not.
    assert law["alpha"] is not None or law["reasons"]["alpha"], law
    assert (folder / "out" / "report.md").exists()
