"""What ``--extend`` runs, from the study's trials as MLflow has them (built here by hand; no Ray
started, no MLflow): a listed search's trials not finished, never one fewer; an adaptive search's
new cells only."""

import pytest

from scalestudy.endpoints import StudyError
from scalestudy.run.continuation import EarlierStudy, cell_params, study_plan
from scalestudy.run.spec_growth import SpecGrowth
from scalestudy.run.study_runs import CELL_PARAMS, TrialInStudy
from scalestudy.spec import spec_from_dict
from scalestudy.trial.config import expand_cells
from scalestudy.trial.record import trial_params

BASE = {"name": "c", "workload": {"dataset": "synthetic", "model": "mlp", "epochs": 2},
        "grid": {"batch_size": [32], "lr": [0.05, 0.1], "momentum": [0.9], "seeds": [0]}}


def spec(**grid):
    return spec_from_dict({**BASE, "grid": {**BASE["grid"], **grid}})


def planned_keys(plan):
    return [trial["trial_key"] for trial in plan.param_space["trial"]["grid_search"]]


def earlier(study_spec, statuses):
    """The study as MLflow would have it: the trials of ``study_spec``'s listed plan, with these statuses."""
    wires = study_plan(study_spec, expand_cells(study_spec), "new", None).param_space["trial"]["grid_search"]
    trials = {}
    for wire, status in zip(wires, statuses):
        params = trial_params(wire)
        trials[wire["trial_key"]] = TrialInStudy(wire["trial_key"], f"run-{wire['trial_key']}", wire["run_name"],
                                                 status, 0.5, 0, tuple(params[name] for name in CELL_PARAMS))
    return EarlierStudy("parent", trials, SpecGrowth(grown=["the growth"]))


def test_a_grown_grid_runs_its_new_trials_and_those_not_finished():
    before = earlier(spec(), ["ok", "interrupted"])
    grown = spec(seeds=[0, 1])
    plan = study_plan(grown, expand_cells(grown), "extend", before)
    keys = planned_keys(plan)
    finished = [key for key, state in before.trials.items() if state.finished]
    assert len(keys) == 3 and plan.total_trials == 3 and not set(finished) & set(keys)
    assert [key for key, state in before.trials.items() if not state.ended][0] in keys  # continues


def test_a_quasi_random_budget_grows_and_a_moved_range_is_refused():
    quasi = {"algorithm": "quasi_random", "trials_per_cell": 2}
    first = spec_from_dict({**BASE, "search": quasi})
    before = earlier(first, ["ok", "ok"])
    more = spec_from_dict({**BASE, "search": {**quasi, "trials_per_cell": 4}})
    plan = study_plan(more, expand_cells(more), "extend", before)
    assert plan.total_trials == 2 and not set(planned_keys(plan)) & set(before.trials)  # the sequence goes on
    wider = spec_from_dict({**BASE, "grid": {**BASE["grid"], "lr": [0.05, 0.1, 1.0]}, "search": quasi})
    with pytest.raises(StudyError, match=r"--extend: 2 finished trial\(s\) of study 'c' would not be trials"):
        study_plan(wider, expand_cells(wider), "extend", before)


def test_an_adaptive_search_grows_by_its_new_cells():
    bracket = {"algorithm": "bracket", "trials_per_cell": 3}
    first = spec_from_dict({**BASE, "search": bracket})
    (cell,) = expand_cells(first)
    ran = TrialInStudy("k", "run-k", "k", "ok", 0.5, 0, cell_params(cell))
    before = EarlierStudy("parent", {"k": ran}, SpecGrowth(grown=["the growth"]))
    grown = spec_from_dict({**BASE, "grid": {**BASE["grid"], "seeds": [0, 1], "batch_size": [32, 64]},
                            "search": bracket})
    plan = study_plan(grown, expand_cells(grown), "extend", before)
    assert plan.total_trials == 3 * 3  # three new cells, three trials each at most
    with pytest.raises(StudyError, match="adds no cell"):
        study_plan(first, expand_cells(first), "extend", before)
