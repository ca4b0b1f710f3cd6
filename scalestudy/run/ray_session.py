"""The study's Ray session: joining or starting Ray with the study's runtime environment, and the
environment variables Ray's workers and Tune's driver read.

Moved out of :mod:`scalestudy.run.study`, which composes the steps of a study.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

from scalestudy import endpoints
from scalestudy.endpoints import StudyError
from scalestudy.spec import StudySpec

# Environment of every Ray worker of the study (ray.init's runtime_env; a DDP trial's Train controller
# runs in one): Ray Train's default 2 s health-check interval makes every DDP report block up to 2 s.
RAY_WORKER_ENV = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1"}
# Switches Tune reads in this process while the Tuner runs, set for that time only: the classic,
# quiet output (scalestudy prints its own progress), and no CSV and TensorBoard files per report
# (result.json, added explicitly, is all that `scalestudy sync` needs; MLflow has the rest); and no
# SIGINT handler of Tune's own: the study catches SIGINT and SIGTERM itself and stops Tune
# (scalestudy.run.interrupts), since Tune's handler makes an interrupted fit look like a finished one;
# and no failed trial's traceback (its reason is in the progress and the summary, its traceback in error.txt).
TUNE_DRIVER_ENV = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
                   "TUNE_DISABLE_SIGINT_HANDLER": "1", "TUNE_PRINT_ALL_TRIAL_ERRORS": "0"}


@contextlib.contextmanager
def environment(values: dict[str, str], keep_set: bool = False):
    """``values`` in this process's environment for the block only; with ``keep_set``, a variable the
    user set keeps the user's value."""
    saved = {key: os.environ.get(key) for key in values}
    for key, value in values.items():
        if not (keep_set and saved[key] is not None):
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def ray_runtime_env(spec: StudySpec) -> dict[str, Any]:
    """The study's ``runtime_env`` for ``ray.init``: the spec's ``resources.runtime_env`` (the user's code and
    its dependencies, on a cluster) with scalestudy's environment variables (a variable the spec sets wins).

    On a local Ray nothing more is needed for the user's code: the workers inherit the driver's
    ``PYTHONPATH``, and Ray puts the driver's working directory on their path (an absolute path: Tune
    changing a trial's working directory does not break imports)."""
    runtime_env = spec.resources.runtime_env.to_ray() if spec.resources.runtime_env is not None else {}
    return {**runtime_env, "env_vars": {**RAY_WORKER_ENV, **TUNE_DRIVER_ENV, **runtime_env.get("env_vars", {})}}


def init_ray(address: str | None, runtime_env: dict[str, Any],
             timeout_s: float = endpoints.DEFAULT_CONNECT_TIMEOUT_S) -> None:
    """Start local Ray, or connect to ``address`` within ``timeout_s`` (Ray itself retries for minutes)."""
    import ray

    if ray.is_initialized():
        return

    def init() -> None:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False,
                 include_dashboard=False if address is None else None, logging_level="ERROR")

    if address is None:
        init()
        return
    # Ray's own GCS connect loop: about one try per second, this many tries; its C++ core logs
    # each failed try on stderr, so that is held back and only its last line shown on failure.
    wait = {"RAY_gcs_server_port_wait_time_s": str(max(1, int(timeout_s) - 1))}
    with environment(wait, keep_set=True), endpoints.captured_stderr() as logged:
        try:
            endpoints.bounded(init, timeout_s)  # the GCS loop gives up by itself; Ray client does not
            error = None
        except endpoints.EndpointTimeout:
            error = f"no answer as a Ray cluster within {timeout_s:g} s"
        except Exception as failure:  # noqa: BLE001 - ConnectionError, RuntimeError, auth and version errors
            error = endpoints.first_line(failure)
        log = logged()
    if error is None:
        sys.stderr.write(log)  # connected: Ray's warnings are the user's to see
        return
    detail = endpoints.last_log_message(log)
    raise StudyError(f"--address {address}: Ray could not connect ({error}{'; ' + detail if detail else ''}); "
                     "check that this is the head's GCS port (or ray://HOST:10001 for Ray client), that the "
                     "cluster runs Ray 2.60, and its token (RAY_AUTH_TOKEN)")
