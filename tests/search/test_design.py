"""``scalestudy validate`` says what a design can deliver before compute is spent
(scalestudy.search.design): the lrs of every cell, where the rule's ε* falls among them, ε*
intervals, a law, the breakdown test and γ; a ``warning:`` line (exit 0) when it gives no law or one
on too few degrees of freedom, saying what to add."""

from pathlib import Path

import pytest

from cli_in_process import run
from scalestudy.search.design import _interior, study_design
from scalestudy.spec import load_spec
from scalestudy.trial.config import expand_cells

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "search_spaces" / "quickstart.yaml"
LAW_ONLY = ["--set", "sections.law={}"]  # the quickstart's schedule comparison left out


def validate(*overrides):
    code, out, err = run(["validate", QUICKSTART, *overrides])
    assert code == 0, err
    return out, [line for line in err.splitlines() if line]


def test_the_quickstart_design_shows_each_cell_s_lrs_and_delivers_a_law():
    out, warnings = validate()
    assert warnings == []
    assert ("section law (the law's trials: 192 at the constant schedule; rule: the spec's rule ε ∝ B·(1−m), "
            "×1)") in out
    assert "  B      m=0                 m=0.9" in out
    # multipliers 1/8-8 and 512 of 0.02·B/64·(1−m)/0.1
    assert "  16     0.00625…25.6 ×8 *   0.000625…2.56 ×8 *" in out
    assert ("  delivers: interior optimum expected in 12 of 12 cells; ε* intervals: yes (2 seeds); law: yes (12 cells "
            "at 6 batch sizes, 3 parameters: 9 residual degrees of freedom); breakdown test: yes (6 batch sizes, "
            "needs 5); γ: no (1 dataset size)") in out
    assert "section schedules (no constant schedule: compared, not fitted into the law" in out


def test_a_twelve_trial_design_warns_that_its_law_would_be_too_wide():
    """2 batch sizes × 2 momenta × 3 lrs × 1 seed: every cell may have its optimum inside, but a law of
    3 parameters on 4 cells has one residual degree of freedom (t = 12.7)."""
    out, warnings = validate("--set", "grid.batch_size=[64,256]", "--set", "grid.lr.multipliers=[0.5,1,2]",
                             "--set", "grid.seeds=[0]", *LAW_ONLY)
    assert "  64     0.1, 0.2, 0.4 *     0.01, 0.02, 0.04 *" in out
    assert "ε* intervals: no (1 seed)" in out and "1 residual degree of freedom, few)" in out
    (warning,) = warnings
    assert warning.startswith("warning: section law's law would rest on 1 residual degree of freedom: t = 12.71")
    assert "add cells (batch sizes, momenta); and lrs: with 3 lrs a cell loses its optimum to an edge" in warning


def test_a_design_whose_lrs_miss_the_rule_warns_and_says_which_side_to_widen():
    """One list of lrs for both momenta: the linear rule puts ε* a factor (1 − 0)/(1 − 0.9) = 10 apart, so
    the list misses it at one end in half the cells."""
    out, warnings = validate("--set", "grid.batch_size=[64,256]", "--set", "grid.lr=[0.01,0.02,0.04,0.08,0.16]",
                             "--set", "grid.seeds=[0,1]", *LAW_ONLY)
    assert "rule: the linear rule ε ∝ B·(1−m) through the lrs' centre 0.04 at B = 128" in out
    assert "  64     0.01…0.16 ×5 *  0.01…0.16 ×5\n  256    0.01…0.16 ×5    0.01…0.16 ×5 *\n" in out
    assert "interior optimum expected in 2 of 4 cells" in out and "law: no" in out
    (warning,) = warnings
    assert warning.startswith("warning: section law cannot give a law: 2 of its 4 cells are expected to have an "
                              "interior optimum, at 2 batch sizes (a law needs ≥ 3 at ≥ 2 batch sizes")
    assert ("add lrs below the grid at B = 64 (the rule's ε* there is nearest its lowest lr); lrs above the grid at "
            "B = 256 (the rule's ε* there is nearest its highest lr)") in warning


@pytest.mark.parametrize("overrides, cell, warning", [
    # bracket steps outward from the rule: 3 trials suffice there; an lr_range that stops below the rule does not
    (["--set", "search={algorithm: bracket, trials_per_cell: 4}"], "bracket from 0.05, ≤ 4 *", None),
    (["--set", "search={algorithm: bracket, trials_per_cell: 4, lr_range: [0.0001, 0.001]}"],
     "bracket from 0.05, ≤ 4   ", "lrs above the grid at B = 16, 32, 64, 128, 256, 512"),
    # two quasi-random lrs per cell cannot bracket anything
    (["--set", "search={algorithm: quasi_random, trials_per_cell: 2}"], "quasi_random 0.00625…25.6 ×2 ",
     "add at least 3 lrs in each cell"),
])
def test_searches_deliver_what_their_budget_and_range_allow(overrides, cell, warning):
    out, warnings = validate(*overrides, *LAW_ONLY)
    assert f"  16     {cell}" in out
    if warning is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and warning in warnings[0]


def test_a_study_without_the_constant_schedule_says_it_gives_no_law():
    code, out, err = run(["validate", REPO / "search_spaces" / "smith2018_cifar10_schedules.yaml"])
    assert code == 0 and "(no constant schedule: compared, not fitted into the law" in out
    assert err == ("warning: this study gives no law: no section runs the constant schedule, whose trials the law is "
                   "fitted on (right for a schedule comparison; for a law, add a section with it)\n")


def test_the_law_s_section_is_the_one_with_most_constant_schedule_trials():
    spec = load_spec(QUICKSTART, ["grid.seeds=[0]"])
    law, schedules = study_design(spec, expand_cells(spec))
    assert (law.name, law.constant, law.law_trials, len(law.cells)) == ("law", True, 96, 12)
    assert (schedules.constant, schedules.law_trials, schedules.interior) == (False, 0, [])


@pytest.mark.parametrize("centre, expected", [(0.0, (True, None)), (-0.4, (True, None)), (-0.6, (False, "low")),
                                              (5.0, (False, "high")), (float("-inf"), (False, None))])
def test_an_interior_optimum_is_expected_where_the_rule_s_lr_is_nearest_an_inner_lr(centre, expected):
    points = [-1.0, 0.0, 1.0]  # ln ε
    assert _interior(points, centre) == expected
    assert _interior(points[:2], 0.0) == (False, None)  # two lrs bracket nothing
