"""The Tune trainables of a branched study (issue 23): the base trial, which keeps a checkpoint at
each branch point, and a branch trial, which starts from one of them.

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
from scalestudy.train.distributed import Distributed
from scalestudy.train.loop import EpochLoop
from scalestudy.trial.branch import BranchOrigin
from scalestudy.trial.config import TrialConfig
from scalestudy.trial.failure import explained


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
