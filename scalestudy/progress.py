"""The summary table printed at the end of a study."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any


def summary_table(rows: list[dict[str, Any]]) -> str:
    """Best final test accuracy per (section, schedule, m, B) over ε and seeds."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["section"], row["schedule"], row["momentum"], row["batch_size"])].append(row)
    lines = [f"{'section':<10} {'schedule':<17} {'m':>5} {'B':>6} {'trials':>6} {'div':>4} "
             f"{'best lr':>9} {'test_acc':>8} {'gap':>7}"]
    for key in sorted(groups):
        members = groups[key]
        ok = [r for r in members if not r.get("diverged") and r.get("test_acc") is not None
              and math.isfinite(r["test_acc"])]
        diverged = sum(1 for r in members if r.get("diverged"))
        if ok:
            best = max(ok, key=lambda r: r["test_acc"])
            tail = f"{best['lr']:>9.4g} {best['test_acc']:>8.4f} {best.get('gen_gap', math.nan):>7.4f}"
        else:
            tail = f"{'-':>9} {'-':>8} {'-':>7}"
        section, schedule, momentum, batch = key
        lines.append(f"{section:<10} {schedule:<17} {momentum:>5g} {batch:>6} {len(members):>6} {diverged:>4} {tail}")
    return "\n".join(lines)
