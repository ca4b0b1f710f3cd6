"""The spec a recorded study is replayed under: its cells' lr grids are the recorded lrs.

A search proposes ε from a spec: its range (the cell's lr grid, unless ``search.lr_range``), its
start (the rule's ε, multiplier 1) and, for the adaptive search, the lattice it stays on
(``search.beyond_grid: 0``). So the replay spec's grid is inferred from the table: ``grid.lr`` as a
:class:`~scalestudy.spec.LinearRuleLR` (rule linear or sqrt, with or without the momentum factor,
multipliers the recorded lrs over the rule's, merged within :data:`SAME_LR`) or as one explicit
list, whichever leaves the fewest grid lrs that no trial recorded in their cell. The workload is a
stand-in that validates (the replay never trains): synthetic data of the table's N, its planned
epochs, and an objective of the table's direction (the evaluator answers the recorded objective
under its name).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from scalestudy.search.replay.recorded import CellKey, RecordedStudy
from scalestudy.spec import LinearRuleLR, StudySpec, spec_from_dict

SAME_LR = 0.01  # in ln ε: recorded lrs closer than this are one lr of the lattice (rounded values)
STAND_IN_OBJECTIVE = {"max": "test_acc", "min": "test_loss"}  # metrics the stand-in workload's task reports


@dataclass(frozen=True)
class LatticeMatch:
    """How a spec's lr grids match the recorded lrs, over all (N, B, m) cells."""

    extra: int  # grid lrs with no recorded lr within SAME_LR in their cell
    missing: int  # recorded lrs with no grid lr within SAME_LR
    worst_factor: float  # largest factor from a recorded lr to the nearest grid lr of its cell

    @property
    def exact(self) -> bool:
        return self.extra == 0 and self.missing == 0

    def describe(self) -> str:
        if self.exact:
            off = f" (rounded: within ×{self.worst_factor:.4g})" if self.worst_factor > 1.0005 else ""
            return f"the replay spec's lr grids are the recorded lrs{off}"
        return (f"the replay spec's lr grids hold {self.extra} lrs no trial recorded in its cell and miss "
                f"{self.missing} recorded lrs (nearest grid lr within ×{self.worst_factor:.3g})")


def replay_spec(study: RecordedStudy, algorithm: str, search_overrides: dict[str, Any] | None = None,
                seeds: int | None = None) -> StudySpec:
    """A valid spec whose cells are the recorded study's and whose search is ``algorithm`` (with the
    ``search`` fields of ``search_overrides``), kept on the recorded seeds and lattice. ``seeds``: the
    grid's first that many recorded seeds (which recorded ones answer them is the evaluator's
    permutation); None: all of them."""
    sizes = study.dataset_sizes
    raw = {
        "name": f"replay-{study.name}",
        "description": f"replay of the recorded study {study.name} (a stand-in workload: nothing is trained)",
        "workload": {"dataset": "synthetic", "dataset_options": {"train_size": sizes[-1], "test_size": 16},
                     "model": "mlp", "model_options": {"hidden": [4], "norm": "none"}, "epochs": study.epochs},
        "grid": {"batch_size": study.batch_sizes, "lr": infer_lr_grid(study), "momentum": study.momenta,
                 "seeds": list(study.seeds[:seeds]), **({"dataset_size": sizes} if len(sizes) > 1 else {})},
        "analysis": {"objective": {"metric": STAND_IN_OBJECTIVE[study.objective.direction],
                                   "direction": study.objective.direction}},
        "search": {"algorithm": algorithm, "max_seeds": len(study.seeds), "beyond_grid": 0,
                   **(search_overrides or {})},
    }
    return spec_from_dict(raw)


def infer_lr_grid(study: RecordedStudy) -> dict[str, Any] | list[float]:
    """``grid.lr`` for the replay spec: the candidate form that matches the recorded lrs best."""
    candidates: list[dict[str, Any] | list[float]] = [_merged(lr for cell in study.cells.values() for lr in cell.lrs)]
    reference = _reference_cell(study)
    for rule in ("linear", "sqrt"):
        for scaled in (False, True) if len(study.momenta) > 1 else (False,):
            candidates.append(_rule_candidate(study, reference, rule, scaled))

    def quality(candidate: dict[str, Any] | list[float]) -> tuple[int, int, float]:
        match = lattice_match(study, {key: _grid_lrs(candidate, key) for key in study.cells})
        return match.missing + match.extra, match.missing, match.worst_factor

    return min(candidates, key=quality)  # the first of equals: an explicit list where it is exact


def lattice_match(study: RecordedStudy, grids: dict[CellKey, list[float]]) -> LatticeMatch:
    """How the lr grids of the (N, B, m) cells (e.g. of ``expand_cells(replay_spec(...))``) match the recorded lrs."""
    extra = missing = 0
    worst = 0.0
    for key, cell in study.cells.items():
        grid = np.log(np.asarray(sorted(grids[key]), float))
        recorded = np.log(np.asarray(cell.lrs, float))
        to_grid = np.abs(recorded[:, None] - grid[None, :]).min(axis=1)
        to_recorded = np.abs(grid[:, None] - recorded[None, :]).min(axis=1)
        missing += int((to_grid > SAME_LR).sum())
        extra += int((to_recorded > SAME_LR).sum())
        worst = max(worst, float(to_grid.max()))
    return LatticeMatch(extra, missing, math.exp(worst))


def _reference_cell(study: RecordedStudy) -> CellKey:
    """The cell the rule is anchored on: B nearest the median batch size (in ln B), most lrs, lowest m."""
    sizes = study.batch_sizes
    middle = math.log(sizes[(len(sizes) - 1) // 2])
    return min(study.cells, key=lambda key: (abs(math.log(key[1]) - middle), -len(study.cells[key].lrs), key[2],
                                            -key[0]))


def _rule_candidate(study: RecordedStudy, reference: CellKey, rule: str, scaled: bool) -> dict[str, Any]:
    """A LinearRuleLR anchored on the reference cell's central recorded lr, multipliers the recorded
    lrs over the rule's ε (the reference cell's own where they merge, so its lrs come back exactly)."""
    lrs = study.cells[reference].lrs
    centre = math.exp(float(np.mean(np.log(lrs))))
    anchor = min(lrs, key=lambda lr: abs(math.log(lr / centre)))
    fields = {"reference_batch_size": reference[1], "reference_lr": anchor, "rule": rule,
              **({"reference_momentum": reference[2]} if scaled else {})}
    base = LinearRuleLR(**fields, multipliers=[1.0])
    ratios = [lr / base.rule_lr(key[1], key[2]) for key, cell in study.cells.items() for lr in cell.lrs]
    own = [lr / anchor for lr in lrs]
    return {**fields, "multipliers": _merged(ratios, prefer=own)}


def _merged(values, prefer: list[float] = ()) -> list[float]:
    """Distinct values, ascending, those within SAME_LR (in ln) of each other as one: a ``prefer`` value
    in the group, else the group's median."""
    ordered = sorted(float(v) for v in values)
    groups: list[list[float]] = []
    for value in ordered:
        if groups and math.log(value / groups[-1][0]) <= SAME_LR:
            groups[-1].append(value)
        else:
            groups.append([value])
    merged = []
    for group in groups:
        preferred = [p for p in prefer if group[0] <= p <= group[-1]]
        merged.append(preferred[0] if preferred else group[len(group) // 2])
    return merged


def _grid_lrs(candidate: dict[str, Any] | list[float], key: CellKey) -> list[float]:
    if isinstance(candidate, list):
        return candidate
    return LinearRuleLR(**candidate).lr_for(key[1], key[2])
