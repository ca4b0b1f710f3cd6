"""Log an analysis back to MLflow: an ``analysis`` run under the study's parent run, with the
law's headline numbers as metrics and the output folder (law.json, report.md, figures,
trials.parquet) as its artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scalestudy.law import ScalingLaw
from scalestudy.trial.record import ANALYSIS_ROLE, PARENT_TAG, ROLE_TAG, RUN_NAME_TAG, SPEC_HASH_TAG


def publish_analysis(law: ScalingLaw, provenance: dict[str, Any], out_dir: Path, params: dict[str, Any],
                     more_metrics: dict[str, float] | None = None) -> str:
    """The analysis run's id; ``provenance``: the trial table's (from MLflow); ``more_metrics``: beside
    the law's (the laws of a study with several: ``law_group_outputs.group_metrics``)."""
    metrics = {**run_metrics(law), **(more_metrics or {})}
    return log_analysis_run(provenance, out_dir, metrics, {k: str(v) for k, v in params.items()})


def run_metrics(law: ScalingLaw) -> dict[str, float]:
    """``law.*`` and ``compute.*`` metrics of the analysis run (the fields that are not null)."""
    compute = law.compute
    values = {"law.alpha": law.alpha, "law.beta": law.beta, "law.k": law.k, "law.r2": law.r2,
              "law.breakdown_batch_size": law.breakdown_batch_size,
              "law.noise_scale_opt": law.noise_scale_opt.value if law.noise_scale_opt else None,
              "law.gap_slope": law.gap_slope.value if law.gap_slope else None,
              "law.gradient_noise_scale": law.gradient_noise_scale.value if law.gradient_noise_scale else None,
              **{f"compute.{key}": getattr(compute, key) if compute else None
                 for key in ("trials", "trial_epochs", "updates", "cpu_hours", "gpu_hours")}}
    return {key: value for key, value in values.items() if value is not None}


def log_analysis_run(provenance: dict[str, Any], out_dir: Path, metrics: dict[str, float],
                     params: dict[str, str]) -> str:
    """An ``analysis`` run under the study's parent run, with ``out_dir`` as its artifacts."""
    tags = {ROLE_TAG: ANALYSIS_ROLE, RUN_NAME_TAG: "analysis"}
    if provenance.get("parent_run_id"):
        tags[PARENT_TAG] = provenance["parent_run_id"]
    if provenance.get("spec_hash"):
        tags[SPEC_HASH_TAG] = provenance["spec_hash"]
    return log_run(provenance["tracking_uri"], provenance["experiment_id"], tags, metrics, params, out_dir)


def log_run(tracking_uri: str, experiment_id: str, tags: dict[str, str], metrics: dict[str, float],
            params: dict[str, str], out_dir: Path) -> str:
    """A finished run in ``experiment_id`` with these tags (its parent in ``PARENT_TAG``, its name in
    ``RUN_NAME_TAG``), metrics and params, and the files of ``out_dir`` as its artifacts; its id."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.create_run(experiment_id, tags=tags, run_name=tags.get(RUN_NAME_TAG))
    run_id = run.info.run_id
    client.log_batch(run_id, metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items()],
                     params=[Param(k, str(v)) for k, v in params.items()],
                     tags=[RunTag(k, v) for k, v in tags.items()])
    client.log_artifacts(run_id, str(out_dir))
    client.set_terminated(run_id)
    return run_id
