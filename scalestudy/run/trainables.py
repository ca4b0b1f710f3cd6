"""Adapters that run the epoch loop as a Ray Tune trial.

* ``workers == 1``: :func:`tune_trial` is a Tune function trainable (actors reused
  across trials) that runs the loop in-process.
* ``workers > 1``: :func:`ddp_driver` is a Tune function trial holding no CPU; it starts
  a Ray Train ``TorchTrainer`` whose workers run :func:`ddp_worker` under PyTorch DDP,
  and ``TuneReportCallback`` forwards rank 0's reports to Tune.

Each rebuilds the trial's :class:`~scalestudy.trial.config.TrialConfig` from Tune's
``config["trial"]`` once and hands it to the loop. Both report through :func:`drive`, which owns
checkpoints and resumption. A checkpoint holds the loop's full state, including the metric
history, so a resumed trial's first report carries the history and the tracking callback can
fill any gap.

Tune snapshots its experiment state at most every 10 s, so a driver killed in between
hands a resumed trial an older checkpoint than the trial had persisted.
:func:`persisted_checkpoints` also offers those in the trial's storage folder (named by
the stable trial key), so no epoch is trained twice and a finished trial only
re-announces its end (a report whose history ends at its own epoch).

The function names are part of the storage format: Tune records a trial's trainable by name.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from scalestudy.run.storage import STATE_FILE, checkpoint_folders, furthest_state, train_run_name
from scalestudy.train.distributed import Distributed
from scalestudy.train.loop import EpochLoop
from scalestudy.trial.config import TrialConfig
from scalestudy.trial.failure import TrialError, explained, failure_of
from scalestudy.trial.record import HISTORY_KEY


def _device(config: TrialConfig) -> torch.device:
    if config.resources.gpus_per_worker > 0 and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def persisted_checkpoints(known) -> list:
    """``known`` (what Tune's last experiment snapshot recorded) plus every checkpoint in
    the trial's storage folder; :func:`drive` restores the furthest along."""
    from ray import tune
    from ray.train import Checkpoint

    candidates = [known] if known is not None else []
    try:
        storage = tune.get_context().get_storage()
        fs = storage.storage_filesystem
        found = checkpoint_folders(fs, storage.trial_fs_path)
    except Exception:  # noqa: BLE001 - no Tune session or unreadable storage: Tune's own choice stands
        return candidates
    seen = {known.path.rstrip("/")} if known is not None else set()
    return candidates + [Checkpoint(path=path, filesystem=fs) for path in found if path.rstrip("/") not in seen]


def drive(loop: EpochLoop, checkpoints: list, report: Callable[..., None], checkpoint_from: Callable,
          is_writer: bool, keep_epochs: frozenset[int] = frozenset()) -> None:
    """Restore from the furthest of ``checkpoints``, then run the loop and report every epoch; checkpoint
    every ``checkpoint_every`` epochs, at the end, and after each epoch of ``keep_epochs`` (a branched
    study's base: the points its branches start from)."""
    backfill: list[dict[str, float]] = []
    state = furthest_state(checkpoints)
    if state is not None:
        loop.load_state_dict(state)
        backfill = list(loop.history)
        if loop.finished and backfill:  # killed after the last checkpoint but before Tune saw the end
            report({**backfill[-1], HISTORY_KEY: json.dumps(backfill)})
            return
    every = loop.config.resources.checkpoint_every
    for epoch_report in loop.run():
        metrics = epoch_report.metrics()
        if backfill:
            metrics[HISTORY_KEY] = json.dumps(backfill)
            backfill = []
        if loop.epoch % every and not loop.finished and loop.epoch not in keep_epochs:
            report(metrics)
            continue
        with tempfile.TemporaryDirectory(prefix="scalestudy-ckpt-") as directory:
            if is_writer:
                torch.save(loop.state_dict(), Path(directory) / STATE_FILE)
                report(metrics, checkpoint=checkpoint_from(directory))
            else:
                report(metrics)


def _threads(config: TrialConfig) -> None:
    torch.set_num_threads(max(1, int(config.resources.cpus_per_worker)))


def tune_trial(config: dict[str, Any]) -> None:
    """Tune function trainable for one-worker trials."""
    from ray import tune

    trial = TrialConfig.from_dict(config["trial"])
    _threads(trial)
    with explained(trial):  # a failure leaves with its reason (trial.failure)
        loop = EpochLoop(trial, Distributed(device=_device(trial)))
        drive(loop, persisted_checkpoints(tune.get_checkpoint()), tune.report, tune.Checkpoint.from_directory,
              is_writer=True)


def ddp_worker(wire: dict[str, Any]) -> None:
    """Ray Train worker function: one DDP rank (the process group is set up by Ray Train)."""
    import ray.train

    trial = TrialConfig.from_dict(wire)
    _threads(trial)
    with explained(trial):
        dist = Distributed.from_process_group(_device(trial))
        loop = EpochLoop(trial, dist)
        # Every rank reports (Train V2 requires it); only rank 0 writes the checkpoint.
        checkpoint = ray.train.get_checkpoint()
        drive(loop, [checkpoint] if checkpoint is not None else [], ray.train.report,
              ray.train.Checkpoint.from_directory, is_writer=dist.rank == 0)


def ddp_driver(config: dict[str, Any]) -> None:
    """Tune function trainable for multi-worker trials: runs a TorchTrainer and waits."""
    import os

    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    trial = TrialConfig.from_dict(config["trial"])
    resources = trial.resources
    use_gpu = resources.gpus_per_worker > 0
    per_worker = {"CPU": resources.cpus_per_worker, **({"GPU": resources.gpus_per_worker} if use_gpu else {})}
    trainer = TorchTrainer(
        ddp_worker,
        train_loop_config=trial.to_dict(),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=resources.workers, use_gpu=use_gpu, resources_per_worker=per_worker,
            placement_strategy=resources.placement_strategy,
        ),
        run_config=ray.train.RunConfig(
            # Same name and storage on a restart ⇒ the trainer resumes from its checkpoint.
            name=train_run_name(trial.trial_key),
            storage_path=resources.storage_path or os.path.expanduser("~/ray_results"),
            callbacks=[TuneReportCallback()],
            failure_config=ray.train.FailureConfig(max_failures=resources.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
        ),
    )
    try:
        trainer.fit()
    except Exception as error:  # noqa: BLE001 - a worker's reason, out of Ray Train's worker-group error
        failure = failure_of(error)
        if failure is None:
            raise
        raise TrialError(failure) from None
