"""Is the study whole: an interrupted study is refused unless allow_partial, and a trial run twice (a
second parent run, ``run --new``) is one row, its latest run. Real SQLite stores written with
MlflowClient as the engine writes them (no Ray)."""

import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from scalestudy.analysis import AnalysisError, load_trials_from_mlflow
from scalestudy.trial import record

EPOCHS = 2


def study_run(client, experiment_id, planned, status="FINISHED", interrupted=False):
    tags = {record.ROLE_TAG: record.STUDY_ROLE, record.STUDY_TAG: "s", record.PLANNED_TAG: str(planned)}
    if interrupted:
        tags[record.INTERRUPTED_TAG] = "true"
    parent = client.create_run(experiment_id, tags=tags, run_name="study s").info.run_id
    client.set_terminated(parent, status) if status != "RUNNING" else None
    return parent


def trial_run(client, experiment_id, parent, batch_size, lr, acc, status="ok", epochs=EPOCHS):
    """One trial run: its key from (B, ε), as stable across parent runs as the engine's."""
    key = f"main-B{batch_size}-lr{lr:g}-m0-constant-s0-test"
    tags = {record.PARENT_TAG: parent, record.ROLE_TAG: record.TRIAL_ROLE, record.KEY_TAG: key,
            record.STATUS_TAG: status}
    run_id = client.create_run(experiment_id, tags=tags, run_name=key).info.run_id
    params = {"batch_size": batch_size, "lr": lr, "momentum": 0.0, "seed": 0, "dataset_size": 1000,
              "epochs": EPOCHS, "schedule": "constant", "section": "main", "trial_key": key,
              "objective_metric": "test_acc", "objective_direction": "max"}
    metrics = [Metric(name, float(value), 0, epoch) for epoch in range(1, epochs + 1)
               for name, value in (("epoch", epoch), ("test_acc", acc * epoch / EPOCHS), ("train_acc", acc),
                                   ("diverged", 0), ("epoch_seconds", 1.0))]
    client.log_batch(run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()],
                     tags=[RunTag(k, v) for k, v in tags.items()])
    client.set_terminated(run_id, {"ok": "FINISHED", "interrupted": "KILLED", "running": "RUNNING"}[status])
    return run_id


GRID = [(b, lr) for b in (32, 64) for lr in (0.05, 0.1, 0.2)]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """One store for the module (a new SQLite schema takes seconds); one experiment per test."""
    return MlflowClient(f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}")


def experiment(client, tmp_path, name):
    return client.create_experiment(name, artifact_location=(tmp_path / name).as_uri())


@pytest.mark.parametrize("method", ["sql", "client"])
def test_an_interrupted_study_is_refused_unless_partial_is_allowed(client, tmp_path, method):
    uri = client.tracking_uri
    exp = experiment(client, tmp_path, f"cut-{method}")
    parent = study_run(client, exp, planned=len(GRID), status="KILLED", interrupted=True)
    for b, lr in GRID[:3]:
        trial_run(client, exp, parent, b, lr, 0.8)
    trial_run(client, exp, parent, *GRID[3], 0.5, status="interrupted", epochs=1)
    with pytest.raises(AnalysisError) as refused:
        load_trials_from_mlflow(f"cut-{method}", uri, method=method)
    message = str(refused.value)
    assert "\n" not in message
    assert f"experiment 'cut-{method}' did not finish (interrupted): 3 trials ended of 6 planned, 1 interrupted" \
        in message
    assert "--resume" in message and "--allow-partial" in message
    partial = load_trials_from_mlflow(f"cut-{method}", uri, method=method, allow_partial=True)
    assert len(partial) == 3 and set(partial.frame["status"]) == {"ok"}
    assert any(w.startswith("partial study:") and "only the 3 trials that finished are fitted" in w
               for w in partial.warnings)
    assert partial.provenance["partial"].startswith(f"the study of experiment 'cut-{method}' did not finish")


def test_a_running_study_short_of_its_plan_is_partial_a_finished_one_is_not(client, tmp_path):
    uri = client.tracking_uri
    exp = experiment(client, tmp_path, "live")
    parent = study_run(client, exp, planned=len(GRID), status="RUNNING")
    for b, lr in GRID[:4]:
        trial_run(client, exp, parent, b, lr, 0.8)
    with pytest.raises(AnalysisError, match=r"still running, or its driver stopped\): 4 trials ended of 6 planned"):
        load_trials_from_mlflow("live", uri)
    for b, lr in GRID[4:]:
        trial_run(client, exp, parent, b, lr, 0.8)
    client.set_terminated(parent, "FINISHED")
    whole = load_trials_from_mlflow("live", uri)
    assert len(whole) == len(GRID) and not any("partial" in w for w in whole.warnings)


@pytest.mark.parametrize("method", ["sql", "client"])
def test_a_trial_run_under_two_parent_runs_is_one_row_its_latest(client, tmp_path, method):
    uri = client.tracking_uri
    exp = experiment(client, tmp_path, f"twice-{method}")
    first = study_run(client, exp, planned=len(GRID), status="KILLED", interrupted=True)
    for b, lr in GRID[:2]:
        trial_run(client, exp, first, b, lr, 0.6)
    trial_run(client, exp, first, *GRID[2], 0.3, status="interrupted", epochs=1)
    second = study_run(client, exp, planned=len(GRID))  # run --new: every trial again, to the end
    latest = {(b, lr): trial_run(client, exp, second, b, lr, 0.9) for b, lr in GRID}
    table = load_trials_from_mlflow(f"twice-{method}", uri, method=method)
    frame = table.frame
    assert len(frame) == len(GRID) and frame["trial_key"].is_unique
    assert set(frame["run_id"]) == set(latest.values())
    assert frame["test_acc"].tolist() == pytest.approx([0.9] * len(GRID))
    assert any(f"holds 2 runs of the study (parent runs {first}, {second})" in w and "2 earlier runs" in w
               for w in table.warnings), table.warnings
    assert not any("partial" in w for w in table.warnings)  # the interrupted trial finished under the second
