"""Run (or resume, or extend) the Ray Tune study of a StudySpec, in steps with one job each:

1. :func:`~scalestudy.run.preflight.preflight`: check every endpoint and what an earlier run of the
   study leaves (:mod:`~scalestudy.run.continuation`: a second run refused, a changed spec checked);
   create nothing;
2. :func:`~scalestudy.run.continuation.study_plan`: the trials (one
   :class:`~scalestudy.trial.config.Cell` per cell, a search plan over them), or what is left of them;
3. :func:`open_study`: start or join Ray, open the MLflow experiment and parent run, write the
   study file (all removed again if this step fails);
4. :func:`build_tuner`: resources, callbacks, or Tune's restored experiment;
5. :func:`collect_outcome`: one row per trial, the parent run closed. SIGINT or SIGTERM instead
   (:mod:`~scalestudy.run.interrupts`): the parent run and the unfinished trial runs KILLED, and
   :class:`~scalestudy.run.interrupts.StudyInterrupted` raised.
"""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalestudy import endpoints
from scalestudy.run import tracking
from scalestudy.run.branching import base_trainable, mark_branches_interrupted, run_branches
from scalestudy.run.concurrency import max_concurrency
from scalestudy.run.continuation import EarlierStudy, study_plan
from scalestudy.run.interrupts import SignalCatcher, StudyInterrupted
from scalestudy.run.preflight import Endpoints, preflight
from scalestudy.run.ray_session import RAY_WORKER_ENV, TUNE_DRIVER_ENV, environment, init_ray, ray_runtime_env
from scalestudy.run.storage import StudyRun, new_study_name, trial_config, write_study_file
from scalestudy.run.storage_checks import check_shared_storage
from scalestudy.run.sync import backfill, ended_in_tune
from scalestudy.run.study_runs import interrupted_study, reopen_study_run
from scalestudy.search.cells import planned_trials
from scalestudy.search.plan import SearchPlan
from scalestudy.spec import StudySpec
from scalestudy.trial.branch import BRANCH_ROLE
from scalestudy.trial.config import Cell, TrialConfig, expand_cells
from scalestudy.trial.failure import failure_from
from scalestudy.trial.readback import row_from_result
from scalestudy.trial.record import DIVERGED, ERROR, STATUSES, trial_status
from scalestudy.trial.stages import COMPARE_ROLE

DRIVER_MEMORY = 256 * 1024**2  # bytes; a DDP driver trial holds memory only (a CPU deadlocks small machines)
__all__ = ["RAY_WORKER_ENV", "TUNE_DRIVER_ENV", "StudyResult", "build_tuner", "open_study",
           "run_study"]


@dataclass
class StudyResult:
    run: StudyRun
    rows: list[dict[str, Any]] = field(default_factory=list)  # one a trial, with the objective's metric (summary)
    wall_seconds: float = 0.0
    earlier: int = 0  # trials of the study that had finished before this run and are not among the rows
    # A branched study's branches and comparison runs (``role``: branch | compare), apart from its grid's trials.
    branch_rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Trials per status, the branches and comparison runs included."""
        statuses = [row["status"] for row in [*self.rows, *self.branch_rows]]
        return {status: statuses.count(status) for status in STATUSES}


@dataclass
class OpenStudy:
    """A study once Ray runs and MLflow holds its experiment and parent run."""

    run: StudyRun
    tracking_uri: str  # with its credentials in the environment, not redacted
    mlflow_client: Any
    resumed: bool  # an earlier run of the study goes on (--resume, --extend)
    earlier: EarlierStudy | None = None
    planned: int = 0  # the study's planned trials (an upper bound for adaptive searches)


def run_study(spec: StudySpec, *, address: str | None = None, storage: str | None = None,
              tracking_uri: str | None = None, resume: bool = False, mode: str | None = None, verbose: bool = True,
              callbacks: tuple = (), connect_timeout_s: float | None = None) -> StudyResult:
    """Run the study; returns one row per trial. Blocks until done.

    ``mode`` (:data:`~scalestudy.run.continuation.MODES`): ``run`` (a new study; refused when it ran
    already), ``new`` (a second, separate run), ``resume`` (or ``resume=True``) or ``extend``.
    ``callbacks``: extra Tune callbacks for a new study (a resumed one keeps its own).
    ``connect_timeout_s``: the bound on each pre-flight check and on connecting to ``address``
    (default: $SCALESTUDY_CONNECT_TIMEOUT, else 20 s).
    Raises :class:`~scalestudy.run.interrupts.StudyInterrupted` after SIGINT or SIGTERM.
    """
    mode = mode or ("resume" if resume else "run")
    opened = None
    with SignalCatcher() as catcher:
        try:
            checked = preflight(spec, address=address, storage=storage, tracking_uri=tracking_uri, mode=mode,
                                connect_timeout_s=connect_timeout_s)
            started = time.monotonic()
            name = checked.previous.name if checked.previous is not None else new_study_name(spec.name)
            # A DDP trial's Ray Train run lives inside the study's folder.
            cells = expand_cells(spec, storage_path=f"{checked.storage_path.rstrip('/')}/{name}")
            # What is left of an earlier run is planned (or refused) before anything starts; a new study's
            # plan is built with its Tuner.
            continues = mode in ("resume", "extend")
            plan = study_plan(spec, cells, mode, checked.earlier, checked.previous) if continues else None
            opened = open_study(spec, checked, name, planned_trials(spec, cells), grown=mode == "extend")
            # Trials Tune will not run again: MLflow is back-filled with what it lacks of them after the fit.
            ended = ended_in_tune(opened.run) if mode == "resume" else set()
            tuner, progress = build_tuner(spec, opened, cells, verbose, callbacks, plan)
            try:
                with catcher.forwarded_to_tune(), environment(TUNE_DRIVER_ENV):
                    results, branched = tuner.fit(), ([], [])
                    if ended and catcher.signal_number is None:
                        backfill(opened.run, tracking.TrialRuns(opened.mlflow_client, opened.run.experiment_id,
                                                                opened.run.parent_run_id), ended)
                    if spec.branching is not None and catcher.signal_number is None:
                        branched = run_branches(spec, opened, results, verbose,
                                                stopped=lambda: catcher.signal_number is not None)
            finally:
                if progress is not None:
                    progress.close()  # a live display must not outlive an interrupted or failed fit
        except KeyboardInterrupt:
            catcher.signal_number = catcher.signal_number or signal.SIGINT
        if catcher.signal_number is not None:
            if opened is not None and spec.branching is not None:
                mark_branches_interrupted(opened.mlflow_client, opened.run)
            state = None if opened is None else interrupted_study(
                opened.mlflow_client, opened.tracking_uri, opened.run, opened.planned, spec.objective.metric)
            raise StudyInterrupted(catcher.signal_number, state)
    return collect_outcome(results, opened, started, *branched)


def open_study(spec: StudySpec, checked: Endpoints, name: str, planned: int, grown: bool = False) -> OpenStudy:
    """Start or join Ray, then open the study's MLflow experiment and parent run (reopened to resume or
    extend it; ``grown``: with this spec, grown) and write its study file. Whatever this creates is
    removed again if it fails."""

    def prepare_tracking() -> OpenStudy:
        mlflow_client = tracking.client(checked.tracking_uri)  # creates a new SQLite store: only now
        previous = checked.previous
        if previous is not None:
            reopen_study_run(mlflow_client, previous.parent_run_id, spec if grown else None, planned)
            return OpenStudy(previous, checked.tracking_uri, mlflow_client, True, checked.earlier, planned)
        experiment_id = tracking.ensure_experiment(mlflow_client, spec.experiment_name)
        parent_run_id = tracking.start_study_run(mlflow_client, experiment_id, spec, planned)
        run = StudyRun(name=name, storage_path=checked.storage_path,
                       tracking_uri=endpoints.redact_uri(checked.tracking_uri), experiment_id=experiment_id,
                       parent_run_id=parent_run_id)
        write_study_file(run)
        return OpenStudy(run, checked.tracking_uri, mlflow_client, False, None, planned)

    with endpoints.removed_on_failure(_local_paths(checked.tracking_uri, checked.storage_path)):
        runtime_env = ray_runtime_env(spec)
        if checked.address is not None:
            # An existing cluster: check it can hold the study before anything is written.
            init_ray(checked.address, runtime_env, checked.timeout_s)
            check_shared_storage(checked.storage_path, explicit=checked.storage_given)
            return prepare_tracking()
        # Local Ray: a new SQLite store migrates its schema for seconds, and so does ray.init; overlap them.
        with ThreadPoolExecutor(max_workers=1) as pool:
            prepared = pool.submit(prepare_tracking)
            init_ray(None, runtime_env)
            return prepared.result()


def build_tuner(spec: StudySpec, opened: OpenStudy, cells: list[Cell], verbose: bool, callbacks: tuple = (),
                plan: SearchPlan | None = None):
    """(the Tuner, its progress callback or None): ``plan`` (default: the spec's search plan over
    ``cells``), the trainable and its resources, MLflow and progress callbacks; Tune's own experiment
    when resuming. The progress counts the trials the study had finished before."""
    import ray
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback

    from scalestudy.run.callbacks import MlflowCallback
    from scalestudy.run.progress import ProgressCallback
    from scalestudy.run.trainables import ddp_driver, tune_trial

    resources = spec.resources
    if spec.branching is not None:  # the base run of a branched study keeps its branch points' checkpoints
        trainable = base_trainable(spec, cells)
    elif resources.workers_per_trial == 1:
        trainable = tune.with_resources(tune_trial, {"cpu": resources.cpus_per_worker,
                                                     "gpu": resources.gpus_per_worker})
    else:
        trainable = tune.with_resources(ddp_driver, {"memory": DRIVER_MEMORY})
    run = opened.run
    with environment(TUNE_DRIVER_ENV):
        if opened.resumed and plan is None and tune.Tuner.can_restore(run.path):
            tuner = tune.Tuner.restore(run.path, trainable, resume_unfinished=True, resume_errored=True)
            local = getattr(tuner, "_local_tuner", None)  # the callbacks Tune pickled with the experiment
            restored = local.get_run_config().callbacks or [] if local is not None else []
            progress = next((c for c in restored if isinstance(c, ProgressCallback)), None)
            _count_earlier(progress, opened.earlier, spec)
            return tuner, progress
        plan = plan or study_plan(spec, cells, "new", None)  # a new study's, or one Tune never snapshotted
        earlier = len(opened.earlier.finished()) if opened.earlier is not None else 0
        progress = (ProgressCallback(spec.name, earlier + plan.total_trials, objective=spec.objective)
                    if verbose else None)
        _count_earlier(progress, opened.earlier, spec)
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
                checkpoint_config=tune.CheckpointConfig(num_to_keep=None if spec.branching else 1)),
        )
    return tuner, progress


def _count_earlier(progress, earlier: EarlierStudy | None, spec: StudySpec) -> None:
    """The progress starts from the trials the study finished before (a resumed count goes on: 7/12, not 0/12)."""
    if progress is None or earlier is None:
        return
    finished = earlier.finished()
    objective = spec.objective
    scored = [(objective.score({objective.metric: s.objective, "diverged": int(s.status == DIVERGED)}), s)
              for s in finished.values() if s.objective is not None]
    best = max(scored, key=lambda pair: pair[0], default=None)
    progress.count_earlier({key: s.status for key, s in finished.items()},
                           None if best is None or best[0] == float("-inf") else (best[1].objective, best[1].run_name))


def collect_outcome(results, opened: OpenStudy, started: float, branches=(), compared=()) -> StudyResult:
    """One row per trial (for the summary table) and per branch or comparison run of a branched study,
    and the study's parent run closed."""
    rows = [_row(result, opened.run) for result in results]
    branch_rows = [{**_row(result, opened.run), "role": role}
                   for role, part in ((BRANCH_ROLE, branches), (COMPARE_ROLE, compared)) for result in part]
    tracking.finish_study_run(opened.mlflow_client, opened.run.parent_run_id, opened.tracking_uri)
    shown = {row["trial_key"] for row in rows}
    earlier = 0 if opened.earlier is None else sum(1 for key in opened.earlier.finished() if key not in shown)
    return StudyResult(run=opened.run, rows=rows, wall_seconds=time.monotonic() - started, earlier=earlier,
                       branch_rows=branch_rows)


def _trial_folder(trial) -> str:
    """A trial's folder in the study's storage is named by its key (see scalestudy.run.storage).
    Tune pickles this function with the experiment: its name and module are part of the format."""
    return TrialConfig.from_dict(trial.config["trial"]).trial_key


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
