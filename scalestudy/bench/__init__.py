"""Benchmarks (``scalestudy bench NAME``): figures measured side by side in one run.

Each benchmark returns a :class:`BenchTable`; the CLI prints it or its JSON. Targets
are checked here and reported, never asserted in tests.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from scalestudy.registry import Registry

BENCHMARKS = Registry(
    "benchmark",
    {
        "loop": "scalestudy.bench.loop:bench_loop",
        "study": "scalestudy.bench.study:bench_study",
        "ghostbn": "scalestudy.bench.ghostbn:bench_ghostbn",
        "tracking": "scalestudy.bench.tracking:bench_tracking",
        "analysis": "scalestudy.bench.analysis:bench_analysis",
        "memory": "scalestudy.bench.memory:bench_memory",
        "search": "scalestudy.bench.search:bench_search",
        "coverage": "scalestudy.bench.coverage:bench_coverage",
        "pack": "scalestudy.bench.pack:bench_pack",
        "compile": "scalestudy.bench.compile:bench_compile",
        "cbs": "scalestudy.bench.cbs:bench_cbs",
    },
)


# Called with the table after each row (see rows_measured); a context variable, so that only the
# caller that asked for it gets the calls.
_ON_ROW: contextvars.ContextVar[Callable[[BenchTable], None] | None] = contextvars.ContextVar("on_row", default=None)


@contextlib.contextmanager
def rows_measured(callback: Callable[[BenchTable], None]) -> Iterator[None]:
    """Call ``callback(table)`` after every row a benchmark adds inside the block: a caller that
    may be stopped at a time limit (the GPU check) keeps the rows measured so far."""
    token = _ON_ROW.set(callback)
    try:
        yield
    finally:
        _ON_ROW.reset(token)


@dataclass
class BenchTable:
    name: str
    columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, **row: Any) -> None:
        self.rows.append(row)
        on_row = _ON_ROW.get()
        if on_row is not None:
            on_row(self)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)

    def render(self) -> str:
        def cell(value: Any) -> str:
            if isinstance(value, float):
                return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
            return str(value)

        cells = [[cell(row.get(col, "")) for col in self.columns] for row in self.rows]
        widths = [max([len(col)] + [len(r[i]) for r in cells]) for i, col in enumerate(self.columns)]
        lines = [f"== bench {self.name} ==",
                 "  ".join(col.ljust(w) for col, w in zip(self.columns, widths)),
                 "  ".join("-" * w for w in widths)]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


# Options a benchmark takes besides tiny (the command line's flags, named as the keyword arguments).
OPTIONS: dict[str, tuple[str, ...]] = {"search": ("replay", "repetitions", "fraction"), "cbs": ("repetitions",)}


def run_benchmark(name: str, tiny: bool = False, **options: Any) -> BenchTable:
    """Run one benchmark; ``options``: those it takes (:data:`OPTIONS`), any other is a ValueError."""
    unknown = sorted(set(options) - set(OPTIONS.get(name, ())))
    if unknown:
        raise ValueError(f"bench {name}: takes no option {unknown[0]!r}")
    return BENCHMARKS.get(name)(tiny=tiny, **options)
