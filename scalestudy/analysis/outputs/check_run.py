"""``check-law``'s MLflow run: the verdict, the power and the per-cell results (check.json, check.md,
check.png as artifacts) as a ``check`` run under the run the law file records (its study's parent
run, ``provenance.parent_run_id`` in ``provenance.tracking_uri``), or, when the law file records
none, under the checked study's parent run (from MLflow, or the MLflow origin a Parquet table keeps).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalestudy.analysis.fits.law_check import LawCheck
from scalestudy.analysis.outputs.law_check_files import verdict
from scalestudy.analysis.outputs.mlflow_run import log_run
from scalestudy.law import ScalingLaw
from scalestudy.trial.record import CHECK_ROLE, PARENT_TAG, ROLE_TAG, RUN_NAME_TAG, SPEC_HASH_TAG

VERDICT_TAG = "scalestudy.check.verdict"
LAW_TAG = "scalestudy.check.law"
MAX_TAG = 5000  # characters MLflow keeps in a tag value


@dataclass(frozen=True)
class CheckRunPlace:
    """Where the check's run goes: a store, an experiment, a parent run (None: at the experiment's top)."""

    tracking_uri: str
    experiment_id: str | None  # None: the parent run's
    parent_run_id: str | None
    whose: str  # "the law's study" | "the checked study"


def check_run_place(law: ScalingLaw, table_provenance: dict[str, Any]) -> CheckRunPlace | None:
    """The law's run when its file records one, else the checked study's parent run; None when neither
    names an MLflow store."""
    origin = table_provenance if table_provenance.get("source") == "mlflow" else table_provenance.get("origin", {})
    if law.provenance.tracking_uri and law.provenance.parent_run_id:
        return CheckRunPlace(law.provenance.tracking_uri, None, law.provenance.parent_run_id, "the law's study")
    if origin.get("tracking_uri") and (origin.get("parent_run_id") or origin.get("experiment_id")):
        return CheckRunPlace(origin["tracking_uri"], origin.get("experiment_id"), origin.get("parent_run_id"),
                             "the checked study")
    return None


def publish_check(check: LawCheck, law: ScalingLaw, place: CheckRunPlace, law_path: Path, source: str,
                  out_dir: Path) -> str:
    """The check's run (metrics: passed, counts, the power; tags: the verdict; artifacts: ``out_dir``); its id."""
    if place.experiment_id is None:
        from mlflow.tracking import MlflowClient

        experiment_id = MlflowClient(tracking_uri=place.tracking_uri).get_run(place.parent_run_id).info.experiment_id
    else:
        experiment_id = place.experiment_id
    tags = {ROLE_TAG: CHECK_ROLE, RUN_NAME_TAG: f"check-law {source}"[:250], VERDICT_TAG: verdict(check)[:MAX_TAG],
            LAW_TAG: str(law_path)[:MAX_TAG]}
    if place.parent_run_id:
        tags[PARENT_TAG] = place.parent_run_id
    if law.provenance.spec_hash:
        tags[SPEC_HASH_TAG] = law.provenance.spec_hash
    metrics = {"check.passed": float(check.passed), "check.tested": check.tested, "check.cell_level": check.level,
               **{f"check.{outcome}": check.count(outcome) for outcome in ("pass", "fail", "inconclusive")}}
    if check.power is not None:
        metrics["check.detectable_factor"] = check.power.detectable
    params = {"law": str(law_path), "source": source, "law_experiment": str(law.provenance.experiment)}
    return log_run(place.tracking_uri, experiment_id, tags, metrics, params, out_dir)


__all__ = ["CheckRunPlace", "LAW_TAG", "VERDICT_TAG", "check_run_place", "publish_check"]
