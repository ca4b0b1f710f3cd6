"""Build and run the Ray Tune study of a StudySpec: trials, resources, storage, tracking, resume."""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalestudy import endpoints
from scalestudy.endpoints import StudyError
from scalestudy.endpoints import storage_filesystem as _filesystem
from scalestudy.spec import StudySpec
from scalestudy.train.config import expand_cells, final_status

STUDY_FILE = "scalestudy.json"
# Ray Train's default 2 s health-check interval makes every DDP report block up to 2 s.
RAY_ENV = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1",
           # The classic, quiet Tune output: scalestudy prints its own progress lines.
           "RAY_AIR_NEW_OUTPUT": "0",
           # No CSV and TensorBoard files per report: result.json (added explicitly) is all
           # that `scalestudy sync` needs, and MLflow has the rest.
           "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}
DRIVER_MEMORY = 256 * 1024**2  # bytes; a DDP driver trial holds memory only (a CPU deadlocks small machines)


@dataclass
class StudyRun:
    """Where a study lives: its Tune experiment folder and its MLflow ids."""

    name: str
    storage_path: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str

    @property
    def path(self) -> str:
        return f"{self.storage_path.rstrip('/')}/{self.name}"


@dataclass
class StudyResult:
    run: StudyRun
    rows: list[dict[str, Any]] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def counts(self) -> dict[str, int]:
        statuses = [row["status"] for row in self.rows]
        return {status: statuses.count(status) for status in ("ok", "diverged", "stopped", "error")}


def default_storage() -> str:
    return str(Path("ray_results").resolve())


def write_study_file(run: StudyRun) -> None:
    fs, root = _filesystem(run.storage_path)
    fs.create_dir(f"{root}/{run.name}", recursive=True)
    with fs.open_output_stream(f"{root}/{run.name}/{STUDY_FILE}") as out:
        out.write(json.dumps(run.__dict__, indent=2).encode())


def find_latest_run(storage_path: str, study_name: str) -> StudyRun | None:
    """The newest Tune experiment of this study under ``storage_path``, for ``--resume``."""
    import pyarrow.fs

    fs, root = _filesystem(storage_path)
    try:
        entries = fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
    except OSError:
        return None
    candidates = sorted(e.base_name for e in entries
                        if e.type == pyarrow.fs.FileType.Directory and e.base_name.startswith(f"{study_name}-"))
    for name in reversed(candidates):
        try:
            with fs.open_input_stream(f"{root}/{name}/{STUDY_FILE}") as stream:
                return StudyRun(**json.loads(stream.read()))
        except (OSError, FileNotFoundError):
            continue
    return None


def max_concurrency(spec: StudySpec, cluster: dict[str, float]) -> int:
    """How many trials the cluster holds at once (Tune does not count DDP workers' CPUs)."""
    resources = spec.resources
    if resources.max_concurrent_trials:
        return resources.max_concurrent_trials
    workers = resources.workers_per_trial
    limits = [cluster.get("CPU", 1) // (workers * resources.cpus_per_worker)]
    if resources.gpus_per_worker:
        limits.append(cluster.get("GPU", 0) // (workers * resources.gpus_per_worker))
    return max(1, int(min(limits)))


def _init_ray(address: str | None, timeout_s: float = endpoints.DEFAULT_CONNECT_TIMEOUT_S) -> None:
    """Start local Ray, or connect to ``address`` within ``timeout_s`` (Ray itself retries for minutes)."""
    import ray

    if ray.is_initialized():
        return

    def init() -> None:
        ray.init(address=address, runtime_env={"env_vars": dict(RAY_ENV)}, log_to_driver=False,
                 include_dashboard=False if address is None else None, logging_level="ERROR")

    if address is None:
        init()
        return
    # Ray's own GCS connect loop: about one try per second, this many tries; its C++ core logs
    # each failed try on stderr, so that is held back and only its last line shown on failure.
    os.environ.setdefault("RAY_gcs_server_port_wait_time_s", str(max(1, int(timeout_s) - 1)))
    with endpoints.captured_stderr() as logged:
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


def check_storage(storage_path: str, explicit: bool) -> None:
    """On a multi-node cluster, Tune's storage must be given and visible from every node."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [node for node in ray.nodes() if node["Alive"]]
    if len(nodes) <= 1:
        return
    if not explicit:
        raise StudyError(f"--storage: required on a cluster of {len(nodes)} nodes "
                         "(a shared filesystem path or s3://bucket/prefix)")
    fs, root = _filesystem(storage_path)
    marker = f"{root}/.scalestudy-check-{uuid.uuid4().hex}"
    try:
        fs.create_dir(root, recursive=True)
        with fs.open_output_stream(marker) as out:
            out.write(b"ok")
    except OSError as error:
        raise StudyError(f"--storage {storage_path}: cannot write ({error})") from None

    @ray.remote(num_cpus=0)
    def visible(path: str, uri: str) -> bool:
        try:
            node_fs, _ = _filesystem(uri)
            with node_fs.open_input_stream(path) as stream:
                return stream.read() == b"ok"
        except OSError:
            return False

    try:
        seen = ray.get([visible.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                        .remote(marker, storage_path) for n in nodes], timeout=120)
    finally:
        fs.delete_file(marker)
    if not all(seen):
        raise StudyError(f"--storage {storage_path}: not visible from {seen.count(False)} of {len(nodes)} nodes; "
                         "use a shared filesystem or an object store (s3://...)")


@dataclass(frozen=True)
class Endpoints:
    """What a study will use, once every pre-flight check passed (nothing created yet)."""

    address: str | None  # for ray.init; None: a new local Ray
    storage_path: str  # absolute for a local folder
    tracking_uri: str  # absolute for SQLite, credentials moved to the environment
    previous: StudyRun | None  # the run --resume continues
    timeout_s: float  # the bound on each endpoint


def preflight(spec: StudySpec, *, address: str | None = None, storage: str | None = None,
              tracking_uri: str | None = None, resume: bool = False,
              connect_timeout_s: float | None = None) -> Endpoints:
    """Check the cluster address, the tracking store and the storage, each within the bound; create
    nothing. Raises :class:`StudyError` (one line) on the first problem."""
    from scalestudy import tracking

    timeout_s = endpoints.connect_timeout(connect_timeout_s)
    storage_path = storage if storage is not None else default_storage()
    if "://" not in storage_path and storage_path.strip():
        storage_path = str(Path(storage_path).expanduser().resolve())  # Tune and resume need it absolute
    previous = find_latest_run(storage_path, spec.name) if resume else None
    if resume and previous is None:
        raise StudyError(f"--resume: no earlier run of study {spec.name!r} under {storage_path}")
    given = tracking_uri is not None
    tracking_flag = "--tracking-uri" if given else "the study's tracking URI" if previous else "tracking.uri"
    if not given:
        tracking_uri = previous.tracking_uri if previous else spec.tracking.uri
    if "***@" in tracking_uri:
        raise StudyError(f"--resume: the study's tracking URI was stored without its credentials ({tracking_uri}); "
                         "pass --tracking-uri")
    # Credentials in a URI move to the environment (MLFLOW_TRACKING_USERNAME/PASSWORD, PGPASSWORD):
    # the URI is pickled with the Tuner.
    tracking_uri = tracking.credentials_to_env(tracking.absolute_uri(tracking_uri))
    # Bounded retries: a tracking blip must not stall the driver for minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    address = endpoints.check_ray_address(address, timeout_s)
    endpoints.check_tracking_uri(tracking_uri, tracking_flag, timeout_s)
    endpoints.check_storage(storage_path, "--storage" if storage is not None else "storage (default ./ray_results)",
                            timeout_s)
    return Endpoints(address, storage_path, tracking_uri, previous, timeout_s)


def run_study(spec: StudySpec, *, address: str | None = None, storage: str | None = None,
              tracking_uri: str | None = None, resume: bool = False, verbose: bool = True,
              callbacks: tuple = (), connect_timeout_s: float | None = None) -> StudyResult:
    """Run (or resume) the study; returns one row per trial. Blocks until done.

    ``callbacks``: extra Tune callbacks for a new study (a resumed one keeps its own).
    ``connect_timeout_s``: the bound on each pre-flight check and on connecting to ``address``
    (default: $SCALESTUDY_CONNECT_TIMEOUT, else 20 s).
    """
    # Checked before Ray and Tune are even imported: a bad flag fails in seconds.
    checked = preflight(spec, address=address, storage=storage, tracking_uri=tracking_uri, resume=resume,
                        connect_timeout_s=connect_timeout_s)
    import ray
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback

    from scalestudy import tracking
    from scalestudy.callbacks import MlflowCallback, ProgressCallback
    from scalestudy.search import SEARCHES
    from scalestudy.train.trial import ddp_driver, tune_trial

    started = time.monotonic()
    cells = expand_cells(spec)
    n_trials = (sum(len(cell["lr_grid"]) for cell in cells) if spec.search.algorithm == "grid"
                else len(cells) * (spec.search.trials_per_cell or 1))  # an upper bound for searches
    address, storage_path, tracking_uri, previous = (checked.address, checked.storage_path, checked.tracking_uri,
                                                     checked.previous)
    timeout_s = checked.timeout_s
    mlflow_client = None

    def prepare_tracking() -> StudyRun:
        nonlocal mlflow_client
        mlflow_client = tracking.client(tracking_uri)  # creates a new SQLite store: only now
        if previous is not None:
            mlflow_client.update_run(previous.parent_run_id, status="RUNNING")
            return previous
        experiment_id = tracking.ensure_experiment(mlflow_client, spec.experiment_name)
        parent_run_id = tracking.start_study_run(mlflow_client, experiment_id, spec, n_trials)
        created = StudyRun(name=f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}", storage_path=storage_path,
                           tracking_uri=tracking.redact_uri(tracking_uri), experiment_id=experiment_id,
                           parent_run_id=parent_run_id)
        write_study_file(created)
        return created

    os.environ.update(RAY_ENV)
    # Whatever the set-up creates goes again if it fails: no half-created store or storage.
    with endpoints.removed_on_failure(_local_paths(tracking_uri, storage_path)):
        if address is not None:
            # An existing cluster: check it can hold the study before anything is written.
            _init_ray(address, timeout_s)
            check_storage(storage_path, explicit=storage is not None)
            run = prepare_tracking()
        else:
            # Local Ray: a new SQLite store migrates its schema for seconds, and so does
            # ray.init; overlap them.
            with ThreadPoolExecutor(max_workers=1) as pool:
                prepared = pool.submit(prepare_tracking)
                _init_ray(None)
                run = prepared.result()
    for cell in cells:
        # A DDP trial's Ray Train run lives inside the study's Tune folder.
        cell.update(train_storage_path=run.path, placement_strategy=spec.resources.placement_strategy,
                    max_failures=spec.resources.max_failures)
    plan = SEARCHES.get(spec.search.algorithm)(spec, cells)

    if spec.resources.workers_per_trial == 1:
        resources = {"cpu": spec.resources.cpus_per_worker, "gpu": spec.resources.gpus_per_worker}
        trainable = tune.with_resources(tune_trial, resources)
    else:
        trainable = tune.with_resources(ddp_driver, {"memory": DRIVER_MEMORY})

    progress = ProgressCallback(spec.name, plan.total_trials) if verbose else None
    tune_callbacks = [MlflowCallback(tracking_uri, run.experiment_id, run.parent_run_id, new_study=previous is None),
                      *([progress] if progress else []), JsonLoggerCallback(), *callbacks]
    if previous is not None and tune.Tuner.can_restore(run.path):
        tuner = tune.Tuner.restore(run.path, trainable, resume_unfinished=True, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=plan.param_space,
            tune_config=tune.TuneConfig(
                search_alg=plan.search_alg, scheduler=plan.scheduler, num_samples=plan.num_samples,
                max_concurrent_trials=max_concurrency(spec, ray.cluster_resources()),
                reuse_actors=spec.resources.workers_per_trial == 1,
                trial_dirname_creator=lambda t: t.config["trial"]["trial_key"],
            ),
            run_config=tune.RunConfig(
                name=run.name, storage_path=storage_path, callbacks=tune_callbacks, verbose=0,
                failure_config=tune.FailureConfig(max_failures=spec.resources.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            ),
        )
    try:
        grid = tuner.fit()
    finally:
        if progress is not None:
            progress.close()  # a live display must not outlive an interrupted or failed fit
    rows = [_row(result) for result in grid]
    tracking.finish_study_run(mlflow_client, run.parent_run_id, tracking_uri)
    return StudyResult(run=run, rows=rows, wall_seconds=time.monotonic() - started)


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


def _row(result) -> dict[str, Any]:
    trial = result.config["trial"]
    metrics = result.metrics or {}
    status = "error" if result.error else final_status(trial, metrics)
    return {
        "trial_key": trial["trial_key"], "section": trial["section"], "schedule": trial["schedule"]["kind"],
        "batch_size": trial["batch_size"], "lr": trial["lr"], "momentum": trial["momentum"],
        "seed": trial["seed"], "status": status, "diverged": bool(metrics.get("diverged")),
        "epochs": metrics.get("epoch"), "updates": metrics.get("updates"),
        "test_acc": metrics.get("test_acc"), "train_acc": metrics.get("train_acc"),
        "gen_gap": metrics.get("gen_gap"),
    }
