"""``bench study``: how close a study's wall time is to the training it contains.

* Study efficiency: a study of many short one-worker trials on local Ray, from a cold
  start; efficiency = (Σ over trials of the training seconds the loop itself measured) /
  concurrency / study wall time. 1.0 means Ray, Tune, checkpoints and MLflow cost nothing.
  The steady state (what a long study runs at) is measured between the moment the first
  ``concurrency`` trials have finished and the last trial's end, from the driver's clock;
  the fixed start-up (Ray, the MLflow store, the first trial processes) is the rest.
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
        # Up to 8 stable learning rates, repeated over seeds: no trial diverges, keys stay unique.
        "grid": {"batch_size": [32], "lr": [0.01 * (1 + i) for i in range(min(trials, 8))], "momentum": [0.9],
                 "seeds": list(range(max(1, trials // 8)))},
        "resources": {"workers_per_trial": workers},
    }


def _completions_callback():
    """A Tune callback noting the driver's clock at each trial's end and the training it held."""
    from ray.tune import Callback

    class Completions(Callback):
        def __init__(self):
            self.training: dict[str, float] = {}
            self.ended: list[tuple[float, float]] = []

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.training[trial.trial_id] = self.training.get(trial.trial_id, 0.0) + result["epoch_seconds"]

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.ended.append((time.monotonic(), self.training.get(trial.trial_id, 0.0)))

    return Completions()


def study_efficiency(trials: int, epochs: int, train_size: int, workdir: Path) -> list[dict]:
    """The whole study from a cold start, and its steady state."""
    import ray

    from scalestudy.spec import spec_from_dict
    from scalestudy.run.concurrency import max_concurrency
    from scalestudy.run.study import run_study

    ray.shutdown()
    spec = spec_from_dict(_study_spec("bench-study", trials, epochs, train_size))
    completions = _completions_callback()
    started = time.monotonic()
    result = run_study(spec, storage=str(workdir / "ray_results"), tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}",
                       verbose=False, callbacks=(completions,))
    wall = time.monotonic() - started
    concurrency = max_concurrency(spec, ray.cluster_resources())
    training = sum(completions.training.values())
    whole = {"trials": len(completions.ended), "concurrency": concurrency, "train s/trial": training / len(result.rows),
             "study wall s": wall, "ideal s": training / concurrency, "efficiency": training / concurrency / wall}
    ended = sorted(completions.ended)
    (full_at, _), rest = ended[min(concurrency, len(ended)) - 1], ended[concurrency:]
    steady_training = sum(t for _, t in rest)
    steady_wall = ended[-1][0] - full_at
    efficiency = steady_training / concurrency / steady_wall if rest and steady_wall > 0 else float("nan")
    steady = {"trials": len(rest), "concurrency": concurrency, "train s/trial": steady_training / max(1, len(rest)),
              "study wall s": steady_wall, "ideal s": steady_training / concurrency, "efficiency": efficiency,
              # What a study of this size would take at the steady rate, subtracted from what it took.
              "fixed start-up s": wall - training / concurrency / efficiency}
    if result.counts["ok"] != len(result.rows):
        raise RuntimeError(f"bench study: every trial should finish, got {result.counts}")
    return [whole, steady]


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
    from scalestudy.trial.config import expand_trials

    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1")
    from scalestudy.run.trainables import ddp_worker

    # One epoch of 8 tiny steps: the time is start-up (data, model, process group), not training.
    config = expand_trials(spec_from_dict(_study_spec("bench-ddp", 1, 1, 256, workers=2)))[0].to_dict()
    floor = min(_time_to_first_step(_empty_worker, {}, 2, workdir, f"empty{i}") for i in range(2))
    ours = min(_time_to_first_step(ddp_worker, config, 2, workdir, f"ours{i}") for i in range(2))
    return {"empty TorchTrainer s": floor, "scalestudy DDP s": ours, "overhead s": ours - floor,
            "ratio": ours / floor}


def bench_study(tiny: bool = False) -> BenchTable:
    import ray

    # Trials of about 1 s of training on the 2-core development machine: the target's edge.
    trials, epochs, train_size = (3, 1, 1000) if tiny else (400, 1, 10000)
    table = BenchTable("study", ["measure", "trials", "concurrency", "train s/trial", "study wall s", "ideal s",
                                 "efficiency", "fixed start-up s", "empty TorchTrainer s", "scalestudy DDP s",
                                 "overhead s", "ratio"])
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            whole, steady = study_efficiency(trials, epochs, train_size, Path(tmp))
            table.add(measure=f"whole study, {trials} W=1 trials from a cold start", **whole)
            table.add(measure="steady state (after the first trials end)", **steady)
            table.add(measure="DDP trial start to first step (W=2)", **ddp_startup(Path(tmp)))
        finally:
            os.chdir(cwd)
            ray.shutdown()
    table.notes.append("target: study efficiency ≥ 0.8 for trials of ≥ 1 s of training; whole-study efficiency "
                       "tends to the steady state as the fixed start-up is amortised")
    return table
