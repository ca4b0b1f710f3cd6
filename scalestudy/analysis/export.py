"""Fits → :class:`scalestudy.law.ScalingLaw` (the law.json / law.yaml content)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from scalestudy import __version__
from scalestudy.analysis.compute import StudyCompute
from scalestudy.analysis.critical import CriticalBatch
from scalestudy.analysis.frontier import BOUNDED, Frontier
from scalestudy.analysis.gap import GapFit
from scalestudy.analysis.lawfit import Breakdown, LawFit
from scalestudy.analysis.noise import NoiseScaleFit
from scalestudy.law import ScalingLaw


def build_law(law: LawFit, frontier: Frontier, noise: NoiseScaleFit, gap: GapFit, dataset_size: int | None,
              provenance: dict[str, Any], compute: StudyCompute | None = None,
              critical: CriticalBatch | None = None) -> ScalingLaw:
    breakdown = law.breakdown
    reasons = dict(law.reasons)
    if breakdown.batch_size is None:
        reasons["breakdown_batch_size"] = breakdown.reason
    if noise.value is None and noise.reason:
        reasons["noise_scale_opt"] = noise.reason
    if gap.vs_batch is None and gap.reason:
        reasons["gap_slope"] = gap.reason
    if critical is not None and critical.value is None:
        reasons["gradient_noise_scale"] = critical.reason
    used = {(c.batch_size, c.momentum) for c in law.cells}
    cells = [{"batch_size": c.batch_size, "momentum": c.momentum, "lr_opt": c.lr_opt,
              "ci95": list(c.ci95) if c.ci95 else None, "seed_range": list(c.seed_range) if c.seed_range else None,
              "lr_bound": c.lr_bound, "status": c.status, "used": (c.batch_size, c.momentum) in used,
              "trials": c.n_trials, "seeds": c.n_seeds}
             for c in frontier.cells]
    excluded = [f"{c.label} ({c.status})" for c in frontier.cells if not c.usable]
    above = [c.label for c in frontier.cells if c.usable and (c.batch_size, c.momentum) not in used]
    bounded = [c.label for c in frontier.cells if c.status == BOUNDED]
    noise_opt = None
    if noise.value is not None:
        noise_opt = {"value": noise.value, "ci95": list(noise.ci95) if noise.ci95 else None,
                     "log_sd": noise.log_sd, "slope_vs_log_batch_size": noise.slope_vs_log_b,
                     "slope_ci95": list(noise.slope_ci95) if noise.slope_ci95 else None}
    gap_slope = None
    if gap.vs_batch is not None:
        gap_slope = {"per": gap.vs_batch.per, "value": gap.vs_batch.value,
                     "ci95": list(gap.vs_batch.ci95) if gap.vs_batch.ci95 else None}
        if gap.vs_noise is not None:
            gap_slope["vs_noise_scale"] = {"per": gap.vs_noise.per, "value": gap.vs_noise.value,
                                           "ci95": list(gap.vs_noise.ci95) if gap.vs_noise.ci95 else None}
    ci = {name: list(value) if value else None for name, value in law.ci95.items()}
    ci["breakdown_batch_size"] = list(breakdown.ci95) if breakdown.ci95 else None
    domain = {name: list(value) if value else None for name, value in law.domain.items()}
    return ScalingLaw(
        k=law.k, alpha=law.alpha, beta=law.beta, ci95=ci, r2=law.r2,
        breakdown_batch_size=breakdown.batch_size, noise_scale_opt=noise_opt, gap_slope=gap_slope,
        domain=domain, dataset_size=dataset_size,
        fitted_on={"cells": len(law.cells), "trials": law.n_trials, "excluded_cells": excluded,
                   "above_breakdown": above, "bounded_by_divergence": bounded, "weighting": law.weighting},
        breakdown_test=breakdown_entry(breakdown),
        provenance=law_provenance(provenance), reasons=reasons, notes=list(law.notes), cells=cells,
        gradient_noise_scale=critical_entry(critical), compute=compute.to_dict() if compute else None)


def breakdown_entry(breakdown: Breakdown) -> dict[str, Any]:
    """law.json's ``breakdown_test``: the outcome of the breakdown test and why."""
    return {"outcome": breakdown.outcome, "reason": breakdown.reason, "p_value": breakdown.p_value,
            "candidate_batch_size": breakdown.candidate, "last_batch_size_in_law": breakdown.last_batch_size}


def critical_entry(critical: CriticalBatch | None) -> dict[str, Any] | None:
    """law.json's ``gradient_noise_scale``: B_crit ≈ B_simple next to the breakdown (null when absent)."""
    if critical is None or critical.value is None:
        return None
    return {"value": critical.value, "iqr": list(critical.iqr) if critical.iqr else None, "trials": critical.n_trials,
            "taken": critical.taken, "breakdown_batch_size": critical.breakdown,
            "breakdown_ci95": list(critical.breakdown_ci95) if critical.breakdown_ci95 else None,
            "ratio_to_breakdown": critical.ratio_to_breakdown,
            "within_breakdown_ci95": critical.within_breakdown_ci,
            "cells": [{"batch_size": b, "momentum": m, "value": v} for b, m, v in critical.cells]}


def law_provenance(provenance: dict[str, Any]) -> dict[str, Any]:
    origin = provenance.get("origin", {})
    return {
        "experiment": provenance.get("experiment", origin.get("experiment")),
        "input_file": provenance.get("input_file"),
        "tracking_uri": provenance.get("tracking_uri", origin.get("tracking_uri")),
        "parent_run_id": provenance.get("parent_run_id", origin.get("parent_run_id")),
        "spec_hash": provenance.get("spec_hash", origin.get("spec_hash")),
        "scalestudy_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
