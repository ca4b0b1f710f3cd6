"""The dataset-size axis on any dataset (issue 21, item 5): scalestudy's seeded, nested subsample of a
training split (``scalestudy.data.subsample``), the one rule that picks it or a built-in's train_size
(``data.at_dataset_size``), the configs, keys and params it makes, validation of N against the user's
training set, and a study over two N of a user's dataset by import path run through ``scalestudy run``.
The user's package is real files in a temporary folder (``user_package``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from scalestudy import data
from scalestudy.data.base import InMemoryDataset
from scalestudy.data.stream import MapDataset, TensorPairs, as_map_dataset
from scalestudy.data.subsample import subsample_train, subset_indices
from scalestudy.spec import SpecError, spec_from_dict
from scalestudy.train.loop import EpochLoop
from scalestudy.trial.config import TrialConfig, expand_cells, expand_trials
from scalestudy.trial.record import trial_params
from user_package import write_user_package

PKG = "uw_nsize"  # a package name of this module alone: registries cache what they import


@pytest.fixture(scope="module")
def package_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("user_code")
    write_user_package(root, PKG)
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))


def spec(sizes=(64, 128), **grid):
    """A user's tensor dataset of 256 training and 64 test examples by import path, over ``sizes``."""
    return {"name": "own_n", "workload": {"dataset": f"{PKG}.data:load", "model": f"{PKG}.models:build_plain",
                                          "epochs": 1},
            "grid": {"batch_size": [16, 32], "lr": [0.05], "momentum": [0.9], "dataset_size": list(sizes), **grid}}


def blobs(train=50, test=20) -> InMemoryDataset:
    x = torch.arange(train * 3, dtype=torch.float32).reshape(train, 3)
    tx = -torch.arange(test * 3, dtype=torch.float32).reshape(test, 3)
    return InMemoryDataset("blobs", x, torch.arange(train) % 4, tx, torch.arange(test) % 4, 4, (3,))


# --- the subsample -----------------------------------------------------------------------------------

def test_subsets_are_seeded_nested_and_deterministic():
    small, large, whole = (subset_indices(1000, n, seed=0) for n in (100, 400, 1000))
    assert set(small.tolist()) <= set(large.tolist())  # a larger N holds every example of a smaller one
    assert whole.tolist() == list(range(1000))  # N = the whole split: every example once
    assert torch.equal(small, subset_indices(1000, 100, seed=0))  # the same examples in every process
    assert not torch.equal(small, subset_indices(1000, 100, seed=1))  # the study's seed picks them
    assert len(set(small.tolist())) == 100 and torch.equal(small, small.sort().values)  # distinct, ascending
    # The first N of one permutation: not the first N examples of the split, not a block.
    assert small.max() > 500 and small.tolist() != list(range(100))


@pytest.mark.parametrize("n", [0, 1001])
def test_n_outside_the_training_split_is_refused(n):
    with pytest.raises(ValueError, match=f"grid.dataset_size: N={n} .* training split of 1000: each N must be in "
                                         "1-1000"):
        subset_indices(1000, n, seed=0)


def test_an_in_memory_split_is_cut_and_the_test_split_untouched():
    full = blobs()
    cut = subsample_train(full, 20, seed=3)
    index = subset_indices(50, 20, seed=3)
    assert isinstance(cut, InMemoryDataset) and cut.train_size == 20
    assert torch.equal(cut.train_x, full.train_x[index]) and torch.equal(cut.train_y, full.train_y[index])
    assert cut.test_x is full.test_x and cut.test_y is full.test_y  # every N scored on the same test set
    assert (cut.num_classes, cut.input_shape) == (full.num_classes, full.input_shape)
    with pytest.raises(ValueError, match="grid.dataset_size: N=51"):
        subsample_train(full, 51, seed=3)


def test_a_map_style_split_stays_streamed_and_reads_the_same_examples():
    full = blobs()
    index = subset_indices(50, 20, seed=3)
    for streamed in (as_map_dataset(full), MapDataset("plain", list(zip(full.train_x, full.train_y)),
                                                      TensorPairs(full.test_x, full.test_y), 4, (3,))):
        cut = subsample_train(streamed, 20, seed=3)
        assert isinstance(cut, MapDataset) and cut.train_size == 20 and cut.test is streamed.test
        assert all(torch.equal(cut.train[i][0], full.train_x[j]) for i, j in enumerate(index.tolist()))
        memory = cut.in_memory()  # through tensors() when the split has it, else item by item
        assert torch.equal(memory.train_x, full.train_x[index]) and torch.equal(memory.train_y, full.train_y[index])
        assert torch.equal(memory.test_x, full.test_x)


# --- the one rule: a built-in's train_size, else the subsample -----------------------------------------

def test_builtins_with_train_size_make_n_themselves_any_other_is_subsampled(package_root, tmp_path):
    options, subset = data.at_dataset_size("mnist1d", {"train_size": 4000, "test_size": 500}, 1000, seed=7)
    assert (options.train_size, options.test_size, subset) == (1000, 500, None)  # their numbers as before
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(bytes(range(256)) * 8)
    options, subset = data.at_dataset_size("text_bytes", {"paths": [str(corpus)], "seq_len": 8}, 50, seed=7)
    whole, cut = data.load_dataset("text_bytes", options), data.load_dataset("text_bytes", options, subset=subset)
    index = subset_indices(whole.train_size, 50, 7)
    assert subset == data.TrainSubset(50, 7) and cut.train_size == 50 and cut.test_size == whole.test_size
    assert torch.equal(cut.in_memory().train_x, whole.in_memory().train_x[index])  # a built-in without train_size
    options, subset = data.at_dataset_size(f"{PKG}.data:load", {"train_size": 256}, 64, seed=7)
    assert options.model_dump() == {"train_size": 256} and subset == data.TrainSubset(64, 7)  # the user's kwargs kept
    loaded = data.load_dataset(f"{PKG}.data:load", options, subset=subset)
    whole = data.load_dataset(f"{PKG}.data:load", options)
    assert loaded.train_size == 64 and torch.equal(loaded.train_x, whole.train_x[subset_indices(256, 64, 7)])
    assert torch.equal(loaded.test_x, whole.test_x)


# --- the spec, the configs and the params ---------------------------------------------------------------

def test_a_users_dataset_gets_the_axis_with_n_in_config_key_and_params(package_root):
    study = spec_from_dict(spec())
    cells = expand_cells(study)
    assert sorted({c.workload.dataset_size for c in cells}) == [64, 128]
    assert {c.workload.train_subset for c in cells} == {data.TrainSubset(64, 0), data.TrainSubset(128, 0)}
    assert len({c.workload.dataset_options for c in cells}) == 1  # the user's options, the same at every N
    trials = expand_trials(study)
    assert len({t.trial_key for t in trials}) == len(trials) == 4  # N in the identity though the options agree
    trial = next(t for t in trials if t.workload.dataset_size == 128)
    wire = trial.to_dict()
    assert wire["dataset_size"] == 128 and wire["train_subset"] == {"size": 128, "seed": 0}
    assert TrialConfig.from_dict(json.loads(json.dumps(wire))) == trial  # Ray carries it as JSON
    params = trial_params(wire)
    assert (params["dataset_size"], params["dataset_subset_seed"]) == ("128", "0")
    assert "N=128" in trial.run_name
    other = expand_trials(spec_from_dict(spec(dataset_subset_seed=5)))
    assert {t.trial_key for t in other}.isdisjoint(t.trial_key for t in trials)  # another subset, other trials
    builtin = expand_trials(spec_from_dict({**spec(), "workload": {"dataset": "mnist1d", "model": "mlp", "epochs": 1,
                                                                   "dataset_options": {"train_size": 1000}}}))
    assert all("train_subset" not in t.to_dict() for t in builtin)  # built-ins: keys as before the rule
    assert "dataset_subset_seed" not in trial_params(builtin[0].to_dict())


@pytest.mark.parametrize("loader, residency", [("load", "auto"), ("load_map", "stream")])
def test_the_loop_trains_on_the_trials_n_examples(package_root, loader, residency):
    raw = spec((64,))
    raw["workload"].update(dataset=f"{PKG}.data:{loader}", data={"residency": residency})
    trial = expand_trials(spec_from_dict(raw))[0]
    loop = EpochLoop(trial, device="cpu")
    assert loop.dataset_size == loop.data.train_size == 64 and loop.data.test_size == 64
    report = next(loop.run())
    assert (report.updates, report.examples_seen) == (64 // trial.batch_size, 64)
    loop.batches.close()


def test_n_above_the_users_training_set_is_one_line_at_validation(package_root, tmp_path):
    with pytest.raises(SpecError) as caught:
        spec_from_dict(spec((64, 1000)))
    assert str(caught.value) == (f"grid.dataset_size: 1000 exceeds the training-set size 256 of dataset "
                                 f"'{PKG}.data:load' (each N is a subset of its training split)")
    path = tmp_path / "own.yaml"
    path.write_text(json.dumps(spec((64, 1000))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package_root), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "scalestudy.cli", "validate", str(path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr == f"error: {caught.value}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["own.yaml"]  # nothing started


def test_the_old_refusal_is_gone(package_root):
    """Before: ``grid.dataset_size: dataset '...' has no train_size option to vary``."""
    assert spec_from_dict(spec()).grid.dataset_size == [64, 128]
    raw = spec()
    raw["sections"] = {"law": {}, "streamed": {"workload": {"dataset": f"{PKG}.data:load_map"}}}
    assert {c.section for c in expand_cells(spec_from_dict(raw))} == {"law", "streamed"}


# --- end to end -----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_study_over_two_n_of_a_users_dataset_runs_and_analyzes(package_root, tmp_path):
    # The test loss has an interior optimum in ε in every (B, N) cell here (accuracy saturates at ties).
    raw = {**spec(batch_size=[16, 32], lr=[0.02, 0.1, 0.5, 2.5]),
           "analysis": {"objective": {"metric": "test_loss", "direction": "min"}}}
    (tmp_path / "own.yaml").write_text(json.dumps(raw))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package_root), os.environ.get("PYTHONPATH", "")])}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "scalestudy.cli", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=900)

    proc = cli("run", "own.yaml", "--quiet")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("own_n").experiment_id
    runs = client.search_runs([experiment], "tags.`scalestudy.role` = 'trial'")
    assert len(runs) == 16
    for run in runs:
        n, b = int(run.data.params["dataset_size"]), int(run.data.params["batch_size"])
        assert run.data.params["dataset_subset_seed"] == "0" and f"N={n}" in run.info.run_name
        # Trained on N examples: N/B updates and N examples in its one epoch.
        assert (run.data.metrics["updates"], run.data.metrics["examples_seen"]) == (n // b, n)
    assert sorted({int(r.data.params["dataset_size"]) for r in runs}) == [64, 128]

    proc = cli("analyze", "--experiment", "own_n", "--out", "out")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = pd.read_parquet(tmp_path / "out" / "trials.parquet")
    assert sorted(table["dataset_size"].unique()) == [64, 128] and len(table) == 16
    law = json.loads((tmp_path / "out" / "law.json").read_text())
    # The dataset-size law, as for a built-in's axis: ε* = k·B^α·N^γ over the two N.
    assert law["domain"]["dataset_size"] == [64, 128] and law["gamma"] is not None, law["reasons"]
