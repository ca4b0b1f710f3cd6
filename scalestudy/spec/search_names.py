"""The search algorithms' names, each with the builder that makes its plan: how ε is chosen in each
(section, schedule, m, B, seed) cell.

A leaf: it imports no search module (each is imported by its path when a study is built), so the spec
checks an algorithm's name without importing the searches (torch- and Ray-free), and nothing here
leads back up to the searches, the trial or the analysis.
"""

from scalestudy.registry import Registry

SEARCHES = Registry(
    "search algorithm",
    {
        "grid": "scalestudy.search.grid:build_grid",
        "quasi_random": "scalestudy.search.quasi_random:build_quasi_random",
        "optuna": "scalestudy.search.optuna_cells:build_optuna",
        "bracket": "scalestudy.search.bracket:build_bracket",
        "adaptive": "scalestudy.search.adaptive:build_adaptive",
    },
)

__all__ = ["SEARCHES"]
