"""A plan as a table for the terminal (``scalestudy plan`` prints it)."""

from __future__ import annotations

from scalestudy.law.plan import BatchLimit, Plan, PlanEpoch


def describe(plan: Plan) -> list[str]:
    """The plan as lines of a table for the terminal."""
    s, p = plan.schedule, plan.predicted
    limit = next(x for x in plan.limits if x.name == plan.limited_by)
    lines = [f"dataset size     N = {plan.dataset_size:,} examples per epoch",
             f"batch size       {plan.batch_size}  ({plan.workers} workers × {plan.per_worker_batch_size}; "
             f"limited by {plan.limited_by} {_value(limit)})",
             "limits           " + "; ".join(f"{x.name} {_value(x)}" for x in plan.limits),
             f"learning rate    {plan.lr:.6g}" + (f" [{plan.lr_ci95[0]:.6g}, {plan.lr_ci95[1]:.6g}]"
                                                  if plan.lr_ci95 else "")
             + f" at B={plan.batch_size}, momentum {plan.momentum:g}  ({_lr_basis(plan)})",
             f"schedule         {s.kind}, {s.epochs} epochs" + (f", warmup {s.warmup_epochs} epochs"
                                                                 if s.warmup_epochs else ", no warmup")]
    lines.append("  epochs      batch size   lr            updates")
    for first, last, epoch in _phases(plan):
        span = f"{first}-{last}" if last > first else str(first)
        updates = sum(e.updates for e in plan.epochs() if first <= e.epoch <= last)
        lines.append(f"  {span:<11} {epoch.batch_size:<12} {epoch.lr:<13.6g} {updates:,}")
    interval = (f" [{p.updates_ci95[0]:,.0f}, {p.updates_ci95[1]:,.0f}]" if p.updates_ci95 else "")
    lines.append(f"updates          {p.updates:,}{interval}; examples {p.examples:,}")
    hours = (f" [{p.wall_seconds_ci95[0] / 3600:.3g}, {p.wall_seconds_ci95[1] / 3600:.3g}]"
             if p.wall_seconds_ci95 else "")
    lines.append(f"wall time        {p.wall_seconds / 3600:.3g} h{hours} at {plan.setting.throughput:,.0f} examples/s "
                 f"({plan.setting.throughput_source})")
    lines += [f"warning: {w}" for w in plan.warnings]
    return lines


def _lr_basis(plan: Plan) -> str:
    """Which ε the plan trains at, and why."""
    if plan.lr_basis == "steps_to_target":
        return (f"the ε the steps to target were counted at, the fewest updates: the updates below hold at it; the "
                f"law's ε* {plan.law_lr:.6g} is for the best final accuracy")
    return "= scalestudy recommend"


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
