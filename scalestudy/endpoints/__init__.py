"""Pre-flight checks of what a study talks to: the Ray cluster and the MLflow store; URIs.

Each check runs before anything is created and gives up within a bound (``--connect-timeout``,
``SCALESTUDY_CONNECT_TIMEOUT``, default :data:`DEFAULT_CONNECT_TIMEOUT_S` seconds per endpoint):
an address that does not answer must not leave the user waiting for Ray's or a driver's own
retries (minutes), and a store that cannot be used must not leave a half-created one behind.
Every failure is a :class:`StudyError` whose text is one line naming the flag, the value
(passwords redacted) and what to check. Tune's storage is checked with its layout, in
:mod:`scalestudy.run.storage`.
"""

from scalestudy.endpoints.base import (
    CONNECT_TIMEOUT_ENV,
    DEFAULT_CONNECT_TIMEOUT_S,
    EndpointTimeout,
    StudyError,
    bounded,
    captured_stderr,
    check_writable_folder,
    connect_timeout,
    first_line,
    last_log_message,
    probe_tcp,
    removed_on_failure,
)
from scalestudy.endpoints.cluster import RAY_CLIENT_PORT, RAY_GCS_PORT, check_ray_address
from scalestudy.endpoints.store import (
    DATABASE_PORTS,
    FILE_STORE_ENV,
    TrackingError,
    answers,
    check_existing_store,
    check_reachable,
    check_tracking_uri,
    sqlite_path,
)
from scalestudy.endpoints.uris import DEFAULT_TRACKING_URI, absolute_uri, credentials_to_env, redact_uri

__all__ = [
    "CONNECT_TIMEOUT_ENV", "DATABASE_PORTS", "DEFAULT_CONNECT_TIMEOUT_S", "DEFAULT_TRACKING_URI", "FILE_STORE_ENV", "RAY_CLIENT_PORT",
    "RAY_GCS_PORT", "EndpointTimeout", "StudyError", "TrackingError", "absolute_uri", "answers", "bounded",
    "captured_stderr", "check_existing_store", "check_reachable", "check_ray_address", "check_tracking_uri",
    "check_writable_folder", "connect_timeout", "credentials_to_env", "first_line", "last_log_message", "probe_tcp",
    "redact_uri", "removed_on_failure", "sqlite_path",
]
