"""A study whose search stopped trials by their bound: fit_study takes them as censored in the ε* fit
(never narrowing an interval the finished trials give), says so, and law.json and report.md count
them per cell; a study stopped by ASHA (no bounds) keeps leaving them out."""

import numpy as np
import pytest

from scalestudy.analysis import TrialTable, build_law, fit_study
from scalestudy.analysis.outputs.report import report_markdown
from scalestudy.testing.planted import make_planted_table, stop_early


@pytest.fixture(scope="module")
def studies():
    frame = make_planted_table(1.0, 1.0, 1e-3, None, batch_sizes=(32, 128, 512), momenta=(0.0, 0.9), lr_points=7,
                               rng=1)
    early = stop_early(frame, keep=0.5)  # the worst half of each cell's seeds, at a third of their accuracy
    stop = early["status"] == "stopped"
    bounded = early.assign(objective_bound=np.where(stop, 3 * early["test_acc"] + 0.02, np.nan))  # true bounds
    return fit_study(TrialTable.from_frame(early)), fit_study(TrialTable.from_frame(bounded)), int(stop.sum())


def test_stopped_trials_with_bounds_enter_the_fit_censored_and_never_narrow_an_interval(studies):
    asha, bound, stopped = studies
    assert sum(cell.n_censored for cell in bound.frontier.cells) == stopped
    assert all(cell.n_censored == 0 for cell in asha.frontier.cells)
    for left_out, censored in zip(asha.frontier.cells, bound.frontier.cells):
        assert censored.usable and left_out.usable
        assert censored.ci95[0] <= left_out.ci95[0] and censored.ci95[1] >= left_out.ci95[1], censored.label
    assert bound.law_fit.alpha == pytest.approx(1.0, abs=0.05)
    assert any(f"{stopped} constant-schedule trials stopped early by the search enter the ε* fit censored" in w
               for w in bound.warnings)
    assert any("left out of the ε* fit" in w for w in asha.warnings)
    assert not any("left out of the ε* fit" in w for w in bound.warnings)


def test_law_json_and_the_report_count_each_cell_s_censored_trials(studies):
    asha, bound, _ = studies
    law = build_law(bound)
    assert [cell.censored for cell in law.cells] == [cell.n_censored for cell in bound.frontier.cells]
    assert all(cell.censored is None for cell in build_law(asha).cells)  # not written without any
    report = report_markdown(bound, law, [], [], list(bound.warnings))
    assert "| diverged at | stopped, censored |" in report
    assert "stopped, censored" not in report_markdown(asha, build_law(asha), [], [], list(asha.warnings))
