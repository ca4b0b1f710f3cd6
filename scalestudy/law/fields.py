"""The typed records of a law file (``law.json`` / ``law.yaml``, schema ``scalestudy.law/v1``), read
strictly by :mod:`scalestudy.law.records` (:func:`read_record`): each record is a frozen dataclass whose
fields are the keys of one mapping of the file, in the file's order; a field with a default may be
absent or null (files written before it existed still load).

Standard library only: the law file is read where neither the analysis nor numpy is installed.
Its 300-odd lines are one schema: every record of the file, and the checks across their fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scalestudy.law.records import (
    Interval,
    LawError,
    LawFileError,
    read_document,
    read_record,
    read_value,
    to_json,
    write_document,
)

__all__ = ["BEND_PREFERENCES", "BREAKDOWN_OUTCOMES", "PARAMETERS", "SMOOTH_FORMS", "BatchEstimate", "BreakdownTest",
           "Compute", "CriticalBatchCell", "CriticalBatchSize", "CriticalBatchSizes", "Domain", "FittedOn", "GapSlope",
           "Interval", "LawCell", "LawCovariance", "LawError", "LawFileError", "LawIntervals", "LawObjective",
           "NoiseScaleAtOptimum",
           "Provenance", "Slope", "SmoothBend", "SmoothBendIntervals", "StepsToTargetBatch", "TransitionLine",
           "check_breakdown_test", "check_prediction", "check_smooth_bend", "read_document", "read_record",
           "read_value", "to_json", "write_document"]


@dataclass(frozen=True)
class LawIntervals:
    """``ci95``: Student-t 95 % intervals of the law's parameters (null: not available, see ``reasons``)."""

    k: Interval | None = None
    alpha: Interval | None = None
    beta: Interval | None = None
    breakdown_batch_size: Interval | None = None  # profile-likelihood interval of the hinge [examples]
    gamma: Interval | None = field(default=None, metadata={"omit_if_none": True})  # only in laws with gamma


@dataclass(frozen=True)
class LawCovariance:
    """``prediction``: what a 95 % interval of ln ε* at a new point needs, ln ε* = x·θ with
    x = (1, ln B, ln(1 − m), ln N) for the ``parameters`` fitted: the covariance of θ, the Student-t
    quantile at the fit's residual degrees of freedom, and the scatter of cells about the law."""

    parameters: tuple[str, ...]  # log_k, alpha, beta, gamma: the ones fitted, in the law's order
    covariance: tuple[tuple[float, ...], ...]
    dof: int
    t95: float  # Student-t 0.975 quantile at dof
    cell_scatter: float | None = None  # variance of a new cell's ln ε* about the law beyond its own noise
    # The part of ln k's variance that a peak's shape puts into every cell alike (already in
    # ``covariance``): a check cell of the same workload shares it, so check-law takes it out.
    shared_shape_variance: float | None = None


@dataclass(frozen=True)
class Domain:
    """The range of the cells the law was fitted on."""

    batch_size: Interval | None  # [examples]
    momentum: Interval | None
    dataset_size: Interval | None = field(default=None, metadata={"omit_if_none": True})  # laws with gamma [examples]


@dataclass(frozen=True)
class FittedOn:
    cells: int
    trials: int
    excluded_cells: tuple[str, ...] = ()  # "B=16 m=0 (edge_low)": left out, with their status
    above_breakdown: tuple[str, ...] = ()  # usable cells above the breakdown, not in the law
    bounded_by_divergence: tuple[str, ...] = ()  # in the law, ε* extrapolated below the first diverged ε
    weighting: str | None = None  # how the cells were weighted in the least squares


@dataclass(frozen=True)
class LawObjective:
    """``objective``: what each cell's ε* is the best of (absent in files written before it was recorded:
    test accuracy, or the objective a note names)."""

    metric: str  # test_acc, test_loss, ...
    direction: str  # max | min


@dataclass(frozen=True)
class Provenance:
    experiment: str | None = None
    input_file: str | None = None
    tracking_uri: str | None = None
    parent_run_id: str | None = None
    spec_hash: str | None = None
    scalestudy_version: str | None = None
    created: str | None = None  # ISO 8601, UTC


@dataclass(frozen=True)
class BreakdownTest:
    """How the breakdown test came out (see :mod:`scalestudy.analysis.fits.breakdown`)."""

    outcome: str  # breakdown | none | inconclusive
    reason: str | None = None
    p_value: float | None = None
    candidate_batch_size: float | None = None  # the best hinge whose slope falls, whatever the outcome
    last_batch_size_in_law: float | None = None


@dataclass(frozen=True)
class SmoothBendIntervals:
    alpha: Interval | None = None  # profile likelihood, B_noise profiled out
    noise_batch_size: Interval | None = None  # [examples]; null when open above (see noise_batch_size_at_least)


@dataclass(frozen=True, kw_only=True)  # keyword-only: the file's key order has optional keys before alpha
class SmoothBend:
    """``smooth_bend``: lr = lr_max·(1 − m)^β [·N^γ] / (1 + B_noise/B)^α, McCandlish et al. (2018)'s
    optimal learning rate with its small-B slope α fitted (:mod:`scalestudy.analysis.fits.bend`), on every
    usable cell, and whether the data prefer it to the hinge of ``breakdown_test``."""

    form: str  # one of SMOOTH_FORMS
    lr_max: float | None = None  # lr well above B_noise at m = 0; null when no bend is seen (B_noise = ∞)
    alpha: float  # small-B slope d ln lr / d ln B as B → 0
    beta: float | None = None  # null with one momentum
    gamma: float | None = field(default=None, metadata={"omit_if_none": True})  # only with several N
    noise_batch_size: float | None = None  # B_noise [examples]; null when no bend is seen
    ci95: SmoothBendIntervals = field(default_factory=SmoothBendIntervals)
    noise_batch_size_at_least: float | None = None  # the interval's low end when it is open above
    preferred: str  # smooth | hinge | either | neither | untested
    p_hinge: float | None = None  # simulated p-value under the fitted hinge (small: the hinge is rejected)
    p_smooth: float | None = None  # ... under the fitted smooth bend
    reason: str | None = None
    cells: int | None = None


@dataclass(frozen=True)
class NoiseScaleAtOptimum:
    """``noise_scale_opt``: g* = ε*/(1−m)·(N/B − 1) over the law's cells (units of ε)."""

    value: float  # geometric mean over the cells
    ci95: Interval | None = None
    log_sd: float | None = None  # sd of ln g* between cells
    slope_vs_log_batch_size: float | None = None  # d ln g* / d ln B (0 when g* is constant)
    slope_ci95: Interval | None = None


@dataclass(frozen=True)
class Slope:
    per: str  # "doubling of batch size", "doubling of noise scale"
    value: float  # train − test accuracy change [fraction] per that doubling
    ci95: Interval | None = None


@dataclass(frozen=True)
class GapSlope(Slope):
    """``gap_slope``: the generalization gap at ε* against log2 B (and against log2 g*)."""

    vs_noise_scale: Slope | None = field(default=None, metadata={"omit_if_none": True})


@dataclass(frozen=True)
class CriticalBatchCell:
    batch_size: int
    momentum: float
    value: float  # median B_simple of the cell's trials [examples]


@dataclass(frozen=True)
class CriticalBatchSize:
    """``gradient_noise_scale``: B_crit ≈ B_simple (McCandlish et al. 2018) next to the breakdown."""

    value: float  # [examples]
    iqr: Interval | None = None
    trials: int | None = None
    taken: str | None = None  # what was taken (which trials, which epoch, which statistic)
    breakdown_batch_size: float | None = None
    breakdown_ci95: Interval | None = None
    ratio_to_breakdown: float | None = None
    within_breakdown_ci95: bool | None = None
    cells: tuple[CriticalBatchCell, ...] = ()


@dataclass(frozen=True, kw_only=True)  # keyword-only: the key order puts optional keys first
class TransitionLine:
    """One line's fit of S(B) = S_min·(1 + B_crit/B) (:mod:`scalestudy.law.transition`): B_crit, its
    profile-likelihood interval, S_min [updates], E_min = S_min·B_crit [examples], and the points
    it went through, so that S at another B and its interval can be computed from the file."""

    value: float  # B_crit [examples]
    ci95: Interval | None = None
    s_min: float
    e_min: float
    momentum: float
    dataset_size: int | None = None
    batch_sizes: tuple[float, ...] = ()  # [examples], ascending
    updates: tuple[float, ...] = ()  # fewest updates to the target at each [updates]
    rss_limit: float | None = None  # the confidence region's edge in RSS of ln S
    # The ε each count was made at, the one with the fewest updates (not the law's ε*): a plan for a
    # target trains at it so that its update count holds (empty in files of earlier versions) [per update]
    lrs: tuple[float, ...] = ()


@dataclass(frozen=True, kw_only=True)
class StepsToTargetBatch(TransitionLine):
    """``critical_batch_size.steps_to_target``: the headline line (largest momentum, then largest N)
    and every fitted line."""

    target: float | None = None  # test accuracy the steps were counted to [fraction]
    lines: tuple[TransitionLine, ...] = ()


@dataclass(frozen=True)
class BatchEstimate:
    value: float  # [examples]
    ci95: Interval | None = None


@dataclass(frozen=True)
class CriticalBatchSizes:
    """``critical_batch_size``: B_crit three ways (null ones have their reason under ``reasons``,
    as ``critical_batch_size.gradient_noise``) and whether they agree."""

    steps_to_target: StepsToTargetBatch | None = None
    # B_simple read at the target crossing on the steps line's trials (geometric mean over its batch sizes,
    # Student-t interval); from tables without that reading, the end-of-training median over trials
    # (distribution-free interval). The report's three-ways table says which.
    gradient_noise: BatchEstimate | None = None
    lr_breakdown: BatchEstimate | None = None  # the breakdown batch size of the lr law
    agreement: str | None = None  # agree | disagree | single | none
    summary: str | None = None  # the report's sentence


@dataclass(frozen=True)
class Compute:
    """What the study used: every trial, whatever its fate."""

    trials: int
    finished: int | None = None
    diverged: int | None = None
    stopped: int | None = None  # stopped early by the search
    trial_epochs: float | None = None  # [epochs]
    updates: float | None = None  # [optimizer steps]
    train_hours: float | None = None  # Σ training wall seconds / 3600
    cpu_hours: float | None = None
    gpu_hours: float | None = None
    notes: tuple[str, ...] = ()  # what is missing or estimated


@dataclass(frozen=True, kw_only=True)  # keyword-only: the file's key order has optional keys before status
class LawCell:
    """One (B, m) cell of the study and its optimal learning rate."""

    batch_size: int
    momentum: float
    lr_opt: float | None = None
    ci95: Interval | None = None
    seed_range: Interval | None = None  # min–max of the seeds' own ε* where no 95 % interval holds
    lr_bound: float | None = None  # bounded by divergence: the first fully diverged ε
    status: str  # ok | bounded_by_divergence | edge_low | edge_high | all_diverged | too_few_points
    used: bool | None = None  # in the law fit
    trials: int | None = None
    seeds: int | None = None
    dataset_size: int | None = field(default=None, metadata={"omit_if_none": True})  # N, in a study over several
    # Trials stopped early that entered the cell's ε* fit censored at their bound (search.early_stopping
    # kind cell_bound); written when some cell of the study has any.
    censored: int | None = field(default=None, metadata={"omit_if_none": True})


# --- checks across fields ---------------------------------------------------------------------

BREAKDOWN_OUTCOMES = ("breakdown", "none", "inconclusive")
PARAMETERS = ("log_k", "alpha", "beta", "gamma")  # ln ε* = log_k + alpha·ln B + beta·ln(1−m) + gamma·ln N
BEND_PREFERENCES = ("smooth", "hinge", "either", "neither", "untested")
SMOOTH_FORMS = ("lr = lr_max * (1-m)^beta / (1 + B_noise/B)^alpha",  # smooth_bend.form, one N / several N
                "lr = lr_max * (1-m)^beta * N^gamma / (1 + B_noise/B)^alpha")


def check_prediction(p: LawCovariance | None, where: str) -> None:
    """``prediction`` names the law's fitted parameters, in order, with a square covariance."""
    if p is None:
        return
    names = list(p.parameters)
    if not names or names != [n for n in PARAMETERS if n in names] or len(set(names)) != len(names):
        raise LawFileError(f"{where}: prediction.parameters must be some of {', '.join(PARAMETERS)} in that order, "
                           f"got {names!r}")
    if len(p.covariance) != len(names) or any(len(row) != len(names) for row in p.covariance):
        raise LawFileError(f"{where}: prediction.covariance must be {len(names)}×{len(names)} for {names!r}")
    if any(p.covariance[i][i] < 0 for i in range(len(names))) or p.dof < 1 or not p.t95 > 0 or (
            p.cell_scatter is not None and p.cell_scatter < 0):
        raise LawFileError(f"{where}: prediction needs variances ≥ 0, dof ≥ 1 and t95 > 0")


def check_breakdown_test(test: BreakdownTest | None, batch_size: float | None, where: str) -> None:
    """``breakdown_test.outcome`` is one of BREAKDOWN_OUTCOMES, and "breakdown" exactly when
    ``breakdown_batch_size`` is set (files written before the field existed have no test)."""
    if test is None:
        return
    if test.outcome not in BREAKDOWN_OUTCOMES:
        raise LawFileError(f"{where}: breakdown_test.outcome must be one of {', '.join(BREAKDOWN_OUTCOMES)}, "
                           f"got {test.outcome!r}")
    if (test.outcome == "breakdown") != (batch_size is not None):
        raise LawFileError(f"{where}: breakdown_test.outcome is {test.outcome!r} but breakdown_batch_size is "
                           f"{batch_size!r}")


def check_smooth_bend(bend: SmoothBend | None, where: str) -> None:
    """``smooth_bend`` (absent in files written before it): a known form, with gamma exactly in the
    form with N, a known preference, positive sizes, p-values in (0, 1]."""
    if bend is None:
        return
    if bend.form not in SMOOTH_FORMS or (bend.form == SMOOTH_FORMS[1]) != (bend.gamma is not None):
        raise LawFileError(f"{where}: smooth_bend.form must be one of {' or '.join(map(repr, SMOOTH_FORMS))}, "
                           f"the second exactly when gamma is set; got {bend.form!r}")
    if bend.preferred not in BEND_PREFERENCES:
        raise LawFileError(f"{where}: smooth_bend.preferred must be one of {', '.join(BEND_PREFERENCES)}, "
                           f"got {bend.preferred!r}")
    for name in ("lr_max", "noise_batch_size", "noise_batch_size_at_least"):
        if getattr(bend, name) is not None and not getattr(bend, name) > 0:
            raise LawFileError(f"{where}: smooth_bend.{name} must be > 0, got {getattr(bend, name)!r}")
    interval = bend.ci95.noise_batch_size
    if interval is not None and (interval.low < 0 or bend.noise_batch_size_at_least is not None):
        raise LawFileError(f"{where}: smooth_bend.ci95.noise_batch_size must be ≥ 0 and null when "
                           "noise_batch_size_at_least is set")
    if any(p is not None and not 0 < p <= 1 for p in (bend.p_hinge, bend.p_smooth)):
        raise LawFileError(f"{where}: smooth_bend p-values must lie in (0, 1]")
