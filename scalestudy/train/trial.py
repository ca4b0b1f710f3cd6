"""Adapters that run the epoch loop as a Ray Tune trial.

* ``workers == 1``: :func:`tune_trial` is a Tune function trainable (actors reused
  across trials) that runs the loop in-process.
* ``workers > 1``: :func:`ddp_driver` is a Tune function trial holding no CPU; it starts
  a Ray Train ``TorchTrainer`` whose workers run :func:`ddp_worker` under PyTorch DDP,
  and ``TuneReportCallback`` forwards rank 0's reports to Tune.

Both report through :func:`_drive`, which owns checkpoints and resumption. A checkpoint
holds the loop's full state, including the metric history, so a resumed trial's first
report carries the history and the tracking callback can fill any gap.

Tune snapshots its experiment state at most every 10 s, so a driver killed in between
hands a resumed trial an older checkpoint than the trial had persisted.
:func:`persisted_checkpoints` also offers those in the trial's storage folder (named by
the stable trial key), so no epoch is trained twice and a finished trial only
re-announces its end.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from scalestudy.tracking import HISTORY_KEY, REPLAYED_KEY
from scalestudy.train.distributed import Distributed
from scalestudy.train.loop import EpochLoop

STATE_FILE = "state.pt"


def _device(config: dict[str, Any]) -> torch.device:
    if config.get("gpus_per_worker", 0) > 0 and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def persisted_checkpoints(known) -> list:
    """``known`` (what Tune's last experiment snapshot recorded) plus every checkpoint in
    the trial's storage folder; :func:`_restore` picks the furthest along."""
    import pyarrow.fs
    from ray import tune
    from ray.train import Checkpoint

    candidates = [known] if known is not None else []
    try:
        storage = tune.get_context().get_storage()
        fs, trial_path = storage.storage_filesystem, storage.trial_fs_path
        infos = fs.get_file_info(pyarrow.fs.FileSelector(trial_path, allow_not_found=True))
    except Exception:  # no Tune session or unreadable storage: Tune's own choice stands
        return candidates
    seen = {known.path.rstrip("/")} if known is not None else set()
    return candidates + [Checkpoint(path=info.path, filesystem=fs) for info in infos
                         if info.type == pyarrow.fs.FileType.Directory
                         and info.base_name.startswith("checkpoint_") and info.path.rstrip("/") not in seen]


def _restore(loop: EpochLoop, checkpoints: list) -> bool:
    """Load the readable checkpoint furthest along (a kill can cut an upload short).

    Folder names do not order checkpoints: a trial Tune restarts afresh numbers from 0 again.
    """
    best = None
    for checkpoint in checkpoints:
        try:
            with checkpoint.as_directory() as directory:
                state = torch.load(Path(directory) / STATE_FILE, weights_only=False)
        except Exception:
            continue
        if best is None or state["epoch"] > best["epoch"]:
            best = state
    if best is None:
        return False
    loop.load_state_dict(best)
    return True


def _drive(loop: EpochLoop, checkpoints: list, report: Callable[..., None], checkpoint_from: Callable,
           is_writer: bool) -> None:
    """Restore from the furthest of ``checkpoints``, then run the loop and report every epoch."""
    backfill: list[dict[str, float]] = []
    if _restore(loop, checkpoints):
        backfill = list(loop.history)
        if loop.finished and backfill:  # killed after the last checkpoint but before Tune saw the end
            report({**backfill[-1], HISTORY_KEY: json.dumps(backfill), REPLAYED_KEY: True})
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
    _drive(loop, persisted_checkpoints(tune.get_checkpoint()), tune.report, tune.Checkpoint.from_directory,
           is_writer=True)


def ddp_worker(trial: dict[str, Any]) -> None:
    """Ray Train worker function: one DDP rank (the process group is set up by Ray Train)."""
    import ray.train

    torch.set_num_threads(max(1, int(trial.get("cpus_per_worker", 1))))
    dist = Distributed.from_process_group(_device(trial))
    loop = EpochLoop(trial, dist)
    # Every rank reports (Train V2 requires it); only rank 0 writes the checkpoint.
    checkpoint = ray.train.get_checkpoint()
    _drive(loop, [checkpoint] if checkpoint is not None else [], ray.train.report, ray.train.Checkpoint.from_directory,
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
