"""``bench coverage``'s rows for the smooth bend and the heteroscedastic breakdown test (issue 19),
in tiny mode: every row is measured, with a rate and its target."""

import math

import numpy as np

from scalestudy.bench.coverage_bend import Design, bend_rows, homoscedastic_p_value, planted_cells, single_law


def test_tiny_rows_are_all_measured():
    rows = bend_rows(2, tiny=True)
    measures = {row["measure"] for row in rows}
    assert {"breakdown declared on a single law", "breakdown 95 % interval, hinge between tested B",
            "smooth bend: small-B slope 95 % interval", "smooth bend: B_noise 95 % interval",
            "bend preference: hinge preferred under a smooth truth"} <= measures
    for row in rows:
        assert row["rate"] is None or 0.0 <= row["rate"] <= 1.0
        assert set(row) == {"measure", "design", "n", "rate", "target", "detail"}


def test_planted_cells_report_the_variances_asked():
    rng = np.random.default_rng(0)
    growing = planted_cells(single_law, Design(reported="true"), rng)
    assert [c.log_lr_var for c in growing[::2]] == [(0.1 * (b / 16) ** 0.3) ** 2 for b in Design().batch_sizes]
    constant = planted_cells(single_law, Design(), rng)
    assert len({c.log_lr_var for c in constant}) == 1 and all(c.usable for c in constant)
    assert 0 < homoscedastic_p_value(constant) <= 1 and math.isfinite(constant[0].lr_opt)
