"""Synthetic trial tables from a known law, for the tests that import ``planted``: the generator
is the public fixture :mod:`scalestudy.testing.planted` (benchmarks and users use it too).
"""

from scalestudy.testing.planted import (
    ACC_MIN,
    PlantedDiagnostics,
    add_diagnostics,
    make_planted_table,
    planted_lr,
    stop_early,
)

__all__ = ["ACC_MIN", "PlantedDiagnostics", "add_diagnostics", "make_planted_table", "planted_lr", "stop_early"]
