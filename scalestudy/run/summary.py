"""What ``scalestudy run`` prints when a study ends: the best final objective per grid cell, the trials that
failed and why, and a branched study's branches and comparison runs summed up apart."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from scalestudy.spec import Objective
from scalestudy.trial.record import ERROR


def summary_table(rows: list[dict[str, Any]], objective: Objective) -> str:
    """The best final objective per (section, schedule, m, B) over ε and seeds (rows carry the objective's
    metric at the trial's final epoch under its name, and ``gen_gap`` where the task reports one)."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["section"], row["schedule"], row["momentum"], row["batch_size"])].append(row)
    label = f"final {objective.metric}"
    width = len(label)
    lines = [f"{'section':<10} {'schedule':<17} {'m':>5} {'B':>6} {'trials':>6} {'div':>4} "
             f"{'best lr':>9} {label:>{width}} {'gap':>7}"]
    for key in sorted(groups):
        members = groups[key]
        ok = [r for r in members if objective.score(r) > -math.inf]
        diverged = sum(1 for r in members if r.get("diverged"))
        if ok:
            best = max(ok, key=objective.score)
            gap = best.get("gen_gap")
            gap = f"{gap:>7.4f}" if isinstance(gap, (int, float)) and math.isfinite(gap) else f"{'-':>7}"
            tail = f"{best['lr']:>9.4g} {objective.value(best):>{width}.4f} {gap}"
        else:
            tail = f"{'-':>9} {'-':>{width}} {'-':>7}"
        section, schedule, momentum, batch = key
        lines.append(f"{section:<10} {schedule:<17} {momentum:>5g} {batch:>6} {len(members):>6} {diverged:>4} {tail}")
    return "\n".join(lines + failed_lines(rows, "trials"))


def failed_lines(rows: list[dict[str, Any]], what: str) -> list[str]:
    """The rows that failed, each by its run name (as in MLflow) with why, after a blank line; [] if none."""
    failed = sorted((r for r in rows if r.get("status") == ERROR), key=lambda r: r.get("run_name") or r["trial_key"])
    if not failed:
        return []
    return ["", f"failed {what} ({len(failed)}):",
            *(f"  {r.get('run_name') or r['trial_key']}: {r.get('error') or 'no reason recorded'}" for r in failed)]


def branched_summary(rows: list[dict[str, Any]]) -> str:
    """A branched study's branches and comparison runs (``role``: branch | compare) in a few lines: they are
    not grid cells (each branch trains a window from a checkpoint), so the summary table leaves them out."""
    lines = []
    for role, what in (("branch", "branches"), ("compare", "comparison runs")):
        mine = [r for r in rows if r.get("role") == role]
        if not mine:
            continue
        counts = ", ".join(f"{sum(1 for r in mine if r['status'] == status)} {label}"
                           for status, label in (("ok", "ok"), ("diverged", "diverged"), (ERROR, "errored")))
        sizes = sorted({r["batch_size"] for r in mine})
        lines.append(f"{what}: {len(mine)} ({counts}), B {sizes[0]}–{sizes[-1]}" if len(sizes) > 1
                     else f"{what}: {len(mine)} ({counts}), B {sizes[0]}")
    lines.append("`scalestudy analyze` estimates CBS(t) from the branches and the batch warmup from it")
    return "\n".join(lines + failed_lines(rows, "branches and comparison runs"))
