"""The user's own workloads without Ray: import paths in a spec, the registries' Python API and entry
points, the dataset, model and optimizer contracts, AdamW, the lr grid's rules, and what the analysis
says of an optimizer other than SGD. The user's package is real files in a temporary folder."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from scalestudy.data.stream import MapDataset

import scalestudy
from scalestudy import data, models
from scalestudy.analysis import analyze
from scalestudy.law import ScalingLaw
from scalestudy.registry import ImportPathError, Registry
from scalestudy.spec import LinearRuleLR, SpecError, spec_from_dict
from scalestudy.testing.planted import make_planted_table
from scalestudy.train.loop import EpochLoop
from scalestudy.trial.config import TrialConfig, expand_trials
from scalestudy.trial.record import trial_params
from user_package import with_changes, write_entry_points, write_user_package

PKG = "uw_fast"  # a package name of this module alone: registries cache what they import


@pytest.fixture(scope="module")
def package_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("user_code")
    write_user_package(root, PKG)
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))


def spec(**changes):
    raw = {"name": "own", "workload": {"dataset": f"{PKG}.data:load", "model": f"{PKG}.models:build", "epochs": 2,
                                       "ghost_batch_size": 8},
           "grid": {"batch_size": [16, 32], "lr": [0.05], "momentum": [0.9]}}
    return with_changes(raw, changes)


def error_of(raw) -> str:
    with pytest.raises(SpecError) as caught:
        spec_from_dict(raw)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(("changes", "expected"), [
    ({"workload.model": "nopkg_xyz.models:build"},
     "workload.model: cannot import 'nopkg_xyz.models' (No module named 'nopkg_xyz')"),
    ({"workload.model": f"{PKG}.models:missing"}, f"workload.model: module '{PKG}.models' has no attribute 'missing'"),
    ({"workload.model": f"{PKG}.models:CONSTANT"}, f"workload.model: '{PKG}.models:CONSTANT' is a int, not callable"),
    ({"workload.model": f"{PKG}.models:bad:x"}, "workload.model: model 'uw_fast.models:bad:x' is not an import path"),
    ({"workload.model": f"{PKG}.models:not_a_module"}, "returned int; expected a torch.nn.Module"),
    ({"workload.model": f"{PKG}.models:failing"}, "raised RuntimeError: out of widgets"),
    ({"workload.model": f"{PKG}.models:no_arguments"}, "does not take the contract's 2 positional arguments"),
    ({"workload.model_options": {"depth": 3}}, "workload.model_options: uw_fast.models:build(input_shape=(8,), "
                                               "num_classes=3, **model_options): got an unexpected keyword"),
    ({"workload.dataset": f"{PKG}.data:nothing"}, f"workload.dataset: module '{PKG}.data' has no attribute 'nothing'"),
    ({"workload.dataset": f"{PKG}.data:load_three"}, "workload.dataset: uw_fast.data:load_three returned tuple (1, 2, "
                                                     "3); expected (train, test)"),
    ({"workload.dataset": f"{PKG}.data:load_bad_split"}, "returned a train split of list [1, 2, 3]"),
    ({"workload.dataset": f"{PKG}.data:load_mismatched"}, "inputs of shape (256, 8) and targets of shape (10,)"),
    ({"workload.dataset_options": {"size": 9}}, "workload.dataset_options: uw_fast.data:load(**dataset_options): got "
                                                "an unexpected keyword argument 'size'"),
    ({"optimizer": {"name": f"{PKG}.optim:not_an_optimizer"}},
     "optimizer.name: uw_fast.optim:not_an_optimizer returned object; expected a torch.optim.Optimizer"),
    ({"optimizer": {"name": f"{PKG}.optim:build_sgd", "options": {"nesterov": True}}},
     "optimizer.options: uw_fast.optim:build_sgd(params, lr=0.05, momentum=0.9, **optimizer_options): got an "
     "unexpected keyword argument 'nesterov'"),
    ({"grid.batch_size": [512]}, "grid.batch_size: 512 exceeds the training-set size 256"),
    ({"workload.model": f"{PKG}.models:build_plain"}, "workload.ghost_batch_size: must be null for a model without "
                                                      "batch-norm layers"),
    ({"workload.model": f"{PKG}.models:build_3d"}, "workload.ghost_batch_size: the model has BatchNorm3d layers, which "
                                                   "ghost batch norm cannot replace"),
    ({"workload.ghost_batch_size": None, "workload.max_device_batch_size": 8},
     "per-worker batch 16 above 8 would be split into micro-batches, which would change plain batch norm's"),
    ({"optimizer": {"name": f"{PKG}.optim:build_sign"}, "schedule": {"kind": "increase_momentum", "milestones": [1]},
      "grid.momentum": [0.5]}, "schedule: changes the momentum, but optimizer uw_fast.optim:build_sign offers no way"),
    ({"optimizer": {"name": "adamw"}, "grid.weight_decay": 0.1}, "grid.weight_decay: SGD's weight decay; optimizer "
                                                                 "adamw has its own (set optimizer.options.weight_decay)"),
    ({"optimizer": {"name": "adamw"}, "grid.nesterov": True}, "grid.nesterov: SGD's Nesterov momentum"),
    ({"optimizer": {"name": "adamw", "options": {"beta2": 1.5}}}, "optimizer.options.beta2: Input should be less"),
    ({"optimizer": {"name": "sgd", "options": {"weight_decay": 0.1}}},
     "optimizer.options: unknown option 'weight_decay' (sgd takes none: its nesterov and weight_decay are grid.nesterov"),
    ({"optimizer": {"name": "adamw"}, "grid.lr": {"reference_batch_size": 16, "reference_lr": 0.01,
                                                  "reference_momentum": 0.9, "multipliers": [1]}},
     "grid.lr.reference_momentum: the (1−m) factor is SGD's"),
    ({"optimizer": {"name": "lion"}}, "optimizer.name: unknown optimizer 'lion'; known: adamw, sgd; or an import path"),
])
def test_the_users_code_is_checked_before_anything_starts(package_root, changes, expected):
    assert expected in error_of(spec(**changes))


def test_a_section_names_its_field_and_may_change_the_optimizer(package_root):
    raw = spec(sections={"law": {}, "adam": {"optimizer": {"name": "adamw", "options": {"beta3": 1}}}})
    assert error_of(raw) == "sections.adam.optimizer.options: unknown option 'beta3'"
    raw["sections"]["adam"]["optimizer"]["options"] = {"beta2": 0.99}
    trials = {t.section: t for t in expand_trials(spec_from_dict(raw))}
    assert (trials["law"].optimizer, trials["adam"].optimizer) == ("sgd", "adamw")
    assert trials["adam"].optimizer_options.beta2 == 0.99


def test_the_cli_gives_one_line_exit_2_and_creates_nothing(package_root, tmp_path):
    path = tmp_path / "own.yaml"
    path.write_text(json.dumps(spec(**{"workload.model": f"{PKG}.models:missing"})))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package_root), os.environ.get("PYTHONPATH", "")])}
    for command in ("validate", "run"):
        proc = subprocess.run([sys.executable, "-m", "scalestudy.cli", command, str(path)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr == f"error: workload.model: module '{PKG}.models' has no attribute 'missing'\n"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["own.yaml"]  # no mlflow.db, no ray_results


def test_tensor_and_map_style_datasets_load_alike(package_root):
    tensors = data.load_dataset(f"{PKG}.data:load", {"train_size": 40, "test_size": 10})
    streamed = data.load_dataset(f"{PKG}.data:load_map", {"train_size": 40, "test_size": 10})
    assert isinstance(streamed, MapDataset)  # map-style stays map-style: the residency rule picks the path
    mapped = streamed.in_memory()
    assert torch.equal(tensors.train_x, mapped.train_x) and torch.equal(tensors.test_y, mapped.test_y)
    assert mapped.train_x.dtype == torch.float32  # the items were float64
    assert (tensors.train_size, tensors.input_shape) == (40, (8,))
    assert (tensors.num_classes, mapped.num_classes) == (3, 5)  # inferred; the attribute wins
    info = data.dataset_info(f"{PKG}.data:load_map", data.dataset_options(f"{PKG}.data:load_map", {"train_size": 40}))
    assert (info.train_size, info.input_shape, info.num_classes) == (40, (8,), 5)


def test_the_users_model_gets_ghost_batch_norm(package_root):
    from scalestudy.models.ghost_bn import GhostBatchNorm1d

    model = models.build_model(f"{PKG}.models:build", input_shape=(8,), num_classes=3, options={"width": 12},
                               ghost_batch_size=4)
    ghosts = [m for m in model.modules() if isinstance(m, GhostBatchNorm1d)]
    assert len(ghosts) == 1 and ghosts[0].ghost_batch_size == 4 and ghosts[0].num_features == 12
    assert models.has_batch_norm(f"{PKG}.models:build", {}, (8,), 3)
    assert not models.has_batch_norm(f"{PKG}.models:build_plain", {}, (8,), 3)


def test_registered_names_reach_a_fresh_process_as_import_paths(package_root):
    import importlib

    users_models = importlib.import_module(f"{PKG}.models")
    scalestudy.register_model("uw_registered", users_models.build)
    scalestudy.register_dataset("uw_blobs", f"{PKG}.data:load")
    scalestudy.register_optimizer("uw_sgd", f"{PKG}.optim:build_sgd")
    with pytest.raises(ValueError, match="already registered"):
        scalestudy.register_model("uw_registered", users_models.build)
    raw = spec(**{"workload.model": "uw_registered", "workload.dataset": "uw_blobs",
                  "optimizer": {"name": "uw_sgd", "options": {"dampening": 0.1}}})
    trial = expand_trials(spec_from_dict(raw))[0]
    assert (trial.workload.model, trial.workload.dataset, trial.optimizer) == (
        f"{PKG}.models:build", f"{PKG}.data:load", f"{PKG}.optim:build_sgd")
    assert trial.workload.has_batch_norm and trial.bn_batch_size == 8
    wire = json.loads(json.dumps(trial.to_dict()))  # what Tune carries to a worker
    assert TrialConfig.from_dict(wire) == trial
    params = trial_params(wire)
    assert (params["optimizer"], params["optimizer_options"], params["model"]) == (
        f"{PKG}.optim:build_sgd", '{"dampening": 0.1}', f"{PKG}.models:build")

    scalestudy.register_model("uw_lambda", lambda input_shape, num_classes: torch.nn.Linear(8, num_classes))
    message = error_of(spec(**{"workload.model": "uw_lambda"}))
    assert message.startswith("workload.model: model 'uw_lambda' was registered with") and \
        "which Ray workers cannot import (a lambda or a nested function has no import path)" in message


def test_entry_points_register_names_without_importing(package_root, tmp_path):
    site = tmp_path / "site"
    write_entry_points(site, "uw-workloads", {"scalestudy.models": {"uw_ep_mlp": f"{PKG}.models:build"},
                                              "scalestudy.optimizers": {"uw_ep_sgd": f"{PKG}.optim:build_sgd"}})
    sys.path.insert(0, str(site))
    try:
        registry = Registry("model", {"mlp": "scalestudy.models.mlp:MLP"}, import_paths=True,
                            entry_points="scalestudy.models")
        assert registry.names() == ["mlp", "uw_ep_mlp"] and registry.portable("uw_ep_mlp") == f"{PKG}.models:build"
        assert registry.get("uw_ep_mlp") is sys.modules[f"{PKG}.models"].build
    finally:
        sys.path.remove(str(site))
    # The CLI of an environment where that distribution is installed (a fresh process).
    path = tmp_path / "ep.yaml"
    path.write_text(json.dumps(spec(**{"workload.model": "uw_ep_mlp", "optimizer": {"name": "uw_ep_sgd"}})))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(package_root), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "scalestudy.cli", "validate", str(path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "own: valid; 2 trials" in proc.stdout and f"model {PKG}.models:build" in proc.stdout


def test_import_path_errors_without_a_spec():
    registry = Registry("model", {}, import_paths=True)
    with pytest.raises(ImportPathError, match=r"cannot import 'nopkg_xyz' \(No module named 'nopkg_xyz'\)"):
        registry.get("nopkg_xyz:build")
    assert registry.check("a.b:c.d") == "a.b:c.d"  # the syntax alone: importing waits for get
    assert Registry("search", {"grid": "m:f"}).check("grid") == "grid"
    with pytest.raises(ValueError, match="unknown search 'a.b:c'; known: grid$"):
        Registry("search", {"grid": "m:f"}).check("a.b:c")  # a registry without import paths


def test_the_sqrt_rule_grid():
    rule = dict(reference_batch_size=64, reference_lr=0.01, multipliers=[0.5, 1, 2])
    assert LinearRuleLR(**rule).lr_for(256, 0.0) == pytest.approx([0.02, 0.04, 0.08])
    assert LinearRuleLR(**rule, rule="sqrt").lr_for(256, 0.0) == pytest.approx([0.01, 0.02, 0.04])
    assert LinearRuleLR(**rule, rule="sqrt").lr_for(16, 0.0) == pytest.approx([0.0025, 0.005, 0.01])
    momentum = LinearRuleLR(**rule, rule="sqrt", reference_momentum=0.9).lr_for(64, 0.0)
    assert momentum == pytest.approx([0.05, 0.1, 0.2])  # the (1−m) factor as for the linear rule
    assert "rule: sqrt" not in error_of(spec(**{"grid.lr": {**rule, "rule": "cube"}})) and \
        "grid.lr.rule: Input should be 'linear' or 'sqrt'" in error_of(spec(**{"grid.lr": {**rule, "rule": "cube"}}))


def synthetic_trial(optimizer: dict, schedule: dict | None = None, momentum: float = 0.9, lr: float = 0.01):
    raw = {"name": "opt", "workload": {"dataset": "synthetic", "dataset_options": {"train_size": 256, "test_size": 64},
                                       "model": "mlp", "model_options": {"hidden": [32]}, "epochs": 3},
           "optimizer": optimizer, "grid": {"batch_size": [32], "lr": [lr], "momentum": [momentum]}}
    if schedule is not None:
        raw["schedule"] = schedule
    return expand_trials(spec_from_dict(raw))[0]


def test_adamw_trains_with_beta1_as_the_momentum_axis():
    trial = synthetic_trial({"name": "adamw", "options": {"beta2": 0.99, "weight_decay": 0.05}},
                            {"kind": "increase_momentum", "milestones": [2], "factor": 2, "momentum_factor": 2},
                            momentum=0.8)
    loop = EpochLoop(trial)
    assert isinstance(loop.optimizer, torch.optim.AdamW)
    reports, betas = [], []
    for report in loop.run():
        reports.append(report)
        betas.append(loop.optimizer.param_groups[0]["betas"])
    assert reports[-1].train_loss < 0.7 * reports[0].running_loss  # it learns
    assert [b[0] for b in betas] == pytest.approx([0.8, 0.8, 0.9]) and {b[1] for b in betas} == {0.99}
    assert [r.momentum for r in reports] == pytest.approx([0.8, 0.8, 0.9])
    assert loop.optimizer.param_groups[0]["weight_decay"] == 0.05
    assert all(math.isnan(r.noise_scale) for r in reports)  # SGD's g means nothing for AdamW
    params = trial_params(trial.to_dict())
    assert (params["optimizer"], params["weight_decay"], params["nesterov"]) == ("adamw", "0.05", "")
    assert json.loads(params["optimizer_options"]) == {"beta2": 0.99, "eps": 1e-8, "weight_decay": 0.05}


def test_sgd_is_unchanged_and_logs_its_noise_scale():
    trial = synthetic_trial({"name": "sgd"}, lr=0.05)
    loop = EpochLoop(trial)
    assert type(loop.optimizer) is torch.optim.SGD and loop.optimizer.param_groups[0]["momentum"] == 0.9
    report = next(loop.run())
    assert report.noise_scale == pytest.approx(0.05 / 0.1 * (256 / 32 - 1))
    params = trial_params(trial.to_dict())
    assert (params["optimizer"], params["optimizer_options"], params["weight_decay"]) == ("sgd", "{}", "0.0")


def test_the_users_optimizer_by_import_path_trains(package_root):
    trial = synthetic_trial({"name": f"{PKG}.optim:build_sgd", "options": {"dampening": 0.5}}, lr=0.1)
    loop = EpochLoop(trial)
    assert loop.optimizer.param_groups[0]["dampening"] == 0.5
    reports = list(loop.run())
    assert reports[-1].train_loss < 0.7 * reports[0].running_loss
    sign = EpochLoop(synthetic_trial({"name": f"{PKG}.optim:build_sign"}, lr=0.001))
    assert not sign.momentum_settable
    assert math.isfinite(next(sign.run()).train_loss)  # a constant momentum needs no hook


def test_analysis_of_an_adamw_study_says_why_there_is_no_noise_scale(tmp_path):
    frame = make_planted_table(0.5, 0.0, 1e-3, None, rng=3)
    frame["optimizer"] = "adamw"
    result = analyze(frame, tmp_path, log_to_mlflow=False)
    assert result.fits.optimizer == "adamw" and result.noise.value is None
    assert "noise scale g = ε/(1−m)·(N/B − 1) is SGD's" in result.noise.reason
    assert result.gap.vs_noise is None and not (tmp_path / "accuracy_vs_noise_scale.png").exists()
    law = ScalingLaw.load(tmp_path / "law.json")
    assert law.optimizer == "adamw" and law.noise_scale_opt is None
    assert math.isnan(law.predict(64).noise_scale)
    report = (tmp_path / "report.md").read_text()
    assert "Batch-size rule (adamw): α's 95 % interval" in report and "consistent with the square-root rule" in report
    assert "rule: α's 95 % interval" in result.summary()


def test_a_contract_error_survives_the_copy_ray_makes_of_a_trials_exception():
    import copy
    import pickle

    from scalestudy.registry import ContractError

    error = ContractError("options", "mypkg.models:build(...): got an unexpected keyword argument 'depth'")
    for clone in (copy.copy(error), pickle.loads(pickle.dumps(error))):
        assert (type(clone), clone.field, str(clone)) == (ContractError, error.field, str(error))


def test_a_trial_that_failed_before_its_first_report_has_its_summary_row(package_root, tmp_path):
    from ray.tune import Result

    from scalestudy.run.storage import PARAMS_FILE, StudyRun
    from scalestudy.run.study import _row

    trial = expand_trials(spec_from_dict(spec()))[0]
    run = StudyRun(name="own-1", storage_path=str(tmp_path), tracking_uri="sqlite:///x.db", experiment_id="1",
                   parent_run_id="p")
    folder = tmp_path / "own-1" / trial.trial_key
    folder.mkdir(parents=True)
    (folder / PARAMS_FILE).write_text(json.dumps({"trial": trial.to_dict()}))
    # What Tune returns for a trial whose actor never ran: no metrics, hence no config.
    result = Result(metrics=None, checkpoint=None, error=RuntimeError("actor died"), path=str(folder))
    row = _row(result, run)
    assert (row["trial_key"], row["batch_size"], row["status"], row["test_acc"]) == (
        trial.trial_key, trial.batch_size, "error", None)
