"""Search algorithms: how ε is chosen in each (section, schedule, m, B, seed) cell.

This module is torch- and Ray-free (spec validation imports it); each algorithm's
module is imported when a study is built.
"""

from scalestudy.registry import Registry

SEARCHES = Registry(
    "search algorithm",
    {
        "grid": "scalestudy.search.grid:build_grid",
        "quasi_random": "scalestudy.search.quasi_random:build_quasi_random",
        "optuna": "scalestudy.search.optuna_cells:build_optuna",
        "bracket": "scalestudy.search.bracket:build_bracket",
    },
)

__all__ = ["SEARCHES"]
