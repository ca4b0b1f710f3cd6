"""Find and load a finished trial's final weights from the study's Ray storage.

A trial's MLflow run names its study (the parent run id) and its trial key; the study's
``scalestudy.json`` in Tune storage maps the parent run to a folder, and the trial's
checkpoints live in ``<folder>/<trial_key>/checkpoint_*`` (one-worker trials) or
``<folder>/train-<trial_key>/checkpoint_*`` (DDP trials, written by Ray Train).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from scalestudy.study import STUDY_FILE, StudyError, StudyRun, _filesystem

STATE_FILE = "state.pt"


@dataclass
class TrialState:
    run_id: str
    label: str  # the run's name, for figures
    config: dict[str, Any]  # the trial config (from Tune's params.json)
    state: dict[str, Any]  # the loop's checkpoint: model, optimizer, history, ...


def _study_for_parent(storage_path: str, parent_run_id: str) -> StudyRun:
    import pyarrow.fs

    fs, root = _filesystem(storage_path)
    for entry in fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True)):
        if entry.type != pyarrow.fs.FileType.Directory:
            continue
        try:
            with fs.open_input_stream(f"{entry.path}/{STUDY_FILE}") as stream:
                run = StudyRun(**json.loads(stream.read()))
        except (OSError, FileNotFoundError, TypeError, ValueError):
            continue
        if run.parent_run_id == parent_run_id:
            return run
    raise StudyError(f"no study folder under {storage_path} belongs to parent run {parent_run_id} "
                     "(pass the --storage the study ran with)")


def _latest_checkpoint(fs, folder: str) -> str | None:
    import pyarrow.fs

    entries = fs.get_file_info(pyarrow.fs.FileSelector(folder, allow_not_found=True))
    checkpoints = sorted(e.path for e in entries if e.base_name.startswith("checkpoint_"))
    return checkpoints[-1] if checkpoints else None


def load_trial_state(run_id: str, tracking_uri: str, storage_path: str) -> TrialState:
    import io

    import torch
    from mlflow.exceptions import MlflowException

    from scalestudy import tracking

    try:
        run = tracking.client(tracking_uri).get_run(run_id)
    except MlflowException:
        raise StudyError(f"no MLflow run {run_id!r} at {tracking.redact_uri(tracking_uri)}") from None
    tags = run.data.tags
    if tags.get(tracking.ROLE_TAG) != "trial":
        raise StudyError(f"run {run_id} is not a scalestudy trial run")
    study = _study_for_parent(storage_path, tags[tracking.PARENT_TAG])
    fs, root = _filesystem(study.storage_path)
    key = tags[tracking.KEY_TAG]
    base = f"{root}/{study.name}"
    checkpoint = _latest_checkpoint(fs, f"{base}/{key}") or _latest_checkpoint(fs, f"{base}/train-{key}")
    if checkpoint is None:
        raise StudyError(f"trial {key} has no checkpoint under {study.path}")
    with fs.open_input_stream(f"{base}/{key}/params.json") as stream:
        config = json.loads(stream.read())["trial"]
    with fs.open_input_stream(f"{checkpoint}/{STATE_FILE}") as stream:
        state = torch.load(io.BytesIO(stream.read()), map_location="cpu", weights_only=False)
    return TrialState(run_id=run_id, label=run.info.run_name or key, config=config, state=state)
