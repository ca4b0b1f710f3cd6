"""Pre-flight checks of what a study talks to: the Ray cluster, the MLflow store, Tune's storage.

Each check runs before anything is created and gives up within a bound (``--connect-timeout``,
``SCALESTUDY_CONNECT_TIMEOUT``, default :data:`DEFAULT_CONNECT_TIMEOUT_S` seconds per endpoint):
an address that does not answer must not leave the user waiting for Ray's or a driver's own
retries (minutes), and a store that cannot be used must not leave a half-created one behind.
Every failure is a :class:`StudyError` whose text is one line naming the flag, the value
(passwords redacted) and what to check.
"""

from scalestudy.endpoints.base import (
    CONNECT_TIMEOUT_ENV,
    DEFAULT_CONNECT_TIMEOUT_S,
    EndpointTimeout,
    StudyError,
    bounded,
    captured_stderr,
    connect_timeout,
    first_line,
    last_log_message,
    probe_tcp,
    removed_on_failure,
)
from scalestudy.endpoints.cluster import RAY_CLIENT_PORT, RAY_GCS_PORT, check_ray_address
from scalestudy.endpoints.storage import (
    check_readable_storage,
    check_storage,
    check_writable_folder,
    storage_filesystem,
)
from scalestudy.endpoints.store import (
    DATABASE_PORTS,
    FILE_STORE_ENV,
    check_existing_store,
    check_tracking_uri,
    sqlite_path,
)

__all__ = [
    "CONNECT_TIMEOUT_ENV", "DATABASE_PORTS", "DEFAULT_CONNECT_TIMEOUT_S", "FILE_STORE_ENV", "RAY_CLIENT_PORT",
    "RAY_GCS_PORT", "EndpointTimeout", "StudyError", "bounded", "captured_stderr", "check_existing_store",
    "check_ray_address", "check_readable_storage", "check_storage", "check_tracking_uri", "check_writable_folder",
    "connect_timeout", "first_line", "last_log_message", "probe_tcp", "removed_on_failure", "sqlite_path",
    "storage_filesystem",
]
