"""``bench study``: how close a study's wall time is to the training it contains.

* Study efficiency: a study of many short one-worker trials on local Ray; efficiency =
  (Σ over trials of the training seconds the loop itself measured) / concurrency /
  study wall time. 1.0 means Ray, Tune, checkpoints and MLflow cost nothing.
* DDP start-up: seconds for ``TorchTrainer.fit()`` of scalestudy's DDP worker on one
  epoch of 8 tiny steps vs an empty TorchTrainer that reports at once (Ray Train's floor).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from scalestudy.bench import BenchTable


def _study_spec(name: str, trials: int, epochs: int, train_size: int, workers: int = 1) -> dict:
    return {
        "name": name,
        "workload": {"dataset": "mnist1d", "dataset_options": {"train_size": train_size, "test_size": 500},
                     "model": "mlp", "epochs": epochs, "ghost_batch_size": 16},
        "grid": {"batch_size": [32], "lr": [0.01 * (1 + i) for i in range(trials)], "momentum": [0.9]},
        "resources": {"workers_per_trial": workers},
    }


def study_efficiency(trials: int, epochs: int, train_size: int, workdir: Path) -> dict:
    import ray
    from mlflow.tracking import MlflowClient

    from scalestudy.spec import spec_from_dict
    from scalestudy.study import max_concurrency, run_study

    spec = spec_from_dict(_study_spec("bench-study", trials, epochs, train_size))
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    result = run_study(spec, storage=str(workdir / "ray_results"), tracking_uri=uri, verbose=False)
    concurrency = max_concurrency(spec, ray.cluster_resources())
    client = MlflowClient(uri)
    runs = client.search_runs([result.run.experiment_id], "tags.`scalestudy.role` = 'trial'", max_results=10000)
    training = sum(sum(m.value for m in client.get_metric_history(r.info.run_id, "epoch_seconds")) for r in runs)
    per_trial = training / len(runs)
    return {"trials": len(runs), "concurrency": concurrency, "train s/trial": per_trial,
            "study wall s": result.wall_seconds, "ideal s": training / concurrency,
            "efficiency": training / concurrency / result.wall_seconds}


def _empty_worker(config):
    import ray.train

    ray.train.report({"step": 0})


def _time_to_first_step(train_fn, config, workers: int, storage: Path, name: str) -> float:
    import ray.train
    from ray.train.torch import TorchTrainer

    start = time.perf_counter()
    TorchTrainer(train_fn, train_loop_config=config,
                 scaling_config=ray.train.ScalingConfig(num_workers=workers, resources_per_worker={"CPU": 1}),
                 run_config=ray.train.RunConfig(name=name, storage_path=str(storage))).fit()
    return time.perf_counter() - start


def ddp_startup(workdir: Path) -> dict:
    from scalestudy.spec import spec_from_dict
    from scalestudy.train.config import expand_trials

    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1")
    from scalestudy.train.trial import ddp_worker

    # One epoch of 8 tiny steps: the time is start-up (data, model, process group), not training.
    config = expand_trials(spec_from_dict(_study_spec("bench-ddp", 1, 1, 256, workers=2)))[0]
    floor = min(_time_to_first_step(_empty_worker, {}, 2, workdir, f"empty{i}") for i in range(2))
    ours = min(_time_to_first_step(ddp_worker, config, 2, workdir, f"ours{i}") for i in range(2))
    return {"empty TorchTrainer s": floor, "scalestudy DDP s": ours, "overhead s": ours - floor,
            "ratio": ours / floor}


def bench_study(tiny: bool = False) -> BenchTable:
    import ray

    trials, epochs, train_size = (4, 1, 1000) if tiny else (24, 4, 8000)
    table = BenchTable("study", ["measure", "trials", "concurrency", "train s/trial", "study wall s", "ideal s",
                                 "efficiency", "empty TorchTrainer s", "scalestudy DDP s", "overhead s", "ratio"])
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            table.add(measure="study efficiency (W=1 trials)", **study_efficiency(trials, epochs, train_size, Path(tmp)))
            table.add(measure="DDP trial start to first step (W=2)", **ddp_startup(Path(tmp)))
        finally:
            os.chdir(cwd)
            ray.shutdown()
    table.notes.append("target: study efficiency ≥ 0.8 for trials of ≥ 1 s of training")
    return table
