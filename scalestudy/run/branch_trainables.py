"""The Tune trainables of a branched study (issue 23): the base trial, which keeps a checkpoint at
each branch point, a branch trial, which starts from one of them, and a staged comparison run.

A branch is a Tune trial of its own (its own folder in the study's ``branches/`` experiment, its
own checkpoints): on its first start it loads the base's checkpoint from the study's storage
(model, optimizer state, counts of updates and examples, the RNG and the noise-scale estimator), forgets
the base's metric history (its MLflow run holds its window only) and trains its window; restarted
(a failure, ``--resume``), it goes on from its own furthest checkpoint like any trial.

One-worker trials only (the spec refuses branching with workers_per_trial > 1 for now). The
function names are part of the storage format: Tune records a trial's trainable by name.
"""

from __future__ import annotations

import io
from typing import Any

import torch

from scalestudy.run.storage import STATE_FILE, furthest_state, storage_filesystem
from scalestudy.run.trainables import _device, _threads, drive, persisted_checkpoints
from scalestudy.schedules import stage_at
from scalestudy.train.distributed import Distributed
from scalestudy.train.loop import EpochLoop
from scalestudy.trial.branch import BranchOrigin
from scalestudy.trial.config import TrialConfig
from scalestudy.trial.failure import explained
from scalestudy.trial.stages import StagedRun


def branch_base_trial(config: dict[str, Any], keep_epochs: tuple[int, ...] = ()) -> None:
    """The base run: a one-worker trial that also checkpoints after each epoch of ``keep_epochs``."""
    from ray import tune

    trial = TrialConfig.from_dict(config["trial"])
    _threads(trial)
    with explained(trial):
        loop = EpochLoop(trial, Distributed(device=_device(trial)))
        drive(loop, persisted_checkpoints(tune.get_checkpoint()), tune.report, tune.Checkpoint.from_directory,
              is_writer=True, keep_epochs=frozenset(keep_epochs))


def load_base_state(storage_path: str, origin: BranchOrigin) -> dict[str, Any]:
    """The base's loop state at the branch's checkpoint, on the CPU."""
    fs, _ = storage_filesystem(storage_path)
    with fs.open_input_stream(f"{origin.checkpoint_path}/{STATE_FILE}") as stream:
        return torch.load(io.BytesIO(stream.read()), map_location="cpu", weights_only=False)


def branch_trial(config: dict[str, Any], origins: dict[str, dict[str, Any]] | None = None,
                 storage_path: str = "") -> None:
    """A branch: ``origins`` maps each branch's trial key to its :class:`BranchOrigin`'s dict."""
    from ray import tune

    trial = TrialConfig.from_dict(config["trial"])
    origin = BranchOrigin.from_dict((origins or {})[trial.trial_key])
    _threads(trial)
    with explained(trial):
        loop = EpochLoop(trial, Distributed(device=_device(trial)))
        own = persisted_checkpoints(tune.get_checkpoint())
        if furthest_state(own) is None:  # first start: from the base's checkpoint
            state = load_base_state(storage_path, origin)
            if state["epoch"] != origin.epoch:
                raise RuntimeError(f"the base's checkpoint {origin.checkpoint_path} holds epoch {state['epoch']}, "
                                   f"the branch expects {origin.epoch}")
            loop.load_state_dict(state)
            loop.history = []  # the base's epochs are in the base's run; the branch's run holds its window
            own = []
        drive(loop, own, tune.report, tune.Checkpoint.from_directory, is_writer=True)


def staged_trial(config: dict[str, Any], plans: dict[str, dict[str, Any]] | None = None) -> None:
    """A comparison run (``trial.stages``): from scratch through its stages, one loop per stage, each
    starting from the state the one before ended with; ``plans`` maps trial keys to StagedRun dicts.
    Restarted, it goes on from its furthest checkpoint, in the stage that holds it."""
    from ray import tune

    trial = TrialConfig.from_dict(config["trial"])
    plan = StagedRun.from_dict((plans or {})[trial.trial_key])
    starts = [stage.start_epoch for stage in plan.stages]
    _threads(trial)
    with explained(trial):
        device = _device(trial)
        own = persisted_checkpoints(tune.get_checkpoint())
        state = furthest_state(own)
        index = stage_at(starts, state["epoch"] if state is not None else 0)
        checkpoints = own
        for stage in range(index, len(plan.stages)):
            loop = EpochLoop(plan.stage_config(trial, stage), Distributed(device=device))
            if state is not None and not checkpoints:
                loop.load_state_dict(state)
            drive(loop, checkpoints, tune.report, tune.Checkpoint.from_directory, is_writer=True,
                  keep_epochs=frozenset({loop.epochs}))
            if loop.history and loop.history[-1]["diverged"]:
                return  # divergence is data: the run ends here, as any trial
            state, checkpoints = loop.state_dict(), []
