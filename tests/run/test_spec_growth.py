"""Which spec changes grow a study (``run --extend``) and which are refused, naming the field: pure
functions of two resolved specs (no Ray, no MLflow)."""

import pytest

from scalestudy.run.spec_growth import compare_specs
from scalestudy.spec import spec_from_dict

BASE = {"name": "g", "workload": {"dataset": "synthetic", "model": "mlp", "epochs": 3},
        "grid": {"batch_size": [32], "lr": [0.05, 0.1], "momentum": [0.9], "seeds": [0]}}


def spec(*changes, search=None, **blocks):
    raw = {**BASE, **blocks, "grid": {**BASE["grid"], **blocks.get("grid", {})},
           "workload": {**BASE["workload"], **blocks.get("workload", {})}}
    if search is not None:
        raw["search"] = search
    return spec_from_dict(raw).model_dump(mode="json")


def test_more_seeds_batch_sizes_and_lrs_grow_a_grid_study():
    growth = compare_specs(spec(), spec(grid={"seeds": [0, 1], "batch_size": [32, 64], "lr": [0.05, 0.1, 0.2]}))
    assert growth.refused is None
    assert growth.grown == ["grid.batch_size ([32] → [32, 64])", "grid.lr ([0.05, 0.1] → [0.05, 0.1, 0.2])",
                            "grid.seeds ([0] → [0, 1])"]


def test_how_it_runs_may_change_freely_and_an_unchanged_spec_is_no_change():
    assert not compare_specs(spec(), spec()).changed
    free = compare_specs(spec(), spec(resources={"max_concurrent_trials": 3, "cpus_per_worker": 2},
                                      description="more cores"))
    assert not free.changed


@pytest.mark.parametrize(("blocks", "field"), [
    ({"workload": {"epochs": 5}}, "workload.epochs"),
    ({"workload": {"model_options": {"hidden": [32]}}}, "workload.model_options.hidden"),
    ({"optimizer": {"name": "adamw"}}, "optimizer.name"),
    ({"grid": {"weight_decay": 0.001}}, "grid.weight_decay"),
    ({"schedule": [{"kind": "step_decay_lr", "milestones": [2], "factor": 10}]}, "schedule"),
])
def test_a_change_of_what_trials_mean_is_refused_naming_the_field(blocks, field):
    growth = compare_specs(spec(), spec(**blocks))
    assert growth.refused is not None and growth.refused[0] == field, growth.refused


def test_dropping_a_value_is_refused_and_says_which():
    growth = compare_specs(spec(grid={"seeds": [0, 1]}), spec(grid={"seeds": [1, 2]}))
    assert growth.refused == ("grid.seeds", "0 is missing ([0, 1] → [1, 2]); an extension keeps every value the "
                                            "study ran")


def test_a_quasi_random_search_grows_its_budget_an_adaptive_one_only_its_cells():
    quasi = {"algorithm": "quasi_random", "trials_per_cell": 3}
    assert compare_specs(spec(search=quasi), spec(search={**quasi, "trials_per_cell": 5})).grown == [
        "search.trials_per_cell (3 → 5)"]
    bracket = {"algorithm": "bracket", "trials_per_cell": 4}
    more = compare_specs(spec(search=bracket), spec(search={**bracket, "trials_per_cell": 6}))
    assert more.refused[0] == "search.trials_per_cell" and "new cells only" in more.refused[1]
    assert compare_specs(spec(search=bracket), spec(search=bracket, grid={"seeds": [0, 1]})).grown == [
        "grid.seeds ([0] → [0, 1])"]
    wider = compare_specs(spec(search=bracket), spec(search=bracket, grid={"lr": [0.05, 0.1, 0.4]}))
    assert wider.refused[0] == "grid.lr"
