"""Run (or resume) the Ray Tune study of a StudySpec, in four steps with one job each:

1. :func:`~scalestudy.run.preflight.preflight`: check every endpoint; create nothing;
2. :func:`open_study`: start or join Ray, open the MLflow experiment and parent run, write the
   study file (all removed again if this step fails);
3. :func:`build_tuner`: the trials (one :class:`~scalestudy.trial.config.Cell` per cell, a search
   plan over them), resources, callbacks, or Tune's restored experiment;
4. :func:`collect_outcome`: one row per trial, the parent run closed.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalestudy import endpoints
from scalestudy.endpoints import StudyError
from scalestudy.run import tracking
from scalestudy.run.preflight import Endpoints, preflight
from scalestudy.run.storage import StudyRun, new_study_name, trial_config, write_study_file
from scalestudy.run.storage_checks import check_shared_storage
from scalestudy.search.cells import planned_trials
from scalestudy.spec import StudySpec
from scalestudy.trial.config import Cell, TrialConfig, expand_cells
from scalestudy.trial.failure import failure_from
from scalestudy.trial.readback import row_from_result
from scalestudy.trial.record import ERROR, STATUSES, trial_status

# Environment of every Ray worker of the study (ray.init's runtime_env; a DDP trial's Train controller
# runs in one): Ray Train's default 2 s health-check interval makes every DDP report block up to 2 s.
RAY_WORKER_ENV = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1"}
# Switches Tune reads in this process while the Tuner runs, set for that time only: the classic,
# quiet output (scalestudy prints its own progress), and no CSV and TensorBoard files per report
# (result.json, added explicitly, is all that `scalestudy sync` needs; MLflow has the rest), and no
# failed trial's traceback (its reason is in the progress and the summary, its traceback in error.txt).
TUNE_DRIVER_ENV = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
                   "TUNE_PRINT_ALL_TRIAL_ERRORS": "0"}
DRIVER_MEMORY = 256 * 1024**2  # bytes; a DDP driver trial holds memory only (a CPU deadlocks small machines)


@dataclass
class StudyResult:
    run: StudyRun
    rows: list[dict[str, Any]] = field(default_factory=list)  # one a trial, with the objective's metric (summary)
    wall_seconds: float = 0.0

    @property
    def counts(self) -> dict[str, int]:
        statuses = [row["status"] for row in self.rows]
        return {status: statuses.count(status) for status in STATUSES}


@dataclass
class OpenStudy:
    """A study once Ray runs and MLflow holds its experiment and parent run."""

    run: StudyRun
    tracking_uri: str  # with its credentials in the environment, not redacted
    mlflow_client: Any
    resumed: bool


def run_study(spec: StudySpec, *, address: str | None = None, storage: str | None = None,
              tracking_uri: str | None = None, resume: bool = False, verbose: bool = True,
              callbacks: tuple = (), connect_timeout_s: float | None = None) -> StudyResult:
    """Run (or resume) the study; returns one row per trial. Blocks until done.

    ``callbacks``: extra Tune callbacks for a new study (a resumed one keeps its own).
    ``connect_timeout_s``: the bound on each pre-flight check and on connecting to ``address``
    (default: $SCALESTUDY_CONNECT_TIMEOUT, else 20 s).
    """
    checked = preflight(spec, address=address, storage=storage, tracking_uri=tracking_uri, resume=resume,
                        connect_timeout_s=connect_timeout_s)
    started = time.monotonic()
    name = checked.previous.name if checked.previous is not None else new_study_name(spec.name)
    # A DDP trial's Ray Train run lives inside the study's folder.
    cells = expand_cells(spec, storage_path=f"{checked.storage_path.rstrip('/')}/{name}")
    opened = open_study(spec, checked, name, planned_trials(spec, cells))
    tuner, progress = build_tuner(spec, opened, cells, verbose, callbacks)
    try:
        with _environment(TUNE_DRIVER_ENV):
            results = tuner.fit()
    finally:
        if progress is not None:
            progress.close()  # a live display must not outlive an interrupted or failed fit
    return collect_outcome(results, opened, started)


def open_study(spec: StudySpec, checked: Endpoints, name: str, planned: int) -> OpenStudy:
    """Start or join Ray, then open the study's MLflow experiment and parent run (reopened on resume)
    and write its study file. Whatever this creates is removed again if it fails."""

    def prepare_tracking() -> OpenStudy:
        mlflow_client = tracking.client(checked.tracking_uri)  # creates a new SQLite store: only now
        previous = checked.previous
        if previous is not None:
            mlflow_client.update_run(previous.parent_run_id, status="RUNNING")
            return OpenStudy(previous, checked.tracking_uri, mlflow_client, resumed=True)
        experiment_id = tracking.ensure_experiment(mlflow_client, spec.experiment_name)
        parent_run_id = tracking.start_study_run(mlflow_client, experiment_id, spec, planned)
        run = StudyRun(name=name, storage_path=checked.storage_path,
                       tracking_uri=endpoints.redact_uri(checked.tracking_uri), experiment_id=experiment_id,
                       parent_run_id=parent_run_id)
        write_study_file(run)
        return OpenStudy(run, checked.tracking_uri, mlflow_client, resumed=False)

    with endpoints.removed_on_failure(_local_paths(checked.tracking_uri, checked.storage_path)):
        runtime_env = ray_runtime_env(spec)
        if checked.address is not None:
            # An existing cluster: check it can hold the study before anything is written.
            _init_ray(checked.address, runtime_env, checked.timeout_s)
            check_shared_storage(checked.storage_path, explicit=checked.storage_given)
            return prepare_tracking()
        # Local Ray: a new SQLite store migrates its schema for seconds, and so does ray.init; overlap them.
        with ThreadPoolExecutor(max_workers=1) as pool:
            prepared = pool.submit(prepare_tracking)
            _init_ray(None, runtime_env)
            return prepared.result()


def build_tuner(spec: StudySpec, opened: OpenStudy, cells: list[Cell], verbose: bool, callbacks: tuple = ()):
    """(the Tuner, its progress callback or None): the search plan over ``cells``, the trainable and
    its resources, MLflow and progress callbacks; Tune's own experiment when resuming."""
    import ray
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback

    from scalestudy.run.callbacks import MlflowCallback
    from scalestudy.run.progress import ProgressCallback
    from scalestudy.run.trainables import ddp_driver, tune_trial
    from scalestudy.search import SEARCHES

    plan = SEARCHES.get(spec.search.algorithm)(spec, cells)
    resources = spec.resources
    if resources.workers_per_trial == 1:
        trainable = tune.with_resources(tune_trial, {"cpu": resources.cpus_per_worker,
                                                     "gpu": resources.gpus_per_worker})
    else:
        trainable = tune.with_resources(ddp_driver, {"memory": DRIVER_MEMORY})
    progress = ProgressCallback(spec.name, plan.total_trials, objective=spec.objective) if verbose else None
    run = opened.run
    with _environment(TUNE_DRIVER_ENV):
        if opened.resumed and tune.Tuner.can_restore(run.path):
            return tune.Tuner.restore(run.path, trainable, resume_unfinished=True, resume_errored=True), progress
        tune_callbacks = [MlflowCallback(opened.tracking_uri, run.experiment_id, run.parent_run_id,
                                         new_study=not opened.resumed),
                          *([progress] if progress else []), JsonLoggerCallback(), *callbacks]
        tuner = tune.Tuner(
            trainable, param_space=plan.param_space,
            tune_config=tune.TuneConfig(
                search_alg=plan.search_alg, scheduler=plan.scheduler, num_samples=plan.num_samples,
                max_concurrent_trials=max_concurrency(spec, ray.cluster_resources()),
                reuse_actors=resources.workers_per_trial == 1, trial_dirname_creator=_trial_folder),
            run_config=tune.RunConfig(
                name=run.name, storage_path=run.storage_path, callbacks=tune_callbacks, verbose=0,
                failure_config=tune.FailureConfig(max_failures=resources.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
        )
    return tuner, progress


def collect_outcome(results, opened: OpenStudy, started: float) -> StudyResult:
    """One row per trial (for the summary table), and the study's parent run closed."""
    rows = [_row(result, opened.run) for result in results]
    tracking.finish_study_run(opened.mlflow_client, opened.run.parent_run_id, opened.tracking_uri)
    return StudyResult(run=opened.run, rows=rows, wall_seconds=time.monotonic() - started)


# Ray counts resources in fixed point, 1/10000 of a unit (ray._raylet.RESOURCE_UNIT_SCALING).
RESOURCE_UNITS = 10_000


def _units(quantity: float) -> int:
    return round(quantity * RESOURCE_UNITS)


def max_concurrency(spec: StudySpec, cluster: dict[str, float]) -> int:
    """How many trials the cluster holds at once (Tune does not count DDP workers' CPUs).

    In Ray's own arithmetic: fixed point (so 0.1 GPU fits 10 times in one, where float floor
    division gives 9), and a GPU is a unit instance: a fraction g ≤ 1 of one is packed
    ⌊1/g⌋ times into each GPU (0.4 twice, not 2.5 times), so k trials share a GPU with
    ``gpus_per_worker: 1/k``. CPUs are a pool, and bound it too.
    """
    resources = spec.resources
    if resources.max_concurrent_trials:
        return resources.max_concurrent_trials
    workers = resources.workers_per_trial
    limits = [_units(cluster.get("CPU", 1)) // _units(workers * resources.cpus_per_worker)]
    gpus = resources.gpus_per_worker
    if gpus:
        whole_gpus = int(cluster.get("GPU", 0) + 1e-9)
        limits.append(whole_gpus * (RESOURCE_UNITS // _units(gpus)) if gpus < 1
                      else whole_gpus // round(workers * gpus))
    return max(1, min(limits))


def _trial_folder(trial) -> str:
    """A trial's folder in the study's storage is named by its key (see scalestudy.run.storage).
    Tune pickles this function with the experiment: its name and module are part of the format."""
    return TrialConfig.from_dict(trial.config["trial"]).trial_key


@contextlib.contextmanager
def _environment(values: dict[str, str], keep_set: bool = False):
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


def _init_ray(address: str | None, runtime_env: dict[str, Any],
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
    with _environment(wait, keep_set=True), endpoints.captured_stderr() as logged:
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


def _local_paths(tracking_uri: str, storage_path: str) -> list[Path]:
    """Local files and folders the set-up may create: the SQLite store, MLflow's default artifact
    folder next to it, Tune's storage."""
    paths = [Path("mlruns").resolve()]
    db = endpoints.sqlite_path(tracking_uri) if tracking_uri.startswith("sqlite:") else None
    if db is not None:
        paths += [db, db.with_name(db.name + "-journal"), db.with_name(db.name + "-wal"),
                  db.with_name(db.name + "-shm")]
    if "://" not in storage_path:
        paths.append(Path(storage_path))
    return paths


def _row(result, run: StudyRun) -> dict[str, Any]:
    # Failed before its first report (no metrics, so no config): the params.json in its folder (its trial key).
    wire = result.config["trial"] if result.config is not None else trial_config(run, Path(result.path).name)
    config = TrialConfig.from_dict(wire)
    metrics = result.metrics or {}
    # The trial's row as the analysis reads it back, with what the summary table shows besides: a trial
    # that failed is an error whatever it reported, with its reason; the gap; the objective under its
    # metric's name.
    status = trial_status(config.workload, metrics, errored=bool(result.error))
    return {**row_from_result(config, metrics), "status": status, "gen_gap": metrics.get("gen_gap"),
            "run_name": config.run_name, "error": failure_from(result.error).reason() if status == ERROR else None,
            config.objective.metric: metrics.get(config.objective.metric)}
