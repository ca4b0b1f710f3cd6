"""A branched study's comparison (``branching.compare``, issue 23): once CBS(t) is measured, the batch
warmup it admits and a late switch are trained from scratch against the constant base, per branch
seed (:mod:`scalestudy.trial.stages`), as a third Tune experiment in the study's folder (``compare/``);
each run a child of the study's MLflow run (role ``compare``). ``analyze`` reads their curves.
"""

from __future__ import annotations

import logging

from scalestudy.law.batch_warmup import BatchWarmup, scaled_lr, warmup_from_cbs
from scalestudy.run.storage import COMPARE_FOLDER
from scalestudy.spec import StudySpec
from scalestudy.trial.config import TrialConfig
from scalestudy.trial.stages import LATE_SWITCH_FRACTION, Stage, StagedRun, run_name, staged_config

log = logging.getLogger(__name__)


def staged_runs(spec: StudySpec, base: TrialConfig, warmup: BatchWarmup) -> list[StagedRun]:
    """The constant base, the warmup (its stages at the nearest epoch boundaries of the base) and the late
    switch; only the constant when the warmup never grows B (nothing to compare)."""
    epochs, b0 = base.workload.epochs, base.batch_size
    per_epoch = (base.workload.dataset_size // b0) * b0
    constant = StagedRun("constant", (Stage(0, b0, base.lr),))
    stages = [Stage(0, b0, base.lr)]
    for stage in warmup.stages[1:]:
        epoch = max(stages[-1].start_epoch + 1, round(stage.start_examples / per_epoch))
        if epoch < epochs:
            stages.append(Stage(epoch, stage.batch_size, stage.lr))
    if len(stages) == 1:
        return [constant]
    largest = stages[-1].batch_size
    switch = StagedRun("late_switch", (Stage(0, b0, base.lr), Stage(round(LATE_SWITCH_FRACTION * epochs), largest,
                                                                    scaled_lr(base.lr, b0, largest, warmup.rule,
                                                                              warmup.rule_exponent))))
    return [constant, StagedRun("warmup", tuple(stages)), switch]


def run_comparison(spec: StudySpec, opened, base: TrialConfig, verbose: bool) -> list:
    """Train the comparison's runs (every kind × every branch seed); Tune's results of them."""
    from ray import tune

    from scalestudy.run.branch_tracking import ChildRuns, ChildRunsCallback, run_info
    from scalestudy.run.branch_trainables import staged_trial
    from scalestudy.run.progress import ProgressCallback
    from scalestudy.run.sync import backfill, ended_in_tune

    run, resources = opened.run, spec.resources
    runs = comparison_runs(spec, opened, base)  # the same on a resume: CBS(t) of the same branches
    plans = {config.trial_key: plan.to_dict() for config, plan in runs}
    trainable = tune.with_resources(tune.with_parameters(staged_trial, plans=plans),
                                    {"cpu": resources.cpus_per_worker, "gpu": resources.gpus_per_worker})
    path = f"{run.path}/{COMPARE_FOLDER}"
    infos = {config.trial_key: run_info(plan.tags(), plan.params(), run_name(config, plan))
             for config, plan in runs}
    if opened.resumed and tune.Tuner.can_restore(path):
        ended = ended_in_tune(run, COMPARE_FOLDER)
        results = list(tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True).fit())
        backfill(run, ChildRuns(opened.mlflow_client, run.experiment_id, run.parent_run_id, infos), ended,
                 COMPARE_FOLDER)
        return results
    if len({plan.kind for _, plan in runs}) == 1:
        log.warning("comparison skipped: the batch warmup CBS(t) admits never grows B beyond B₀")
        return []
    from ray.tune.logger import JsonLoggerCallback

    # result.json is what the back-fill above replays (as for the branches, ``branching._new_branch_tuner``)
    callbacks = [ChildRunsCallback(opened.tracking_uri, run.experiment_id, run.parent_run_id, infos,
                                   new_study=not opened.resumed), JsonLoggerCallback()]
    if verbose:
        callbacks.append(ProgressCallback(f"{spec.name} comparison", len(runs), objective=spec.objective))
    tuner = tune.Tuner(
        trainable, param_space={"trial": tune.grid_search([config.to_dict() for config, _ in runs])},
        tune_config=tune.TuneConfig(num_samples=1, max_concurrent_trials=resources.max_concurrent_trials,
                                    reuse_actors=True, trial_dirname_creator=_folder),
        run_config=tune.RunConfig(name=COMPARE_FOLDER, storage_path=run.path, callbacks=callbacks, verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=resources.max_failures),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))
    return list(tuner.fit())


def comparison_runs(spec: StudySpec, opened, base: TrialConfig) -> list[tuple[TrialConfig, StagedRun]]:
    """(trial config, staged run) of every kind and branch seed, from CBS(t) as the branches measured it."""
    from scalestudy.analysis.inputs.branch_table import load_branch_study
    from scalestudy.analysis.outputs.branch_analysis import cbs_curve

    warmup = warmup_from_cbs(cbs_curve(load_branch_study(opened.tracking_uri, opened.run.experiment_id)),
                             basis=spec.branching.warmup_basis)
    return [(staged_config(base, plan, seed), plan) for plan in staged_runs(spec, base, warmup)
            for seed in spec.branching.seeds]


def _folder(trial) -> str:
    """A comparison run's folder is named by its trial key (pickled with the experiment)."""
    return TrialConfig.from_dict(trial.config["trial"]).trial_key
