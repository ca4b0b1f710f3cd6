"""``bench analysis``: seconds from an N-trial MLflow SQLite store to law.json."""

from __future__ import annotations

from scalestudy.bench import BenchTable


def bench_analysis(tiny: bool = False) -> BenchTable:
    from scalestudy.analysis.bench import run_bench

    trials = 300 if tiny else 10_000
    result = run_bench(trials)
    table = BenchTable("analysis", ["trials", "write store s", "load s", "analyze s", "total s", "alpha (planted 1.0)"])
    table.add(**{"trials": trials, "write store s": result["write_s"], "load s": result["load_s"],
                 "analyze s": result["analyze_s"], "total s": result["load_s"] + result["analyze_s"],
                 "alpha (planted 1.0)": result["alpha"]})
    table.notes.append("target: ≤ 30 s from a 10,000-trial store to law.json (load + analyze; writing the "
                       "store is the fixture)")
    return table
