"""The grid's optimizer axes (weight_decay, tau_epochs, beta2, beta2_half_life_examples) and optimizer.ema:
validation, cells, trial keys, law groups and the trial table's columns."""

import hashlib
import math

import pandas as pd
import pytest
import yaml

from cli_in_process import run as cli
from scalestudy.search.cells import law_group
from scalestudy.search.early_stopping import cell_key
from scalestudy.spec import load_spec, spec_from_dict
from scalestudy.trial.config import Cell, TrialConfig, expand_cells, expand_trials
from scalestudy.trial.readback import row_from_result, rows_from_runs
from scalestudy.trial.record import trial_params

N = 1024


def spec(grid=None, optimizer=None):
    raw = {"name": "axes", "workload": {"dataset": "synthetic", "dataset_options": {"train_size": N, "test_size": 128},
                                        "model": "mlp", "model_options": {"hidden": [16]}, "epochs": 1},
           "grid": {"batch_size": [32, 128], "lr": [0.001, 0.004], "momentum": [0.9], **(grid or {})},
           "optimizer": optimizer or {"name": "adamw"}}
    return spec_from_dict(raw)


# Digests of every trial key of shipped specs, computed on main before the axes existed: a spec without
# the new fields must keep its keys (resume and extend of studies run before find their trials by them).
KEYS_ON_MAIN = [("quickstart", [], 198, "b91cf6bea65e950e"), ("adamw_lm", [], 192, "d5b05f74a542355b"),
                ("sgd_lm", [], 192, "006a3c1fe1a3396e"),
                ("quickstart", ["grid.weight_decay=0.0005"], 198, "1f5feace43d1d4e7")]


@pytest.mark.parametrize("name, overrides, count, digest", KEYS_ON_MAIN)
def test_specs_without_the_axes_keep_their_trial_keys(name, overrides, count, digest):
    trials = expand_trials(load_spec(f"search_spaces/{name}.yaml", overrides))
    assert len(trials) == count
    assert hashlib.sha256("\n".join(t.trial_key for t in trials).encode()).hexdigest()[:16] == digest


def test_tau_epoch_gives_each_trial_its_weight_decay():
    trials = expand_trials(spec({"tau_epochs": [0.5, 2.0]}))
    assert len(trials) == 2 * 2 * 2  # τ × B × ε
    for trial in trials:
        tau = trial.axes.tau_epoch
        assert trial.optimizer_options.weight_decay == pytest.approx(trial.batch_size / (trial.lr * N * tau))
        row = row_from_result(trial, {"epoch": 1, "test_acc": 0.5})
        assert row["tau_epoch"] == pytest.approx(tau) and row["optimizer"] == "adamw"
        assert TrialConfig.from_dict(trial.to_dict()) == trial
    assert len({t.trial_key for t in trials}) == len(trials)
    cells = expand_cells(spec({"tau_epochs": [0.5, 2.0]}))
    assert len({law_group(c) for c in cells}) == 2  # one law per τ: B and ε vary within
    assert len({cell_key(c.trial(c.lr_grid[0])) for c in cells}) == 4


def test_a_weight_decay_list_is_sgds_argument_and_adamws_option():
    sgd = expand_trials(spec({"weight_decay": [0.0, 5e-4]}, {"name": "sgd"}))
    assert sorted({t.weight_decay for t in sgd}) == [0.0, 5e-4]
    adamw = expand_trials(spec({"weight_decay": [0.1]}))
    assert {t.optimizer_options.weight_decay for t in adamw} == {0.1}
    assert trial_params(adamw[0].to_dict())["weight_decay"] == "0.1"
    # λ = 0.1 given as the optimizer's option is the same trial (same key), only the run name shows the axis.
    same = expand_trials(spec({}, {"name": "adamw", "options": {"weight_decay": 0.1}}))
    assert [t.to_dict()["weight_decay"] for t in same] == [t.to_dict()["weight_decay"] for t in adamw]
    assert "wd=0.1" in adamw[0].run_name and "wd=" not in same[0].run_name


def test_beta2_by_its_half_life_follows_the_batch_size():
    trials = expand_trials(spec({"beta2_half_life_examples": [4096.0]}))
    for trial in trials:
        assert trial.optimizer_options.beta2 == pytest.approx(0.5 ** (trial.batch_size / 4096))
        row = row_from_result(trial, {"epoch": 1})
        assert row["beta2_half_life_examples"] == pytest.approx(4096.0)
        assert row["beta2"] == trial.optimizer_options.beta2
    assert len({law_group(c) for c in expand_cells(spec({"beta2_half_life_examples": [4096.0]}))}) == 1
    assert len({law_group(c) for c in expand_cells(spec({"beta2": [0.95, 0.999]}))}) == 2


def test_the_ema_momentum_is_given_or_comes_from_its_half_life():
    trials = expand_trials(spec({}, {"name": "sgd", "ema": {"half_life_examples": 640}}))
    for trial in trials:
        assert trial.ema_momentum == pytest.approx(0.5 ** (trial.batch_size / 640))
        assert float(trial_params(trial.to_dict())["ema_momentum"]) == pytest.approx(trial.ema_momentum)
    fixed = expand_trials(spec({}, {"name": "sgd", "ema": {"momentum": 0.99}}))
    assert {t.ema_momentum for t in fixed} == {0.99}
    wire = {k: v for k, v in fixed[0].to_dict().items() if k not in ("lr", "trial_key", "run_name")}
    assert Cell.from_dict({**wire, "lr_grid": [0.1]}).ema == fixed[0].ema


BAD = [
    ({"beta2": [0.99]}, {"name": "sgd"}, "grid.beta2: AdamW's second-moment decay; allowed with optimizer adamw only"),
    ({"beta2_half_life_examples": [1e4]}, {"name": "sgd"}, "grid.beta2_half_life_examples: AdamW's"),
    ({"beta2": [0.99]}, {"name": "adamw", "options": {"beta2": 0.95}}, "grid.beta2: sets β2 per cell; remove"),
    ({"tau_epochs": [1.0]}, {"name": "adamw", "options": {"weight_decay": 0.1}}, "grid.tau_epochs: sets AdamW's"),
    ({"weight_decay": [0.1]}, {"name": "torch.optim:RMSprop"}, "grid.weight_decay: a weight-decay axis is for"),
    ({"tau_epochs": [1.0], "weight_decay": [0.1]}, {"name": "adamw"}, "grid: tau_epochs: gives λ by its timescale"),
    ({"beta2": [0.9], "beta2_half_life_examples": [1e4]}, {"name": "adamw"}, "grid: beta2_half_life_examples: gives"),
    ({"beta2": [1.0]}, {"name": "adamw"}, "grid.beta2[0] must be in [0, 1)"),
    ({"tau_epochs": [0.0]}, {"name": "adamw"}, "grid.tau_epochs"),
    ({}, {"name": "adamw", "ema": {"momentum": 0.9, "half_life_examples": 10}}, "optimizer.ema: give one of"),
]


@pytest.mark.parametrize("grid, optimizer, message", BAD)
def test_bad_axes_are_one_error_line_naming_the_field(tmp_path, grid, optimizer, message):
    raw = {"name": "axes", "workload": {"dataset": "synthetic", "dataset_options": {"train_size": N, "test_size": 128},
                                        "model": "mlp", "epochs": 1},
           "grid": {"batch_size": [32], "lr": [0.01], "momentum": [0.0], **grid}, "optimizer": optimizer}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    code, out, err = cli(["validate", path])
    assert code == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert list(tmp_path.iterdir()) == [path]  # nothing created


def test_the_table_reads_the_axes_back_from_mlflow_params():
    runs = pd.DataFrame({
        "run_id": ["a", "b", "c"], "params.batch_size": ["64", "64", "128"], "params.lr": ["0.01", "0.1", "0.01"],
        "params.momentum": ["0.9"] * 3, "params.seed": ["0"] * 3, "params.dataset_size": ["1000"] * 3,
        "params.epochs": ["1"] * 3, "params.optimizer": ["adamw", "sgd", ""],
        "params.optimizer_options": ['{"beta2": 0.999, "eps": 1e-08, "weight_decay": 0.5}', "{}", ""],
        "params.weight_decay": ["0.5", "0.0", "0.0"], "params.ema_momentum": ["0.99", "", None],
        "metrics.epoch": [1.0, 1.0, 1.0], "metrics.diverged": [0.0] * 3, "metrics.test_acc": [0.5] * 3,
        "metrics.ema_test_loss": [1.0, math.nan, math.nan], "tags.scalestudy.status": ["ok"] * 3})
    frame, _ = rows_from_runs(runs)
    assert list(frame["optimizer"]) == ["adamw", "sgd", "sgd"]
    assert frame["tau_epoch"][0] == pytest.approx(64 / (0.01 * 0.5 * 1000)) and frame["tau_epoch"][1:].isna().all()
    assert frame["beta2_half_life_examples"][0] == pytest.approx(64 * math.log(0.5) / math.log(0.999))
    assert frame["beta2"][1:].isna().all()
    assert frame["ema_momentum"][0] == 0.99 and frame["ema_momentum"][1:].isna().all()
    assert frame["ema_test_loss"][0] == 1.0 and math.isnan(frame["ema_test_acc"][0])


def test_an_extension_tells_cells_of_different_axes_apart():
    from scalestudy.run.continuation import cell_params
    from scalestudy.trial.axes import cell_axis_params

    for grid in ({"tau_epochs": [0.5, 2.0]}, {"weight_decay": [0.0, 0.1], "beta2": [0.9, 0.99]}):
        cells = expand_cells(spec(grid))
        assert len({cell_params(cell) for cell in cells}) == len(cells)
        for cell in cells:  # every ε of a cell is the same cell
            assert len({cell_axis_params(trial_params(cell.trial(lr).to_dict())) for lr in cell.lr_grid}) == 1


@pytest.mark.parametrize("name", ["adamw_lm_timescales", "sgd_lm_timescales", "mnist1d_adamw_timescales",
                                  "mnist1d_sgd_timescales"])
def test_the_reproduction_specs_hold_their_timescales_in_every_trial(name):
    loaded = load_spec(f"search_spaces/small/{name}.yaml")
    rows = pd.DataFrame([row_from_result(trial, {"epoch": 1}) for trial in expand_trials(loaded)])
    assert rows["tau_epoch"].to_numpy() == pytest.approx(loaded.grid.tau_epochs[0])
    if loaded.grid.beta2_half_life_examples:
        assert rows["beta2_half_life_examples"].to_numpy() == pytest.approx(loaded.grid.beta2_half_life_examples[0])
    assert rows["weight_decay"].nunique() > 1  # λ follows B and ε


def test_a_study_grows_along_the_axes_and_keeps_their_values():
    from scalestudy.run.spec_growth import compare_specs

    def dumped(grid):
        return spec(grid).model_dump(mode="json")

    grown = compare_specs(dumped({"tau_epochs": [1.0]}), dumped({"tau_epochs": [1.0, 2.0]}))
    assert grown.refused is None and grown.grown == ["grid.tau_epochs ([1.0] → [1.0, 2.0])"]
    assert compare_specs(dumped({"beta2": [0.9]}), dumped({"beta2": [0.99]})).refused[0] == "grid.beta2"
    assert compare_specs(dumped({}), dumped({"tau_epochs": [1.0]})).refused[0] == "grid.tau_epochs"
