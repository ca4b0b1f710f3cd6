"""A spec with an SGD section and an AdamW section (the mnist1d MLP) through ``scalestudy run`` and
``analyze`` on local Ray and MLflow (SQLite): two laws in one report, two law files and their index,
each group's numbers on the analysis run, and ``recommend --group`` reading either."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scalestudy.trial.record import ANALYSIS_ROLE, ROLE_TAG

SPEC = """\
name: two_optimizers
workload:
  dataset: mnist1d
  dataset_options: {train_size: 1000, test_size: 500}
  model: mlp
  model_options: {hidden: [64]}
  epochs: 2
grid:
  batch_size: [16, 64]
  lr: [0.04, 0.32, 2.56]
  momentum: [0.9]
  seeds: [0]
sections:
  sgd: {}
  adamw:
    optimizer: {name: adamw}
    grid: {lr: [0.01, 0.04, 0.16]}
resources:
  workers_per_trial: 1
  cpus_per_worker: 1
"""


def cli(*args, cwd: Path):
    return subprocess.run([sys.executable, "-m", "scalestudy.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_an_sgd_section_and_an_adamw_section_give_two_laws_in_one_report(tmp_path):
    (tmp_path / "two.yaml").write_text(SPEC)
    proc = cli("run", "two.yaml", "--quiet", cwd=tmp_path)  # 12 trials of 2 epochs
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    proc = cli("analyze", "--experiment", "two_optimizers", "--out", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "out"
    index = json.loads((out / "laws" / "index.json").read_text())
    assert {(law["group"], law["file"]) for law in index["laws"]} == {("sgd/sgd", "sgd-sgd.json"),
                                                                       ("adamw/adamw", "adamw-adamw.json")}
    laws = {law["group"]: json.loads((out / "laws" / law["file"]).read_text()) for law in index["laws"]}
    for group, law in laws.items():
        assert law["group"] == group and law["optimizer"] == group.split("/")[0]
        assert law["alpha"] is not None or law["reasons"]["alpha"]  # α, or why not
        assert {cell["batch_size"] for cell in law["cells"]} == {16, 64}  # its own section's cells only
    primary = next(law["group"] for law in index["laws"] if law["primary"])
    assert json.loads((out / "law.json").read_text())["group"] == primary
    report = (out / "report.md").read_text()
    assert "## Laws by optimizer and section" in report
    assert "### sgd/sgd" in report and "### adamw/adamw" in report and "Batch-size rule (adamw)" in report
    assert "2 laws (one per optimizer and section, in laws/):" in proc.stdout
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("two_optimizers")
    runs = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = '{ANALYSIS_ROLE}'")
    assert len(runs) == 1 and runs[0].data.params["laws"] in ("sgd/sgd, adamw/adamw", "adamw/adamw, sgd/sgd")
    for group, law in laws.items():
        if law["alpha"] is not None:
            assert runs[0].data.metrics[f"laws/{group.replace('/', '-')}.alpha"] == pytest.approx(law["alpha"])
    proc = cli("recommend", "--law", "out/law.json", "--group", "adamw/adamw", "--batch-size", "32", "--force",
               cwd=tmp_path)
    alpha = laws["adamw/adamw"]["alpha"]
    assert proc.returncode == 0 if alpha is not None else "error: the law has no alpha" in proc.stderr, proc.stderr
    assert alpha is None or f"alpha = {alpha:.3g}" in proc.stdout
    shutil.rmtree(tmp_path / "ray_results", ignore_errors=True)
