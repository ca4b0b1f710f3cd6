"""Several Ray nodes on one machine (``ray.cluster_utils.Cluster``), driven by the real CLI.

* DDP trials whose two workers are placed on different nodes (STRICT_SPREAD) complete
  with correct results.
* A worker node removed mid-study: its trials retry from their last checkpoint on the
  remaining nodes, the study completes, no trial is lost or duplicated.
* ``--storage`` is required on a multi-node cluster.
"""

from pathlib import Path

import pytest
import ray
import yaml
from ray.cluster_utils import Cluster

from faults import epochs_logged, reported_epochs, run_cli, start_cli, trial_histories, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster():
    # The head holds no CPU: only the Tune driver and DDP driver trials (memory only) live there.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    yield cluster, workers
    ray.shutdown()
    cluster.shutdown()


def spec_file(tmp_path: Path, **changes) -> Path:
    spec = {
        "name": "cluster",
        "workload": {"dataset": "synthetic", "dataset_options": {"train_size": 2048, "test_size": 256},
                     "model": "mlp", "model_options": {"hidden": [64]}, "epochs": 3, "ghost_batch_size": 16},
        "grid": {"batch_size": [64], "lr": [0.05], "momentum": [0.9], "seeds": [0]},
    }
    spec.update(changes)
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_storage_is_required_on_a_multi_node_cluster(cluster, tmp_path):
    c, _ = cluster
    proc = run_cli(["run", str(spec_file(tmp_path)), "--address", c.address], tmp_path)
    assert proc.returncode == 2
    assert "--storage: required on a cluster of 3 nodes" in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_ddp_workers_spread_over_nodes(cluster, tmp_path):
    c, _ = cluster
    spec = spec_file(tmp_path, resources={"workers_per_trial": 2, "placement_strategy": "STRICT_SPREAD",
                                          "max_concurrent_trials": 1})
    proc = run_cli(["run", str(spec), "--address", c.address, "--storage", str(tmp_path / "shared"), "--quiet"],
                   tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    ray.init(address=c.address)
    from ray.util.state import list_actors

    workers = list_actors(filters=[("class_name", "=", "RayTrainWorker")], detail=True)
    assert len({w.node_id for w in workers}) == 2, workers
    assert c.head_node.node_id not in {w.node_id for w in workers}

    histories = trial_histories(f"sqlite:///{tmp_path / 'mlflow.db'}", "cluster")
    (history,) = histories.values()
    assert history["test_acc"] == [1, 2, 3]
    from mlflow.tracking import MlflowClient

    (run,) = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").search_runs(
        [MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_experiment_by_name("cluster").experiment_id],
        "tags.`scalestudy.role` = 'trial'")
    assert run.data.metrics["test_acc"] > 0.5
    assert run.data.metrics["updates"] == 3 * (2048 // 64)


def test_worker_node_removed_mid_study(cluster, tmp_path):
    c, workers = cluster
    epochs = 6
    spec = spec_file(tmp_path, workload={
        "dataset": "synthetic", "dataset_options": {"train_size": 8192, "test_size": 256}, "model": "mlp",
        "model_options": {"hidden": [64]}, "epochs": epochs, "ghost_batch_size": 16},
        grid={"batch_size": [32], "lr": [0.02, 0.04, 0.08, 0.16], "momentum": [0.9]},
        resources={"max_concurrent_trials": 2, "max_failures": 3})
    driver = start_cli(["run", str(spec), "--address", c.address, "--storage", str(tmp_path / "shared"),
                        "--quiet"], tmp_path, tmp_path / "run.log")
    db = tmp_path / "mlflow.db"
    wait_for(lambda: sum(1 for e in epochs_logged(db).values() if 1 <= e < epochs) >= 2, timeout=420,
             what="two trials under way")
    c.remove_node(workers[0])  # the node and every trial process on it vanish
    c.add_node(num_cpus=1)  # capacity comes back later, as an autoscaler would
    assert driver.wait(600) == 0, (tmp_path / "run.log").read_text()[-4000:]

    histories = trial_histories(f"sqlite:///{db}", "cluster")
    assert len(histories) == 4
    for key, metrics in histories.items():
        for metric, steps in metrics.items():
            assert steps == list(range(1, epochs + 1)), (key, metric, steps)
    (study_dir,) = (tmp_path / "shared").glob("cluster-*")
    retried = [d.name for d in study_dir.iterdir() if (d / "error.txt").exists()]
    assert retried, "the node removal hit no trial"  # Tune records each failure it retried
    for trial, reported in reported_epochs(study_dir).items():
        # Retried from a checkpoint: an epoch may be reported again, but never from scratch.
        assert reported[-1] == epochs
        restarts = [b for a, b in zip(reported, reported[1:]) if b <= a]
        assert all(b > 1 for b in restarts), (trial, reported)
