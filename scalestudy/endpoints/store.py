"""The MLflow tracking store: ``--tracking-uri`` checked before MLflow creates anything."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from scalestudy.endpoints.base import (
    EndpointTimeout,
    StudyError,
    bounded,
    first_line,
    probe_tcp,
    writable_dir_problem,
)
from scalestudy.endpoints.uris import DEFAULT_TRACKING_URI, redact_uri

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


class TrackingError(RuntimeError):
    """The tracking server cannot be used; ``str`` is one line."""


def _supported_schemes() -> list[str]:
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    schemes = set(_tracking_store_registry._registry) - {"", "file", "uc", "databricks-uc"}
    if _file_store_allowed():
        schemes.add("file")
    return sorted(schemes)


def _file_store_allowed() -> bool:
    return os.environ.get(FILE_STORE_ENV, "").strip().lower() in ("1", "true", "yes")


def check_tracking_uri(uri: str, flag: str, timeout_s: float) -> None:
    """Fail before anything is created when MLflow cannot use ``uri``; creates nothing.

    ``flag`` names where the URI came from (``--tracking-uri`` or the spec's ``tracking.uri``).
    """
    from mlflow.utils.uri import get_uri_scheme

    shown = redact_uri(uri)
    if not uri.strip():
        raise StudyError(f"{flag}: must not be empty (e.g. {DEFAULT_TRACKING_URI})")
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
        problem = writable_dir_problem(path if path.is_dir() else path.parent)
        if problem:
            raise StudyError(f"{flag} {shown}: cannot write the file store there ({problem})")
        return
    supported = _supported_schemes()
    if scheme not in supported:
        raise StudyError(f"{flag} {shown}: unsupported scheme {scheme!r}; MLflow supports "
                         + ", ".join(f"{s}://" for s in supported if s != "databricks") + ", databricks")
    if scheme in ("http", "https"):
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
    problem = writable_dir_problem(path.parent)
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


def check_reachable(tracking_uri: str, timeout_s: float = 10.0) -> None:
    """Fail fast, before any trial starts, when an MLflow server cannot be used."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    shown = redact_uri(tracking_uri)
    try:
        urllib.request.urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=timeout_s).close()
    except urllib.error.HTTPError:
        pass  # it answered; authentication is checked below
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise TrackingError(f"MLflow tracking server {shown} is unreachable ({reason}); "
                            "start it or pass another --tracking-uri") from None
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(tracking_uri=tracking_uri).search_experiments(max_results=1)
    except MlflowException as error:
        text = str(error).splitlines()[0][:200]
        if "401" in text or "403" in text or "nauthorized" in text or "ermission" in text:
            raise TrackingError(f"MLflow tracking server {shown} rejected the credentials; set "
                                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD") from None
        raise TrackingError(f"MLflow tracking server {shown} answered with an error: {text}") from None


def answers(tracking_uri: str, timeout_s: float = 3.0) -> bool:
    """Whether an MLflow server answers at all (one quick try, no retries); True for non-HTTP stores."""
    if not tracking_uri.startswith(("http://", "https://")):
        return True
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=timeout_s).close()
    except urllib.error.HTTPError:
        return True  # it answered (an auth proxy may guard /health)
    except (OSError, ValueError):
        return False
    return True
