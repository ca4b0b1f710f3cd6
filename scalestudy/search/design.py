"""What a study's design can deliver, before any compute is spent (``scalestudy validate``).

Per section, each (B, m[, N]) cell's learning rates, and whether an **interior optimum** is expected
there under the rule: the cell searches at least 3 lrs and the rule's ε* is nearest one of them that
is not an end (the analysis leaves a cell whose best lr is an end out of the law). The rule's ε* is

- the spec's own rule (``grid.lr`` relative to ``reference_lr``): its multiplier-1 ε
  (:func:`~scalestudy.search.cells.reference_lr`);
- for a list of lrs, the rule of the optimizer anchored at the list's geometric centre at the
  section's middle batch size (and momentum): ε ∝ B·(1 − m) for SGD (the linear rule, Goyal et al.
  2017; Smith et al. 2018), ε ∝ √B for any other (Malladi et al. 2022) — the best a fixed list can do.

A search's cells: ``quasi_random`` and ``optuna`` read as ``trials_per_cell`` lrs spread evenly in
ln ε over the cell's range (:func:`~scalestudy.search.cells.lr_bounds`); ``bracket`` starts at the
rule and steps outward by ``step_factor`` (three trials, then one per step), so it needs the steps
that reach the rule's ε* from its start within ``trials_per_cell``, inside ``lr_range``.

From the cells with an interior optimum expected, at the constant schedule (the law's trials), the
section delivers: ε* intervals (≥ 2 seeds), a law (≥ 3 such cells at ≥ 2 batch sizes, and more
cells than the law's parameters — ln k, α, and β and γ where fitted — for a 95 % interval), the
breakdown test (≥ 5 batch sizes) and γ (≥ 2 dataset sizes). The law is fitted on the section with
the most constant-schedule trials (:func:`scalestudy.analysis.fits.study.law_trials`); when it cannot give
one, :func:`design_lines` warns and says what to add.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from scalestudy.search.cells import cell_budget, is_searched, lr_bounds, reference_lr
from scalestudy.spec import LinearRuleLR
from scalestudy.trial.config import Cell

MIN_LRS = 3  # the best lr and one on each side
BREAKDOWN_BATCH_SIZES = 5  # the breakdown test's minimum (scalestudy.analysis.fits.breakdown)
# Student-t 0.975 quantiles: a law on 1 or 2 residual degrees of freedom has an interval this many
# standard errors wide each side (1.96 with many), which recommend and plan then usually refuse.
FEW_DOF_T = {1: 12.71, 2: 4.30}


@dataclass(frozen=True)
class CellDesign:
    batch_size: int
    momentum: float
    dataset_size: int | None  # N when the grid has a dataset-size axis
    lrs: str  # the cell's learning rates, as shown
    count: int  # how many (a search's budget)
    interior: bool  # an interior optimum is expected under the rule
    side: str | None  # where the rule's ε* falls when not interior: "low", "high", or None (too few lrs)


@dataclass(frozen=True)
class SectionDesign:
    name: str
    cells: tuple[CellDesign, ...]  # its constant-schedule cells (the law's), else every cell
    constant: bool  # the section has constant-schedule cells
    law_trials: int  # its constant-schedule trials
    seeds: int
    rule: str  # how the rule's ε* was read

    @property
    def interior(self) -> list[CellDesign]:
        return [cell for cell in self.cells if cell.interior] if self.constant else []

    def distinct(self, attribute: str) -> int:
        return len({getattr(cell, attribute) for cell in self.interior})

    @property
    def parameters(self) -> int:
        """ln k and the exponents the interior cells determine."""
        return 1 + sum(self.distinct(name) >= 2 for name in ("batch_size", "momentum", "dataset_size"))

    @property
    def gives_law(self) -> bool:
        cells = len(self.interior)
        return cells >= 3 and self.distinct("batch_size") >= 2 and cells > self.parameters

    @property
    def residual_dof(self) -> int:
        return len(self.interior) - self.parameters


def study_design(spec, cells: list[Cell]) -> list[SectionDesign]:
    """Every section's design (see the module docstring)."""
    sections = []
    for name, section in spec.resolved_sections().items():
        own = [cell for cell in cells if cell.section == name]
        constant = [cell for cell in own if cell.schedule.kind == "constant"]
        chosen = constant or own
        rule, centre = _rule(spec, section, own)
        shown: dict[tuple, CellDesign] = {}
        for cell in chosen:
            key = (cell.batch_size, cell.momentum, cell.workload.shown_dataset_size)
            if key not in shown:
                shown[key] = _cell_design(spec, cell, centre(cell))
        sections.append(SectionDesign(name, tuple(shown.values()), bool(constant),
                                      sum(cell_budget(spec, cell) for cell in constant), len(section.grid.seeds),
                                      rule))
    return sections


def design_lines(spec, cells: list[Cell]) -> tuple[list[str], list[str]]:
    """(the table ``validate`` prints, its warnings): per section the lrs per cell and what it delivers."""
    sections = study_design(spec, cells)
    lines = ["design: lrs per cell (* the rule's ε* lies among them, away from an end: an interior optimum "
             "is expected there)"]
    for section in sections:
        lines += _section_lines(section)
    law = max(sections, key=lambda s: s.law_trials)
    warnings = [] if law.gives_law else [_cannot_give_a_law(law, sections)]
    if law.gives_law and law.residual_dof in FEW_DOF_T:
        warnings.append(f"section {law.name}'s law would rest on {law.residual_dof} residual degree"
                        f"{'s' if law.residual_dof > 1 else ''} of freedom: t = {FEW_DOF_T[law.residual_dof]:g} "
                        "standard errors each side makes its 95 % interval wide, likely too wide to use; add cells "
                        "(batch sizes, momenta)")
    if warnings and law.constant and any(cell.count == MIN_LRS for cell in law.interior):
        warnings[-1] += (f"; and lrs: with {MIN_LRS} lrs a cell loses its optimum to an edge as soon as ε* lies "
                         "half a step off the rule (5 or more per cell)")
    return lines, warnings


def _rule(spec, section, cells: list[Cell]):
    """(its description, a function cell → ln of the rule's ε* there). In logs: extreme lrs neither
    overflow nor underflow."""
    grid = section.grid
    if isinstance(grid.lr, LinearRuleLR):
        form = "ε ∝ B" if grid.lr.rule == "linear" else "ε ∝ √B"
        if grid.lr.reference_momentum is not None:
            form += "·(1−m)"
        return f"the spec's rule {form}, ×1", lambda cell: _ln(reference_lr(spec, cell))
    lrs, sizes, momenta = list(grid.lr), list(grid.batch_size), list(grid.momentum)
    centre = sum(map(math.log, lrs)) / len(lrs)
    b_ref = sum(map(math.log, sizes)) / len(sizes)
    v_ref = sum(math.log1p(-m) for m in momenta) / len(momenta)
    sgd = section.optimizer.name == "sgd"

    def at(cell: Cell) -> float:
        if sgd:
            return centre + math.log(cell.batch_size) - b_ref + math.log1p(-cell.momentum) - v_ref
        return centre + (math.log(cell.batch_size) - b_ref) / 2

    form = "the linear rule ε ∝ B·(1−m)" if sgd else "the square-root rule ε ∝ √B"
    return f"{form} through the lrs' centre {math.exp(centre):.3g} at B = {math.exp(b_ref):.3g}", at


def _ln(value: float) -> float:
    return math.log(value) if value > 0 else -math.inf


def _cell_design(spec, cell: Cell, centre: float) -> CellDesign:
    """``centre``: ln of the rule's ε* in the cell."""
    search = spec.search
    n = cell_budget(spec, cell, [cell])
    low, high = lr_bounds(spec, cell)
    where = (cell.batch_size, cell.momentum, cell.workload.shown_dataset_size)
    if search.algorithm == "bracket" and is_searched(spec, cell):
        start = reference_lr(spec, cell)
        step = math.log(search.step_factor)
        distance = abs(centre - _ln(start))
        steps = math.ceil(distance / step - 0.5) if math.isfinite(distance) else n  # outward steps to the rule's ε*
        bounds = [_ln(bound) for bound in search.lr_range] if search.lr_range is not None else None
        side = None
        if bounds is not None and centre <= bounds[0] + step / 2:
            side = "low"
        elif bounds is not None and centre >= bounds[1] - step / 2:
            side = "high"
        interior = side is None and n >= MIN_LRS + max(steps, 0)
        return CellDesign(*where, f"bracket from {start:.3g}, ≤ {n}", n, interior, side)
    listed = search.algorithm in ("grid", "adaptive")  # adaptive's coarse design spans the listed ε
    if listed or not is_searched(spec, cell):
        points = sorted({_ln(lr) for lr in cell.lr_grid}) if listed else [_ln(cell.lr_grid[0])]
        values = sorted(set(cell.lr_grid)) if listed else [cell.lr_grid[0]]
        shown = (", ".join(f"{lr:.3g}" for lr in values) if len(values) <= 4 else
                 f"{values[0]:.3g}…{values[-1]:.3g} ×{len(values)}")
    else:  # quasi_random, optuna: n lrs spread over the range
        points = [_ln(low) + (_ln(high) - _ln(low)) * i / max(n - 1, 1) for i in range(n)]
        shown = f"{search.algorithm} {low:.3g}…{high:.3g} ×{n}"
    return CellDesign(*where, shown, len(points), *_interior(points, centre))


def _interior(points: list[float], centre: float) -> tuple[bool, str | None]:
    """Whether the lr nearest the rule's ε* (``points`` and ``centre`` in ln ε) has one on each side;
    else which end it is (None: too few lrs)."""
    if len(points) < MIN_LRS or not math.isfinite(centre):
        return False, None
    nearest = min(range(len(points)), key=lambda i: abs(points[i] - centre))
    if nearest == 0:
        return False, "low"
    if nearest == len(points) - 1:
        return False, "high"
    return True, None


def _section_lines(section: SectionDesign) -> list[str]:
    what = (f"the law's trials: {section.law_trials} at the constant schedule" if section.constant else
            "no constant schedule: compared, not fitted into the law")
    lines = [f"section {section.name} ({what}; rule: {section.rule})"]
    columns = sorted({(cell.momentum, cell.dataset_size) for cell in section.cells}, key=lambda c: (c[1] or 0, c[0]))
    grid = {(c.batch_size, c.momentum, c.dataset_size): c for c in section.cells}
    heads = [f"m={m:g}" + (f" N={n}" if n is not None else "") for m, n in columns]
    entries = {key: cell.lrs + (" *" if cell.interior else "") for key, cell in grid.items()}
    width = max(len(text) for text in [*entries.values(), *heads]) + 2
    lines.append("  " + f"{'B':<7}" + "".join(f"{head:<{width}}" for head in heads).rstrip())
    for b in sorted({cell.batch_size for cell in section.cells}):
        row = "".join(f"{entries.get((b, m, n), '–'):<{width}}" for m, n in columns)
        lines.append(f"  {b:<7}{row}".rstrip())
    if section.constant:
        lines.append("  delivers: " + "; ".join(_deliverables(section)))
    return lines


def _deliverables(section: SectionDesign) -> list[str]:
    cells, sizes = len(section.interior), section.distinct("batch_size")
    dof = section.residual_dof
    law = (f"yes ({cells} cells at {sizes} batch sizes, {section.parameters} parameters: {dof} residual "
           f"degree{'s' if dof != 1 else ''} of freedom{', few' if dof in FEW_DOF_T else ''})"
           if section.gives_law else "no")
    seeds, n_sizes = section.seeds, section.distinct("dataset_size")
    return [f"interior optimum expected in {cells} of {len(section.cells)} cells",
            f"ε* intervals: {'yes' if seeds >= 2 else 'no'} ({seeds} seed{'s' if seeds > 1 else ''})",
            f"law: {law}",
            f"breakdown test: {'yes' if sizes >= BREAKDOWN_BATCH_SIZES else 'no'} ({sizes} batch sizes, needs "
            f"{BREAKDOWN_BATCH_SIZES})",
            f"γ: {'yes' if n_sizes >= 2 else 'no'} ({max(n_sizes, 1)} dataset size{'s' if n_sizes > 1 else ''})"]


def _cannot_give_a_law(law: SectionDesign, sections: list[SectionDesign]) -> str:
    """The warning: why the section the law would be fitted on gives none, and what to add."""
    if not law.constant:
        return ("this study gives no law: no section runs the constant schedule, whose trials the law is fitted "
                "on (right for a schedule comparison; for a law, add a section with it)")
    cells = len(law.interior)
    parameters = 1 + sum(len({getattr(c, name) for c in law.cells}) >= 2
                         for name in ("batch_size", "momentum", "dataset_size"))  # were every cell interior
    add = []
    few = [c for c in law.cells if not c.interior and c.side is None]
    if few:
        add.append(f"at least {MIN_LRS} lrs in each cell (5 or more: ε* rarely sits exactly where the rule puts it)")
    for side, word in (("low", "below"), ("high", "above")):
        at = sorted({c.batch_size for c in law.cells if c.side == side})
        if at:
            add.append(f"lrs {word} the grid at B = {', '.join(map(str, at))} (the rule's ε* there is nearest its "
                       f"{'lowest' if side == 'low' else 'highest'} lr)")
    if len({c.batch_size for c in law.cells}) < 2:
        add.append("a second batch size")
    elif len(law.cells) <= parameters or len(law.cells) < 3:
        add.append("more batch sizes or momenta (cells)")
    sizes = law.distinct("batch_size")
    return (f"section {law.name} cannot give a law: {cells} of its {len(law.cells)} cells are expected to have an "
            f"interior optimum, at {sizes} batch size{'s' if sizes != 1 else ''} "
            f"(a law needs ≥ 3 at ≥ 2 batch sizes, and more than its {parameters} parameters for an interval); "
            f"add {'; '.join(add) or 'cells'}")


__all__ = ["CellDesign", "SectionDesign", "design_lines", "study_design"]
