"""Ctrl-C and a grown spec, end to end: the real CLI in a subprocess, local Ray, MLflow on SQLite in
tmp_path, tiny real training.

* Ctrl-C (SIGINT to the driver's process group, as a terminal sends it) after the first trial
  finished: exit 130, the resume command on stderr, the study and the trial it cut short KILLED in
  MLflow, ``analyze`` refuses the partial study; ``--resume`` finishes the rest, its count going on
  from the trials done, and every trial is in the table once.
* ``--extend`` with more seeds and a batch size trains only the new trials under the same parent
  run; a change of what trials mean is one ``error:`` line naming the field (exit 2, nothing
  started); a plain second run is refused; ``--new`` is a second parent run, and the table still
  holds each trial once.
"""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from faults import epochs_logged, reported_epochs, run_cli, wait_for
from scalestudy.analysis import load_trials_from_mlflow
from scalestudy.trial import record

pytestmark = pytest.mark.slow


def tiny_spec(name: str, epochs: int, train_size: int, lrs: list[float]) -> dict:
    return {"name": name,
            "workload": {"dataset": "synthetic", "dataset_options": {"train_size": train_size, "test_size": 256},
                         "model": "mlp", "model_options": {"hidden": [64]}, "epochs": epochs, "ghost_batch_size": 16},
            "grid": {"batch_size": [32], "lr": lrs, "momentum": [0.9], "seeds": [0]},
            "resources": {"max_concurrent_trials": 1}}


def study_runs(db: Path, experiment: str):
    """(the study's parent runs, its trial runs) in MLflow."""
    client = MlflowClient(f"sqlite:///{db}")
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    parents = client.search_runs([experiment_id], f"tags.`{record.ROLE_TAG}` = '{record.STUDY_ROLE}'")
    trials = client.search_runs([experiment_id], f"tags.`{record.ROLE_TAG}` = '{record.TRIAL_ROLE}'",
                                max_results=1000)
    return parents, trials


def test_ctrl_c_is_honest_and_resume_finishes_the_study(tmp_path: Path):
    epochs, lrs = 6, [0.02, 0.05, 0.1, 0.2]
    spec = tmp_path / "cut.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec("cut", epochs, 8192, lrs)))
    db = tmp_path / "mlflow.db"
    with (tmp_path / "out.log").open("w") as out, (tmp_path / "err.log").open("w") as err:
        driver = subprocess.Popen([sys.executable, "-m", "scalestudy.cli", "run", str(spec), "--quiet"], cwd=tmp_path,
                                  stdout=out, stderr=err, start_new_session=True)
        try:
            def one_done_one_running():
                logged = sorted(epochs_logged(db).values())
                return len(logged) >= 2 and logged[-1] == epochs and 1 <= logged[0] < epochs

            wait_for(one_done_one_running, timeout=600, what="a finished trial and a running one")
            os.killpg(driver.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole foreground group
            code = driver.wait(300)
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
    stderr, stdout = (tmp_path / "err.log").read_text(), (tmp_path / "out.log").read_text()
    assert code == 130, stdout[-2000:] + stderr[-3000:]
    assert f"continue with: scalestudy run {spec} --quiet --resume" in stderr
    assert re.search(r"interrupted \(SIGINT\): \d of 4 planned trials ended, 1 interrupted", stderr), stderr[-2000:]
    assert "trials in" not in stdout  # no summary of a finished study

    parents, trials = study_runs(db, "cut")
    (parent,) = parents
    assert parent.info.status == "KILLED" and parent.data.tags[record.INTERRUPTED_TAG] == "true"
    assert not [run for run in trials if run.info.status == "RUNNING"]
    cut = [run for run in trials if run.info.status == "KILLED"]
    assert len(cut) == 1 and cut[0].data.tags[record.STATUS_TAG] == record.INTERRUPTED
    finished_before = len([run for run in trials if run.info.status == "FINISHED"])

    refused = run_cli(["analyze", "--experiment", "cut", "--out", str(tmp_path / "analysis")], tmp_path, timeout=300)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "did not finish (interrupted)" in refused.stderr and "--allow-partial" in refused.stderr
    partial = load_trials_from_mlflow("cut", f"sqlite:///{db}", allow_partial=True)
    assert len(partial) == finished_before and any(w.startswith("partial study") for w in partial.warnings)

    resumed = run_cli(["run", str(spec), "--resume"], tmp_path, timeout=600)  # not quiet: progress lines
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    first_count = re.search(r"trials (\d+)/4 done", resumed.stdout)
    assert first_count and int(first_count.group(1)) >= finished_before, resumed.stdout[-2000:]  # 1/4, not 0/4
    parents, trials = study_runs(db, "cut")
    assert [p.info.status for p in parents] == ["FINISHED"] and record.INTERRUPTED_TAG not in parents[0].data.tags
    assert sorted(run.data.tags[record.STATUS_TAG] for run in trials) == ["ok"] * 4
    table = load_trials_from_mlflow("cut", f"sqlite:///{db}")
    assert len(table) == 4 and table.frame["trial_key"].is_unique
    assert not [w for w in table.warnings if "partial" in w or "runs of the study" in w]


def test_extend_trains_only_the_new_trials_and_refuses_what_changes_their_meaning(tmp_path: Path):
    spec = tmp_path / "grow.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec("grow", 2, 2048, [0.05, 0.1])))
    db = tmp_path / "mlflow.db"
    first = run_cli(["run", str(spec), "--quiet"], tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    (study_dir,) = (tmp_path / "ray_results").glob("grow-*")
    before = reported_epochs(study_dir)
    (parent,), trials = study_runs(db, "grow")
    original = {run.data.tags[record.KEY_TAG]: run.info.run_id for run in trials}
    assert len(original) == 2

    # What trials mean changes: one line naming the field, exit 2, nothing started or written.
    for change, field in ((["--set", "workload.epochs=3"], "workload.epochs"),
                          (["--set", "grid.seeds=[1]"], "grid.seeds")):
        refused = run_cli(["run", str(spec), *change, "--extend"], tmp_path, timeout=300)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
        assert refused.stderr.startswith(f"error: {field}: "), refused.stderr
    again = run_cli(["run", str(spec)], tmp_path, timeout=300)  # plain: refused, with the three ways on
    assert again.returncode == 2 and "already ran" in again.stderr and "--extend" in again.stderr, again.stderr
    grown = ["--set", "grid.seeds=[0,1]", "--set", "grid.batch_size=[32,64]"]
    resume_grown = run_cli(["run", str(spec), *grown, "--resume"], tmp_path, timeout=300)
    assert resume_grown.returncode == 2 and "add its new trials with --extend" in resume_grown.stderr
    assert len(study_runs(db, "grow")[1]) == 2

    extended = run_cli(["run", str(spec), *grown, "--extend", "--quiet"], tmp_path)
    assert extended.returncode == 0, extended.stdout[-3000:] + extended.stderr[-3000:]
    assert "grow: 6 trials in" in extended.stdout and "(and 2 that had finished before)" in extended.stdout
    parents, trials = study_runs(db, "grow")
    assert [p.info.run_id for p in parents] == [parent.info.run_id]  # the same study
    keys = [run.data.tags[record.KEY_TAG] for run in trials]
    assert len(keys) == 8 and len(set(keys)) == 8
    for key, run_id in original.items():  # the finished trials were not rerun: same run, no new report
        assert {run.info.run_id for run in trials if run.data.tags[record.KEY_TAG] == key} == {run_id}
    after = reported_epochs(study_dir)
    assert {name: after[name] for name in before} == before and len(after) == 8
    table = load_trials_from_mlflow("grow", f"sqlite:///{db}")
    assert len(table) == 8 and table.frame["trial_key"].is_unique and not table.warnings

    # A second, separate run of the first spec: two parent runs, each trial still one row (its latest).
    second = run_cli(["run", str(spec), "--new", "--quiet"], tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    table = load_trials_from_mlflow("grow", f"sqlite:///{db}")
    assert len(table) == 8 and table.frame["trial_key"].is_unique
    assert not set(original.values()) & set(table.frame["run_id"])  # the two trials' latest runs
    assert any("holds 2 runs of the study" in w and "2 earlier runs" in w for w in table.warnings), table.warnings
