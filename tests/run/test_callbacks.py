"""The MLflow callback on its own, against a real SQLite store: Tune's events are driven by hand
with small stand-ins for Tune's trials (its event interface: an id, the config, the last result)."""

import pickle
import types

import pytest
from mlflow.tracking import MlflowClient

from scalestudy.run import tracking
from scalestudy.run.callbacks import MlflowCallback
from scalestudy.spec import spec_from_dict
from scalestudy.trial.config import expand_cells
from scalestudy.trial.record import HISTORY_KEY, METRIC_KEYS, STATUS_TAG

SPEC = spec_from_dict({"name": "callback", "workload": {"dataset": "synthetic", "model": "mlp", "epochs": 3},
                       "grid": {"batch_size": [32], "lr": [0.1]}})
CELL = expand_cells(SPEC)[0]


class Trial:
    """A Tune trial as callbacks see it."""

    def __init__(self, lr: float) -> None:
        self.config = {"trial": CELL.trial(lr).to_dict()}
        self.trial_id = self.config["trial"]["trial_key"]
        self.last_result: dict = {}


def result(epoch: int, **extra) -> dict:
    values = {key: 0.5 for key in METRIC_KEYS}
    return {**values, "epoch": epoch, "diverged": 0, "test_acc": 0.1 * epoch, "timestamp": 1_700_000_000 + epoch,
            **extra}


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    """One SQLite store for the module (its schema takes seconds to create)."""
    # A new connection per query, so that a store moved away is an outage at once (the default pool
    # would keep writing to the open file).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", "NullPool")
        yield tmp_path_factory.mktemp("store") / "mlflow.db"


@pytest.fixture
def store(store_path, request):
    """(URI, client, experiment, parent run) of a study of its own in the module's store."""
    uri = f"sqlite:///{store_path}"
    client = MlflowClient(uri)
    experiment_id = tracking.ensure_experiment(client, request.node.name)
    parent = tracking.start_study_run(client, experiment_id, SPEC, 2)
    return uri, client, experiment_id, parent


def steps(client, run_id: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, "test_acc"))


def trial_run(client, experiment_id: str, trial: Trial):
    (run,) = client.search_runs([experiment_id], f"tags.`scalestudy.trial_key` = '{trial.trial_id}'")
    return run


def report(callback: MlflowCallback, trial: Trial, epoch_result: dict) -> None:
    trial.last_result = epoch_result
    callback.on_trial_result(0, [], trial, epoch_result)


def test_each_epoch_once_and_the_status_rule_at_the_end(store):
    uri, client, experiment_id, parent = store
    callback = MlflowCallback(uri, experiment_id, parent, background=False, new_study=True)
    finished, stopped, failed = Trial(0.1), Trial(0.2), Trial(0.4)
    for trial in (finished, stopped, failed):
        callback.on_trial_start(0, [], trial)
    for epoch in (1, 2, 2, 3):  # Tune may hand the same epoch twice (a restored trial): written once
        report(callback, finished, result(epoch))
    report(callback, stopped, result(1))  # ASHA stops it after one of its three epochs
    report(callback, failed, result(1))
    callback.on_trial_complete(0, [], finished)
    callback.on_trial_complete(0, [], stopped)
    callback.on_trial_error(0, [], failed)
    callback.on_experiment_end([])

    runs = {t.trial_id: trial_run(client, experiment_id, t) for t in (finished, stopped, failed)}
    assert steps(client, runs[finished.trial_id].info.run_id) == [1, 2, 3]
    for key in METRIC_KEYS:
        assert len(client.get_metric_history(runs[finished.trial_id].info.run_id, key)) == 3, key
    expected = {finished.trial_id: ("ok", "FINISHED"), stopped.trial_id: ("stopped", "FINISHED"),
                failed.trial_id: ("error", "FAILED")}
    for key, run in runs.items():
        assert (run.data.tags[STATUS_TAG], run.info.status) == expected[key]
        assert run.data.tags["mlflow.parentRunId"] == parent and run.data.params["trial_key"] == key
        assert run.info.run_name == CELL.trial(float(run.data.params["lr"])).run_name


def test_a_resumed_study_appends_to_the_runs_it_finds_by_key(store):
    uri, client, experiment_id, parent = store
    trial = Trial(0.1)
    first = MlflowCallback(uri, experiment_id, parent, background=False, new_study=True)
    first.on_trial_start(0, [], trial)
    report(first, trial, result(1))
    report(first, trial, result(2))
    # The driver dies; Tune restores the callback it pickled, and the trial resumes from its
    # checkpoint: its first report carries the epochs before it.
    resumed = pickle.loads(pickle.dumps(first))
    resumed.on_trial_start(0, [], trial)
    history = '[{"epoch": 1, "test_acc": 0.1, "diverged": 0}, {"epoch": 2, "test_acc": 0.2, "diverged": 0}]'
    report(resumed, trial, result(3, **{HISTORY_KEY: history}))
    resumed.on_trial_complete(0, [], trial)
    resumed.close()
    run = trial_run(client, experiment_id, trial)  # one run: found by its key, not created again
    assert steps(client, run.info.run_id) == [1, 2, 3]
    assert run.data.tags[STATUS_TAG] == "ok" and run.info.status == "FINISHED"
    assert [m.value for m in sorted(client.get_metric_history(run.info.run_id, "test_acc"), key=lambda m: m.step)] \
        == pytest.approx([0.1, 0.2, 0.3])


def test_an_outage_is_backed_off_then_caught_up(store, store_path):
    uri, client, experiment_id, parent = store
    callback = MlflowCallback(uri, experiment_id, parent, background=False, new_study=True)
    trial = Trial(0.1)
    callback.on_trial_start(0, [], trial)
    report(callback, trial, result(1))
    db, away = store_path, store_path.with_name("away.db")
    db.rename(away)
    db.mkdir()  # nothing can open the store: an outage
    try:
        report(callback, trial, result(2))
        assert callback.failures == 1 and callback._backoff == 1.0  # the study goes on
        report(callback, trial, result(3))
        assert callback.failures == 1  # backing off: no second try within the second
        callback.on_trial_complete(0, [], trial)
        assert callback.failures == 1
    finally:
        db.rmdir()
        away.rename(db)
    assert callback.flush()  # the store is back: everything recorded is written
    assert callback._backoff == 0.0
    run = trial_run(client, experiment_id, trial)
    assert steps(client, run.info.run_id) == [1, 2, 3]
    assert run.data.tags[STATUS_TAG] == "ok" and run.info.status == "FINISHED"


def test_a_callback_pickled_by_an_earlier_version_still_writes(store):
    """Tune pickles the callback with the experiment; before 0.2 it held trial configs as dicts."""
    uri, client, experiment_id, parent = store
    trial = Trial(0.1)
    old = MlflowCallback(uri, experiment_id, parent, background=False)
    old.__dict__.update(_configs={trial.trial_id: trial.config["trial"]}, _pending={trial.trial_id},
                        _reports={trial.trial_id: {1: result(1)}}, _versions={trial.trial_id: 1})
    state = old.__getstate__()
    restored = MlflowCallback.__new__(MlflowCallback)
    restored.__setstate__(state)
    assert restored.flush()
    assert steps(client, trial_run(client, experiment_id, trial).info.run_id) == [1]


def test_a_run_left_without_params_by_a_killed_driver_gets_them(store):
    """The driver creates a trial's run, then logs its params: killed in between, the resumed study
    finds the run by key and logs them (else the analysis cannot read the trial)."""
    uri, client, experiment_id, parent = store
    trial = Trial(0.1)
    client.create_run(experiment_id, run_name="cut short", tags={
        "mlflow.parentRunId": parent, "scalestudy.role": "trial", "scalestudy.trial_key": trial.trial_id})
    resumed = pickle.loads(pickle.dumps(MlflowCallback(uri, experiment_id, parent, background=False)))
    resumed.on_trial_start(0, [], trial)
    run = trial_run(client, experiment_id, trial)
    assert run.data.params["lr"] == "0.1" and run.data.params["trial_key"] == trial.trial_id


def test_a_failure_is_read_from_tunes_staging_folder_before_storage_has_it(tmp_path):
    """In on_trial_error Tune has written the error to the trial's staging folder; the study's storage
    gets it only at Tune's next sync (CI once printed "no error was recorded")."""
    import cloudpickle

    from scalestudy.run.callbacks import trial_failure

    staged = tmp_path / "error.pkl"
    staged.write_bytes(cloudpickle.dumps(RuntimeError("weights exploded past 100")))
    trial = types.SimpleNamespace(pickled_error_file=str(staged), error_file=None,
                                  get_pickled_error=lambda: None, get_error=lambda: None)
    assert trial_failure(trial).reason() == "RuntimeError: weights exploded past 100"
    text = tmp_path / "error.txt"
    text.write_text("Failure # 1 (occurred at 2026-12-07_12-26-05)\nTuneError: the actor died\n")
    trial.pickled_error_file, trial.error_file = None, str(text)
    assert "the actor died" in trial_failure(trial).reason()
    trial.error_file = None  # nothing staged, nothing stored
    assert trial_failure(trial).reason().endswith("no error was recorded")
