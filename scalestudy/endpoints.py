"""Pre-flight checks of what a study talks to: the Ray cluster, the MLflow store, Tune's storage.

Each check runs before anything is created and gives up within a bound (``--connect-timeout``,
``SCALESTUDY_CONNECT_TIMEOUT``, default :data:`DEFAULT_CONNECT_TIMEOUT_S` seconds per endpoint):
an address that does not answer must not leave the user waiting for Ray's or a driver's own
retries (minutes), and a store that cannot be used must not leave a half-created one behind.
Every failure is a :class:`StudyError` whose text is one line naming the flag, the value
(passwords redacted) and what to check.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit

from scalestudy.tracking import redact_uri

DEFAULT_CONNECT_TIMEOUT_S = 20.0
CONNECT_TIMEOUT_ENV = "SCALESTUDY_CONNECT_TIMEOUT"
RAY_GCS_PORT, RAY_CLIENT_PORT = 6379, 10001
# Database schemes MLflow stores runs in (SQLAlchemy dialects), their default ports, and
# how to get a driver when SQLAlchemy's default one is missing.
DATABASE_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
DRIVER_HINTS = {
    "postgresql": "pip install 'scalestudy[postgres]' (psycopg), or name an installed driver, "
                  "e.g. postgresql+psycopg2://",
    "mysql": "pip install 'scalestudy[mysql]' and write mysql+pymysql://, or install mysqlclient",
    "mssql": "pip install pyodbc and install an ODBC driver for SQL Server",
}
FILE_STORE_ENV = "MLFLOW_ALLOW_FILE_STORE"

T = TypeVar("T")


class StudyError(RuntimeError):
    """A study cannot start (storage, tracking, cluster); ``str`` is one line."""


class EndpointTimeout(Exception):
    pass


def connect_timeout(flag_value: float | None = None) -> float:
    """The bound for each endpoint: the flag, else $SCALESTUDY_CONNECT_TIMEOUT, else the default."""
    if flag_value is not None:
        value, where = flag_value, "--connect-timeout"
    else:
        text = os.environ.get(CONNECT_TIMEOUT_ENV, "").strip()
        if not text:
            return DEFAULT_CONNECT_TIMEOUT_S
        where = CONNECT_TIMEOUT_ENV
        try:
            value = float(text)
        except ValueError:
            raise StudyError(f"{where}: must be a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and 0 < value <= 3600):
        raise StudyError(f"{where}: must be seconds in (0, 3600], got {value!r}")
    return value


def bounded(call: Callable[[], T], timeout_s: float) -> T:
    """``call()`` in a daemon thread; raises :class:`EndpointTimeout` after ``timeout_s`` (the call is left to
    finish in the background: DNS look-ups and some drivers cannot be interrupted)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as error:  # noqa: BLE001 - handed to the caller
            box["error"] = error

    thread = threading.Thread(target=target, name="scalestudy-preflight", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise EndpointTimeout()
    if "error" in box:
        raise box["error"]
    return box["value"]


@contextlib.contextmanager
def captured_stderr():
    """Send file descriptor 2 to a temporary file for the block (Ray's C++ core logs every retry
    there); yields a function returning what was written. The caller decides what to show."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)

        def text() -> str:
            sink.flush()
            sink.seek(0)
            return sink.read().decode(errors="replace")

        try:
            yield text
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def last_log_message(text: str) -> str | None:
    """The message of the last line of a Ray log (``[time W pid tid] file.cc:N: MESSAGE``)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    return re.sub(r"^\[[^\]]*\]\s*(\S+\.cc:\d+:\s*)?", "", lines[-1])[:300]


def first_line(error: BaseException, secret: str | None = None) -> str:
    """The first line of an error's text, with any URI's credentials (and ``secret``) redacted."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    text = redact_uri(lines[0][:300]) if lines else type(error).__name__
    # A very short password may also be an ordinary word of the message: those are left alone.
    return text.replace(secret, "***") if secret and len(secret) >= 6 else text


def probe_tcp(host: str, port: int, timeout_s: float) -> str | None:
    """Why nothing answers at host:port within ``timeout_s`` (None when a TCP connection opens)."""
    def connect() -> None:
        socket.create_connection((host, port), timeout=timeout_s).close()

    try:
        bounded(connect, timeout_s)
    except EndpointTimeout:
        return f"no answer within {timeout_s:g} s"
    except socket.gaierror:
        return f"cannot resolve host {host!r}"
    except OSError as error:
        return error.strerror or first_line(error)
    return None


# --- the Ray cluster ---------------------------------------------------------------------------

def _host_port(text: str, default_port: int | None, flag: str, shown: str) -> tuple[str, int]:
    parts = urlsplit(f"//{text}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number, or out of range
        raise StudyError(f"{flag} {shown}: the port must be a number in 1-65535") from None
    if not host or parts.path or parts.query or parts.fragment or parts.username:
        raise StudyError(f"{flag} {shown}: expected HOST:PORT")
    if port is None:
        if default_port is None:
            raise StudyError(f"{flag} {shown}: expected HOST:PORT (the head's GCS port, {RAY_GCS_PORT} by default)")
        port = default_port
    if not 1 <= port <= 65535:
        raise StudyError(f"{flag} {shown}: the port must be in 1-65535, got {port}")
    return host, port


def check_ray_address(address: str | None, timeout_s: float, flag: str = "--address") -> str | None:
    """The address to give ``ray.init`` (None: a new local Ray), once something answers there.

    Accepts ``auto`` (the cluster ``ray start`` left on this machine: $RAY_ADDRESS or Ray's
    address file), ``local``, ``HOST:PORT`` (the head's GCS) and ``ray://HOST[:PORT]`` (Ray client).
    Without an address, Ray itself connects to $RAY_ADDRESS when it is set: that is checked too.
    """
    if address is None:
        from_env = os.environ.get("RAY_ADDRESS", "").strip()
        return check_ray_address(from_env, timeout_s, "RAY_ADDRESS") if from_env else None
    address = address.strip()
    if address == "local":
        return None
    if not address:
        raise StudyError(f"{flag}: must not be empty; give auto, HOST:PORT or ray://HOST:PORT")
    if address == "auto":
        from ray._private.utils import get_ray_address_file, read_ray_address

        found = os.environ.get("RAY_ADDRESS", "").strip() or read_ray_address()
        if not found or found in ("auto", "local"):
            raise StudyError(f"{flag} auto: no Ray cluster on this machine (no RAY_ADDRESS, no "
                             f"{get_ray_address_file(None)}); start one with `ray start --head`, or give "
                             "HOST:PORT or ray://HOST:PORT")
        return check_ray_address(found, timeout_s, f"{flag} auto (found {found})")
    scheme, sep, rest = address.partition("://")
    if sep and scheme != "ray":
        raise StudyError(f"{flag} {address}: unsupported scheme {scheme!r}; give auto, HOST:PORT (the head's "
                         f"GCS, port {RAY_GCS_PORT}) or ray://HOST:PORT (Ray client, port {RAY_CLIENT_PORT})")
    client = bool(sep)
    host, port = _host_port(rest if client else address, RAY_CLIENT_PORT if client else None, flag, address)
    problem = probe_tcp(host, port, timeout_s)
    if problem:
        what = f"the Ray client server (port {RAY_CLIENT_PORT} by default)" if client else \
            f"the head node's GCS (port {RAY_GCS_PORT} by default)"
        raise StudyError(f"{flag} {address}: cannot reach {host}:{port} ({problem}); check that the cluster "
                         f"is up and that this is {what}")
    return address


# --- the MLflow tracking store -----------------------------------------------------------------

def _supported_schemes() -> list[str]:
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    schemes = set(_tracking_store_registry._registry) - {"", "file", "uc", "databricks-uc"}
    if _file_store_allowed():
        schemes.add("file")
    return sorted(schemes)


def _file_store_allowed() -> bool:
    return os.environ.get(FILE_STORE_ENV, "").strip().lower() in ("1", "true", "yes")


def _writable_dir(directory: Path) -> str | None:
    """Why files cannot be created in ``directory`` (None when they can); creates nothing that stays."""
    if not directory.is_dir():
        return "no such directory" if not directory.exists() else "not a directory"
    probe = directory / f".scalestudy-write-check-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        return error.strerror or first_line(error)
    return None


def check_tracking_uri(uri: str, flag: str, timeout_s: float) -> None:
    """Fail before anything is created when MLflow cannot use ``uri``; creates nothing.

    ``flag`` names where the URI came from (``--tracking-uri`` or the spec's ``tracking.uri``).
    """
    from mlflow.utils.uri import get_uri_scheme

    shown = redact_uri(uri)
    if not uri.strip():
        raise StudyError(f"{flag}: must not be empty (e.g. sqlite:///mlflow.db)")
    try:
        scheme = get_uri_scheme(uri)
    except Exception as error:  # noqa: BLE001 - MLflow's parser on odd input
        raise StudyError(f"{flag} {shown}: not a URI MLflow can parse ({first_line(error)})") from None
    if uri.strip() == "databricks" or scheme == "databricks":
        return  # a Databricks workspace: MLflow authenticates with the workspace's own settings
    if scheme in ("", "file"):
        if not _file_store_allowed():
            raise StudyError(f"{flag} {shown}: MLflow 3.17 refuses the file store; use sqlite:///PATH.db (or set "
                             f"{FILE_STORE_ENV}=true)")
        path = Path(urlsplit(uri).path if scheme == "file" else uri)
        problem = _writable_dir(path if path.is_dir() else path.parent)
        if problem:
            raise StudyError(f"{flag} {shown}: cannot write the file store there ({problem})")
        return
    supported = _supported_schemes()
    if scheme not in supported:
        raise StudyError(f"{flag} {shown}: unsupported scheme {scheme!r}; MLflow supports "
                         + ", ".join(f"{s}://" for s in supported if s != "databricks") + ", databricks")
    if scheme in ("http", "https"):
        from scalestudy.tracking import check_reachable

        check_reachable(uri, timeout_s=timeout_s)  # its TrackingError names the server and the flag
    elif scheme == "sqlite":
        _check_sqlite(uri, flag, shown)
    elif scheme in DATABASE_PORTS:
        _check_database(uri, scheme, flag, shown, timeout_s)


def check_existing_store(uri: str, flag: str, timeout_s: float) -> None:
    """For commands that only read a study: the store must exist already (MLflow would create an
    empty one for a missing SQLite file or folder)."""
    from mlflow.utils.uri import get_uri_scheme

    try:
        scheme = get_uri_scheme(uri)
    except Exception:  # noqa: BLE001 - check_tracking_uri says what is wrong
        scheme = None
    if scheme == "sqlite" and sqlite_path(uri) is not None and not sqlite_path(uri).is_file():
        raise StudyError(f"{flag} {redact_uri(uri)}: no MLflow store at {sqlite_path(uri)} (run a study first, or "
                         "pass the --tracking-uri it used)")
    if scheme in ("", "file") and _file_store_allowed():
        path = Path(urlsplit(uri).path if scheme == "file" else uri)
        if not path.is_dir():
            raise StudyError(f"{flag} {redact_uri(uri)}: no MLflow file store at {path}")
    check_tracking_uri(uri, flag, timeout_s)


def sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URI (None for an in-memory database)."""
    rest = uri.split("://", 1)[1] if "://" in uri else ""
    path = rest[1:].split("?")[0] if rest.startswith("/") else ""
    return Path(path) if path and path != ":memory:" else None


def _check_sqlite(uri: str, flag: str, shown: str) -> None:
    path = sqlite_path(uri)
    if path is None:
        raise StudyError(f"{flag} {shown}: an in-memory or empty SQLite path keeps nothing; use sqlite:///PATH.db")
    if path.exists():
        if not path.is_file():
            raise StudyError(f"{flag} {shown}: {path} is not a file")
        if not os.access(path, os.R_OK | os.W_OK):
            raise StudyError(f"{flag} {shown}: {path} is not readable and writable")
        return
    problem = _writable_dir(path.parent)
    if problem:
        raise StudyError(f"{flag} {shown}: cannot create {path} ({path.parent}: {problem})")


def _check_database(uri: str, scheme: str, flag: str, shown: str, timeout_s: float) -> None:
    """The driver is installed, the server answers, and it takes the credentials."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    try:
        url = make_url(uri)
        dialect = url.get_dialect()
    except Exception as error:  # noqa: BLE001 - ArgumentError, NoSuchModuleError (unknown +driver)
        raise StudyError(f"{flag} {shown}: not a database URL SQLAlchemy understands "
                         f"({first_line(error, url_password(uri))})") from None
    try:
        dialect.import_dbapi()
    except ImportError as error:
        raise StudyError(f"{flag} {shown}: the {scheme} driver is not installed ({first_line(error)}); "
                         f"{DRIVER_HINTS[scheme]}") from None
    if url.host and not (url.query.get("host") or url.query.get("unix_socket")):
        problem = probe_tcp(url.host, url.port or DATABASE_PORTS[scheme], timeout_s)
        if problem:
            raise StudyError(f"{flag} {shown}: cannot reach the database server {url.host}:"
                             f"{url.port or DATABASE_PORTS[scheme]} ({problem})")

    def connect() -> None:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            engine.connect().close()
        finally:
            engine.dispose()

    try:
        bounded(connect, timeout_s)
    except EndpointTimeout:
        raise StudyError(f"{flag} {shown}: the database server did not let us in within {timeout_s:g} s") from None
    except Exception as error:  # noqa: BLE001 - every driver has its own errors
        raise StudyError(f"{flag} {shown}: cannot connect ({first_line(error, url.password)})") from None


def url_password(uri: str) -> str | None:
    try:
        return urlsplit(uri).password or None
    except ValueError:
        return None


# --- Tune storage ------------------------------------------------------------------------------

def storage_filesystem(storage_path: str):
    """(pyarrow filesystem, path inside it) of a local folder or a URI such as s3://bucket/prefix."""
    import pyarrow.fs

    if "://" in storage_path:
        return pyarrow.fs.FileSystem.from_uri(storage_path)
    return pyarrow.fs.LocalFileSystem(), storage_path


def check_storage(storage_path: str, flag: str, timeout_s: float) -> None:
    """Tune can write under ``storage_path``: a probe file is written and removed, and so is any
    folder the probe had to create."""
    if not storage_path.strip():
        raise StudyError(f"{flag}: must not be empty (a folder, or a URI such as s3://bucket/prefix)")
    if "://" not in storage_path:
        check_writable_folder(Path(storage_path), flag)
        return
    scheme = storage_path.split("://", 1)[0]

    def probe() -> None:
        fs, root = storage_filesystem(storage_path)  # an object store may look up its region: bounded too
        marker = f"{root.rstrip('/')}/.scalestudy-write-check-{uuid.uuid4().hex}"
        with fs.open_output_stream(marker) as out:
            out.write(b"ok")
        fs.delete_file(marker)

    try:
        bounded(probe, timeout_s)
    except EndpointTimeout:
        raise StudyError(f"{flag} {storage_path}: no answer within {timeout_s:g} s") from None
    except Exception as error:  # noqa: BLE001 - pyarrow raises several types for bad URIs and stores
        if "Unrecognized filesystem type" in str(error):
            raise StudyError(f"{flag} {storage_path}: unsupported scheme {scheme!r}; use a folder or s3://, gs://, "
                             "hdfs://, abfs://") from None
        raise StudyError(f"{flag} {storage_path}: cannot write there ({first_line(error)})") from None


def check_writable_folder(path: Path, flag: str) -> None:
    """Files can be written in the folder ``path`` (made, probed and removed again if it is missing)."""
    missing = []
    existing = path
    while not existing.exists():
        if existing.is_symlink():
            raise StudyError(f"{flag} {path}: {existing} is a broken link")
        missing.append(existing)
        existing = existing.parent
    if not existing.is_dir():
        raise StudyError(f"{flag} {path}: {existing} is not a directory")
    try:
        for folder in reversed(missing):
            folder.mkdir()
        problem = _writable_dir(path)
    except OSError as error:
        problem = error.strerror or first_line(error)
    finally:
        for folder in missing:  # deepest first: leave the tree as it was
            try:
                folder.rmdir()
            except OSError:
                pass
    if problem:
        raise StudyError(f"{flag} {path}: cannot write there ({problem})")


@contextlib.contextmanager
def removed_on_failure(paths: list[Path]):
    """Remove those of ``paths`` that did not exist before, when the block raises: a set-up that
    fails leaves nothing behind."""
    new = [path for path in paths if not path.exists()]
    try:
        yield
    except BaseException:
        for path in new:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists() or path.is_symlink():
                path.unlink(missing_ok=True)
        raise
