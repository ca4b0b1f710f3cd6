"""The pre-flight of ``scalestudy run``: every endpoint checked, within its bound, and what an earlier
run of the study leaves (:mod:`~scalestudy.run.continuation`), before anything is created or Ray and
Tune are even imported (a bad flag fails in seconds)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from scalestudy import endpoints
from scalestudy.endpoints import StudyError
from scalestudy.run.continuation import MODES, EarlierStudy, earlier_study
from scalestudy.run.storage import StudyRun, find_latest_run, resolved_storage
from scalestudy.run.storage_checks import check_storage
from scalestudy.spec import StudySpec


@dataclass(frozen=True)
class Endpoints:
    """What a study will use, once every pre-flight check passed (nothing created yet)."""

    address: str | None  # for ray.init; None: a new local Ray
    storage_path: str  # absolute for a local folder
    storage_given: bool  # --storage was passed (a cluster of several nodes needs it)
    tracking_uri: str  # absolute for SQLite, credentials moved to the environment
    previous: StudyRun | None  # the run --resume or --extend continues
    timeout_s: float  # the bound on each endpoint
    earlier: EarlierStudy | None = None  # that run's trials in MLflow, the spec checked against its own


def preflight(spec: StudySpec, *, address: str | None = None, storage: str | None = None,
              tracking_uri: str | None = None, mode: str = "run",
              connect_timeout_s: float | None = None) -> Endpoints:
    """Check the cluster address, the tracking store and the storage, each within the bound, then the
    study's earlier run for ``mode`` (:data:`~scalestudy.run.continuation.MODES`); create nothing.
    Raises :class:`StudyError` (one line) on the first problem."""
    if mode not in MODES:
        raise ValueError(f"mode: one of {', '.join(MODES)}, got {mode!r}")
    timeout_s = endpoints.connect_timeout(connect_timeout_s)
    storage_path = resolved_storage(storage)
    continues = mode in ("resume", "extend")
    previous = find_latest_run(storage_path, spec.name) if continues else None
    if continues and previous is None:
        raise StudyError(f"--{mode}: no earlier run of study {spec.name!r} under {storage_path} (pass the --storage "
                         "it ran with)")
    given = tracking_uri is not None
    tracking_flag = "--tracking-uri" if given else "the study's tracking URI" if previous else "tracking.uri"
    if not given:
        tracking_uri = previous.tracking_uri if previous else spec.tracking.uri
    if "***@" in tracking_uri:
        raise StudyError(f"--{mode}: the study's tracking URI was stored without its credentials ({tracking_uri}); "
                         "pass --tracking-uri")
    # Credentials in a URI move to the environment (MLFLOW_TRACKING_USERNAME/PASSWORD, PGPASSWORD):
    # the URI is pickled with the Tuner.
    tracking_uri = endpoints.credentials_to_env(endpoints.absolute_uri(tracking_uri))
    # Bounded retries: a tracking blip must not stall the driver for minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    address = endpoints.check_ray_address(address, timeout_s)
    endpoints.check_tracking_uri(tracking_uri, tracking_flag, timeout_s)
    check_storage(storage_path, "--storage" if storage is not None else "storage (default ./ray_results)", timeout_s)
    earlier = earlier_study(spec, mode, previous, tracking_uri)
    return Endpoints(address, storage_path, storage is not None, tracking_uri, previous, timeout_s, earlier)
