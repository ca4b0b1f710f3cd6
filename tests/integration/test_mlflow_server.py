"""MLflow server mode, end to end: real PostgreSQL, real ``mlflow server``, the real CLI.

* concurrent trials against a PostgreSQL-backed server with proxied artifacts lose no point;
* an unreachable server stops ``run`` before Ray starts, with one error line;
* a server outage mid-study does not stop the study, and ``scalestudy sync`` back-fills
  MLflow afterwards, without duplicates, however often it runs;
* basic auth with credentials from the environment; wrong ones are refused before any
  trial, and the password appears in no output, file, param, tag or artifact.

(That a spec with a ``!!python`` tag is refused is tests/spec/test_spec.py::test_unsafe_yaml_is_refused.)
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from servers import closed_port, mlflow_servers, postgres  # noqa: F401 - pytest fixtures

from scalestudy.endpoints import TrackingError, check_reachable, credentials_to_env
from scalestudy.trial.record import METRIC_KEYS

pytestmark = pytest.mark.slow

WORKLOAD = {"dataset": "synthetic", "dataset_options": {"train_size": 512, "test_size": 128},
            "model": "mlp", "model_options": {"hidden": [32]}, "epochs": 3, "ghost_batch_size": 16}
# Four trials, two at a time.
SPEC = {"name": "server", "workload": WORKLOAD,
        "grid": {"batch_size": [32, 64], "lr": [0.05, 0.1], "momentum": [0.9], "seeds": [0]},
        "resources": {"max_concurrent_trials": 2}}
OUTAGE_EPOCHS = 6
# Long enough (tens of seconds) that most of it runs while the server is down.
OUTAGE_SPEC = {"name": "outage",
               "workload": dict(WORKLOAD, dataset_options={"train_size": 3072, "test_size": 256},
                                model_options={"hidden": [64]}, epochs=OUTAGE_EPOCHS),
               "grid": {"batch_size": [32], "lr": [0.02, 0.04, 0.08, 0.16], "momentum": [0.9], "seeds": [0]},
               "resources": {"max_concurrent_trials": 2}}
AUTH_SPEC = {"name": "guarded", "workload": dict(WORKLOAD, epochs=2),
             "grid": {"batch_size": [32, 64], "lr": [0.05], "momentum": [0.9], "seeds": [0]},
             "resources": {"max_concurrent_trials": 2}}


@pytest.fixture(scope="module")
def shared_server(mlflow_servers):  # noqa: F811
    """One plain server (PostgreSQL backend, proxied artifacts) for the tests that need no auth."""
    return mlflow_servers()


@pytest.fixture
def server(shared_server):
    if not shared_server.running():  # brought back after a test that killed it
        shared_server.start()
    return shared_server


@pytest.fixture
def ray_tmpdir():
    """A short RAY_TMPDIR (Ray's socket paths must stay under 108 bytes) that does not exist yet."""
    parent = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    yield parent / "r"
    shutil.rmtree(parent, ignore_errors=True)


class Clock:
    """Phase timings, printed at the end of a test (``pytest -s`` shows them)."""

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.phases: list[str] = []

    def __call__(self, name: str) -> None:
        now = time.monotonic()
        self.phases.append(f"{name} {now - self.last:.0f}s")
        self.last = now
        print("timings: " + ", ".join(self.phases), flush=True)


def cli_env(ray_tmpdir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    env.update(RAY_TMPDIR=str(ray_tmpdir), PYTHONUNBUFFERED="1", **extra)
    return env


def scalestudy(*args: str, cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scalestudy.cli", *args], check=False, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def write_spec(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def client_for(url: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=url)


def study_runs(client, name: str):
    """(parent run, trial runs) of the study's experiment."""
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None, f"no experiment {name!r}"
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("scalestudy.role") == "study"]
    trials = [r for r in runs if r.data.tags.get("scalestudy.role") == "trial"]
    assert len(parents) == 1, [r.data.tags for r in parents]
    return parents[0], trials


def assert_complete(client, trials, epochs: int) -> None:
    """Every metric at every epoch exactly once (steps 1..epochs, no duplicates)."""
    for run in trials:
        last = int(run.data.metrics["epoch"])
        diverged = run.data.tags.get("scalestudy.status") == "diverged"
        assert last == epochs or diverged, (run.info.run_name, last)
        for key in METRIC_KEYS:
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
            assert steps == list(range(1, last + 1)), (run.info.run_name, key, steps)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (
        proc.returncode, proc.stdout[-2000:], proc.stderr[-3000:])
    return lines[0]


def test_postgres_server_concurrent_trials_lose_no_point(tmp_path, server, ray_tmpdir):
    clock = Clock()
    proc = scalestudy("run", str(write_spec(tmp_path, SPEC)), "--tracking-uri", server.url, "--quiet",
                      cwd=tmp_path, env=cli_env(ray_tmpdir))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    clock("study")
    assert f"open {server.url}" in proc.stdout
    assert f"{server.url}/#/experiments/" in proc.stdout

    client = client_for(server.url)
    parent, trials = study_runs(client, "server")
    assert parent.info.status == "FINISHED"
    assert len(trials) == 4
    assert len({r.data.tags["scalestudy.trial_key"] for r in trials}) == 4  # one run per trial
    assert {r.data.tags["scalestudy.status"] for r in trials} == {"ok"}
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in trials)
    assert_complete(client, trials, epochs=3)

    # The spec went through the server's artifact proxy into --artifacts-destination.
    assert parent.info.artifact_uri.startswith("mlflow-artifacts:")
    assert "spec.yaml" in [a.path for a in client.list_artifacts(parent.info.run_id)]
    local = client.download_artifacts(parent.info.run_id, "spec.yaml", str(tmp_path / "download"))
    assert yaml.safe_load(Path(local).read_text())["name"] == "server"
    assert list(server.artifacts.rglob("spec.yaml"))


def test_unreachable_server_fails_before_ray_starts(tmp_path, ray_tmpdir):
    url = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    proc = scalestudy("run", str(write_spec(tmp_path, SPEC)), "--tracking-uri", url, cwd=tmp_path,
                      env=cli_env(ray_tmpdir), timeout=300)
    line = one_error_line(proc)
    assert line.startswith(f"error: MLflow tracking server {url} is unreachable"), line
    assert time.monotonic() - started < 120
    assert not ray_tmpdir.exists()
    assert not (tmp_path / "ray_results").exists()
    assert not (tmp_path / "mlflow.db").exists()


def _epoch_points(postgres, database: str, experiment: str) -> int:  # noqa: F811
    """The experiment's epoch points, read from PostgreSQL directly (cheap to poll, server up or down)."""
    conn = postgres.connect(database)
    try:
        with conn.cursor() as cur:
            cur.execute("select count(*) from metrics m join runs r on m.run_uuid = r.run_uuid "
                        "join experiments e on r.experiment_id = e.experiment_id "
                        "where m.key = 'epoch' and e.name = %s", (experiment,))
            return cur.fetchone()[0]
    finally:
        conn.close()


SYNC_LINE = re.compile(r"(\d+) trials read, (\d+) runs created, (\d+) metric points logged, (\d+) runs closed")


def test_outage_mid_study_then_sync_backfills(tmp_path, postgres, server, ray_tmpdir):  # noqa: F811
    clock = Clock()
    database = server.backend_uri.rsplit("/", 1)[1]
    env = cli_env(ray_tmpdir)
    log = tmp_path / "run.log"
    with log.open("w") as out:
        driver = subprocess.Popen([sys.executable, "-m", "scalestudy.cli", "run",
                                   str(write_spec(tmp_path, OUTAGE_SPEC)), "--tracking-uri", server.url],
                                  cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while _epoch_points(postgres, database, "outage") == 0:
            assert driver.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no epoch reached MLflow in 300 s:\n" + log.read_text()[-3000:]
            time.sleep(0.3)
        clock("study until the first epoch in MLflow")
        server.kill()  # the outage: the whole server process group, SIGKILL
        killed_at = time.monotonic()
        assert driver.poll() is None, "the study ended before the outage began"
        returncode = driver.wait(timeout=480)
        down_for = time.monotonic() - killed_at
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, 9)
    clock("rest of the study")
    output = log.read_text()
    assert returncode == 0, output[-4000:]
    assert "trials 4/4 done" in output, output[-3000:]
    assert "MLflow logging failed" in output  # said once, not per report
    assert output.count("MLflow logging failed") <= 3, output[-3000:]
    assert "scalestudy sync" in output
    # Tune's own record is complete: every trial reported every epoch.
    (study_dir,) = (tmp_path / "ray_results").glob("outage-*")
    for result_file in study_dir.glob("*/result.json"):
        epochs = [json.loads(line)["epoch"] for line in result_file.read_text().splitlines() if line.strip()]
        assert epochs == list(range(1, OUTAGE_EPOCHS + 1)), (result_file, epochs)
    clock(f"(of which {down_for:.0f} s after the outage began)")

    server.start()  # same port, same database
    clock("server restart")
    first = scalestudy("sync", "outage", cwd=tmp_path, env=env, timeout=300)
    clock("sync")
    assert first.returncode == 0, first.stdout + first.stderr
    read, _created, logged, closed = map(int, SYNC_LINE.search(first.stdout).groups())
    assert read == 4 and logged > 0 and closed > 0, first.stdout

    client = client_for(server.url)
    parent, trials = study_runs(client, "outage")
    assert len(trials) == 4
    assert len({r.data.tags["scalestudy.trial_key"] for r in trials}) == 4
    assert {r.data.tags["scalestudy.status"] for r in trials} <= {"ok", "diverged"}
    assert {r.info.status for r in trials} == {"FINISHED"}
    assert parent.info.status == "FINISHED"
    assert_complete(client, trials, epochs=OUTAGE_EPOCHS)

    points = _epoch_points(postgres, database, "outage")
    second = scalestudy("sync", "outage", cwd=tmp_path, env=env, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert SYNC_LINE.search(second.stdout).groups() == ("4", "0", "0", "0"), second.stdout
    assert _epoch_points(postgres, database, "outage") == points
    clock("sync again")
    assert_complete(client, study_runs(client, "outage")[1], epochs=OUTAGE_EPOCHS)


def _files_containing(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                data = path.read_bytes()
            except OSError:
                continue
            if any(needle in data for needle in needles):
                hits.append(str(path))
    return hits


def _create_user(url: str, admin: tuple[str, str], username: str, password: str) -> None:
    token = base64.b64encode(f"{admin[0]}:{admin[1]}".encode()).decode()
    request = urllib.request.Request(f"{url}/api/2.0/mlflow/users/create", method="POST",
                                     data=json.dumps({"username": username, "password": password}).encode(),
                                     headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=60).close()


def test_basic_auth_credentials_from_env_never_leak(tmp_path, mlflow_servers, ray_tmpdir, monkeypatch):  # noqa: F811
    admin = ("admin", "Adm1n-" + secrets.token_urlsafe(18))
    clock = Clock()
    server = mlflow_servers(auth={"admin_username": admin[0], "admin_password": admin[1]})
    clock("server start")
    username, password = "scientist", "S3cret-" + secrets.token_urlsafe(24)
    _create_user(server.url, admin, username, password)
    spec = write_spec(tmp_path, AUTH_SPEC)

    # Wrong credentials: one line, exit code 2, before Ray or any trial starts.
    wrong = cli_env(ray_tmpdir, MLFLOW_TRACKING_USERNAME=username, MLFLOW_TRACKING_PASSWORD=password + "x")
    line = one_error_line(scalestudy("run", str(spec), "--tracking-uri", server.url, cwd=tmp_path, env=wrong,
                                     timeout=300))
    assert "rejected the credentials" in line and "MLFLOW_TRACKING_PASSWORD" in line, line
    assert not ray_tmpdir.exists()
    assert not (tmp_path / "ray_results").exists()
    # None at all: the same check (in-process: the CLI path is the one above).
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    with pytest.raises(TrackingError, match="rejected the credentials"):
        check_reachable(server.url)
    clock("refused")
    env = cli_env(ray_tmpdir, MLFLOW_TRACKING_USERNAME=username, MLFLOW_TRACKING_PASSWORD=password)
    proc = scalestudy("run", str(spec), "--tracking-uri", server.url, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    clock("study")
    sync = scalestudy("sync", "guarded", cwd=tmp_path, env=env, timeout=300)
    assert sync.returncode == 0, sync.stdout + sync.stderr
    assert SYNC_LINE.search(sync.stdout).groups() == ("2", "0", "0", "0"), sync.stdout
    clock("sync")

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", admin[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", admin[1])
    client = client_for(server.url)
    parent, trials = study_runs(client, "guarded")
    assert len(trials) == 2
    assert_complete(client, trials, epochs=2)
    spec_text = Path(client.download_artifacts(parent.info.run_id, "spec.yaml", str(tmp_path / "download"))).read_text()

    # The password, raw or as a Basic auth header, appears nowhere.
    needles = [password.encode(), base64.b64encode(f"{username}:{password}".encode())]
    assert not any(n.decode() in text for n in needles
                   for text in (proc.stdout, proc.stderr, sync.stdout, sync.stderr, spec_text))
    experiment = client.get_experiment_by_name("guarded")
    for run in [parent, *trials]:
        for key, value in [*run.data.params.items(), *run.data.tags.items(), *experiment.tags.items()]:
            assert password not in key and password not in value, key
    assert not _files_containing(tmp_path, needles)  # ray_results (result.json, params.json, ...), downloads
    assert not _files_containing(server.artifacts, needles)
    assert any(ray_tmpdir.rglob("*.log")), "the Ray session logs were not where the test looks"
    assert not _files_containing(ray_tmpdir, needles)  # Ray's session folder: logs, runtime env, ...
    clock("checks")


def test_credentials_in_the_uri_move_to_the_environment(monkeypatch):
    """``http://user:secret@host``: the secret goes where MLflow reads it, never into files or logs."""
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    assert credentials_to_env("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert "MLFLOW_TRACKING_USERNAME" not in os.environ
    assert credentials_to_env("https://ana%40lab:p%3Ass@mlflow.lab:8443/prefix") == "https://mlflow.lab:8443/prefix"
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "ana@lab"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "p:ss"
    assert credentials_to_env("sqlite:///with@sign.db") == "sqlite:///with@sign.db"
