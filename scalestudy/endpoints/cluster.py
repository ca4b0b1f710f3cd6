"""The Ray cluster a study runs on: ``--address`` checked before ``ray.init``."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from scalestudy.endpoints.base import StudyError, probe_tcp

RAY_GCS_PORT, RAY_CLIENT_PORT = 6379, 10001


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


