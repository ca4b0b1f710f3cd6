"""``scalestudy interpolate RUN_A RUN_B``: Keskar et al.'s 1-D interpolation between two trials.

Loads both trials' final checkpoints from Ray storage (:mod:`scalestudy.run.storage`), evaluates the line
θ(α) = α·θ_B + (1−α)·θ_A on the training and test sets, writes ``interpolation.png`` and
``interpolation.json``, and logs both to an MLflow run under run A's study.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalestudy.endpoints import StudyError, check_existing_store, connect_timeout, redact_uri
from scalestudy.trial import record


@dataclass
class TrialState:
    """A finished trial as stored: its config and its loop's final state (model, optimizer, history)."""

    run_id: str
    label: str  # the run's name, for figures
    config: Any  # TrialConfig
    state: dict[str, Any]


def load_trial_state(run_id: str, tracking_uri: str, storage_path: str) -> TrialState:
    """The trial of MLflow run ``run_id``: its study folder from the parent run, its config and final
    checkpoint by its trial key."""
    from mlflow.exceptions import MlflowException

    from scalestudy.run import tracking
    from scalestudy.run.storage import final_state, study_of_parent, trial_config
    from scalestudy.trial.config import TrialConfig

    try:
        run = tracking.client(tracking_uri).get_run(run_id)
    except MlflowException:
        raise StudyError(f"no MLflow run {run_id!r} at {redact_uri(tracking_uri)}") from None
    tags = run.data.tags
    if tags.get(record.ROLE_TAG) != record.TRIAL_ROLE:
        raise StudyError(f"run {run_id} is not a scalestudy trial run")
    study = study_of_parent(storage_path, tags[record.PARENT_TAG])
    key = tags[record.KEY_TAG]
    state = final_state(study, key)
    config = TrialConfig.from_dict(trial_config(study, key))
    return TrialState(run_id=run_id, label=run.info.run_name or key, config=config, state=state)


@dataclass
class InterpolationOutput:
    figure: Path
    data: Path
    mlflow_run_id: str | None


BN_STATISTICS = ("recompute", "interpolate")
BN_EXAMPLES = 4096  # training examples the batch-norm statistics are recomputed over at each α


def interpolate_runs(run_a: str, run_b: str, *, tracking_uri: str, storage_path: str, out_dir: Path,
                     points: int = 25, connect_timeout_s: float | None = None,
                     bn_statistics: str = "recompute") -> InterpolationOutput:
    """``connect_timeout_s`` bounds the check that the tracking store exists (a missing one is an
    error here, never created). ``bn_statistics``: ``recompute`` (default) sets batch-norm running
    statistics at each α to their average over a fixed set of training batches of run A's batch
    size; ``interpolate`` uses θ(α)'s interpolated ones (negative variances past the ends)."""
    check_existing_store(tracking_uri, "--tracking-uri", connect_timeout(connect_timeout_s))  # before torch loads
    import numpy as np
    import torch

    from scalestudy.diagnostics.interpolation import interpolate, plot_interpolation, to_json
    from scalestudy.models.ghost_bn import batch_norm_layers
    from scalestudy.models.precise_bn import recompute_running_stats
    from scalestudy.run import tracking
    from scalestudy.train.distributed import Distributed
    from scalestudy.train.loop import EpochLoop

    a = load_trial_state(run_a, tracking_uri, storage_path)
    b = load_trial_state(run_b, tracking_uri, storage_path)
    for key in ("dataset", "dataset_options", "train_subset", "model", "model_options"):
        mine, theirs = getattr(a.config.workload, key), getattr(b.config.workload, key)
        if mine != theirs:
            raise StudyError(f"runs differ in {key} ({mine!r} vs {theirs!r}): "
                             "interpolation needs the same model on the same data")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    # Built from run A's config: same architecture, data and ghost BN layers (same state keys).
    loop = EpochLoop(a.config, Distributed(device=torch.device("cpu")))
    data = loop.data
    subset = min(data.train_size, max(data.test_size, 1024))

    def evaluate(model: torch.nn.Module) -> tuple[float, float, float, float]:
        train_loss, train_acc = loop.evaluate(data.train_x[:subset], data.train_y[:subset])
        test_loss, test_acc = loop.evaluate(data.test_x, data.test_y)
        return train_loss, train_acc, test_loss, test_acc

    recalibrate = None
    if bn_statistics == "recompute" and batch_norm_layers(loop.model):
        # Batches of run A's initial per-worker batch: the BN batch of plain BN, whole ghost batches.
        batch = min(a.config.batch_size // a.config.resources.workers, data.train_size)
        count = max(1, min(data.train_size, BN_EXAMPLES) // batch)
        batches = [data.train_x[i * batch:(i + 1) * batch] for i in range(count)]

        def recalibrate(model: torch.nn.Module) -> None:
            recompute_running_stats(model, batches)

    alphas = [float(x) for x in np.linspace(-1.0, 2.0, points)]
    result = interpolate(loop.model, a.state["model"], b.state["model"], evaluate, alphas=alphas,
                         labels=(a.label, b.label), recalibrate=recalibrate)
    out_dir.mkdir(parents=True, exist_ok=True)
    figure = plot_interpolation(result, out_dir / "interpolation.png")
    data_path = out_dir / "interpolation.json"
    data_path.write_text(to_json(result))

    client = tracking.client(tracking_uri)
    parent = client.get_run(run_a)
    run = client.create_run(parent.info.experiment_id, run_name=f"interpolate {a.label} → {b.label}", tags={
        record.PARENT_TAG: parent.data.tags[record.PARENT_TAG], record.ROLE_TAG: record.INTERPOLATION_ROLE,
        record.RUN_A_TAG: run_a, record.RUN_B_TAG: run_b})
    client.log_artifact(run.info.run_id, str(figure))
    client.log_artifact(run.info.run_id, str(data_path))
    client.set_terminated(run.info.run_id)
    return InterpolationOutput(figure=figure, data=data_path, mlflow_run_id=run.info.run_id)
