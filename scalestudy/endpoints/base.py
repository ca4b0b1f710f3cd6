"""What every pre-flight check shares: the error type, the bound, a bounded call, a TCP probe."""

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

from scalestudy.endpoints.uris import redact_uri

DEFAULT_CONNECT_TIMEOUT_S = 20.0
CONNECT_TIMEOUT_ENV = "SCALESTUDY_CONNECT_TIMEOUT"

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


def writable_dir_problem(directory: Path) -> str | None:
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
        problem = writable_dir_problem(path)
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
