"""Fits → :class:`scalestudy.law.ScalingLaw`, and the files that hold it and the trials:
law.json, law.yaml, trials.parquet."""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from scalestudy import __version__
from scalestudy.analysis.fits._stats import t_quantile
from scalestudy.analysis.fits.cell_optimum.frontier import BOUNDED, Frontier
from scalestudy.analysis.fits.cost import StudyCompute
from scalestudy.analysis.fits.critical_batch import CriticalBatchComparison
from scalestudy.analysis.fits.generalization_gap import GapFit
from scalestudy.analysis.fits.gradient_noise_scale import CriticalBatch
from scalestudy.analysis.fits.law import BendFit, Breakdown, LawFit
from scalestudy.analysis.fits.sgd_noise_scale import NoiseScaleFit
from scalestudy.analysis.fits.study import StudyFits
from scalestudy.analysis.inputs.trial_table import ACCURACY, TrialTable
from scalestudy.analysis.outputs.adamw_entries import adamw_entry, surge_entry
from scalestudy.law import (
    FORM,
    FORM_N,
    SMOOTH_FORMS,
    BatchEstimate,
    BreakdownTest,
    Compute,
    CriticalBatchCell,
    CriticalBatchSize,
    CriticalBatchSizes,
    Domain,
    FittedOn,
    GapSlope,
    Interval,
    LawCell,
    LawCovariance,
    LawIntervals,
    LawObjective,
    NoiseScaleAtOptimum,
    Provenance,
    ScalingLaw,
    Slope,
    SmoothBend,
    SmoothBendIntervals,
    StepsToTargetBatch,
    TransitionLine,
)

LAW_FILES = ("law.json", "law.yaml")


def write_files(table: TrialTable, law: ScalingLaw, out_dir: Path) -> list[Path]:
    """trials.parquet (the table the fits read, with its provenance), law.json and law.yaml."""
    return [table.to_parquet(out_dir / "trials.parquet"), *(law.save(out_dir / name) for name in LAW_FILES)]


def build_law(fits: StudyFits) -> ScalingLaw:
    """The law file's content; ``provenance.created`` is now."""
    law, frontier, breakdown = fits.law_fit, fits.frontier, fits.law_fit.breakdown
    reasons = dict(law.reasons)
    if breakdown.batch_size is None:
        reasons["breakdown_batch_size"] = breakdown.reason
    if fits.noise.value is None and fits.noise.reason:
        reasons["noise_scale_opt"] = fits.noise.reason
    if fits.gap.vs_batch is None and fits.gap.reason:
        reasons["gap_slope"] = fits.gap.reason
    if fits.critical_batch.value is None:
        reasons["gradient_noise_scale"] = fits.critical_batch.reason
    if law.gamma is None and "gamma" in reasons and fits.dataset_size:
        reasons["gamma"] = (f"single dataset size (N={fits.dataset_size}): the law holds at the N it was fitted "
                            "at; vary grid.dataset_size to fit gamma")
    if fits.dataset_size is None:
        reasons["dataset_size"] = "the study varies N: see domain.dataset_size and gamma"
    if law.bend is None:
        reasons["smooth_bend"] = ("needs at least 4 batch sizes with an interior optimum and a residual degree "
                                  "of freedom")
    critical_sizes = critical_sizes_entry(fits.critical_sizes, reasons)
    return ScalingLaw(
        k=law.k, alpha=law.alpha, beta=law.beta, gamma=law.gamma, form=FORM_N if law.gamma is not None else FORM,
        ci95=LawIntervals(**{name: _interval(law.ci95.get(name)) for name in ("k", "alpha", "beta", "gamma")},
                          breakdown_batch_size=_interval(breakdown.ci95)),
        r2=law.r2, prediction=prediction_entry(law), breakdown_batch_size=breakdown.batch_size,
        noise_scale_opt=noise_entry(fits.noise),
        gap_slope=gap_entry(fits.gap), domain=Domain(_interval(law.domain.get("batch_size")),
                                                     _interval(law.domain.get("momentum")),
                                                     _interval(law.domain.get("dataset_size"))),
        dataset_size=fits.dataset_size, fitted_on=fitted_on(law, frontier), breakdown_test=breakdown_entry(breakdown),
        smooth_bend=bend_entry(law.bend),
        provenance=law_provenance(fits.provenance), reasons=reasons, notes=_notes(fits),
        cells=cells_entry(law, frontier), gradient_noise_scale=critical_entry(fits.critical_batch),
        critical_batch_size=critical_sizes, compute=compute_entry(fits.compute), optimizer=fits.optimizer,
        objective=LawObjective(fits.objective.metric, fits.objective.direction),
        adamw=adamw_entry(fits.adamw), surge=surge_entry(fits.surge))


def _notes(fits: StudyFits) -> tuple[str, ...]:
    """The law's notes, and the objective it was fitted on when it is not test accuracy."""
    objective = fits.objective
    if objective == ACCURACY:
        return tuple(fits.law_fit.notes)
    return (f"objective: {objective.metric}, {objective.direction}imised (ε* of each cell is the best "
            f"{objective.label})", *fits.law_fit.notes)


def prediction_entry(law: LawFit) -> LawCovariance | None:
    """law.json's ``prediction``: the covariance of (ln k, α[, β]), for intervals of ε* at new points."""
    fit = law.regression
    if fit is None or fit.cov is None or law.alpha is None:
        return None
    return LawCovariance(fit.names, fit.cov, fit.dof, t_quantile(0.975, fit.dof), law.scatter,
                         law.shared_shape_variance)


def fitted_on(law: LawFit, frontier: Frontier) -> FittedOn:
    used = {c.key for c in law.cells}
    return FittedOn(
        cells=len(law.cells), trials=law.n_trials,
        excluded_cells=tuple(f"{c.label} ({c.status})" for c in frontier.cells if not c.usable),
        above_breakdown=tuple(c.label for c in frontier.cells if c.usable and c.key not in used),
        bounded_by_divergence=tuple(c.label for c in frontier.cells if c.status == BOUNDED), weighting=law.weighting)


def cells_entry(law: LawFit, frontier: Frontier) -> tuple[LawCell, ...]:
    used = {c.key for c in law.cells}
    censored = any(c.n_censored for c in frontier.cells)  # the count on every cell, or on none
    return tuple(LawCell(batch_size=c.batch_size, momentum=c.momentum, lr_opt=c.lr_opt, ci95=_interval(c.ci95),
                      seed_range=_interval(c.seed_range), lr_bound=c.lr_bound, status=c.status,
                      used=c.key in used, trials=c.n_trials, seeds=c.n_seeds, dataset_size=c.dataset_size,
                      censored=c.n_censored if censored else None)
                 for c in frontier.cells)


def noise_entry(noise: NoiseScaleFit) -> NoiseScaleAtOptimum | None:
    if noise.value is None:
        return None
    return NoiseScaleAtOptimum(noise.value, _interval(noise.ci95), noise.log_sd, noise.slope_vs_log_b,
                               _interval(noise.slope_ci95))


def gap_entry(gap: GapFit) -> GapSlope | None:
    if gap.vs_batch is None:
        return None
    vs_noise = None
    if gap.vs_noise is not None:
        vs_noise = Slope(gap.vs_noise.per, gap.vs_noise.value, _interval(gap.vs_noise.ci95))
    return GapSlope(gap.vs_batch.per, gap.vs_batch.value, _interval(gap.vs_batch.ci95), vs_noise)


def breakdown_entry(breakdown: Breakdown) -> BreakdownTest:
    """law.json's ``breakdown_test``: the outcome of the breakdown test and why."""
    return BreakdownTest(breakdown.outcome, breakdown.reason, breakdown.p_value, breakdown.candidate,
                         breakdown.last_batch_size)


def bend_entry(bend: BendFit | None) -> SmoothBend | None:
    """law.json's ``smooth_bend``: McCandlish's smooth bend beside the hinge. An interval for B_noise
    open above (the data need no bend) is written as its low end, ``noise_batch_size_at_least``."""
    if bend is None:
        return None
    low, high = bend.noise_ci95
    open_above = math.isinf(high)
    return SmoothBend(form=SMOOTH_FORMS[bend.gamma is not None], lr_max=bend.lr_max, alpha=bend.alpha, beta=bend.beta,
                      gamma=bend.gamma, noise_batch_size=bend.noise_batch_size,
                      ci95=SmoothBendIntervals(_interval(bend.alpha_ci95),
                                               None if open_above else _interval(bend.noise_ci95)),
                      noise_batch_size_at_least=low if open_above and low > 0 else None,
                      preferred=bend.preferred, p_hinge=bend.p_hinge, p_smooth=bend.p_smooth, reason=bend.reason,
                      cells=bend.cells)


def critical_entry(critical: CriticalBatch) -> CriticalBatchSize | None:
    """law.json's ``gradient_noise_scale``: B_crit ≈ B_simple next to the breakdown (null when absent)."""
    if critical.value is None:
        return None
    return CriticalBatchSize(
        value=critical.value, iqr=_interval(critical.iqr), trials=critical.n_trials, taken=critical.taken,
        breakdown_batch_size=critical.breakdown, breakdown_ci95=_interval(critical.breakdown_ci95),
        ratio_to_breakdown=critical.ratio_to_breakdown, within_breakdown_ci95=critical.within_breakdown_ci,
        cells=tuple(CriticalBatchCell(b, m, v) for b, m, v in critical.cells))


def critical_sizes_entry(critical: CriticalBatchComparison, reasons: dict[str, str]) -> CriticalBatchSizes:
    """law.json's ``critical_batch_size``: B_crit three ways; the reason for each null one goes to
    ``reasons`` (``critical_batch_size.steps_to_target``, ``....ci95``)."""
    entries = {}
    for estimate in critical.estimates:
        key = f"critical_batch_size.{estimate.method}"
        if estimate.value is None:
            reasons[key] = estimate.reason
            entries[estimate.method] = None
            continue
        if estimate.ci95 is None and estimate.reason:
            reasons[f"{key}.ci95"] = estimate.reason
        entries[estimate.method] = BatchEstimate(estimate.value, _interval(estimate.ci95))
    if critical.steps_line is not None:
        line = critical.steps_line
        lines = tuple(transition_entry(other) for other in critical.all_lines)
        entries["steps_to_target"] = StepsToTargetBatch(**vars(transition_entry(line)), target=critical.target,
                                                        lines=lines)
    return CriticalBatchSizes(**entries, agreement=critical.verdict, summary=critical.agreement)


def transition_entry(line) -> TransitionLine:
    """One fitted steps-to-target line as the law file holds it."""
    fit = line.transition
    lr_at = {float(point.batch_size): point.lr for point in line.points}  # one point per B
    return TransitionLine(value=fit.value, ci95=_interval(fit.ci95), s_min=fit.min_updates, e_min=fit.min_examples,
                          momentum=line.momentum, dataset_size=line.dataset_size, batch_sizes=fit.batch_sizes,
                          updates=fit.updates, rss_limit=fit.rss_limit,
                          lrs=tuple(lr_at[float(b)] for b in fit.batch_sizes))


def compute_entry(compute: StudyCompute) -> Compute:
    """law.json's ``compute``: the same fields (a field added to one and not the other fails here)."""
    return Compute(**asdict(compute))


def law_provenance(provenance: dict[str, Any]) -> Provenance:
    """Where the trials came from (a Parquet file keeps its MLflow origin), this version, now."""
    origin = provenance.get("origin", {})
    return Provenance(
        experiment=provenance.get("experiment", origin.get("experiment")),
        input_file=provenance.get("input_file"),
        tracking_uri=provenance.get("tracking_uri", origin.get("tracking_uri")),
        parent_run_id=provenance.get("parent_run_id", origin.get("parent_run_id")),
        spec_hash=provenance.get("spec_hash", origin.get("spec_hash")),
        scalestudy_version=__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def _interval(pair) -> Interval | None:
    return Interval(*pair) if pair else None
