"""Whether a changed spec only *grows* a study: the rule ``scalestudy run SPEC --extend`` applies
(and ``--resume``, which takes the study's own spec only).

A study may grow along its cells' axes: more batch sizes, momenta, seeds, dataset sizes, schedules
or sections, and (for a grid or a quasi-random search) more learning rates or a larger
``search.trials_per_cell``; every value the study ran stays in the list. How and where trials run
(``resources``, the tracking URI, the description) may change freely. Anything else changes what
the study's finished trials mean (the model, the data, the epochs, the optimizer, a schedule's
arguments, the objective, the search's range or seed, ...) and is refused, naming the field.
Adaptive searches (optuna, bracket) choose each cell's ε from the trials run so far: they grow by
new cells only; ``adaptive`` also by a larger ``search.budget`` or a narrower ``search.target``, from
where it stopped.

Pure functions of two resolved specs as plain dicts (``StudySpec.model_dump(mode="json")``), so
this is tested without Ray or MLflow. The trial keys are the final word (each finished trial must
still be a trial of the grown spec, :mod:`scalestudy.run.continuation`); this names the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# Fields that decide how or where trials run, never what they train.
FREE_TO_CHANGE = ("description", "resources", "tracking.uri")
# The lists of a grid that add cells (and ε, for "lr" and "multipliers").
CELL_AXES = ("batch_size", "momentum", "seeds", "dataset_size", "weight_decay", "tau_epochs", "beta2",
             "beta2_half_life_examples")
LR_AXES = ("lr", "multipliers")
# Searches whose trials are known up front (their plan is a list): they may add ε, not only cells.
LISTED_SEARCHES = ("grid", "quasi_random")


@dataclass
class SpecGrowth:
    """How a spec differs from the study's: the fields it grows, and the first change refused (the
    field and why), or None."""

    grown: list[str] = field(default_factory=list)
    refused: tuple[str, str] | None = None

    @property
    def changed(self) -> bool:
        return bool(self.grown) or self.refused is not None

    def describe(self) -> str:
        return ", ".join(self.grown)


def compare_specs(old: dict[str, Any], new: dict[str, Any]) -> SpecGrowth:
    """How ``new`` differs from ``old`` (both resolved specs as dicts)."""
    growth = SpecGrowth()
    algorithm = (new.get("search") or {}).get("algorithm", "grid")
    if algorithm == "adaptive" and (old.get("search") or {}).get("algorithm") == "adaptive":
        old, new = _adaptive_spending(old, new, growth)
        if growth.refused is not None:
            return growth
    _walk(old, new, "", growth, listed=algorithm in LISTED_SEARCHES)
    return growth


def _adaptive_spending(old: dict[str, Any], new: dict[str, Any], growth: SpecGrowth) -> tuple[dict, dict]:
    """An adaptive search grows by a larger ``search.budget`` or a narrower ``search.target`` (it continues
    from the trials it ran); the specs with those two fields set aside, for the rest of the comparison."""
    before, after = old.get("search") or {}, new.get("search") or {}
    for name, more in (("budget", _more_budget), ("target", _narrower_target)):
        if before.get(name) != after.get(name):
            if more(before.get(name), after.get(name)):
                growth.grown.append(f"search.{name} ({_shown(before.get(name))} → {_shown(after.get(name))})")
            else:
                growth.refused = (f"search.{name}", f"changed ({_shown(before.get(name))} → {_shown(after.get(name))}); "
                                                    "an adaptive study grows by a larger budget or a narrower target")
                return old, new
    rest = {key: value for key, value in after.items() if key not in ("budget", "target")}
    return ({**old, "search": {k: v for k, v in before.items() if k not in ("budget", "target")}},
            {**new, "search": rest})


def _more_budget(old: dict | None, new: dict | None) -> bool:
    if new is None:
        return False
    if old is None:  # the default, a quarter of the grid
        old = {"trial_epochs": None, "grid_fraction": 0.25}
    for key in ("trial_epochs", "grid_fraction"):
        if old.get(key) is not None and new.get(key) is not None:
            return new[key] > old[key]
    return False  # one in trial-epochs, the other a fraction: not comparable here


def _narrower_target(old: dict | None, new: dict | None) -> bool:
    if new is None:
        return False
    return old is None or new["alpha_ci_width"] < old["alpha_ci_width"]


def _walk(old: Any, new: Any, path: str, growth: SpecGrowth, listed: bool) -> None:
    if growth.refused is not None or old == new or _free(path):
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            where = f"{path}.{key}" if path else str(key)
            if key not in new:
                growth.refused = (where, "removed; an extension keeps everything the study ran")
            elif key not in old:
                if path == "sections":
                    growth.grown.append(f"{where} (a new section)")
                else:
                    growth.refused = (where, f"added ({_shown(new[key])}); it changes what the study's trials trained")
            else:
                _walk(old[key], new[key], where, growth, listed)
            if growth.refused is not None:
                return
        return
    last = path.rsplit(".", 1)[-1]
    if path == "search.trials_per_cell" and listed and _larger(old, new):
        growth.grown.append(f"{path} ({old} → {new})")
        return
    if isinstance(old, list) and isinstance(new, list) and _growable(path, last, listed):
        missing = [value for value in old if value not in new]
        if missing:
            growth.refused = (path, f"{_shown(missing[0])} is missing ({_shown(old)} → {_shown(new)}); an extension "
                                    "keeps every value the study ran")
        else:
            growth.grown.append(f"{path} ({_shown(old)} → {_shown(new)})")
        return
    why = "it changes what the study's finished trials mean"
    if last in LR_AXES or path == "search.trials_per_cell":
        why = ("an adaptive search chooses each cell's ε from the trials it ran: it grows by new cells only"
               if not listed else why)
    growth.refused = (path, f"changed ({_shown(old)} → {_shown(new)}); {why}")


def _free(path: str) -> bool:
    return any(path == free or path.startswith(f"{free}.") for free in FREE_TO_CHANGE)


def _growable(path: str, last: str, listed: bool) -> bool:
    parts = path.split(".")
    if last == "schedule":  # the study's schedules, or a section's
        return True
    if "grid" not in parts:
        return False
    return last in CELL_AXES or (listed and last in LR_AXES)


def _larger(old: Any, new: Any) -> bool:
    return isinstance(new, int) and (old is None or (isinstance(old, int) and new > old))


def _shown(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
