"""Adapters that run the epoch loop as a Ray Tune trial.

* ``workers == 1``: :func:`tune_trial` is a Tune function trainable (actors reused
  across trials) that runs the loop in-process.
* ``workers > 1``: :func:`ddp_driver` is a Tune function trial holding no CPU; it starts
  a Ray Train ``TorchTrainer`` whose workers run :func:`ddp_worker` under PyTorch DDP,
  and ``TuneReportCallback`` forwards rank 0's reports to Tune.

Both report through :func:`_drive`, which owns checkpoints and resumption. A checkpoint
holds the loop's full state, including the metric history, so a resumed trial's first
report carries the history and the tracking callback can fill any gap.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from scalestudy.tracking import HISTORY_KEY
from scalestudy.train.distributed import Distributed
from scalestudy.train.loop import EpochLoop

STATE_FILE = "state.pt"


def _device(config: dict[str, Any]) -> torch.device:
    if config.get("gpus_per_worker", 0) > 0 and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _drive(loop: EpochLoop, checkpoint, report: Callable[..., None], checkpoint_from: Callable, is_writer: bool) -> None:
    """Restore from ``checkpoint`` if any, then run the loop and report every epoch."""
    backfill: list[dict[str, float]] = []
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            loop.load_state_dict(torch.load(Path(directory) / STATE_FILE, weights_only=False))
        backfill = list(loop.history)
        if loop.finished and backfill:  # killed after the last checkpoint but before Tune saw the end
            report({**backfill[-1], HISTORY_KEY: json.dumps(backfill)})
            return
    every = int(loop.config.get("checkpoint_every", 1))
    for epoch_report in loop.run():
        metrics = epoch_report.metrics()
        if backfill:
            metrics[HISTORY_KEY] = json.dumps(backfill)
            backfill = []
        if loop.epoch % every and not loop.finished:
            report(metrics)
            continue
        with tempfile.TemporaryDirectory(prefix="scalestudy-ckpt-") as directory:
            if is_writer:
                torch.save(loop.state_dict(), Path(directory) / STATE_FILE)
                report(metrics, checkpoint=checkpoint_from(directory))
            else:
                report(metrics)


def tune_trial(config: dict[str, Any]) -> None:
    """Tune function trainable for one-worker trials."""
    from ray import tune

    trial = config["trial"]
    torch.set_num_threads(max(1, int(trial.get("cpus_per_worker", 1))))
    loop = EpochLoop(trial, Distributed(device=_device(trial)))
    _drive(loop, tune.get_checkpoint(), tune.report, tune.Checkpoint.from_directory, is_writer=True)


def ddp_worker(trial: dict[str, Any]) -> None:
    """Ray Train worker function: one DDP rank (the process group is set up by Ray Train)."""
    import ray.train

    torch.set_num_threads(max(1, int(trial.get("cpus_per_worker", 1))))
    dist = Distributed.from_process_group(_device(trial))
    loop = EpochLoop(trial, dist)
    # Every rank reports (Train V2 requires it); only rank 0 writes the checkpoint.
    _drive(loop, ray.train.get_checkpoint(), ray.train.report, ray.train.Checkpoint.from_directory,
           is_writer=dist.rank == 0)


def ddp_driver(config: dict[str, Any]) -> None:
    """Tune function trainable for multi-worker trials: runs a TorchTrainer and waits."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    trial = config["trial"]
    use_gpu = trial.get("gpus_per_worker", 0) > 0
    resources = {"CPU": trial.get("cpus_per_worker", 1)}
    if use_gpu:
        resources["GPU"] = trial["gpus_per_worker"]
    trainer = TorchTrainer(
        ddp_worker,
        train_loop_config=trial,
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=trial["workers"], use_gpu=use_gpu, resources_per_worker=resources,
            placement_strategy=trial.get("placement_strategy", "PACK"),
        ),
        run_config=ray.train.RunConfig(
            # Same name and storage on a restart ⇒ the trainer resumes from its checkpoint.
            name=f"train-{trial['trial_key']}",
            storage_path=trial.get("train_storage_path") or os.path.expanduser("~/ray_results"),
            callbacks=[TuneReportCallback()],
            failure_config=ray.train.FailureConfig(max_failures=trial.get("max_failures", 2)),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
        ),
    )
    trainer.fit()
