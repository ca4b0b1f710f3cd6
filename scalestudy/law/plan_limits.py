"""The bounds ``scalestudy plan`` puts on the batch size, each with where it comes from, and how the
plan's B follows from the tightest one (:mod:`scalestudy.law.planner` chooses; this module says why).

Bounds: the hardware (workers × the largest batch a worker fits), the dataset (N), the critical
batch size (steps to target, the gradient noise scale), the law's breakdown (or the candidate hinge
of an inconclusive test) and the law's fitted range (``max_extrapolation`` times its largest fitted
batch size: beyond it the law is not used, :mod:`scalestudy.law.guards`).
"""

from __future__ import annotations

import math

from scalestudy.law.fields import TransitionLine
from scalestudy.law.plan import BatchLimit
from scalestudy.law.scaling import ScalingLaw

HARDWARE, LAW_RANGE = "hardware", "the law's fitted range"


def batch_limits(law: ScalingLaw, workers: int, max_batch_per_worker: int, momentum: float, n: int,
                 max_extrapolation: float | None) -> list[BatchLimit]:
    """Every bound on the plan's batch size, with its reason."""
    limits = [BatchLimit(HARDWARE, float(workers * max_batch_per_worker),
                         reason=f"{workers} workers × {max_batch_per_worker} examples per worker (--workers, "
                                "--max-batch-per-worker)"),
              BatchLimit("dataset", float(n), reason=f"a batch holds at most the N = {n:,} training examples")]
    critical = law.critical_batch_size
    line = steps_line(law, momentum, n)
    if line is not None:
        at = f"m = {line.momentum:g}" + (f", N = {line.dataset_size:,}" if line.dataset_size else "")
        limits.append(BatchLimit("critical batch size (steps to target)", line.value, line.ci95,
                                 f"the law's B_crit from steps to target at {at}: beyond it more examples per update "
                                 "save few updates (McCandlish et al. 2018)"))
    noise = "B_simple, the gradient noise scale the study measured: the critical batch size it predicts"
    if critical is not None and critical.gradient_noise is not None:
        limits.append(BatchLimit("critical batch size (gradient noise)", critical.gradient_noise.value,
                                 critical.gradient_noise.ci95, noise))
    elif law.gradient_noise_scale is not None:  # a file written before critical_batch_size
        limits.append(BatchLimit("critical batch size (gradient noise)", law.gradient_noise_scale.value,
                                 reason=noise))
    test = law.breakdown_test
    if law.breakdown_batch_size is not None:
        limits.append(BatchLimit("breakdown", law.breakdown_batch_size, law.ci95.breakdown_batch_size,
                                 "the law's breakdown batch size: ε* stops following the law above it"))
    elif test and test.outcome == "inconclusive" and test.candidate_batch_size:
        limits.append(BatchLimit("breakdown (inconclusive test's candidate)", test.candidate_batch_size,
                                 reason=f"the breakdown test was inconclusive ({test.reason}): the law may stop "
                                        "holding above its candidate hinge"))
    span = law.domain.batch_size
    if span is not None and max_extrapolation is not None:
        limits.append(BatchLimit(LAW_RANGE, max_extrapolation * span.high,
                                 reason=f"×{max_extrapolation:g} the largest batch size the law was fitted on "
                                        f"({span.high:g}; --max-extrapolation): the law is not used beyond it"))
    return limits


def steps_line(law: ScalingLaw, momentum: float, n: int) -> TransitionLine | None:
    """The steps-to-target fit at the plan's momentum (and N, when the law has one there), else the headline."""
    steps = law.critical_batch_size.steps_to_target if law.critical_batch_size else None
    if steps is None:
        return None
    same = [line for line in steps.lines if math.isclose(line.momentum, momentum, abs_tol=1e-9)]
    exact = [line for line in same if line.dataset_size == n]
    return (exact or same or [steps])[0]


def batch_size_reason(limit: BatchLimit, workers: int, per_worker_cap: int, batch: int, start: int, growths: int,
                      factor: float) -> str:
    """How B follows from the tightest ``limit``: the limit itself, or the steps that round it down (a
    multiple of the workers; the hybrid schedule's growth from B₀ in whole examples per worker)."""
    cap = limit.value
    name = limit.name if limit.name.startswith("the ") else f"the {limit.name}"
    whole = f"{name} limit {_number(cap)}" + (f" ({limit.reason})" if limit.reason else "")
    if batch == cap:
        return f"B = {whole}"
    steps = []
    rounded = workers * per_worker_cap
    if rounded < cap:
        steps.append(f"the largest multiple of the {workers} workers under it is {rounded} "
                     f"({workers} × {per_worker_cap})")
    if growths and batch < rounded:
        times = {1: "once", 2: "twice"}.get(growths, f"{growths} times")
        steps.append(f"the hybrid schedule grows B ×{factor:g} {times} from "
                     f"B₀ = {start} ({workers} workers × {start // workers}), whole examples per worker, so B = "
                     f"{start} × {factor:g}^{growths} = {batch}")
    return f"B {_number(cap)} → {batch}: {whole}; " + "; ".join(steps)


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 or float(value).is_integer() else f"{value:.4g}"


__all__ = ["HARDWARE", "LAW_RANGE", "batch_limits", "batch_size_reason", "steps_line"]
