"""A branched study's driver side (issue 23): the base trial keeps a checkpoint at each branch point;
once it ends, the branches run as a second Tune experiment in the study's folder (``branches/``),
each trial restored from one of the base's checkpoints, its MLflow run a child of the base's run.

``--resume`` restores whichever of the two experiments was cut short: Tune does not run a finished
branch again, and a branch cut short goes on from its own checkpoint. With ``branching.compare`` the
comparison (:mod:`~scalestudy.run.comparison`) follows the branches.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from functools import partial

from scalestudy.law.batch_warmup import scaled_lr
from scalestudy.law.cbs import rule_label
from scalestudy.run.branch_tracking import ChildRuns, run_info
from scalestudy.run.branch_truth import true_cbs
from scalestudy.run.storage import BRANCHES_FOLDER, STATE_FILE, StudyRun, checkpoint_folders
from scalestudy.run.sync import backfill, ended_in_tune
from scalestudy.spec import StudySpec
from scalestudy.spec.branching import checkpoint_epochs, window_epochs
from scalestudy.trial import record
from scalestudy.trial.branch import BRANCH_ROLE, BranchOrigin, branch_config, branch_run_name
from scalestudy.trial.config import Cell, TrialConfig
from scalestudy.trial.stages import COMPARE_ROLE

log = logging.getLogger(__name__)


def keep_epochs(spec: StudySpec, base: Cell | TrialConfig) -> tuple[int, ...]:
    """The base's epochs after which its branches start (spec.branching.checkpoints, snapped to epochs)."""
    return checkpoint_epochs(spec.branching, base.workload.epochs, base.workload.dataset_size, base.batch_size)


def base_trainable(spec: StudySpec, cells: list[Cell]):
    """The base trial's Tune trainable: one worker, keeping its branch points' checkpoints."""
    from ray import tune

    from scalestudy.run.branch_trainables import branch_base_trial

    resources = spec.resources
    return tune.with_resources(tune.with_parameters(branch_base_trial, keep_epochs=keep_epochs(spec, cells[0])),
                               {"cpu": resources.cpus_per_worker, "gpu": resources.gpus_per_worker})


def base_checkpoints(run: StudyRun, base_key: str,
                     truth: Callable[[dict], float | None] = lambda state: None
                     ) -> dict[int, tuple[str, int, int, float | None]]:
    """epoch → (checkpoint folder, updates, examples, ``truth(state)``) of the base trial's checkpoints in
    storage (``truth``: the closed-form CBS from the loop's state there, :mod:`~scalestudy.run.branch_truth`)."""
    import torch

    fs, folder = run.folder()
    found = {}
    for path in checkpoint_folders(fs, f"{folder}/{base_key}"):
        try:
            with fs.open_input_stream(f"{path}/{STATE_FILE}") as stream:
                state = torch.load(io.BytesIO(stream.read()), map_location="cpu", weights_only=False)
        except Exception:  # noqa: BLE001 - cut short by a kill: the base's later checkpoint stands
            continue
        found[int(state["epoch"])] = (path, int(state["updates"]), int(state["examples_seen"]), truth(state))
    return found


def branch_lrs(spec: StudySpec, base: TrialConfig) -> dict[int, float]:
    """factor → the lr of the branches at factor·B_0: ``scaled_lr`` by the study's rule (the law rule's α
    read from ``branching.law``)."""
    branching = spec.branching
    rule, exponent = branching.rule_for(base.optimizer), branching.rule_exponent()
    return {factor: scaled_lr(base.lr, base.batch_size, base.batch_size * factor, rule, exponent)
            for factor in branching.batch_factors}


def plan_branches(spec: StudySpec, run: StudyRun, base: TrialConfig) -> list[tuple[TrialConfig, BranchOrigin]]:
    """Every branch: (its trial config, its origin), per checkpoint the base reached, factor and seed."""
    branching = spec.branching
    rule, exponent = branching.rule_for(base.optimizer), branching.rule_exponent()
    window = window_epochs(branching, base.workload.dataset_size)
    found = base_checkpoints(run, base.trial_key, partial(true_cbs, base, branching))
    lrs = branch_lrs(spec, base)
    branches = []
    for index, epoch in enumerate(keep_epochs(spec, base)):
        if epoch not in found:  # the base diverged or stopped before it: no branch (the analysis says so)
            continue
        path, updates, examples, truth = found[epoch]
        for factor in branching.batch_factors:
            origin = BranchOrigin(base.trial_key, index, epoch, examples, updates, factor, window, path, rule,
                                  branching.tolerance, branching.window_examples, branching.warmup_basis, exponent,
                                  truth)
            lr = lrs[factor]
            for seed in branching.seeds:
                branches.append((branch_config(base, origin, lr, seed), origin))
    return branches


def base_run_id(mlflow_client, run: StudyRun, base_key: str) -> str:
    """The base trial's MLflow run (under the study's parent run)."""
    found = mlflow_client.search_runs(
        [run.experiment_id], max_results=1,
        filter_string=f"tags.`{record.PARENT_TAG}` = '{run.parent_run_id}' and tags.`{record.KEY_TAG}` = '{base_key}'")
    if not found:
        raise RuntimeError(f"the base trial {base_key} has no MLflow run under the study's parent run")
    return found[0].info.run_id


def run_branches(spec: StudySpec, opened, base_results, verbose: bool,
                 stopped=lambda: False) -> tuple[list, list]:
    """Train every branch of the base (one of ``base_results``), then the comparison unless ``stopped()``
    (a signal during the branches: the study stops there, resumable); Tune's results of the branches
    and of the comparison's runs."""
    from ray import tune

    from scalestudy.run.branch_trainables import branch_trial

    run, branching = opened.run, spec.branching
    base = TrialConfig.from_dict(next(iter(base_results)).config["trial"])
    branches = plan_branches(spec, run, base)
    if not branches:
        log.warning("the base trial left no checkpoint to branch from (it diverged before the first one)")
        return [], []
    origins = {config.trial_key: origin.to_dict() for config, origin in branches}
    storage = run.storage_path
    resources = spec.resources
    trainable = tune.with_resources(tune.with_parameters(branch_trial, origins=origins, storage_path=storage),
                                    {"cpu": resources.cpus_per_worker, "gpu": resources.gpus_per_worker})
    path = f"{run.path}/{BRANCHES_FOLDER}"
    parent = base_run_id(opened.mlflow_client, run, base.trial_key)
    infos = {config.trial_key: run_info(origin.tags(), origin.params(), branch_run_name(config, origin))
             for config, origin in branches}
    resumed = opened.resumed and tune.Tuner.can_restore(path)
    if resumed:
        ended = ended_in_tune(run, BRANCHES_FOLDER)
        tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True)
    else:
        tuner = _new_branch_tuner(spec, opened, parent, infos, branches, trainable, verbose)
    results = list(tuner.fit())
    if resumed:
        backfill(run, ChildRuns(opened.mlflow_client, run.experiment_id, parent, infos), ended, BRANCHES_FOLDER)
    if branching.compare and not stopped():
        from scalestudy.run.comparison import run_comparison

        return results, run_comparison(spec, opened, base, verbose)
    return results, []


def _new_branch_tuner(spec: StudySpec, opened, parent: str, infos: dict, branches, trainable, verbose: bool):
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback

    from scalestudy.run.branch_tracking import ChildRunsCallback
    from scalestudy.run.progress import ProgressCallback

    run, resources = opened.run, spec.resources
    # result.json in each branch's folder is what the back-fill after ``--resume`` replays (Tune's own
    # loggers are off: ``ray_session.TUNE_DRIVER_ENV``); without it a branch that ended just before the
    # kill, its run not yet written, stayed missing from MLflow.
    callbacks = [ChildRunsCallback(opened.tracking_uri, run.experiment_id, parent, infos,
                                   new_study=not opened.resumed), JsonLoggerCallback()]
    if verbose:
        callbacks.append(ProgressCallback(f"{spec.name} branches", len(branches), objective=spec.objective))
    return tune.Tuner(
        trainable, param_space={"trial": tune.grid_search([config.to_dict() for config, _ in branches])},
        tune_config=tune.TuneConfig(num_samples=1, max_concurrent_trials=resources.max_concurrent_trials,
                                    reuse_actors=True, trial_dirname_creator=_branch_folder),
        run_config=tune.RunConfig(name=BRANCHES_FOLDER, storage_path=run.path, callbacks=callbacks, verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=resources.max_failures),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))


def _branch_folder(trial) -> str:
    """A branch's folder is named by its trial key (pickled with the experiment: part of the format)."""
    return TrialConfig.from_dict(trial.config["trial"]).trial_key


def mark_branches_interrupted(mlflow_client, run: StudyRun) -> int:
    """Close the branches' and comparison runs still RUNNING as KILLED (status ``interrupted``); how many."""
    closed = 0
    for role in (BRANCH_ROLE, COMPARE_ROLE):
        for found in mlflow_client.search_runs(
                [run.experiment_id], max_results=10_000,
                filter_string=f"tags.`{record.ROLE_TAG}` = '{role}' and attributes.status = 'RUNNING'"):
            mlflow_client.set_tag(found.info.run_id, record.STATUS_TAG, record.INTERRUPTED)
            mlflow_client.set_terminated(found.info.run_id, "KILLED")
            closed += 1
    return closed


def branch_summary(spec: StudySpec, base: TrialConfig) -> str:
    """What ``validate`` says of a branched study: checkpoints, branches, and their compute against the base's."""
    branching = spec.branching
    n, b0 = base.workload.dataset_size, base.batch_size
    epochs = keep_epochs(spec, base)
    window = window_epochs(branching, n)
    base_examples = base.workload.epochs * (n // b0) * b0
    branch_examples = sum(len(epochs) * len(branching.seeds) * window * (n // (b0 * f)) * b0 * f
                          for f in branching.batch_factors)
    rule = rule_label(branching.rule_for(base.optimizer), branching.rule_exponent())
    return (f"branching: base B={b0} lr={base.lr:g}, checkpoints after epochs {list(epochs)} "
            f"(examples {[e * (n // b0) * b0 for e in epochs]}); "
            f"{len(epochs) * len(branching.batch_factors) * len(branching.seeds)} "
            f"branches (factors {branching.batch_factors}, seeds {branching.seeds}, rule {rule}) of {window} "
            f"epoch(s) each; compute (all trials' examples / the base's) {1 + branch_examples / base_examples:.2f}")
