"""``scalestudy plan``: from a law and a cluster to a :class:`~scalestudy.law.plan.Plan`.

1. **The batch size** is the largest the limits allow: the critical batch size (every estimate
   the law holds: steps to target at the plan's momentum, or the headline line; the gradient
   noise scale; McCandlish et al. 2018 put the compute-time trade-off's balance there), the lr
   law's breakdown (or the candidate hinge of an inconclusive test), the hardware (workers ×
   the largest batch a worker fits), the dataset and the law's fitted range (``max_extrapolation``
   times its largest batch size). It is a multiple of the workers; when the limit is below the
   number of workers, fewer workers are used. Each limit and the way B follows from the tightest
   are written in words (:mod:`scalestudy.law.plan_limits`). A law that gives no interval, or
   one too wide at B or B₀, is refused unless forced (:mod:`scalestudy.law.guards`).
2. **ε and m** come from the law (:meth:`ScalingLaw.predict`: the same numbers ``scalestudy
   recommend`` prints), m the one asked for or the largest the law was fitted at. A plan for a
   target trains instead at the ε its update count holds for: the steps to target were counted at
   each B's ε with the fewest updates, not at the law's ε* (best final objective), so the plan trains
   at that ε (:mod:`scalestudy.law.steps_lr`) and keeps ε* beside it (``law_lr``).
3. **The schedule.** With ``--epochs``: ``hybrid`` by default (Smith et al. 2018, "Don't decay the
   learning rate, increase the batch size"): the ε decays of a step schedule (``factor`` at
   ``milestones``, by default ×1/5 at 30 %, 60 % and 80 % of the epochs as in their Wide-ResNet runs)
   are replaced by batch growth ×``factor`` as long as the batch stays within the limit, so training
   starts at B₀ = B/factor^j with the law's ε*(B₀) and reaches B after j milestones (j as large as
   keeps B₀ at or above the smallest batch size the law was fitted at, so ε*(B₀) is no extrapolation),
   then ε decays; ``step_decay_lr`` trains at B throughout, ``constant`` never decays. With
   ``--target``: B throughout for the updates S(B) = S_min·(1 + B_crit/B) the law's steps-to-target
   fit predicts (interval from its confidence region).
4. **Warmup** (Goyal et al. 2017, 5 epochs for ImageNet at B = 8k): when the starting batch is above
   the smallest the law was fitted at, 5 % of the epochs, at least 1 and at most 5. None by default
   in a plan for a target (the steps to it were measured at constant settings).
5. **Predictions**: updates (N // B per epoch), examples, wall time = examples / throughput (a
   per-worker throughput is taken as constant in the per-worker batch); intervals where the law has
   them (ε* at B, B_crit, updates and time to a target).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scalestudy.law.adamw_rules import surge_warning
from scalestudy.law.guards import Guard, enforce
from scalestudy.law.plan import KINDS, Plan, PlanError, PlanPrediction, PlanSchedule, PlanSetting, PlanSource
from scalestudy.law.plan_adamw import plan_adamw
from scalestudy.law.plan_limits import batch_limits, batch_size_reason, steps_line
from scalestudy.law.records import Interval
from scalestudy.law.scaling import ScalingLaw
from scalestudy.law.steps_lr import steps_lr_ratio
from scalestudy.law.transition import TransitionFit

MILESTONE_FRACTIONS = (0.3, 0.6, 0.8)  # Smith et al. 2018: epochs 60, 120, 160 of 200
DEFAULT_FACTOR = 5.0
WARMUP_SHARE, WARMUP_MAX = 0.05, 5  # Goyal et al.: 5 of 90 epochs


@dataclass(frozen=True)
class PlanRequest:
    """What the user asks for (the ``scalestudy plan`` flags)."""

    workers: int
    max_batch_per_worker: int
    examples_per_second_per_worker: float | None = None
    throughput: float | None = None  # measured examples/s of all workers
    epochs: int | None = None
    target: float | None = None
    momentum: float | None = None
    dataset_size: int | None = None
    schedule: str | None = None  # default: hybrid with epochs, constant with a target
    milestones: tuple[int, ...] | None = None
    factor: float = DEFAULT_FACTOR
    warmup_epochs: int | None = None
    law_file: str | None = None
    guard: Guard = Guard()  # when the law is refused (--max-interval-ratio, --max-extrapolation, --force)


def make_plan(law: ScalingLaw, request: PlanRequest) -> Plan:
    """The plan for ``request`` (see the module docstring); :class:`PlanError` when it cannot be made."""
    _check_request(request)
    n = request.dataset_size or law.dataset_size
    if not n:
        raise PlanError("--dataset-size: required, the law depends on the dataset size (gamma = "
                        f"{law.gamma:.3g}): give the N you will train on" if law.gamma is not None else
                        "--dataset-size: the law does not say which dataset size it was fitted at; give one")
    momentum = request.momentum if request.momentum is not None else _default_momentum(law)
    law.predict(batch_size=1, momentum=momentum, dataset_size=n)  # the law can answer at (m, N), else one line
    limits = batch_limits(law, request.workers, request.max_batch_per_worker, momentum, n,
                          request.guard.max_extrapolation)
    tightest = min(limits, key=lambda limit: limit.value)
    cap, limited_by = tightest.value, tightest.name
    warnings = []
    if not any(limit.name.startswith("critical") for limit in limits):
        why = law.reasons.get("critical_batch_size.steps_to_target", "not in this law file")
        warnings.append(f"the law has no critical batch size ({why}): B is not limited by one; measure steps to "
                        "target (diagnostics.target_accuracy) or the gradient noise scale to bound it")
    workers, per_worker = request.workers, min(request.max_batch_per_worker, math.floor(cap / request.workers))
    if per_worker < 1:
        workers, per_worker = max(1, math.floor(cap)), 1
        warnings.append(f"the {limited_by} {cap:.4g} is below the number of workers {request.workers}: "
                        f"the plan uses {workers} worker(s) with one example each")
    per_worker_cap = per_worker  # before the hybrid schedule's growth rounds it down
    kind = request.schedule or ("constant" if request.target is not None else "hybrid")
    epochs, transition = _length(law, request, momentum, n, workers * per_worker)
    milestones = _milestones(request, epochs, kind)
    b_min = law.domain.batch_size[0] if law.domain.batch_size else 1.0
    growths = _growths(kind, per_worker, workers, request.factor, len(milestones), b_min)
    start = workers * (per_worker // int(request.factor) ** growths if growths else per_worker)
    batch = start * int(request.factor) ** growths if growths else start
    if growths:
        per_worker = batch // workers
    at_batch, at_start = law.predict(batch, momentum, n), law.predict(start, momentum, n)
    warnings += enforce(law, [at_batch, at_start], request.guard)  # a useless law: refused, unless forced
    warnings += [*at_batch.warnings, *(w for w in at_start.warnings if w not in at_batch.warnings)]
    if kind == "hybrid" and growths == 0 and milestones:
        warnings.append(f"no room to grow the batch by {request.factor:g} within the limit while starting at or "
                        f"above the law's smallest batch size {b_min:g}: the hybrid schedule decays the lr only")
    warmup = request.warmup_epochs
    if warmup is None:
        warmup = min(WARMUP_MAX, max(1, round(WARMUP_SHARE * epochs))) if start > b_min and not transition else 0
    max_updates = math.ceil(transition.updates_at(batch)) if transition is not None else None
    lr, start_lr, basis, law_lr, lr_ci95 = at_batch.lr, at_start.lr, "law", None, _interval(at_batch.lr_ci95)
    start_ci95 = _interval(at_start.lr_ci95)
    if transition is not None:  # the updates S(B) hold at the ε they were counted at: train there
        ratio = _steps_lr_ratio(law, momentum, n, batch)
        if ratio is None:
            warnings.append("the law file holds no learning rates for its steps to target (an earlier version): the "
                            "plan trains at the law's ε* while its updates were counted at each batch size's ε with "
                            "the fewest updates; analyze the study again to plan at that ε")
        else:
            lr, start_lr, basis, law_lr, lr_ci95 = lr * ratio, start_lr * ratio, "steps_to_target", lr, None
            start_ci95 = None
    schedule = PlanSchedule(kind, start, start_lr, momentum, epochs, tuple(milestones), request.factor,
                            batch if kind == "hybrid" else None, min(warmup, epochs), max_updates)
    throughput, source = _throughput(request, workers)
    setting = PlanSetting(request.workers, request.max_batch_per_worker, throughput, source, n, request.epochs,
                          request.target)
    reason = batch_size_reason(tightest, workers, per_worker_cap, batch, start, growths, request.factor)
    surge = surge_warning(law, batch)  # ε*(B) falls past its peak: the law's ε is too large there
    warnings += [surge] if surge else []
    plan = Plan(setting, batch, workers, per_worker, lr, momentum, schedule,
                PlanPrediction(0, 0, 0.0), tuple(limits), limited_by, _source(law, request.law_file),
                lr_ci95, tuple(warnings), basis, law_lr, reason, start_ci95, plan_adamw(law, at_batch, lr))
    plan.check()
    return _with_predictions(plan, transition)


def _check_request(r: PlanRequest) -> None:
    if r.workers < 1 or r.max_batch_per_worker < 1:
        raise PlanError(f"--workers and --max-batch-per-worker must be ≥ 1, got {r.workers} and "
                        f"{r.max_batch_per_worker}")
    if (r.examples_per_second_per_worker is None) == (r.throughput is None):
        raise PlanError("give one of --examples-per-second-per-worker and --throughput")
    for name, value in (("--examples-per-second-per-worker", r.examples_per_second_per_worker),
                        ("--throughput", r.throughput)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise PlanError(f"{name}: must be a positive number of examples per second, got {value}")
    if (r.epochs is None) == (r.target is None):
        raise PlanError("give one of --epochs and --target")
    if r.epochs is not None and not 1 <= r.epochs <= 100_000:
        raise PlanError(f"--epochs: must be in 1-100000, got {r.epochs}")
    if r.target is not None and not 0 < r.target <= 1:
        raise PlanError(f"--target: must be a test accuracy in (0, 1], got {r.target}")
    if r.schedule is not None and r.schedule not in KINDS:
        raise PlanError(f"--schedule: must be one of {', '.join(KINDS)}, got {r.schedule!r}")
    if r.target is not None and r.schedule not in (None, "constant"):
        raise PlanError(f"--schedule {r.schedule}: a plan for --target trains at one batch size and lr for the "
                        "updates the steps-to-target fit predicts (measured at constant settings); use --epochs")
    if not (math.isfinite(r.factor) and r.factor > 1):
        raise PlanError(f"--factor: must be > 1, got {r.factor}")
    if r.schedule in (None, "hybrid") and r.target is None and r.factor != int(r.factor):
        raise PlanError(f"--factor: the hybrid schedule multiplies the batch size by it, so it must be a whole "
                        f"number, got {r.factor}")
    if r.momentum is not None and not 0 <= r.momentum < 1:
        raise PlanError(f"--momentum: must be in [0, 1), got {r.momentum}")
    if r.dataset_size is not None and not 1 <= r.dataset_size <= 2**53:
        raise PlanError(f"--dataset-size: must be in 1-2^53, got {r.dataset_size}")
    if r.warmup_epochs is not None and r.warmup_epochs < 0:
        raise PlanError(f"--warmup-epochs: must be ≥ 0, got {r.warmup_epochs}")


def _default_momentum(law: ScalingLaw) -> float:
    if law.domain.momentum is None:
        return 0.0
    return float(law.domain.momentum[1])  # the largest fitted: what training at scale usually uses


def _steps_lr_ratio(law: ScalingLaw, momentum: float, n: int, batch: int) -> float | None:
    """ε_S/ε* at ``batch`` on the steps-to-target line the plan counts its updates on."""
    line = steps_line(law, momentum, n)
    size = line.dataset_size or n
    return steps_lr_ratio(batch, line.batch_sizes, line.lrs, lambda b: law.predict(b, line.momentum, size).lr)


def _length(law: ScalingLaw, request: PlanRequest, momentum: float, n: int,
            batch: int) -> tuple[int, TransitionFit | None]:
    """(epochs, the steps-to-target fit) of the plan: the asked epochs, or enough for the target."""
    if request.target is None:
        return request.epochs, None
    steps = law.critical_batch_size.steps_to_target if law.critical_batch_size else None
    if steps is None:
        raise PlanError(f"--target {request.target:g}: the law has no steps-to-target fit "
                        f"({law.reasons.get('critical_batch_size.steps_to_target', 'not measured')}); use --epochs")
    if steps.target is None or not math.isclose(steps.target, request.target, abs_tol=1e-9):
        raise PlanError(f"--target {request.target:g}: the law's steps were counted to test accuracy "
                        f"{steps.target}; plan for that target or use --epochs")
    line = steps_line(law, momentum, n)
    fit = TransitionFit(tuple(line.batch_sizes), tuple(line.updates), line.value, line.ci95, line.s_min,
                        line.rss_limit)
    return max(1, math.ceil(math.ceil(fit.updates_at(batch)) / (n // batch))), fit


def _milestones(request: PlanRequest, epochs: int, kind: str) -> list[int]:
    if kind == "constant":
        if request.milestones:
            raise PlanError("--milestones: the constant schedule has none")
        return []
    if request.milestones is not None:
        chosen = list(request.milestones)
        if chosen != sorted(set(chosen)) or any(not 0 < e < epochs for e in chosen):
            raise PlanError(f"--milestones: must be increasing epochs in 1-{epochs - 1}, got {chosen}")
        return chosen
    return sorted({round(f * epochs) for f in MILESTONE_FRACTIONS if 0 < round(f * epochs) < epochs})


def _growths(kind: str, per_worker: int, workers: int, factor: float, milestones: int, b_min: float) -> int:
    """How many milestones grow the batch: the most that keep the starting batch a whole number of
    examples per worker at or above the law's smallest batch size."""
    if kind != "hybrid":
        return 0
    f = int(factor)
    for j in range(milestones, 0, -1):
        start = per_worker // f ** j
        if start >= 1 and workers * start >= b_min:
            return j
    return 0


def _throughput(request: PlanRequest, workers: int) -> tuple[float, str]:
    if request.throughput is not None:
        return float(request.throughput), "measured"
    rate = float(request.examples_per_second_per_worker)
    return workers * rate, f"{workers} workers × {rate:g} examples/s"


def _with_predictions(plan: Plan, transition: TransitionFit | None) -> Plan:
    epochs = plan.epochs()
    updates = sum(e.updates for e in epochs)
    examples = sum(e.updates * e.batch_size for e in epochs)
    seconds = examples / plan.setting.throughput
    updates_ci = seconds_ci = None
    if transition is not None and transition.ci95 is not None:
        low, high = transition.updates_interval(plan.batch_size)
        updates_ci = Interval(float(math.ceil(low)), float(math.ceil(high)))
        seconds_ci = Interval(*(u * plan.batch_size / plan.setting.throughput for u in updates_ci))
    prediction = PlanPrediction(updates, examples, seconds, updates_ci, seconds_ci)
    return Plan(**{**{f: getattr(plan, f) for f in plan.__dataclass_fields__}, "predicted": prediction})


def _source(law: ScalingLaw, path: str | None) -> PlanSource:
    return PlanSource(path, law.form, law.k, law.alpha, law.beta, law.gamma, law.provenance.experiment,
                      law.provenance.spec_hash, law.provenance.created)


def _interval(pair) -> Interval | None:
    return Interval(*pair) if pair else None
