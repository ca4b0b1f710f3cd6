"""A branched study end to end (issue 23), on real Ray, MLflow (SQLite) and torch training: the base
run keeps its branch points, each branch is a Tune trial restored from the base's checkpoint and a
child of the base's MLflow run; the driver is killed mid-branches and ``--resume`` finishes without
running a branch twice; ``analyze`` writes cbs.json, the warmup and the figure."""

import importlib.util
import json
import math
import sqlite3
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from faults import kill_hard, reported_epochs, run_cli, start_cli, wait_for

pytestmark = pytest.mark.slow

EPOCHS, N = 6, 512
SPEC = {
    "name": "branched",
    "workload": {"dataset": "mnist1d", "dataset_options": {"train_size": N, "test_size": 256}, "model": "mlp",
                 "model_options": {"hidden": [32]}, "epochs": EPOCHS, "ghost_batch_size": 8},
    "grid": {"batch_size": [16], "lr": [0.05], "momentum": [0.9], "seeds": [0]},
    "analysis": {"objective": {"metric": "train_loss", "direction": "min"}},
    "diagnostics": {"gradient_noise_scale": True},
    "branching": {"checkpoints": 3, "batch_factors": [1, 2, 4], "window_examples": N, "seeds": [0, 1]},
    "resources": {"checkpoint_every": 100},  # the branch points are kept whatever checkpoint_every is
}
# The comparison plans its warmup from the CBS estimator (issue 23's other half): on when it is installed.
COMPARE = importlib.util.find_spec("scalestudy.analysis.fits.branch_cbs") is not None
SPEC["branching"]["compare"] = COMPARE
CHECKPOINT_EPOCHS = (1, 2, 5)  # 3 geometric points over [1, E − w = 5]: 5^(i/2) = 1, 2.24, 5
BRANCHES = len(CHECKPOINT_EPOCHS) * 3 * 2


def finished_branches(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("select count(*) from runs r join tags t on t.run_uuid = r.run_uuid where "
                                "t.key = 'scalestudy.role' and t.value = 'branch' and r.status = 'FINISHED'"
                                ).fetchone()[0]
    except sqlite3.Error:
        return 0


def ended_branches(results: Path) -> set[str]:
    """Trial keys of the branches Tune's newest snapshot marks TERMINATED (a branch's folder is its key)."""
    (branches,) = results.glob("branched-*/branches")
    snapshots = sorted(branches.glob("experiment_state-*.json"))
    if not snapshots:
        return set()
    trials = [json.loads(trial) for trial, _ in json.loads(snapshots[-1].read_text())["trial_data"]]
    return {Path(trial["relative_logdir"]).name for trial in trials if trial["status"] == "TERMINATED"}


def test_branches_from_checkpoints_resume_and_cbs(tmp_path: Path):
    spec = tmp_path / "branched.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    db = tmp_path / "mlflow.db"
    driver = start_cli(["run", str(spec), "--quiet"], tmp_path, tmp_path / "first.log")
    wait_for(lambda: 2 <= finished_branches(db) < BRANCHES, timeout=300, interval=0.1, what="some branches done")
    kill_hard(driver)
    # A branch whose MLflow run is lost (as when the driver dies before its writer wrote it): Tune restores
    # callbacks as they were created, so only the back-fill after the resume can write it again.
    client = MlflowClient(f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("branched").experiment_id
    finished = client.search_runs([experiment], "tags.`scalestudy.role` = 'branch' and attributes.status = 'FINISHED'")
    # Prefer a branch Tune's last snapshot already counts as ended: Tune will not run it again, so only the
    # back-fill from its result.json can bring its run back (one it runs again, the live writer recreates).
    ended = ended_branches(tmp_path / "ray_results")
    lost = next((run for run in finished if run.data.tags["scalestudy.trial_key"] in ended), finished[0])
    client.delete_run(lost.info.run_id)
    proc = run_cli(["run", str(spec), "--resume", "--quiet"], tmp_path, timeout=600)
    assert proc.returncode == 0, (tmp_path / "first.log").read_text()[-2000:] + proc.stderr[-3000:]
    # The summary's table holds the grid's one trial; the branches (and the comparison) are summed up apart.
    assert "section " in proc.stdout and "branches: " in proc.stdout, proc.stdout
    table = proc.stdout[proc.stdout.index("section "):proc.stdout.index("branches: ")].strip().splitlines()
    assert len(table) == 2 and table[1].split()[3:5] == ["16", "1"], proc.stdout
    assert f"branches: {BRANCHES} ({BRANCHES} ok, 0 diverged, 0 errored), B 16–64" in proc.stdout
    assert ("comparison runs: " in proc.stdout) == COMPARE

    (base,) = client.search_runs([experiment], "tags.`scalestudy.role` = 'trial'")
    branches = client.search_runs([experiment], "tags.`scalestudy.role` = 'branch'", max_results=1000)
    assert len(branches) == BRANCHES  # one run per branch: none duplicated by the resume, the lost one back
    assert lost.data.tags["scalestudy.trial_key"] in {run.data.tags["scalestudy.trial_key"] for run in branches}
    base_loss = {m.step: m.value for m in client.get_metric_history(base.info.run_id, "train_loss")}
    for run in branches:
        tags, params = run.data.tags, run.data.params
        assert tags["mlflow.parentRunId"] == base.info.run_id and run.info.status == "FINISHED"
        epoch = int(tags["scalestudy.branch.checkpoint_epoch"])
        assert epoch == CHECKPOINT_EPOCHS[int(tags["scalestudy.branch.checkpoint"])]
        assert int(tags["scalestudy.branch.checkpoint_examples"]) == epoch * N  # B_0 = 16 divides N
        factor = int(tags["scalestudy.branch.batch_factor"])
        assert int(params["batch_size"]) == 16 * factor and float(params["lr"]) == pytest.approx(0.05 * factor)
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "epoch")]
        assert steps == [epoch + 1]  # its window only, logged once
        if factor == 1 and params["seed"] == "0":
            # The control at the base's seed retraces the base exactly: the checkpoint is the whole state.
            assert run.data.metrics["train_loss"] == base_loss[epoch + 1]
    # Tune's record: no branch trained an epoch twice.
    (study_dir,) = (tmp_path / "ray_results").glob("branched-*")
    for folder, epochs in reported_epochs(study_dir / "branches").items():
        assert epochs == sorted(set(epochs)), f"{folder} re-ran epochs: {epochs}"

    pytest.importorskip("scalestudy.analysis.fits.branch_cbs")
    proc = run_cli(["analyze", "--experiment", "branched", "--out", str(tmp_path / "out")], tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cbs = json.loads((tmp_path / "out" / "cbs.json").read_text())
    assert [p["examples"] for p in cbs["points"]] == [e * N for e in CHECKPOINT_EPOCHS]
    assert all(p["noise_scale"] is None or math.isfinite(p["noise_scale"]) for p in cbs["points"])
    assert cbs["rule"] == "linear" and cbs["base_batch_size"] == 16
    assert (tmp_path / "out" / "cbs_vs_examples.png").stat().st_size > 10_000
    (analysis,) = client.search_runs([experiment], "tags.`scalestudy.role` = 'analysis'")
    assert "cbs.json" in {a.path for a in client.list_artifacts(analysis.info.run_id)}
    # The comparison: per seed a constant run, retracing the base at the base's seed, and the warmup and the
    # late switch when CBS(t) admits a larger B (every run trained to the base's epochs).
    compared = client.search_runs([experiment], "tags.`scalestudy.role` = 'compare'")
    kinds = sorted(run.data.tags["scalestudy.compare.kind"] for run in compared)
    assert kinds in (["constant", "constant"], ["constant", "constant", "late_switch", "late_switch", "warmup", "warmup"])
    for run in compared:
        assert [m.step for m in client.get_metric_history(run.info.run_id, "epoch")] == list(range(1, EPOCHS + 1))
        if run.data.tags["scalestudy.compare.kind"] == "constant" and run.data.params["seed"] == "0":
            assert run.data.metrics["train_loss"] == base_loss[EPOCHS]
    if len(kinds) == 6:
        assert "| warmup | 2 |" in (tmp_path / "out" / "report.md").read_text()
