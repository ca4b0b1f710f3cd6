"""The user's code reaches every Ray node through the spec's ``resources.runtime_env`` (issue 13, item 2).

A two-node ``ray.cluster_utils.Cluster`` on this machine: the head holds no CPU, so every one-worker
trial (one CPU) must run on the second node. The user's package exists only in a temporary folder
that is on no one's path: not the driver's working directory (which Ray puts on the workers' path),
not ``PYTHONPATH``. The spec ships it with ``py_modules``, and sets ``EXPECT_SHIPPED_COPY`` for the
workers: the package's model builder then refuses to run unless it was imported from Ray's shipped
copy (``runtime_resources/``), so a trial that found the package some other way would fail.

Without ``runtime_env`` the driver itself cannot import the package (it is on no path), and
``scalestudy run`` says so in one line before anything starts. What a worker on another machine does
without it (ModuleNotFoundError in the trial) cannot be shown on one machine, whose nodes share the
file system and the driver's working directory, so it is not asserted here.
"""

from pathlib import Path

import pytest
import ray
import yaml
from mlflow.tracking import MlflowClient
from ray.cluster_utils import Cluster

from faults import run_cli
from user_package import write_user_package

pytestmark = pytest.mark.slow

PKG = "uw_shipped"  # a name no other test uses: the package exists only in this test's temporary folder


@pytest.fixture
def two_nodes():
    # Head with no CPU (the driver trial's memory only); the second node holds the trials.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    worker = cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    yield cluster, worker
    ray.shutdown()
    cluster.shutdown()


def test_runtime_env_ships_the_users_package_to_the_worker_node(two_nodes, tmp_path):
    cluster, worker = two_nodes
    package = write_user_package(tmp_path / "code", PKG)
    workdir = tmp_path / "work"
    workdir.mkdir()
    spec = {
        "name": "shipped",
        "workload": {"dataset": f"{PKG}.data:load", "dataset_options": {"train_size": 512, "test_size": 128},
                     "model": f"{PKG}.models:build", "epochs": 2, "ghost_batch_size": 8},
        "optimizer": {"name": f"{PKG}.optim:build_sgd"},
        "grid": {"batch_size": [32, 64], "lr": [0.1], "momentum": [0.9], "seeds": [0]},
        "resources": {"max_concurrent_trials": 2,
                      "runtime_env": {"py_modules": [str(package)], "env_vars": {"EXPECT_SHIPPED_COPY": "1"}}},
    }
    without = {**spec, "resources": {"max_concurrent_trials": 2}}
    (workdir / "without.yaml").write_text(yaml.safe_dump(without))
    proc = run_cli(["run", "without.yaml", "--address", cluster.address, "--storage", str(tmp_path / "shared")],
                   workdir)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stderr == f"error: workload.dataset: cannot import '{PKG}.data' (No module named '{PKG}')\n"
    assert sorted(p.name for p in workdir.iterdir()) == ["without.yaml"]  # no mlflow.db, nothing started

    (workdir / "shipped.yaml").write_text(yaml.safe_dump(spec))
    proc = run_cli(["run", "shipped.yaml", "--address", cluster.address, "--storage", str(tmp_path / "shared"),
                    "--quiet"], workdir)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("shipped").experiment_id],
                              "tags.`scalestudy.role` = 'trial'")
    assert len(runs) == 2
    for run in runs:
        # Trained by the user's code as shipped: the builder raises anywhere else, which would be an error.
        assert run.data.tags["scalestudy.status"] == "ok", run.data.tags
        assert run.data.params["model"] == f"{PKG}.models:build"
        assert run.data.metrics["epoch"] == 2
        assert run.data.metrics["test_acc"] > 0.6  # three well-separated clusters: chance is 1/3

    # Where the trials ran: Tune's trial actors, all on the second node (the head has no CPU for them).
    ray.init(address=cluster.address)
    from ray.util.state import list_actors

    actors = list_actors(detail=True, limit=1000)
    trials = [a for a in actors if a.class_name == "ImplicitFunc"]  # Tune's actor for a function trainable
    assert trials, [a.class_name for a in actors]
    # (An actor Tune asked for and dropped before Ray placed it has no node.)
    assert {a.node_id for a in trials if a.node_id is not None} == {worker.node_id}, trials
