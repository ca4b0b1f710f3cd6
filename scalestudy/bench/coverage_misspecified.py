"""``bench coverage``, misspecified rows: the intervals on studies the fits do not model.

Studies from :mod:`scalestudy.testing.realistic`: asymmetric, flat-topped peaks with a floor above
the diverged score, gradual divergence, seed noise that differs between cells and has a shared
part per seed, a user's ×2 grid through a reference lr that misses the truth by up to 2× and
follows the linear rule while the truth does not. Each study is analysed by the real fits
(:func:`fit_frontier`, :func:`fit_law`); the rows count how often the 95 % intervals hold the
truth: each usable cell's ε* (the mode of its noise-free curve), the law's α, β and k, at 2, 3 and
5 seeds, for random shapes like the reference studies' and for flat tops alone (power 4).
"""

from __future__ import annotations

import numpy as np

from scalestudy.analysis.fits.cell_optimum.frontier import fit_frontier
from scalestudy.analysis.fits.law import fit_law
from scalestudy.testing.realistic import PeakShape, RealisticDesign, realistic_study, random_shape

CELL_TARGET, ALPHA_TARGET, K_TARGET = 0.90, 0.90, 0.85


def add_misspecified_rows(table, studies: int) -> None:
    for seeds in (2, 3, 5):
        _rows(table, seeds, studies, "real-like shapes", None)
    _rows(table, 3, studies, "flat tops (power 4)", 4.0)
    _check_row(table, studies)


def _check_row(table, studies: int) -> None:
    """check-law where the law holds: a law fitted on a misspecified study (B = 16-512, 2 seeds), checked
    at B = 1024 and 2048 on a grid centred on the *fitted* law (what a user does), the same shape."""
    from scalestudy.analysis.fits.law_check import check_law
    from scalestudy.analysis.outputs.law_file import build_law
    from scalestudy.analysis.fits.study import FitOptions, fit_study

    rng = np.random.default_rng(77)
    failed = checked = 0
    for index in range(studies):
        shape = random_shape(rng)
        study = realistic_study(rng, RealisticDesign(seeds=2), shape=shape)
        law = build_law(fit_study(study.frame, FitOptions(seed=index)))
        if law.alpha is None or law.k is None:
            continue
        beta = law.beta or 0.0
        check = realistic_study(rng, RealisticDesign(seeds=2, batch_sizes=(1024, 2048), momenta=(0.9,)),
                                law=study.law, shape=shape,
                                centre=lambda b, m: law.k * b ** law.alpha * (1 - m) ** beta)
        try:
            result = check_law(law, check.frame)
        except Exception:  # noqa: BLE001 - a check with no testable cell is not a false failure
            continue
        checked += 1
        failed += not result.passed
    table.add(measure="check-law fails where the law holds", design="misspecified, grid centred on the fitted law",
              n=checked, rate=failed / checked if checked else None, target="≤ 0.05",
              detail="B = 1024, 2048 vs a law fitted at 16-512, 2 seeds, the same peak shape")


def _rows(table, seeds: int, studies: int, label: str, power: float | None) -> None:
    rng = np.random.default_rng(100 + seeds + (0 if power is None else 7))
    design = RealisticDesign(seeds=seeds)
    covered = with_interval = usable = cells_total = 0
    widths: list[float] = []
    law_hits = {name: [] for name in ("alpha", "beta", "k")}
    alpha_widths: list[float] = []
    for index in range(studies):
        shape = random_shape(rng)
        if power is not None:
            shape = PeakShape(shape.left, shape.right, power, shape.left_drop, shape.right_floor)
        study = realistic_study(rng, design, shape=shape)
        frontier = fit_frontier(study.frame)
        cells_total += len(frontier.cells)
        for cell in frontier.usable():
            usable += 1
            if cell.ci95 is None:
                continue
            with_interval += 1
            truth = study.lr_opt(cell.batch_size, cell.momentum)
            covered += cell.ci95[0] <= truth <= cell.ci95[1]
            widths.append(cell.ci95[1] / cell.ci95[0])
        law = fit_law(list(frontier.cells), seed=index)
        for name, truth in (("alpha", study.law.alpha), ("beta", study.law.beta), ("k", study.law.k)):
            interval = law.ci95.get(name)
            if interval is not None:
                law_hits[name].append(interval[0] <= truth <= interval[1])
                if name == "alpha":
                    alpha_widths.append(interval[1] - interval[0])
    design_label = f"misspecified, {label}, {seeds} seeds"
    share = with_interval / usable if usable else float("nan")
    table.add(measure="cell ε* 95 % interval", design=design_label, n=with_interval,
              rate=covered / with_interval if with_interval else None, target=f"≥ {CELL_TARGET}",
              detail=f"{usable} of {cells_total} cells usable, {share:.0%} of those with one; median high/low "
                     f"{np.median(widths) if widths else float('nan'):.2f}")
    for name, target in (("alpha", ALPHA_TARGET), ("beta", ALPHA_TARGET), ("k", K_TARGET)):
        hits = law_hits[name]
        detail = f"median width {np.median(alpha_widths):.2f}" if name == "alpha" and alpha_widths else ""
        table.add(measure=f"law {name} 95 % interval", design=design_label, n=len(hits),
                  rate=float(np.mean(hits)) if hits else None, target=f"≥ {target}", detail=detail)
