"""Real PostgreSQL and ``mlflow server`` processes on loopback for tests (no mocks).

Import the fixtures into a test module (``from servers import postgres, mlflow_servers``)
and pytest registers them there:

* ``postgres`` (session): a private, throwaway PostgreSQL cluster, ``initdb`` in a temp
  folder and ``pg_ctl start`` on a free 127.0.0.1 port with a random password. Root may
  not run ``initdb``, so as root the cluster belongs to the ``postgres`` user (Debian's
  package creates it; ``.ci/postgres.sh`` installs the package) and runs through
  ``runuser``. Without PostgreSQL binaries the tests SKIP, unless ``CI`` is set: then
  they fail loudly.
* ``mlflow_servers`` (module): a factory that starts ``mlflow server`` processes on a
  fresh database of that cluster (copied from a migrated template, so a server starts
  without minutes of schema migration), with proxied artifact storage in a temp folder,
  optionally with basic auth; every server is stopped after the module's tests.

``MlflowServer.kill()`` kills the server's whole process group (an outage); ``start()``
again brings it back on the same port and database.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DB_USER = "scalestudy"
TEMPLATE_DB = "mlflow_template"
# SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3; name the driver we install.
DRIVER = "postgresql+psycopg2"
START_TIMEOUT_S = float(os.environ.get("SCALESTUDY_TEST_SERVER_TIMEOUT", "240"))


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def closed_port() -> int:
    """A loopback port nothing listens on (bound and released: nothing else takes it that fast)."""
    return free_port()


def postgres_bin_dir() -> Path | None:
    """Folder of ``initdb``/``pg_ctl``: on PATH, else Debian's newest /usr/lib/postgresql/N/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(candidates[-1]).parent if candidates else None


def _tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


class Postgres:
    """A private PostgreSQL cluster on 127.0.0.1:<free port>, password auth, fsync off."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="scalestudy-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.password = secrets.token_urlsafe(16)
        self.port = 0
        self.owner: str | None = None  # the OS user the server runs as, when we are root

    def _as_owner(self, args: list[str]) -> list[str]:
        return ["runuser", "-u", self.owner, "--", *args] if self.owner else args

    def _run(self, args: list[str], what: str, timeout: float = 120) -> None:
        proc = subprocess.run(self._as_owner(args), check=False, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise RuntimeError(f"PostgreSQL {what} failed (exit {proc.returncode}): "
                               f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}\n{_tail(self.log)}")

    def start(self) -> Postgres:
        if os.geteuid() == 0:
            # initdb refuses to run as root: the cluster belongs to an unprivileged user.
            for user in ("postgres", "nobody"):
                try:
                    entry = pwd.getpwnam(user)
                except KeyError:
                    continue
                self.owner = user
                os.chown(self.root, entry.pw_uid, entry.pw_gid)
                break
            else:
                raise RuntimeError("running as root and no 'postgres' or 'nobody' user to own the cluster")
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.owner:
            entry = pwd.getpwnam(self.owner)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        pwfile.chmod(0o600)
        self._run([str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", DB_USER, "-E", "UTF8",
                   "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
                   "--no-sync"], "initdb")
        pwfile.unlink()
        last_error: Exception | None = None
        for _ in range(3):  # a free port can be taken between probing and binding
            self.port = free_port()
            options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data} -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
            try:
                self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                           "-o", options, "-w", "-t", "90", "start"], "start")
                return self
            except RuntimeError as error:
                last_error = error
        raise RuntimeError(str(last_error))

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run(self._as_owner([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                                           "-w", "stop"]), check=False, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        shutil.rmtree(self.root, ignore_errors=True)

    def uri(self, database: str) -> str:
        return f"{DRIVER}://{DB_USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres"):
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=DB_USER, password=self.password,
                                dbname=database, connect_timeout=10)
        conn.autocommit = True
        return conn

    def create_database(self, name: str, template: str | None = None) -> str:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        finally:
            conn.close()
        return self.uri(name)


def migrate(uri: str) -> None:
    """Create MLflow's schema (tracking and model registry tables) in a database."""
    code = ("import sys\n"
            "from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore\n"
            "from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as Registry\n"
            "SqlAlchemyStore(sys.argv[1], 'mlflow-artifacts:/').engine.dispose()\n"
            "Registry(sys.argv[1]).engine.dispose()\n")
    proc = subprocess.run([sys.executable, "-c", code, uri], check=False, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"MLflow schema migration failed: {proc.stderr[-3000:]}")


@dataclass
class MlflowServer:
    """One ``mlflow server`` process group on 127.0.0.1 (PostgreSQL backend, proxied artifacts)."""

    backend_uri: str
    workdir: Path
    port: int = 0
    auth: dict[str, str] | None = None  # admin_username, admin_password when basic auth is on
    workers: int = 1
    proc: subprocess.Popen | None = None
    starts: int = 0
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def artifacts(self) -> Path:
        return self.workdir / "artifacts"

    @property
    def log(self) -> Path:
        return self.workdir / f"server-{self.starts}.log"

    def _command(self) -> list[str]:
        command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.backend_uri,
                   "--serve-artifacts", "--artifacts-destination", str(self.artifacts),
                   "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)]
        if self.auth:
            command += ["--app-name", "basic-auth"]
        return command

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
        # MLflow 3.17's server starts a GenAI job runner with six huey consumer processes by
        # default: far too much for a 2-core machine, and a tracking server does not need it.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        env["PYTHONUNBUFFERED"] = "1"
        if self.auth:
            ini = self.workdir / "basic_auth.ini"
            # auth_cache_ttl_seconds: without it every request pays a PBKDF2 password check
            # (about a second of CPU on a loaded 2-core machine).
            ini.write_text("[mlflow]\ndefault_permission = READ\n"
                           f"database_uri = sqlite:///{self.workdir / 'basic_auth.db'}\n"
                           "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                           "auth_cache_ttl_seconds = 300\n")
            env.update(MLFLOW_AUTH_CONFIG_PATH=str(ini),
                       MLFLOW_AUTH_ADMIN_USERNAME=self.auth["admin_username"],
                       MLFLOW_AUTH_ADMIN_PASSWORD=self.auth["admin_password"],
                       MLFLOW_FLASK_SERVER_SECRET_KEY=self.auth.setdefault("secret_key", secrets.token_hex(16)))
        env.update(self.env)
        return env

    def start(self, timeout: float = START_TIMEOUT_S) -> MlflowServer:
        self.artifacts.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        self.starts += 1
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(self._command(), cwd=self.workdir, env=self._environment(), stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.proc.returncode}:\n{_tail(self.log)}")
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=5).close()
                return self
            except urllib.error.HTTPError:
                return self  # it answers (an auth app may guard /health)
            except OSError:
                time.sleep(0.5)
        self.kill()
        raise RuntimeError(f"mlflow server not answering after {timeout:.0f}s:\n{_tail(self.log)}")

    def kill(self) -> None:
        """SIGKILL the whole process group: an outage, not a shutdown."""
        self._signal(signal.SIGKILL, wait_s=30)

    def stop(self) -> None:
        self._signal(signal.SIGTERM, wait_s=15)
        self._signal(signal.SIGKILL, wait_s=15)

    def _signal(self, sig: int, wait_s: float) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            return
        # Wait for the group's other members (uvicorn workers) to release the port.
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except (ProcessLookupError, PermissionError):
                break
            time.sleep(0.1)
        self.proc = None

    def restart(self) -> MlflowServer:
        self.stop()
        return self.start()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("server-*.log")))

    def client(self):
        """An MlflowClient for this server (credentials, if any, come from MLFLOW_TRACKING_* as usual)."""
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.url)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture(scope="session")
def postgres():
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        if in_ci():
            pytest.fail("CI: PostgreSQL binaries (initdb, pg_ctl) not found; .ci/postgres.sh installs them")
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found; run .ci/postgres.sh or set CI=true")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        if in_ci():
            pytest.fail("CI: psycopg2 is not installed (pip install -e '.[test]')")
        pytest.skip("psycopg2 is not installed (pip install -e '.[test]')")
    cluster = Postgres(bin_dir)
    try:
        cluster.start()
        cluster.create_database(TEMPLATE_DB)
        migrate(cluster.uri(TEMPLATE_DB))
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def mlflow_servers(postgres, tmp_path_factory):
    """Factory: ``start(auth=None, workers=1, env=None) -> MlflowServer`` on a fresh database.

    Module-scoped (a server takes seconds to start): tests may share one; every server is
    stopped when the module's tests are done.
    """
    started: list[MlflowServer] = []

    def start(auth: dict[str, str] | None = None, workers: int = 1, env: dict[str, str] | None = None) -> MlflowServer:
        if auth:
            try:
                import flask_wtf  # noqa: F401 - the basic-auth app needs it (mlflow[auth])
            except ImportError:
                if in_ci():
                    pytest.fail("CI: Flask-WTF is not installed; the basic-auth app needs mlflow[auth]")
                pytest.skip("Flask-WTF is not installed; the basic-auth app needs mlflow[auth]")
        name = f"mlflow_{len(started)}_{secrets.token_hex(4)}"
        uri = postgres.create_database(name, template=TEMPLATE_DB)
        server = MlflowServer(backend_uri=uri, workdir=tmp_path_factory.mktemp("mlflow-server"), auth=auth,
                              workers=workers, env=dict(env or {}))
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
