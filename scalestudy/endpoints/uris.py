"""Endpoint URIs: shown without their secrets, credentials moved to the environment, SQLite made absolute."""

from __future__ import annotations

import os
import re
from pathlib import Path

# The MLflow store a study uses unless told otherwise: a SQLite file in the working directory (MLflow
# 3.17 refuses the ./mlruns file store by default). The one place it is written: the spec's default,
# the CLI's flags and their help import it.
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def redact_uri(uri: str) -> str:
    """``scheme://user:secret@host`` → ``scheme://user:***@host``: URIs end up in logs and files.

    A user name alone is kept for databases (``postgresql://user@host/db``: the password is in
    PGPASSWORD), and hidden elsewhere (``https://TOKEN@host`` is a secret)."""
    def hide(match: re.Match) -> str:
        scheme, user, password = match.group(1), match.group(2), match.group(3)
        if password is not None:
            return f"{scheme}://{user}:***@"
        return match.group(0) if scheme.split("+")[0] in ("postgresql", "mysql", "mssql") else f"{scheme}://***@"

    return re.sub(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/@:\s]*)(?::([^/@\s]*))?@", hide, uri)


def credentials_to_env(uri: str) -> str:
    """``http://user:secret@host`` → ``http://host``, with MLFLOW_TRACKING_USERNAME/PASSWORD set from it;
    ``postgresql://user:secret@host/db`` → ``postgresql://user@host/db`` with PGPASSWORD set.

    MLflow reads basic-auth credentials from the environment on every request. A URI that
    carries them would otherwise end up in files (the tracking callback Tune pickles into
    Ray storage, the study file) and messages; call this before the URI goes anywhere.
    """
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.scheme.split("+")[0] == "postgresql" and parts.password is not None:
        # libpq (psycopg and psycopg2) reads the password from PGPASSWORD; the user stays in the URI.
        os.environ["PGPASSWORD"] = unquote(parts.password)
        user, host = parts.netloc.rsplit("@", 1)
        return urlunsplit(parts._replace(netloc=f"{user.split(':', 1)[0]}@{host}"))
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return uri
    if parts.username:
        os.environ["MLFLOW_TRACKING_USERNAME"] = unquote(parts.username)
    if parts.password is not None:
        os.environ["MLFLOW_TRACKING_PASSWORD"] = unquote(parts.password)
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def absolute_uri(uri: str) -> str:
    """``sqlite:///mlflow.db`` (:data:`DEFAULT_TRACKING_URI`) → ``sqlite:////abs/path/mlflow.db``: resume
    and sync may run elsewhere."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri[len(prefix):]).resolve())
    return uri
