"""``bench coverage``, real rows: the intervals on subsamples of the shipped reference studies
(:mod:`scalestudy.calibration`), the way users sample: 2, 3 and 5 of the 8 seeds, every other lr
of the √2 grid (×2 steps, a random phase), all batch sizes or a window of 4.

The truths are the reference's own: each cell's ε* from all seeds on the fine grid, and α, β of
the law fitted on the whole table over the same batch sizes.
"""

from __future__ import annotations

import numpy as np

from scalestudy.calibration.reference import available, load_reference
from scalestudy.calibration.subsample import SubsampleDesign, subsample_coverage

DESIGNS = (SubsampleDesign(2), SubsampleDesign(3), SubsampleDesign(5), SubsampleDesign(3, batch_sizes=4))


def add_real_rows(table, draws: int) -> None:
    names = available()
    if not names:
        table.notes.append("no reference tables are installed (scalestudy/calibration/data): no real rows")
        return
    for name in names:
        frame = load_reference(name)
        for index, design in enumerate(DESIGNS):
            result = subsample_coverage(frame, design, draws, seed=index)
            label = f"real {name}: {design.label}"
            widths = f"median high/low {np.median(result.widths):.2f}" if result.widths else ""
            share = f"{result.interval_share:.1%} of {result.cells} usable cells have one" if result.cells else ""
            table.add(measure="cell ε* 95 % interval", design=label, n=result.with_interval, rate=result.cell_rate,
                      target="≥ 0.9", detail="; ".join(p for p in (share, widths) if p))
            for law_name in ("alpha", "beta"):
                table.add(measure=f"law {law_name} 95 % interval", design=label, n=result.law_total[law_name],
                          rate=result.law_rate(law_name), target="≥ 0.9", detail=f"{draws} subsamples")
