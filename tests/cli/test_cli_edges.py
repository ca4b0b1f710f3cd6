"""Bad input at the edges: one ``error:`` line, exit code 2, no traceback, nothing created, no hang.

The pre-flight failures happen before Ray starts, so they run in-process (``main([...])``) in a
fresh working directory whose listing must not change. Two cases need their own process: an
address where something answers that is not Ray (``ray.init`` must give up within the bound),
and the end-to-end run that checks the progress lines.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from scalestudy import cli
from scalestudy.endpoints import StudyError, check_tracking_uri, connect_timeout
from servers import closed_port, postgres  # noqa: F401 - the fixture

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = str(REPO / "search_spaces" / "quickstart.yaml")
SECRET = "s3cret-Passw0rd"


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


def one_error(argv: list[str], where: Path, catch_all: bool = False) -> str:
    """Run in ``where``; assert exit 2, exactly one ``error:`` line, and ``where`` unchanged.
    ``catch_all``: the line is the CLI's "unexpected" one (otherwise that is a failure)."""
    before = sorted(p.name for p in where.iterdir())
    code, _, err = run(argv)
    lines = err.strip().splitlines()
    assert code == 2, (argv, code, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)
    assert "Traceback" not in err and ("unexpected" in err) == catch_all, err
    assert sorted(p.name for p in where.iterdir()) == before, (argv, err)
    return lines[0]


@pytest.fixture
def empty(tmp_path, monkeypatch):
    """An empty working directory (a subfolder: files the test writes stay beside it)."""
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    # The CLI sets some of these in-process (credentials from a URI, MLflow's retries): give them
    # back as they were after the test.
    for name in ("RAY_ADDRESS", "SCALESTUDY_CONNECT_TIMEOUT", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                 "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT", "RAY_gcs_server_port_wait_time_s"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    return folder


# --- run: the cluster address ----------------------------------------------------------------

@pytest.mark.parametrize("address, expected", [
    ("256.1.1.1:99999", "the port must be a number in 1-65535"),
    ("scalestudy-no-such-host.invalid:6379", "cannot resolve host"),
    ("headnode", "expected HOST:PORT"),
    ("http://head:8265", "unsupported scheme 'http'"),
    ("", "must not be empty"),
])
def test_bad_addresses_fail_before_anything(empty, address, expected):
    line = one_error(["run", QUICKSTART, "--address", address, "--connect-timeout", "3"], empty)
    assert expected in line and "--address" in line


def test_closed_port_fails_fast_and_names_what_to_check(empty):
    port = closed_port()
    started = time.monotonic()
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        line = one_error(["run", QUICKSTART, "--address", address], empty)
        assert f"cannot reach 127.0.0.1:{port}" in line and "check that the cluster is up" in line
    assert time.monotonic() - started < 20  # refused: no waiting for the bound


def test_auto_without_a_cluster_and_a_bad_ray_address_variable(empty, monkeypatch, tmp_path):
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "no-ray"))  # no address file from another user's cluster
    line = one_error(["run", QUICKSTART, "--address", "auto"], empty)
    assert "no Ray cluster on this machine" in line
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{closed_port()}")  # ray.init() would connect there
    assert "RAY_ADDRESS" in one_error(["run", QUICKSTART], empty)


def test_connect_timeout_is_checked(empty, monkeypatch):
    assert "--connect-timeout" in one_error(["run", QUICKSTART, "--connect-timeout", "nan"], empty)
    assert "--connect-timeout" in one_error(["run", QUICKSTART, "--connect-timeout", "-1"], empty)
    monkeypatch.setenv("SCALESTUDY_CONNECT_TIMEOUT", "soon")
    assert "SCALESTUDY_CONNECT_TIMEOUT" in one_error(["run", QUICKSTART], empty)
    monkeypatch.setenv("SCALESTUDY_CONNECT_TIMEOUT", "7.5")
    assert connect_timeout() == 7.5 and connect_timeout(2.0) == 2.0


def test_a_port_that_answers_but_is_not_ray_gives_up_within_the_bound(tmp_path):
    """Something listens (a TCP probe passes) but never speaks Ray: ray.init's own retries
    are bounded by --connect-timeout, and its C++ retry logs do not reach the user."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        address = f"127.0.0.1:{server.getsockname()[1]}"
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "scalestudy.cli", "run", QUICKSTART, "--address", address,
                               "--connect-timeout", "3"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120, env={**os.environ, "RAY_ADDRESS": ""})
        took = time.monotonic() - started
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith(f"error: --address {address}: Ray could not connect"), lines
    assert took < 45, took  # 3 s bound + interpreter start-up and imports on a loaded machine
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# --- run: the tracking store and the storage ----------------------------------------------------

@pytest.mark.parametrize("uri, expected", [
    ("notascheme://x", "unsupported scheme 'notascheme'; MLflow supports"),
    (f"mysql://user:{SECRET}@127.0.0.1/db", "pip install 'scalestudy[mysql]'"),
    (f"mssql://user:{SECRET}@127.0.0.1/db", "pyodbc"),
    (f"postgresql+nodriver://user:{SECRET}@127.0.0.1/db", "not a database URL SQLAlchemy understands"),
    ("sqlite:////proc/no/such/mlflow.db", "cannot create /proc/no/such/mlflow.db"),
    ("sqlite://", "keeps nothing"),
    ("mlruns", "MLflow 3.17 refuses the file store"),
    ("", "must not be empty"),
])
def test_unusable_tracking_uris_fail_before_anything(empty, uri, expected):
    line = one_error(["run", QUICKSTART, "--tracking-uri", uri, "--connect-timeout", "3"], empty)
    assert expected in line and "--tracking-uri" in line
    assert SECRET not in line


def test_unreachable_servers_and_databases(empty):
    port = closed_port()
    for uri in (f"postgresql://user:{SECRET}@127.0.0.1:{port}/db", f"http://user:{SECRET}@127.0.0.1:{port}"):
        line = one_error(["run", QUICKSTART, "--tracking-uri", uri, "--connect-timeout", "3"], empty)
        assert "unreachable" in line or "cannot reach" in line, line
        assert SECRET not in line and f"127.0.0.1:{port}" in line


def test_the_spec_tracking_uri_is_named_as_the_spec_field(empty):
    line = one_error(["run", QUICKSTART, "--set", "tracking.uri=notascheme://x"], empty)
    assert line.startswith("error: tracking.uri notascheme://x: unsupported scheme")


def test_postgres_uris_connect_or_say_why(postgres, monkeypatch):  # noqa: F811 - the fixture
    """A bare postgresql:// (SQLAlchemy's psycopg 3 driver) against a real server, with the password
    in the URI or moved to PGPASSWORD (as ``run`` does, so that Tune's files never hold it); a wrong
    password and a missing database are one line each, without the password."""
    from scalestudy.endpoints import credentials_to_env, redact_uri

    uri = postgres.uri("postgres").replace("postgresql+psycopg2://", "postgresql://")
    check_tracking_uri(uri, "--tracking-uri", 10)
    monkeypatch.setenv("PGPASSWORD", "")
    stripped = credentials_to_env(uri)
    assert postgres.password not in stripped and redact_uri(stripped) == stripped  # kept as is in the study file
    check_tracking_uri(stripped, "--tracking-uri", 10)
    monkeypatch.delenv("PGPASSWORD")
    for bad, expected in ((uri.replace(postgres.password, SECRET), "password authentication failed"),
                          (uri.rsplit("/", 1)[0] + "/no_such_db", 'database "no_such_db" does not exist')):
        with pytest.raises(StudyError) as caught:
            check_tracking_uri(bad, "--tracking-uri", 10)
        message = str(caught.value)
        assert expected in message and "\n" not in message
        assert SECRET not in message and postgres.password not in message


@pytest.mark.parametrize("storage, expected", [
    ("/proc/forbidden", "cannot write there"),
    ("/etc/hostname/x", "is not a directory"),
    ("notafs://bucket/x", "unsupported scheme 'notafs'"),
    ("", "must not be empty"),
])
def test_storage_that_cannot_be_written_fails_before_anything(empty, storage, expected):
    line = one_error(["run", QUICKSTART, "--storage", storage], empty)
    assert expected in line and "--storage" in line
    assert not Path("/proc/forbidden").exists()


def test_the_storage_probe_leaves_no_folders(empty, tmp_path):
    """A writable storage folder that does not exist yet is probed and removed again (here the
    tracking URI fails after the storage check passed)."""
    storage = tmp_path / "new" / "deeper" / "ray_results"
    one_error(["run", QUICKSTART, "--storage", str(storage), "--tracking-uri", "notascheme://x"], empty)
    from scalestudy.run.storage_checks import check_storage

    check_storage(str(storage), "--storage", 3)
    assert not (tmp_path / "new").exists()


def test_removed_on_failure_removes_only_what_the_block_created(tmp_path):
    from scalestudy.endpoints import removed_on_failure

    kept = tmp_path / "kept.db"
    kept.write_text("x")
    new_file, new_dir = tmp_path / "mlflow.db", tmp_path / "mlruns"
    with pytest.raises(RuntimeError), removed_on_failure([kept, new_file, new_dir]):
        new_file.write_text("half a store")
        (new_dir / "0").mkdir(parents=True)
        raise RuntimeError("ray.init failed")
    assert kept.read_text() == "x" and not new_file.exists() and not new_dir.exists()
    with removed_on_failure([new_file]):
        new_file.write_text("a store")
    assert new_file.exists()  # success keeps what was made


# --- spec files ----------------------------------------------------------------------------------

@pytest.mark.parametrize("content, expected", [
    (b"name: x\n\xff\xfe\x00garbage", "not UTF-8 text (byte 0xff at offset 8)"),
    (b"", "a spec must be a YAML mapping"),
    (b"- a\n- b\n", "a spec must be a YAML mapping"),
    (b"name: [unclosed\n", "is not valid YAML"),
])
def test_spec_files_that_are_not_specs(empty, tmp_path, content, expected):
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(content)
    assert expected in one_error(["validate", str(spec)], empty)
    assert "a directory" in one_error(["validate", str(tmp_path)], empty)
    assert "cannot read spec" in one_error(["validate", str(tmp_path / "missing.yaml")], empty)


@pytest.mark.parametrize("override, expected", [
    ("workload=mnist1d", "workload: must be a mapping (keys: dataset, "),
    ("grid=[32, 64]", "grid: must be a mapping (keys: batch_size, "),
    ("schedule=constant", "schedule: must be a mapping or a list of mappings"),
    ("schedule=[constant]", "schedule[0]: must be a mapping"),
    ("sections.law=3", "sections.law: must be a mapping with workload, optimizer, grid, schedule"),
    ("sections.law.grid=3", "sections.law.grid: must be a mapping"),
    ("search.early_stopping=asha", "search.early_stopping: must be a mapping"),
    ("workload.epochs=1000000000", "workload.epochs: Input should be less than or equal to 100000"),
])
def test_scalars_where_blocks_belong_name_the_field(empty, override, expected):
    line = one_error(["validate", QUICKSTART, "--set", override], empty)
    assert line.startswith(f"error: {expected}"), line


# --- read-only commands never create a store ------------------------------------------------

def test_read_only_commands_in_an_empty_directory(empty):
    assert "no MLflow store at" in one_error(["interpolate", "0123abc", "4567def"], empty)
    assert "no MLflow store at" in one_error(["analyze", "--experiment", "quickstart", "--out", "out"], empty)
    assert "no MLflow store at" in one_error(["ui"], empty)
    assert "no MLflow store at" in one_error(["sync", "quickstart", "--tracking-uri", "sqlite:///other.db"],
                                             empty)
    assert "no run of study 'quickstart'" in one_error(["sync", "quickstart"], empty)


def test_ports_points_and_output_folders(empty, tmp_path):
    assert "--port: must be in 1-65535" in one_error(["ui", "--port", "70000"], empty)
    assert "--points: must be in 3-1001" in one_error(["interpolate", "a", "b", "--points", "10000000"], empty)
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    for out in (str(not_a_folder), "/proc/forbidden/out"):
        line = one_error(["analyze", "--runs", str(tmp_path / "missing.parquet"), "--out", out], empty)
        assert line.startswith(f"error: --out {out}: "), line


def test_recommend_bounds_and_law_files(empty, tmp_path):
    law = tmp_path / "law.json"
    law.write_text('{"schema": "scalestudy.law/v1"}')
    assert "--batch-size: must be in 1-" in one_error(["recommend", "--law", str(law), "--batch-size", "1" + "0" * 400],
                                                      empty)
    assert "missing key" in one_error(["recommend", "--law", str(law), "--batch-size", "64"], empty)
    assert "a directory" in one_error(["recommend", "--law", str(tmp_path), "--batch-size", "64"], empty)


def test_trial_tables_with_non_finite_or_huge_values(empty, tmp_path):
    import numpy as np
    from planted import make_planted_table

    frame = make_planted_table(seeds=(0,), batch_sizes=(32, 64), momenta=(0.0,), lr_points=3)
    for column, value, expected in (("batch_size", np.inf, "must be finite"), ("lr", -np.inf, "must be finite"),
                                    ("batch_size", 1e300, "a whole number of at most"),
                                    ("dataset_size", np.nan, "missing values")):
        broken = frame.copy()
        broken[column] = broken[column].astype(float)
        broken.loc[0, column] = value
        broken.to_parquet(tmp_path / "t.parquet")
        line = one_error(["analyze", "--runs", str(tmp_path / "t.parquet"), "--out", str(tmp_path / "out")], empty)
        assert f"column {column!r}" in line and expected in line, line
        assert not (tmp_path / "out").exists()


# --- the catch-all -----------------------------------------------------------------------------

def test_an_unexpected_error_is_one_line_with_a_hint(empty, monkeypatch):
    def broken(args):
        raise RuntimeError(f"internal\nstate at postgresql://user:{SECRET}@db/x")

    monkeypatch.setitem(cli.COMMANDS, "validate", broken)
    line = one_error(["validate", QUICKSTART], empty, catch_all=True)
    assert "unexpected RuntimeError: internal state at postgresql://user:***@db/x" in line
    assert "SCALESTUDY_DEBUG=1" in line and SECRET not in line
    monkeypatch.setenv("SCALESTUDY_DEBUG", "1")
    with pytest.raises(RuntimeError):
        cli.main(["validate", QUICKSTART])


# --- one tiny study end to end: plain progress lines when stdout is not a terminal ---------------

@pytest.mark.slow
def test_a_tiny_study_prints_bounded_progress_lines_and_the_summary(tmp_path):
    spec = {"name": "edges", "workload": {"dataset": "synthetic", "dataset_options": {"train_size": 256,
            "test_size": 64}, "model": "mlp", "model_options": {"hidden": [16]}, "epochs": 1},
            "grid": {"batch_size": [32, 64], "lr": [0.05, 0.1, 0.2], "momentum": [0.0], "seeds": [0]},
            "resources": {"max_concurrent_trials": 2}}
    (tmp_path / "edges.yaml").write_text(yaml.safe_dump(spec))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "scalestudy.cli", "run", "edges.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    progress = [line for line in proc.stdout.splitlines() if line.startswith("[") and "edges: trials" in line]
    assert 2 <= len(progress) <= 2 + took / 15, progress  # the first event, at most one per 15 s, the end
    assert "trials 6/6 done" in progress[-1] and progress[-1].endswith("finished")
    assert "\x1b[" not in proc.stdout  # no terminal control codes in a log
    assert "best lr" in proc.stdout and "?workflowType=machine_learning" in proc.stdout
