"""Where a study lives in Tune's storage (its checks: :mod:`scalestudy.run.storage_checks`).

One home for the layout (the study, ``--resume``, ``sync`` and ``interpolate`` all read it here):

    STORAGE/                                 a local folder or a URI (s3://, gs://, ...)
      STUDY-YYYYmmdd-HHMMSS/                 one Tune experiment per run of the study (StudyRun.path)
        scalestudy.json                      the StudyRun: storage, tracking URI, MLflow ids
        experiment_state-*.json, tuner.pkl   Tune's own (what Tuner.restore reads)
        TRIAL_KEY/                           a one-worker trial (Tune's folder, named by the trial key)
          params.json                        {"trial": the trial config's wire dict}
          result.json                        one JSON report per line (``sync`` replays them)
          checkpoint_NNNNNN/state.pt         the loop's state after an epoch
        train-TRIAL_KEY/checkpoint_NNNNNN/   a DDP trial's checkpoints (its Ray Train run)
        branches/                            a branched study's branch trials: a Tune experiment of its
          TRIAL_KEY/ ...                     own, each trial restored from a checkpoint of the base trial
        compare/TRIAL_KEY/ ...               its comparison runs (branching.compare), a third experiment
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scalestudy.endpoints import StudyError

STUDY_FILE = "scalestudy.json"
STATE_FILE = "state.pt"  # in each checkpoint folder: the epoch loop's state_dict()
PARAMS_FILE = "params.json"
RESULTS_FILE = "result.json"
CHECKPOINT_PREFIX = "checkpoint_"
EXPERIMENT_STATE_GLOB = "experiment_state-"
BRANCHES_FOLDER = "branches"  # a branched study's branch trials (scalestudy.run.branching)
COMPARE_FOLDER = "compare"  # its comparison runs (scalestudy.run.comparison)


def storage_filesystem(storage_path: str):
    """(pyarrow filesystem, path inside it) of a local folder or a URI such as s3://bucket/prefix."""
    import pyarrow.fs

    if "://" in storage_path:
        return pyarrow.fs.FileSystem.from_uri(storage_path)
    return pyarrow.fs.LocalFileSystem(), storage_path


def default_storage() -> str:
    return str(Path("ray_results").resolve())


def resolved_storage(storage: str | None) -> str:
    """The storage a study uses: the default, or ``storage`` (a local folder made absolute: Tune and
    ``--resume`` need it so)."""
    path = storage if storage is not None else default_storage()
    if "://" not in path and path.strip():
        path = str(Path(path).expanduser().resolve())
    return path


def train_run_name(trial_key: str) -> str:
    """A DDP trial's Ray Train run: same name and storage on a restart ⇒ it resumes from its checkpoint."""
    return f"train-{trial_key}"


@dataclass
class StudyRun:
    """Where a study lives: its Tune experiment folder and its MLflow ids (the study file)."""

    name: str
    storage_path: str
    tracking_uri: str  # credentials redacted
    experiment_id: str
    parent_run_id: str

    @property
    def path(self) -> str:
        return f"{self.storage_path.rstrip('/')}/{self.name}"

    def folder(self) -> tuple[Any, str]:
        """(filesystem, the study folder's path inside it)."""
        fs, root = storage_filesystem(self.storage_path)
        return fs, f"{root.rstrip('/')}/{self.name}"


def new_study_name(study: str) -> str:
    """The folder of a new run of ``study``: its name and the start time (``STUDY-YYYYmmdd-HHMMSS``)."""
    return f"{study}-{time.strftime('%Y%m%d-%H%M%S')}"


def write_study_file(run: StudyRun) -> None:
    fs, folder = run.folder()
    fs.create_dir(folder, recursive=True)
    with fs.open_output_stream(f"{folder}/{STUDY_FILE}") as out:
        out.write(json.dumps(asdict(run), indent=2).encode())


def _study_runs(storage_path: str, study: str | None = None) -> list[StudyRun]:
    """Every readable study file directly under ``storage_path`` (of runs of ``study`` only, when
    given), oldest first."""
    import pyarrow.fs

    fs, root = storage_filesystem(storage_path)
    try:
        entries = fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
    except OSError:
        return []
    pattern = re.compile(rf"{re.escape(study)}-\d{{8}}-\d{{6}}" if study is not None else ".*")
    runs = []
    for name in sorted(e.base_name for e in entries
                       if e.type == pyarrow.fs.FileType.Directory and pattern.fullmatch(e.base_name)):
        try:
            with fs.open_input_stream(f"{root.rstrip('/')}/{name}/{STUDY_FILE}") as stream:
                runs.append(StudyRun(**json.loads(stream.read())))
        except (OSError, TypeError, ValueError):
            continue
    return runs


def find_latest_run(storage_path: str, study_name: str) -> StudyRun | None:
    """The newest run of this study under ``storage_path`` (``--resume``, ``sync``)."""
    runs = _study_runs(storage_path, study_name)
    return runs[-1] if runs else None


def study_of_parent(storage_path: str, parent_run_id: str) -> StudyRun:
    """The study run whose MLflow parent run is ``parent_run_id`` (``interpolate``)."""
    for run in _study_runs(storage_path):
        if run.parent_run_id == parent_run_id:
            return run
    raise StudyError(f"no study folder under {storage_path} belongs to parent run {parent_run_id} "
                     "(pass the --storage the study ran with)")


# --- trials --------------------------------------------------------------------------------------

def trial_folders(run: StudyRun) -> list[str]:
    """The study's trial folders (Tune's, one per trial it created), sorted; a DDP trial's Ray Train
    run folder is not one."""
    import pyarrow.fs

    fs, folder = run.folder()
    entries = fs.get_file_info(pyarrow.fs.FileSelector(folder, allow_not_found=True))
    names = {e.base_name: e.path for e in entries if e.type == pyarrow.fs.FileType.Directory}
    return sorted(path for name, path in names.items()
                  if not (name.startswith("train-") and name[len("train-"):] in names)
                  and name not in (BRANCHES_FOLDER, COMPARE_FOLDER))


def read_results(fs, trial_folder: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(the trial config's wire dict, Tune's results in order) from ``result.json``; lines cut short
    by a driver that died mid-write are skipped."""
    try:
        with fs.open_input_stream(f"{trial_folder}/{RESULTS_FILE}") as stream:
            lines = stream.read().decode().splitlines()
    except OSError:
        return None, []
    config, results = None, []
    for line in lines:
        if not line.strip():
            continue
        try:
            result = json.loads(line)
        except json.JSONDecodeError:
            continue
        config = config or result.get("config", {}).get("trial")
        results.append(result)
    return config, results


def tune_statuses(run: StudyRun) -> dict[str, str]:
    """Trial folder name → Tune's status (PENDING, RUNNING, TERMINATED, ERROR, ...) in the newest
    experiment snapshot; empty when there is none or Tune's format is not the one known here."""
    import pyarrow.fs

    fs, folder = run.folder()
    try:
        entries = fs.get_file_info(pyarrow.fs.FileSelector(folder, allow_not_found=True))
        snapshots = sorted(e.path for e in entries if e.base_name.startswith(EXPERIMENT_STATE_GLOB))
        if not snapshots:
            return {}
        with fs.open_input_stream(snapshots[-1]) as stream:
            state = json.loads(stream.read())
        statuses = {}
        for trial_json, _ in state["trial_data"]:
            trial = json.loads(trial_json)
            statuses[Path(trial["relative_logdir"]).name] = trial["status"]
        return statuses
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def trial_config(run: StudyRun, trial_key: str) -> dict[str, Any]:
    """The wire dict Tune stored for a one-worker or DDP trial (its ``params.json``)."""
    fs, folder = run.folder()
    with fs.open_input_stream(f"{folder}/{trial_key}/{PARAMS_FILE}") as stream:
        return json.loads(stream.read())["trial"]


def checkpoint_folders(fs, folder: str) -> list[str]:
    """The ``checkpoint_*`` folders in ``folder`` (none when it does not exist), by name."""
    import pyarrow.fs

    entries = fs.get_file_info(pyarrow.fs.FileSelector(folder, allow_not_found=True))
    return sorted(e.path for e in entries
                  if e.type == pyarrow.fs.FileType.Directory and e.base_name.startswith(CHECKPOINT_PREFIX))


def final_state(run: StudyRun, trial_key: str) -> dict[str, Any]:
    """The loop state of a trial's newest checkpoint, one-worker or DDP, on the CPU."""
    import io

    import torch

    fs, folder = run.folder()
    found = checkpoint_folders(fs, f"{folder}/{trial_key}") or checkpoint_folders(
        fs, f"{folder}/{train_run_name(trial_key)}")
    if not found:
        raise StudyError(f"trial {trial_key} has no checkpoint under {run.path}")
    with fs.open_input_stream(f"{found[-1]}/{STATE_FILE}") as stream:
        return torch.load(io.BytesIO(stream.read()), map_location="cpu", weights_only=False)


def furthest_state(checkpoints: list) -> dict[str, Any] | None:
    """The readable loop state furthest along among Ray ``Checkpoint`` s (a kill can cut an upload
    short). Folder names do not order them: a trial Tune restarts afresh numbers from 0 again."""
    import torch

    best = None
    for checkpoint in checkpoints:
        try:
            with checkpoint.as_directory() as directory:
                state = torch.load(Path(directory) / STATE_FILE, weights_only=False)
        except Exception:  # noqa: BLE001 - unreadable or cut short: another one may do
            continue
        if best is None or state["epoch"] > best["epoch"]:
            best = state
    return best
