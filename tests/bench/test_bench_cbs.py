"""``scalestudy bench cbs``: its JSON from the command line, and the simulated studies it calibrates on."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cli_in_process import run
from scalestudy.analysis.fits.branch_cbs import estimate_cbs
from scalestudy.bench.cbs import variants
from scalestudy.testing.branched_nqm import simulate_branched_study


def test_the_json_has_coverage_per_design():
    code, out, err = run(["bench", "cbs", "--tiny", "--repetitions", "1", "--json"])
    assert code == 0, err
    table = json.loads(out)
    assert [row["design"] for row in table["rows"]] == list(variants())[:2]
    for row in table["rows"]:
        assert row["points"] == 6 and 0 <= row["coverage"] <= 1 and row["truth"] > 8


def test_a_flag_it_does_not_take_is_one_error_line():
    code, _, err = run(["bench", "cbs", "--fraction", "0.5"])
    assert code == 2 and err.count("\n") == 1 and "--fraction" in err


def test_a_simulated_study_has_every_row_the_estimator_reads_and_its_truth():
    design = variants()["NQM (its own model)"]
    rows = simulate_branched_study(design, np.random.default_rng(0))
    assert len(rows) == len(design.checkpoints) * len(design.batch_sizes) * design.seeds
    points = estimate_cbs(rows, tolerance=design.branching.tolerance, base_batch_size=8)
    assert len(points) == 6
    for point in points:
        assert point.ci95 is not None and point.ci95.low <= point.cbs <= point.ci95.high
        assert point.true_cbs is None or 8 < point.true_cbs < 512


def test_tested_sizes_must_divide_the_window():
    from dataclasses import replace

    with pytest.raises(ValueError, match="dividing the window"):
        simulate_branched_study(replace(variants()["NQM (its own model)"], batch_sizes=(8, 12)),
                                np.random.default_rng(0))
    assert math.isfinite(variants()["momentum 0.9"].branching.momentum)
