"""The cells' runs over seeds in a real MLflow SQLite store written by hand with MlflowClient (no mocks):
one run per cell under the study's parent, kept when nothing changed, replaced when a seed is added,
removed when its trials are gone; and every reader of trials ignores them (they never become rows)."""

import pandas as pd
import pytest
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.tracking import MlflowClient

from scalestudy.analysis import analyze, load_trials_from_mlflow
from scalestudy.analysis.inputs.trial_histories import read_histories, read_trial_runs
from scalestudy.analysis.outputs.cell_runs import UI_FILTER, publish_cell_runs

EPOCHS = 3
# (seed, lr, status, test_acc per epoch): cell lr=0.1 has three seeds and a diverged one, cell lr=0.2 two
# seeds and an errored one, lr=5.0 diverged only.
TRIALS = [(0, 0.1, "ok", [0.5, 0.6, 0.7]), (1, 0.1, "ok", [0.6, 0.7, 0.9]), (2, 0.1, "ok", [0.7, 0.8, 0.8]),
          (3, 0.1, "diverged", [0.1]), (0, 0.2, "ok", [0.4, 0.5, 0.6]), (1, 0.2, "ok", [0.5, 0.6, 0.6]),
          (2, 0.2, "error", [0.3]), (0, 5.0, "diverged", [0.1]), (1, 5.0, "diverged", [0.1])]


@pytest.fixture(scope="module")
def uri(tmp_path_factory):
    """One store for the module (MLflow's schema takes seconds to create); an experiment per test."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return f"sqlite:///{path}"


def log_trial(client, experiment_id, parent, seed, lr, status, test_acc):
    key = f"law-B32-lr{lr}-m0.9-constant-s{seed}"
    tags = {"mlflow.parentRunId": parent, "scalestudy.role": "trial", "scalestudy.trial_key": key,
            "scalestudy.status": status}
    name = f"B=32 lr={lr} m=0.9 seed={seed} constant"
    run_id = client.create_run(experiment_id, tags=tags, run_name=name).info.run_id
    params = {"dataset": "synthetic", "model": "mlp", "dataset_size": 512, "epochs": EPOCHS, "batch_size": 32,
              "lr": lr, "momentum": 0.9, "seed": seed, "schedule": "constant", "section": "law", "trial_key": key}
    diverged = status == "diverged"
    metrics = []
    for epoch, acc in enumerate(test_acc, 1):
        values = {"epoch": epoch, "test_acc": acc, "train_acc": acc + 0.05, "test_loss": 1 - acc, "train_loss": 1 - acc,
                  "updates": 16 * epoch, "diverged": float(diverged and epoch == len(test_acc))}
        metrics += [Metric(k, float(v), 0, epoch) for k, v in values.items()]
    client.log_batch(run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()],
                     tags=[RunTag(k, v) for k, v in tags.items()])
    client.set_terminated(run_id, "FAILED" if status == "error" else "FINISHED")
    return run_id


def write_study(uri, name, trials=TRIALS):
    client = MlflowClient(uri)
    experiment_id = client.create_experiment(name, tags={"mlflow.experimentKind": "custom_model_development"})
    parent = client.create_run(experiment_id, run_name=f"study {name}",
                               tags={"scalestudy.role": "study", "scalestudy.study": name}).info.run_id
    runs = [log_trial(client, experiment_id, parent, *trial) for trial in trials]
    return client, experiment_id, parent, runs


def cell_runs(client, experiment_id):
    return {run.info.run_name: run for run in client.search_runs([experiment_id], UI_FILTER, ViewType.ACTIVE_ONLY)}


def test_one_run_per_cell_then_kept(uri):
    client, experiment_id, parent, _ = write_study(uri, "twice")
    first = publish_cell_runs(uri, experiment_id)
    assert (first.cells, first.written, first.kept, first.removed) == (3, 3, 0, 0)
    runs = cell_runs(client, experiment_id)
    assert sorted(runs) == ["B=32 lr=0.1 m=0.9 constant", "B=32 lr=0.2 m=0.9 constant", "B=32 lr=5 m=0.9 constant"]
    cell = runs["B=32 lr=0.1 m=0.9 constant"]
    assert cell.data.tags["mlflow.parentRunId"] == parent and cell.data.tags["scalestudy.role"] == "cell_aggregate"
    assert cell.info.status == "FINISHED" and "scalestudy.trial_key" not in cell.data.tags
    assert cell.data.params["n_seeds"] == "3" and cell.data.params["seeds"] == "0,1,2"
    assert cell.data.params["lr"] == "0.1" and cell.data.params["batch_size"] == "32"
    assert cell.data.metrics["n_diverged"] == 1 and cell.data.metrics["n_failed"] == 0
    history = sorted(client.get_metric_history(cell.info.run_id, "test_acc_mean"), key=lambda m: m.step)
    assert [m.step for m in history] == [1, 2, 3] and [m.value for m in history] == pytest.approx([0.6, 0.7, 0.8])
    hi = {m.step: m.value for m in client.get_metric_history(cell.info.run_id, "test_acc_hi")}
    assert hi[3] == pytest.approx(0.8 + 4.302653 * 0.1 / 3 ** 0.5, rel=1e-6)
    assert cell.data.metrics["final/test_acc_mean"] == pytest.approx(0.8) and "train_loss_lo" in cell.data.metrics
    second = runs["B=32 lr=0.2 m=0.9 constant"]
    assert second.data.metrics["n_failed"] == 1 and second.data.params["seeds"] == "0,1"
    diverged = runs["B=32 lr=5 m=0.9 constant"]
    assert diverged.data.metrics["n_diverged"] == 2 and diverged.data.params["n_seeds"] == "0"
    assert not [name for name in diverged.data.metrics if name.endswith("_mean")]

    again = publish_cell_runs(uri, experiment_id)
    assert (again.cells, again.written, again.kept, again.removed) == (3, 0, 3, 0)
    assert {name: run.info.run_id for name, run in cell_runs(client, experiment_id).items()} == {
        name: run.info.run_id for name, run in runs.items()}


def test_a_new_seed_replaces_its_cell_only_and_a_cell_without_trials_goes(uri):
    client, experiment_id, parent, trial_ids = write_study(uri, "grows")
    publish_cell_runs(uri, experiment_id)
    before = {name: run.info.run_id for name, run in cell_runs(client, experiment_id).items()}
    log_trial(client, experiment_id, parent, 4, 0.2, "ok", [0.6, 0.7, 0.8])
    for run_id in trial_ids[-2:]:  # the lr=5 cell's trials are deleted
        client.delete_run(run_id)
    summary = publish_cell_runs(uri, experiment_id)
    assert (summary.cells, summary.written, summary.kept, summary.removed) == (2, 1, 1, 1)
    after = cell_runs(client, experiment_id)
    assert sorted(after) == ["B=32 lr=0.1 m=0.9 constant", "B=32 lr=0.2 m=0.9 constant"]
    grown = after["B=32 lr=0.2 m=0.9 constant"]
    assert grown.info.run_id != before["B=32 lr=0.2 m=0.9 constant"] and grown.data.params["seeds"] == "0,1,4"
    assert after["B=32 lr=0.1 m=0.9 constant"].info.run_id == before["B=32 lr=0.1 m=0.9 constant"]
    assert client.get_run(before["B=32 lr=0.2 m=0.9 constant"]).info.lifecycle_stage == "deleted"
    assert len(client.search_runs([experiment_id], UI_FILTER, ViewType.ACTIVE_ONLY)) == 2  # never a duplicate


def test_readers_of_trials_never_read_cell_runs(uri):
    client, experiment_id, _, trial_ids = write_study(uri, "readers")
    publish_cell_runs(uri, experiment_id)
    finished = {run_id for run_id, trial in zip(trial_ids, TRIALS) if trial[2] != "error"}
    for method in ("sql", "client"):
        table = load_trials_from_mlflow("readers", uri, method=method)
        assert len(table) == len(finished) and set(table.frame["run_id"]) == finished, method
        runs = read_trial_runs(uri, experiment_id, method=method)
        assert set(runs["run_id"]) == set(trial_ids), method
    by_sql = read_histories(uri, trial_ids, method="sql").sort_values(["run_id", "key", "step"])
    by_client = read_histories(uri, trial_ids, method="client").sort_values(["run_id", "key", "step"])
    pd.testing.assert_frame_equal(by_sql.reset_index(drop=True), by_client.reset_index(drop=True),
                                  check_dtype=False)
    # Publishing through the client finds the same cells, unchanged.
    assert publish_cell_runs(uri, experiment_id, method="client").kept == 3


def test_analyze_writes_the_cell_runs_and_reads_only_trials(uri, tmp_path):
    client, experiment_id, _, trial_ids = write_study(uri, "analyzed")
    for _ in range(2):
        result = analyze(load_trials_from_mlflow("analyzed", uri), tmp_path / "out")
        assert result.n_trials == 8 and result.cell_runs is not None and result.cell_runs.cells == 3
    assert result.cell_runs.kept == 3 and len(cell_runs(client, experiment_id)) == 3


def test_the_end_of_run_says_why_when_the_server_does_not_answer():
    from types import SimpleNamespace

    from scalestudy.cli.study_commands import _cell_runs
    from servers import free_port

    line = _cell_runs(SimpleNamespace(tracking_uri=f"http://127.0.0.1:{free_port()}", experiment_id="1"))
    assert line == "cell runs over seeds not written (the tracking server does not answer); `analyze` writes them"
