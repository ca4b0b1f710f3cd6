"""Failures that explain themselves (issue 21): every bad input of the user's workload is one ``error:``
line at ``validate``/``run`` time (exit 2, nothing created, no Ray started), found by the dry run; and a
trial that fails anyway carries its reason (the exception, the user's object, the file:line in the
user's code) into the summary table and its MLflow run. The user's package is real files."""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml

from scalestudy import cli
from scalestudy.data.inspect import sample_indices
from scalestudy.registry import DataError
from scalestudy.run.summary import summary_table
from scalestudy.spec import Objective, spec_from_dict
from scalestudy.train.loop import EpochLoop
from user_package import with_changes
from scalestudy.trial.config import expand_trials
from scalestudy.trial.failure import TrialError, TrialFailure, explained, failure_from, failure_of

PKG = "uw_fail"  # a package name of this module alone: registries cache what they import

MODELS = '''
import argparse
import math

import torch
from torch import nn


def build(input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))


def three_outputs(input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 3))


class Constant(nn.Module):
    def forward(self, x):
        return torch.zeros(x.shape[0], 10)


def no_parameters(input_shape, num_classes):
    return Constant()


def parses_argv(input_shape, num_classes):
    parser = argparse.ArgumentParser(prog="train.py")
    parser.add_argument("--width", type=int, required=True)
    return nn.Linear(math.prod(input_shape), parser.parse_args().width)


def interrupts(input_shape, num_classes):
    raise KeyboardInterrupt


class Fragile(nn.Module):
    """Trains until a learning rate too large for it blows its weights up; then it raises."""

    def __init__(self, features, classes):
        super().__init__()
        self.linear = nn.Linear(features, classes)

    def forward(self, x):
        if self.linear.weight.abs().max() > 100:
            raise RuntimeError("weights exploded past 100")
        return self.linear(x.flatten(1))


def fragile(input_shape, num_classes):
    return Fragile(math.prod(input_shape), num_classes)
'''

ARGV_AT_IMPORT = '''
import argparse

ARGS = argparse.ArgumentParser(prog="train.py").parse_args()


def build(input_shape, num_classes):
    raise AssertionError("never reached")
'''

DATA = '''
import time

import numpy as np
import torch
from torch.utils.data import Dataset


def load(train_size=64, test_size=16, dim=8, classes=10, seed=0):
    generator = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(classes, dim, generator=generator)

    def split(count):
        labels = torch.arange(count) % classes
        return centres[labels] + torch.randn(count, dim, generator=generator), labels

    return split(train_size), split(test_size)


def integers():
    (x, y), (tx, ty) = load()
    return (x.long(), y), (tx.long(), ty)


def strings():
    (_, y), (_, ty) = load()
    return (np.array(["a"] * 64), y), (np.array(["b"] * 16), ty)


def empty_train():
    _, test = load()
    return (torch.zeros(0, 8), torch.zeros(0, dtype=torch.long)), test


def empty_test():
    train, _ = load()
    return train, (torch.zeros(0, 8), torch.zeros(0, dtype=torch.long))


def nan_input():
    (x, y), test = load()
    x[5, 2] = float("nan")
    return (x, y), test


class Items(Dataset):
    def __init__(self, inputs, labels):
        self.inputs, self.labels = inputs, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.inputs[index], int(self.labels[index])


def nan_unsampled(bad=9):
    """Map-style, a NaN at an example the dry run's sample skips: found in the trial."""
    (x, y), (tx, ty) = load(train_size=200)
    x[bad] = float("nan")
    return Items(x, y), Items(tx, ty)


def mostly_nan(finite=()):
    """Map-style, NaN everywhere but at the examples ``finite``."""
    (x, y), (tx, ty) = load(train_size=200)
    keep = torch.zeros(200, dtype=torch.bool)
    keep[list(finite)] = True
    x[~keep] = float("nan")
    return Items(x, y), Items(tx, ty)


class AlwaysRaises(Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, index):
        raise KeyError(f"no example {index}")


def always_raises():
    return AlwaysRaises(), AlwaysRaises()


class Ragged(Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, index):
        return torch.randn(8 if index % 2 == 0 else 9), index % 10


def ragged():
    return Ragged(), Ragged()


def fake_images():
    from torchvision.datasets import FakeData

    return FakeData(64, (3, 8, 8), 10), FakeData(16, (3, 8, 8), 10)


def slow(marker):
    open(marker, "w").close()
    time.sleep(120)
'''


@pytest.fixture(scope="module")
def package_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("user_code")
    package = root / PKG
    package.mkdir()
    (package / "__init__.py").write_text("")
    for module, text in (("models", MODELS), ("data", DATA), ("argv_at_import", ARGV_AT_IMPORT)):
        (package / f"{module}.py").write_text(textwrap.dedent(text).lstrip())
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))


def raw_spec(**changes) -> dict:
    raw = {"name": "fail", "workload": {"dataset": f"{PKG}.data:load", "model": f"{PKG}.models:build", "epochs": 1},
           "grid": {"batch_size": [16], "lr": [0.05], "momentum": [0.9]}}
    return with_changes(raw, changes)


@pytest.fixture
def empty(tmp_path, monkeypatch):
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def one_error(command: str, raw: dict, where: Path) -> str:
    """``scalestudy COMMAND spec`` in ``where``: exit 2, one ``error:`` line (not the "unexpected" one), nothing
    created there, Ray not started."""
    import ray

    path = where.parent / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([command, str(path)])
    lines = err.getvalue().strip().splitlines()
    assert code == 2, (code, out.getvalue(), err.getvalue())
    assert len(lines) == 1 and lines[0].startswith("error: ") and "unexpected" not in lines[0], err.getvalue()
    assert out.getvalue() == "" and sorted(where.iterdir()) == [] and not ray.is_initialized()
    return lines[0]


@pytest.mark.parametrize(("changes", "expected"), [
    ({"workload.model": f"{PKG}.models:three_outputs"},
     f"error: workload.model: {PKG}.models:three_outputs returned outputs of shape (8, 3) for 10 classes; the model "
     "must return (batch, num_classes) logits"),
    ({"workload.model": f"{PKG}.models:no_parameters"},
     f"error: workload.model: {PKG}.models:no_parameters returned a module (Constant) with no trainable parameters"),
    ({"workload.dataset": f"{PKG}.data:integers"},
     "raised RuntimeError: mat1 and mat2 must have the same dtype, but got Long and Float; workload.dataset "
     f"{PKG}.data:integers gives integer inputs"),
    ({"workload.dataset": f"{PKG}.data:ragged"},
     f"error: workload.dataset: {PKG}.data:ragged: item 1 of the train split has an input of shape (9,)"),
    ({"workload.model": f"{PKG}.models:parses_argv"},
     f"error: workload.model: {PKG}.models:parses_argv(input_shape=(8,), num_classes=10, **model_options) raised "
     "SystemExit(2) after printing 'train.py: error:"),
    ({"workload.model": f"{PKG}.models:interrupts"},
     f"error: workload.model: {PKG}.models:interrupts(input_shape=(8,), num_classes=10, **model_options) raised "
     f"KeyboardInterrupt (at {PKG}/models.py:"),
    ({"workload.model": f"{PKG}.argv_at_import:build"},
     f"error: workload.model: importing '{PKG}.argv_at_import' raised SystemExit(2) after printing"),
    ({"workload.dataset": f"{PKG}.data:strings"}, "the train split's (inputs, targets) do not convert to tensors"),
    ({"workload.dataset": f"{PKG}.data:empty_train"},
     f"error: workload.dataset: {PKG}.data:empty_train: the train split is empty; both splits need examples"),
    ({"workload.dataset": f"{PKG}.data:empty_test"},
     f"error: workload.dataset: {PKG}.data:empty_test: the test split is empty; both splits need examples"),
    ({"workload.dataset": f"{PKG}.data:always_raises"},
     f"error: workload.dataset: {PKG}.data:always_raises: reading item 0 of the train split raised KeyError: "
     f"'no example 0' (at {PKG}/data.py:"),
    ({"workload.dataset": f"{PKG}.data:nan_input"},
     f"error: workload.dataset: {PKG}.data:nan_input: train example 5 has a non-finite input (nan); inputs must be "
     "finite"),
    ({"workload.dataset": f"{PKG}.data:fake_images"},
     f"error: workload.dataset: {PKG}.data:fake_images: item 0 of the train split has an input of type "
     "PIL.Image.Image; inputs must be tensors (for a torchvision dataset, add transforms.ToTensor())"),
    ({"optimizer": {"name": "torch.optim:Adagrad"}},
     "error: optimizer.name: torch.optim:Adagrad takes neither momentum nor betas, so the grid's momentum 0.9"),
    ({"resources.runtime_env": {"working_dir": "../spec.yaml"}},
     "error: resources.runtime_env.working_dir: '../spec.yaml' is a file; give the folder to ship"),
])
def test_a_bad_workload_is_one_line_before_anything_starts(package_root, empty, changes, expected):
    line = one_error("validate", raw_spec(**changes), empty)
    assert line.startswith(expected) or expected in line, line


@pytest.mark.parametrize("changes", [{"workload.model": f"{PKG}.models:three_outputs"},
                                     {"resources.runtime_env": {"working_dir": "../spec.yaml"}}])
def test_run_refuses_them_before_ray_and_mlflow(package_root, empty, changes):
    assert one_error("run", raw_spec(**changes), empty).startswith("error: ")


def test_a_corrupted_image_is_found_by_validate(empty, tmp_path):
    from PIL import Image

    for label in ("cats", "dogs"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for index in range(5):
            Image.new("RGB", (8, 8), (40 * index, 0, 0)).save(tmp_path / "images" / label / f"{index}.png")
    (tmp_path / "images" / "dogs" / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    raw = raw_spec(**{"workload.dataset": "image_folder", "workload.model": "mlp",
                      "workload.dataset_options": {"root": str(tmp_path / "images"), "image_size": 8,
                                                   "test_fraction": 0.2},
                      "workload.model_options": {"norm": "none", "hidden": [8]}, "grid.batch_size": [4]})
    line = one_error("validate", raw, empty)
    assert line.startswith("error: workload.dataset: image_folder: reading item ") and \
        f"(file {tmp_path / 'images' / 'dogs' / '3.png'}) raised" in line, line


def test_a_torch_optimizer_class_works_with_the_momentum_as_beta1(package_root):
    trial = expand_trials(spec_from_dict(raw_spec(optimizer={"name": "torch.optim:AdamW",
                                                             "options": {"weight_decay": 0.0}})))[0]
    loop = EpochLoop(trial)
    assert type(loop.optimizer) is torch.optim.AdamW and loop.optimizer.param_groups[0]["betas"] == (0.9, 0.999)
    assert loop.optimizer.param_groups[0]["weight_decay"] == 0.0 and loop.momentum_settable
    assert next(loop.run()).diverged == 0
    sgd = expand_trials(spec_from_dict(raw_spec(optimizer={"name": "torch.optim:SGD", "options": {"nesterov": True}})))
    assert EpochLoop(sgd[0]).optimizer.param_groups[0]["momentum"] == 0.9


def test_a_real_ctrl_c_still_interrupts_validation(package_root, tmp_path):
    """Only SystemExit and KeyboardInterrupt the user's code raises become errors: a SIGINT of the process
    while the user's loader runs is Ctrl-C, exit 130."""
    marker = tmp_path / "loading"
    path = tmp_path / "slow.yaml"
    path.write_text(yaml.safe_dump(raw_spec(**{"workload.dataset": f"{PKG}.data:slow",
                                               "workload.dataset_options": {"marker": str(marker)}})))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package_root), os.environ.get("PYTHONPATH", "")])}
    # As from a terminal: SIGINT not ignored. A suite run in the background (CI, `nohup ... &`) ignores it, the
    # child inherits that, and scalestudy rightly keeps ignoring it: the signal would be lost, not the test.
    proc = subprocess.Popen([sys.executable, "-m", "scalestudy.cli", "validate", str(path)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip() == "interrupted", err


# --- inside a trial (no Ray: the trainable's own wrapper around the loop) -----------------------------

def trial_at(lr: float, **changes):
    raw = raw_spec(**{"grid.lr": sorted({0.05, lr}), "grid.momentum": [0.0], **changes})
    return next(t for t in expand_trials(spec_from_dict(raw)) if t.lr == lr)


def failure_in(trial) -> TrialFailure:
    with pytest.raises(TrialError) as caught:
        with explained(trial):
            list(EpochLoop(trial).run())
    return caught.value.failure


def test_a_trial_failing_in_the_users_code_names_it(package_root):
    failure = failure_in(trial_at(1e4, **{"workload.model": f"{PKG}.models:fragile"}))
    line = (package_root / PKG / "models.py").read_text().splitlines().index(
        '            raise RuntimeError("weights exploded past 100")') + 1
    assert failure.reason() == (f"RuntimeError: weights exploded past 100 at {PKG}/models.py:{line} "
                                f"(workload.model {PKG}.models:fragile)")
    assert "Traceback" in failure.traceback and 'raise RuntimeError("weights exploded past 100")' in failure.traceback
    # Ray pickles it to the driver, inside its own errors.
    from ray.exceptions import RayTaskError
    from ray.train import WorkerGroupError

    error = TrialError(failure)
    wrapped = RayTaskError("tune_trial", "traceback text", WorkerGroupError("rank 0 failed", {0: error}))
    assert failure_of(pickle.loads(pickle.dumps(wrapped))) == failure
    assert failure_from(RuntimeError("actor died\nmore")).reason() == "RuntimeError: actor died"


def test_non_finite_inputs_in_a_trial_are_a_data_error_not_divergence(package_root):
    assert 9 not in sample_indices(200)  # the dry run's sample misses it: validation passes
    trial = trial_at(0.05, **{"workload.dataset": f"{PKG}.data:nan_unsampled", "workload.data": {"residency": "memory"}})
    failure = failure_in(trial)
    assert (failure.error, failure.field, failure.target) == ("DataError", "workload.dataset", f"{PKG}.data:nan_unsampled")
    assert failure.message.startswith(f"{PKG}.data:nan_unsampled: training example 9 has a non-finite input (nan)")
    # Streamed: the first batch's loss is NaN and so are its inputs.
    streamed = trial_at(0.05, **{"workload.dataset": f"{PKG}.data:mostly_nan",
                                 "workload.dataset_options": {"finite": sample_indices(200)},
                                 "workload.data": {"residency": "stream"}})
    assert "has a non-finite input (nan)" in failure_in(streamed).message
    with pytest.raises(DataError):
        list(EpochLoop(streamed).run())


def test_finite_inputs_that_blow_up_still_diverge(package_root):
    reports = list(EpochLoop(trial_at(1e6)).run())
    assert reports[-1].diverged == 1


def test_explained_lets_a_library_stop_the_trial():
    """Ray stops a trial with sys.exit(0) from its own frames: that is not the user's code failing."""
    import argparse

    with pytest.raises(SystemExit):
        with explained(_NoUsersCode()):
            argparse.ArgumentParser().exit(0)


class _NoUsersCode:
    """A trial config of built-ins alone."""

    optimizer = "sgd"

    class workload:  # noqa: N801 - the config's attribute
        model, dataset, task = "mlp", "mnist1d", "classification"


def test_the_summary_names_each_failed_trial_by_its_run_name():
    rows = [{"trial_key": f"main-B16-lr{lr}", "run_name": f"B=16 lr={lr} m=0 seed=0 constant", "section": "main",
             "schedule": "constant", "momentum": 0.0, "batch_size": 16, "lr": lr, "status": status,
             "diverged": False, "test_acc": acc, "error": error}
            for lr, status, acc, error in ((0.05, "ok", 0.8, None),
                                           (1e4, "error", None, "RuntimeError: boom at pkg/m.py:3 (workload.model "
                                                                "pkg.m:build)"))]
    table = summary_table(rows, Objective(metric="test_acc", direction="max")).splitlines()
    assert table[-2:] == ["failed trials (1):", "  B=16 lr=10000.0 m=0 seed=0 constant: RuntimeError: boom at "
                                                "pkg/m.py:3 (workload.model pkg.m:build)"]


# --- end to end: Ray Tune, MLflow ----------------------------------------------------------------------

@pytest.mark.slow
def test_a_study_with_a_failing_trial_keeps_the_others_and_says_why(package_root, tmp_path):
    from mlflow.tracking import MlflowClient

    path = tmp_path / "fragile.yaml"
    raw = raw_spec(**{"name": "fragile", "workload.model": f"{PKG}.models:fragile", "workload.epochs": 2,
                      "grid.lr": [0.05, 1e4], "grid.momentum": [0.0], "resources.max_concurrent_trials": 2})
    path.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package_root), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "scalestudy.cli", "run", str(path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]  # a trial errored
    line = (package_root / PKG / "models.py").read_text().splitlines().index(
        '            raise RuntimeError("weights exploded past 100")') + 1
    reason = f"RuntimeError: weights exploded past 100 at {PKG}/models.py:{line} (workload.model {PKG}.models:fragile)"
    summary = proc.stdout[proc.stdout.index("section "):]
    assert f"failed trials (1):\n  B=16 lr=1e+04 m=0 seed=0 constant: {reason}\n" in summary
    assert "1 ok, 0 diverged, 0 stopped early, 1 errored" in summary
    assert f"trial failed: B=16 lr=1e+04 m=0 seed=0 constant: {reason}" in proc.stdout  # as it failed
    assert "Traceback" not in proc.stdout + proc.stderr

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("fragile")
    runs = {r.info.run_name: r for r in client.search_runs(
        [experiment.experiment_id], filter_string="tags.`scalestudy.role` = 'trial'")}
    good, bad = runs["B=16 lr=0.05 m=0 seed=0 constant"], runs["B=16 lr=1e+04 m=0 seed=0 constant"]
    assert good.data.tags["scalestudy.status"] == "ok" and good.data.metrics["epoch"] == 2
    assert "scalestudy.error_reason" not in good.data.tags
    assert (bad.info.status, bad.data.tags["scalestudy.status"]) == ("FAILED", "error")
    assert bad.data.tags["scalestudy.error_reason"] == reason
    text = Path(client.download_artifacts(bad.info.run_id, "error.txt", str(tmp_path))).read_text()
    assert text.startswith("Traceback") and 'raise RuntimeError("weights exploded past 100")' in text
    assert bad.data.params["model"] == f"{PKG}.models:fragile"
