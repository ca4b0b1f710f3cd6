"""Synthetic trial tables from a known law, for the analysis tests.

The generator lives in :mod:`scalestudy.analysis.planted` so that the benchmark
(``scalestudy bench analysis``) can use it too; tests import it from here.
"""

from scalestudy.analysis.planted import (
    ACC_MIN,
    PlantedDiagnostics,
    add_diagnostics,
    make_planted_table,
    planted_lr,
    stop_early,
)

__all__ = ["ACC_MIN", "PlantedDiagnostics", "add_diagnostics", "make_planted_table", "planted_lr", "stop_early"]
