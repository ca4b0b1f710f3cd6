"""MLflow → the branch table of a branched study (issue 23): one row per branch, with its base's
objective and noise scale at the branch's checkpoint. The input of
``scalestudy.analysis.fits.branch_cbs.estimate_cbs``; its columns are that estimator's contract.

A branch's ``window_loss`` is its objective at the window's end, NaN when it diverged (divergence
is data: the estimator counts it as a loss above tolerance); a branch that did not end (errored,
interrupted) is left out and counted in :attr:`BranchStudy.missing`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from scalestudy.analysis.errors import AnalysisError
from scalestudy.trial import branch, record

COLUMNS = ("checkpoint", "checkpoint_examples", "checkpoint_updates", "checkpoint_epoch", "base_loss",
           "batch_size", "batch_factor", "seed", "window_loss", "noise_scale", "true_cbs", "examples_trained",
           "run_id")
NOISE_METRIC = "gradient_noise_scale"  # the loop's B_simple (scalestudy.noise.GradientNoiseScale), per epoch


@dataclass(frozen=True)
class BranchStudy:
    """A branched study as MLflow holds it: its branch table and what cbs.json records besides."""

    table: pd.DataFrame  # COLUMNS, one row per branch that ended
    objective: str  # the metric compared (a loss: minimised)
    base_batch_size: int
    base_lr: float
    momentum: float
    optimizer: str
    rule: str
    rule_exponent: float | None  # α of the law rule (None: linear, sqrt)
    tolerance: float
    window_examples: int
    warmup_basis: str  # what the warmup's B must not exceed: ci_low | estimate
    dataset_size: int
    total_examples: int  # the base run's length [examples]
    workload: str
    experiment_id: str
    tracking_uri: str
    parent_run_id: str
    base_run_id: str
    base_curve: pd.DataFrame  # the base's per-epoch updates, examples_seen and objective
    missing: int = 0  # branches that did not end (errored, interrupted): not in the table
    notes: list[str] = field(default_factory=list)


def is_branched(mlflow_client, experiment_id: str) -> bool:
    """Does the experiment hold branch runs?"""
    return bool(mlflow_client.search_runs([experiment_id], max_results=1,
                                          filter_string=f"tags.`{record.ROLE_TAG}` = '{branch.BRANCH_ROLE}'"))


def _history(mlflow_client, run_id: str, key: str) -> dict[int, float]:
    return {int(m.step): float(m.value) for m in mlflow_client.get_metric_history(run_id, key)}


def load_branch_study(tracking_uri: str, experiment_id: str) -> BranchStudy:
    """Read the base's and the branches' runs of one experiment (one base run)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    branches = client.search_runs([experiment_id], max_results=50_000,
                                  filter_string=f"tags.`{record.ROLE_TAG}` = '{branch.BRANCH_ROLE}'")
    if not branches:
        raise AnalysisError(f"experiment {experiment_id} has no branch runs: not a branched study")
    base_ids = {run.data.tags[record.PARENT_TAG] for run in branches}
    if len(base_ids) != 1:
        raise AnalysisError(f"experiment {experiment_id}: branches of {len(base_ids)} base runs; one is analysed")
    base = client.get_run(base_ids.pop())
    params = base.data.params
    objective = params["objective_metric"]
    losses = _history(client, base.info.run_id, objective)
    noise = _history(client, base.info.run_id, NOISE_METRIC)
    updates = _history(client, base.info.run_id, "updates")
    examples = _history(client, base.info.run_id, "examples_seen")
    rows, missing = [], 0
    for run in branches:
        tags, metrics = run.data.tags, run.data.metrics
        status = tags.get(record.STATUS_TAG)
        if status not in (record.OK, record.DIVERGED):
            missing += 1
            continue
        epoch = int(tags[branch.CHECKPOINT_EPOCH_TAG])
        diverged = status == record.DIVERGED or bool(metrics.get("diverged", 0))
        rows.append({
            "checkpoint": int(tags[branch.CHECKPOINT_TAG]),
            "checkpoint_examples": int(tags[branch.CHECKPOINT_EXAMPLES_TAG]),
            "checkpoint_updates": int(tags[branch.CHECKPOINT_UPDATES_TAG]), "checkpoint_epoch": epoch,
            "base_loss": losses.get(epoch, math.nan), "batch_size": int(run.data.params["batch_size"]),
            "batch_factor": int(tags[branch.FACTOR_TAG]), "seed": int(run.data.params["seed"]),
            "window_loss": math.nan if diverged else float(metrics.get(objective, math.nan)),
            "noise_scale": noise.get(epoch, math.nan),
            "true_cbs": float(tags.get(branch.TRUE_CBS_TAG, math.nan)),  # NaN: no closed form (run.branch_truth)
            "examples_trained": metrics.get("examples_seen", math.nan) - int(tags[branch.CHECKPOINT_EXAMPLES_TAG]),
            "run_id": run.info.run_id})
    table = pd.DataFrame(rows, columns=list(COLUMNS)).sort_values(
        ["checkpoint", "batch_size", "seed"], ignore_index=True)
    first = branches[0].data.tags
    base_batch = int(params["batch_size"])
    dataset_size = int(params["dataset_size"])
    epochs = int(params["epochs"])
    curve = pd.DataFrame({"epoch": sorted(losses), "updates": [updates.get(e) for e in sorted(losses)],
                          "examples": [examples.get(e) for e in sorted(losses)],
                          "loss": [losses[e] for e in sorted(losses)]})
    return BranchStudy(
        table=table, objective=objective, base_batch_size=base_batch, base_lr=float(params["lr"]),
        momentum=float(params["momentum"]), optimizer=params.get("optimizer") or "sgd",
        rule=first[branch.RULE_TAG], tolerance=float(first[branch.TOLERANCE_TAG]),
        rule_exponent=float(first[branch.RULE_EXPONENT_TAG]) if branch.RULE_EXPONENT_TAG in first else None,
        window_examples=int(first[branch.WINDOW_EXAMPLES_TAG]), dataset_size=dataset_size,
        warmup_basis=first.get(branch.WARMUP_BASIS_TAG, "ci_low"),
        total_examples=epochs * (dataset_size // base_batch) * base_batch,
        workload=f"{params.get('dataset')}/{params.get('model')}", experiment_id=experiment_id,
        tracking_uri=tracking_uri, parent_run_id=base.data.tags.get(record.PARENT_TAG, ""),
        base_run_id=base.info.run_id, base_curve=curve, missing=missing)


def load_comparison_curves(tracking_uri: str, experiment_id: str, objective: str) -> pd.DataFrame:
    """The comparison runs' per-epoch curves (``fits.warmup_comparison.CURVE_COLUMNS`` and ``run_id``),
    of the runs that ended; empty when the study has none."""
    from mlflow.tracking import MlflowClient

    from scalestudy.trial import stages

    client = MlflowClient(tracking_uri=tracking_uri)
    runs = client.search_runs([experiment_id], max_results=10_000,
                              filter_string=f"tags.`{record.ROLE_TAG}` = '{stages.COMPARE_ROLE}'")
    rows = []
    for run in runs:
        if run.data.tags.get(record.STATUS_TAG) not in (record.OK, record.DIVERGED):
            continue
        loss, updates = _history(client, run.info.run_id, objective), _history(client, run.info.run_id, "updates")
        examples = _history(client, run.info.run_id, "examples_seen")
        rows += [{"kind": run.data.tags[stages.KIND_TAG], "seed": int(run.data.params["seed"]), "epoch": epoch,
                  "updates": updates.get(epoch, math.nan), "examples": examples.get(epoch, math.nan),
                  "loss": value, "run_id": run.info.run_id} for epoch, value in sorted(loss.items())]
    return pd.DataFrame(rows, columns=["kind", "seed", "epoch", "updates", "examples", "loss", "run_id"])
