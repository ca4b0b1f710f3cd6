"""A plan as a table for the terminal (``scalestudy plan`` prints it): the batch size and how it
follows from the tightest limit, every limit with its reason, the schedule's first and peak ε (the
one it trains at, never an ε it does not use), the schedule by phase, and the time in natural units."""

from __future__ import annotations

from scalestudy.law.plan import BatchLimit, Plan, PlanEpoch


def describe(plan: Plan) -> list[str]:
    """The plan as lines of a table for the terminal."""
    s, p = plan.schedule, plan.predicted
    limit = next(x for x in plan.limits if x.name == plan.limited_by)
    lines = [f"dataset size     N = {plan.dataset_size:,} examples per epoch",
             f"batch size       {plan.batch_size}  ({plan.workers} workers × {plan.per_worker_batch_size}; "
             f"limited by {plan.limited_by} {_value(limit)})"]
    if plan.batch_size_reason:
        lines.append(f"                 {plan.batch_size_reason}")
    lines.append("limits           (every bound on B, the tightest first)")
    width = max(len(x.name) for x in plan.limits)
    for x in sorted(plan.limits, key=lambda x: x.value):
        lines.append(f"  {x.name:<{width}}  {_value(x):<24} {x.reason or ''}".rstrip())
    lines.append(_lr_line(plan))
    lines += _adamw_lines(plan)
    lines.append(f"schedule         {s.kind}, {s.epochs} epochs" + (f", warmup {s.warmup_epochs} epochs"
                                                                      if s.warmup_epochs else ", no warmup"))
    lines.append("  epochs      batch size   lr            updates")
    for first, last, epoch in _phases(plan):
        span = f"{first}-{last}" if last > first else str(first)
        updates = sum(e.updates for e in plan.epochs() if first <= e.epoch <= last)
        lines.append(f"  {span:<11} {epoch.batch_size:<12} {epoch.lr:<13.6g} {updates:,}")
    interval = (f" [{p.updates_ci95[0]:,.0f}, {p.updates_ci95[1]:,.0f}]" if p.updates_ci95 else "")
    lines.append(f"updates          {p.updates:,}{interval}; examples {p.examples:,}")
    unit = time_unit(p.wall_seconds)
    span = (f" [{in_unit(p.wall_seconds_ci95[0], unit)}, {in_unit(p.wall_seconds_ci95[1], unit)}]"
            if p.wall_seconds_ci95 else "")
    lines.append(f"wall time        {in_unit(p.wall_seconds, unit)} {unit[0]}{span} at {plan.setting.throughput:,.0f} "
                 f"examples/s ({plan.setting.throughput_source})")
    lines += [f"warning: {w}" for w in plan.warnings]
    return lines


def _adamw_lines(plan: Plan) -> list[str]:
    """AdamW's other hyperparameters at B (plans of laws with ``adamw``)."""
    a = plan.adamw
    if a is None:
        return []
    lines = [f"AdamW at B={plan.batch_size} (each moves with B as its rule says)"]
    for name, value, ci in (("beta1", a.beta1, None), ("beta2", a.beta2, a.beta2_ci95),
                            ("weight_decay", a.weight_decay, a.weight_decay_ci95), ("ema", a.ema, a.ema_ci95)):
        if value is not None:
            interval = f" [{ci[0]:.6g}, {ci[1]:.6g}]" if ci else ""
            lines.append(f"  {name:<13}{value:.6g}{interval}   {a.rules.get(name, '')}".rstrip())
    return lines


def _lr_line(plan: Plan) -> str:
    """The ε the schedule trains at: its first and peak ε, at B₀ (the lr at B is shown only when the
    schedule uses it, which is when B₀ = B)."""
    s = plan.schedule
    ci = plan.initial_lr_ci95 if plan.lr_basis == "law" else None
    text = (f"learning rate    {s.initial_lr:.6g}" + (f" [{ci[0]:.6g}, {ci[1]:.6g}]" if ci else "")
            + f" at B={s.initial_batch_size}, momentum {plan.momentum:g}: the schedule's first and peak ε")
    if s.warmup_epochs:
        text += f" (reached after {s.warmup_epochs} warmup epoch{'s' if s.warmup_epochs > 1 else ''})"
    if s.kind == "hybrid" and plan.batch_size > s.initial_batch_size:
        text += f", held while B grows to {plan.batch_size}"
    if plan.lr_basis == "steps_to_target":
        return (f"{text} ({_lr_basis(plan)})")
    return f"{text} (= scalestudy recommend --batch-size {s.initial_batch_size})"


def _lr_basis(plan: Plan) -> str:
    """Which ε the plan trains at, and why."""
    return (f"the ε the steps to target were counted at, the fewest updates: the updates below hold at it; the "
            f"law's ε* {plan.law_lr:.6g} is for the best final accuracy")


# (name, seconds per unit, largest value shown in it): seconds up to 2 min, minutes up to 2 h, hours up to 2 days.
TIME_UNITS = (("s", 1.0, 120.0), ("min", 60.0, 120.0), ("h", 3600.0, 48.0), ("days", 86400.0, float("inf")))


def time_unit(seconds: float) -> tuple[str, float]:
    """The natural unit of a duration: (name, seconds per unit)."""
    for name, size, largest in TIME_UNITS:
        if seconds / size < largest:
            return name, size
    return TIME_UNITS[-1][:2]


def in_unit(seconds: float, unit: tuple[str, float]) -> str:
    return f"{seconds / unit[1]:.3g}"


def _phases(plan: Plan) -> list[tuple[int, int, PlanEpoch]]:
    """Runs of epochs with the same batch size and lr: (first epoch, last epoch, the first's PlanEpoch)."""
    runs: list[tuple[int, int, PlanEpoch]] = []
    for epoch in plan.epochs():
        if runs and (runs[-1][2].batch_size, runs[-1][2].lr) == (epoch.batch_size, epoch.lr):
            runs[-1] = (runs[-1][0], epoch.epoch, runs[-1][2])
        else:
            runs.append((epoch.epoch, epoch.epoch, epoch))
    return runs


def _value(limit: BatchLimit) -> str:
    ci = f" [{_number(limit.ci95[0])}, {_number(limit.ci95[1])}]" if limit.ci95 else ""
    return f"{_number(limit.value)}{ci}"


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
