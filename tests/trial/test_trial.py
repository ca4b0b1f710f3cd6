"""A trial's config and record: typed from the spec, a plain dict for Tune and back, keys from exact
values, configs stored by earlier versions, the status rule, the trial count."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from scalestudy.search.cells import cell_budget, planned_trials
from scalestudy.spec import GradPenalty, load_spec, spec_from_dict
from scalestudy.trial.config import Cell, TrialConfig, expand_cells, expand_trials
from scalestudy.trial.record import METRIC_KEYS, EpochReport, trial_params, trial_status

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"  # Tune files and a config stored by scalestudy 0.1
SPEC = {"name": "t", "workload": {"dataset": "synthetic", "dataset_options": {"train_size": 512}, "model": "mlp",
                                  "model_options": {"hidden": [32]}, "epochs": 3, "ghost_batch_size": 16},
        "grid": {"batch_size": [32, 64], "lr": [0.1, 0.10001], "momentum": [0.9], "seeds": [0]},
        "resources": {"cpus_per_worker": 2, "max_failures": 5}}


def test_the_config_travels_as_a_plain_json_dict_and_back_unchanged():
    for config in expand_trials(load_spec(REPO / "search_spaces" / "quickstart.yaml"))[::37]:
        wire = json.loads(json.dumps(config.to_dict()))  # what Tune stores in params.json
        assert TrialConfig.from_dict(wire) == config
        assert wire["trial_key"] == config.trial_key and wire["run_name"] == config.run_name


def test_the_config_holds_the_spec_s_typed_values_and_the_study_s_runtime():
    (config, *_) = expand_trials(spec_from_dict(SPEC), storage_path="/studies/t-20260101-000000")
    assert config.workload.model_options.hidden == (32,)  # validated options, defaults filled in
    assert config.workload.dataset_options.test_size == 512 and config.workload.dataset_size == 512
    assert config.resources.cpus_per_worker == 2.0 and config.resources.max_failures == 5
    assert config.resources.storage_path == "/studies/t-20260101-000000"
    with pytest.raises(AttributeError):
        config.lr = 1.0  # frozen


def test_train_metrics_default_to_a_clean_evaluation_and_are_recorded():
    """The gap compares test metrics with an eval-mode pass over a fixed training subset unless the
    spec asks for the running ones; the param and the trial-table row say which."""
    from scalestudy.trial.readback import row_from_result

    (config, *_) = expand_trials(spec_from_dict(SPEC))
    assert config.workload.train_metrics == "eval"
    assert trial_params(config.to_dict())["train_metrics"] == "eval"
    assert row_from_result(config, {"epoch": 3, "test_acc": 0.5, "train_acc": 0.6})["train_metrics"] == "eval"
    running = spec_from_dict({**SPEC, "workload": {**SPEC["workload"], "train_metrics": "running"}})
    assert trial_params(expand_trials(running)[0].to_dict())["train_metrics"] == "running"


def test_keys_come_from_exact_values():
    trials = expand_trials(spec_from_dict(SPEC))
    by_lr = {(t.batch_size, t.lr): t.trial_key for t in trials}
    # ε = 0.1 and 0.10001 print alike with 4 digits: same readable prefix, different trials.
    assert by_lr[32, 0.1] != by_lr[32, 0.10001]
    assert by_lr[32, 0.1].rsplit("-", 1)[0] == by_lr[32, 0.10001].rsplit("-", 1)[0] == "main-B32-lr0.1-m0.9-constant-s0"
    assert [t.trial_key for t in expand_trials(spec_from_dict(SPEC))] == [t.trial_key for t in trials]  # stable
    # Where and how a trial runs is not its identity; what it trains is.
    (other_runtime, *_) = expand_trials(spec_from_dict({**SPEC, "resources": {"cpus_per_worker": 1}}))
    assert other_runtime.trial_key == trials[0].trial_key
    (other_workload, *_) = expand_trials(spec_from_dict({**SPEC, "workload": {**SPEC["workload"], "epochs": 4}}))
    assert other_workload.trial_key != trials[0].trial_key


def test_a_config_stored_by_scalestudy_0_1_loads_with_its_key():
    wire = json.loads((DATA / "params_0.1.json").read_text())["trial"]
    config = TrialConfig.from_dict(wire)
    assert config.trial_key == "main-B32-lr0.025-m0.9-constant-s0-f759c6"  # stored, never recomputed
    assert config.lr == 0.025 and config.workload.epochs == 3 and config.resources.placement_strategy == "PACK"
    assert trial_params(config.to_dict())["trial_key"] == config.trial_key
    # Written before grad_penalty, train_metrics, precise_bn, the patched runtime and the target options.
    older = {k: v for k, v in wire.items() if k not in (
        "grad_penalty", "train_metrics", "precise_bn", "bn_batch_size", "train_storage_path", "placement_strategy",
        "max_failures", "checkpoint_every")}
    older["grad_norm_penalty"] = 0.01
    older["diagnostics"] = {"gradient_noise_scale": False, "sharpness": None, "target_accuracy": None}
    config = TrialConfig.from_dict(older)
    assert config.workload.grad_penalty == GradPenalty(kind="full_gradient", strength=0.01)
    assert config.workload.train_metrics == "running" and config.resources.max_failures == 2
    assert config.resources.storage_path is None
    with pytest.raises(ValueError, match="unknown key 'typo'"):
        TrialConfig.from_dict({**wire, "typo": 1})


def test_a_cell_kept_as_a_dict_by_scalestudy_0_1_loads():
    """A restored adaptive search holds its cells as 0.1 wrote them: a trial dict without ε, with lr_grid."""
    wire = json.loads((DATA / "params_0.1.json").read_text())["trial"]
    raw = {k: v for k, v in wire.items() if k not in ("lr", "trial_key", "run_name")} | {"lr_grid": [0.05, 0.5]}
    cell = Cell.from_dict(raw)
    assert cell.lr_grid == (0.05, 0.5) and cell.batch_size == 32
    assert cell.trial(0.05).lr == 0.05


@pytest.mark.parametrize("last, errored, status", [
    ({"epoch": 3, "diverged": 0}, False, "ok"),
    ({"epoch": 2, "diverged": 1}, False, "diverged"),
    ({"epoch": 1, "diverged": 0}, False, "stopped"),  # the search's ASHA ended it
    ({"epoch": 1, "diverged": 0}, True, "error"),
    (None, False, "error"),  # ended without a single report
    ({}, False, "error"),
])
def test_the_status_rule(last, errored, status):
    assert trial_status(expand_cells(spec_from_dict(SPEC))[0].workload, last, errored) == status


def test_metric_names_are_the_report_s_fields():
    report = EpochReport(*range(16))
    assert tuple(report.metrics()) == METRIC_KEYS and "running_loss" in METRIC_KEYS


def test_the_trial_count_is_one_rule():
    spec = spec_from_dict(SPEC)
    cells = expand_cells(spec)
    assert planned_trials(spec, cells) == len(expand_trials(spec)) == 4
    searched = spec_from_dict({**SPEC, "search": {"algorithm": "quasi_random", "trials_per_cell": 5}})
    fixed = replace(cells[0], lr_grid=(0.1,))  # one listed ε and no lr_range: not searched
    assert cell_budget(searched, cells[0]) == 5 and cell_budget(searched, fixed) == 1
    assert planned_trials(searched, [*cells, fixed]) == 2 * 5 + 1


def test_a_bracket_search_pickled_by_scalestudy_0_1_resumes():
    """Tune's own files of a bracket study that scalestudy 0.1 ran and was killed (tuner.pkl, the
    searcher's state): every class they name still loads, and the search goes on with typed cells."""
    import pickle

    from scalestudy.run.callbacks import MlflowCallback

    tuner = pickle.loads((DATA / "bracket_tuner_0.1.pkl").read_bytes())
    assert any(isinstance(callback, MlflowCallback) for callback in tuner["_run_config"].callbacks)
    search = tuner["_tune_config"].search_alg
    search.restore(str(DATA / "bracket_searcher_0.1.pkl"))
    assert all(isinstance(run.cell, Cell) for run in search.runs)
    config = TrialConfig.from_dict(search.suggest("after-restore")["trial"])
    assert config.study == "oldbracket" and config.batch_size == 64 and len(config.trial_key.rsplit("-", 1)[1]) == 8
