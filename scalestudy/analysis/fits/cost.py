"""What a study cost: trials, trial-epochs, parameter updates, CPU and GPU hours.

Every trial of the table counts, whatever its fate: diverged trials (up to the epoch
they diverged at) and trials the search stopped early (status ``stopped``) ran too.
Runs that never reported a final status (running, error) are not in the table.

Hours are reserved resource-hours: a trial's training seconds (Σ epoch_seconds, the
wall time of its training and evaluation) × workers × cpus_per_worker for CPU hours,
and × workers × gpus_per_worker for GPU hours, so a GPU trial counts its CPUs too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalestudy.analysis.inputs.trial_table import stopped
from scalestudy.trial.readback import EPOCHS_COMPLETED


@dataclass(frozen=True)
class StudyCompute:
    trials: int
    finished: int  # ran every planned epoch (ok)
    diverged: int
    stopped: int  # stopped early by the search: counted here, left out of the accuracy fits
    trial_epochs: float | None  # Σ epochs completed [epochs]
    updates: float | None  # Σ final parameter updates [updates]
    train_hours: float | None  # Σ training seconds / 3600 [wall hours, summed over trials]
    cpu_hours: float | None  # Σ train_seconds × workers × cpus_per_worker / 3600
    gpu_hours: float | None  # Σ train_seconds × workers × gpus_per_worker / 3600
    notes: tuple[str, ...] = ()  # what is missing or estimated (law.json's ``compute`` holds the same fields)


def study_compute(frame: pd.DataFrame, train_seconds_source: str | None = None) -> StudyCompute:
    """Compute used by every trial of a (validated) trial table.

    ``train_seconds_source`` says how the table's train_seconds were obtained (the MLflow
    loader's provenance); it is repeated in the notes when it is an estimate."""
    notes = []
    is_stopped = stopped(frame)
    diverged = frame["diverged"].to_numpy(bool)
    trial_epochs = _total(frame, EPOCHS_COMPLETED, "epochs", notes)
    updates = _total(frame, "updates", "updates", notes)
    cpu_hours = gpu_hours = train_hours = None
    if "train_seconds" not in frame.columns:
        notes.append("no train_seconds column (epoch_seconds not logged): hours unknown")
    else:
        seconds = frame["train_seconds"].to_numpy(float)
        known = np.isfinite(seconds)
        if not known.any():
            notes.append("no trial has a training time: hours unknown")
        else:
            if not known.all():
                notes.append(f"{int((~known).sum())} trials without a training time are left out of the hours")
            if train_seconds_source and train_seconds_source.startswith("estimate"):
                notes.append(f"training time is an {train_seconds_source}")
            train_hours = float(seconds[known].sum() / 3600)
            workers = frame["workers"].to_numpy(float) if "workers" in frame.columns else np.ones(len(frame))
            if "workers" not in frame.columns:
                notes.append("no workers column: one worker per trial assumed")
            workers = np.where(np.isfinite(workers), workers, 1.0)
            cpu_hours = _hours(frame, "cpus_per_worker", "CPU", seconds * workers, known, notes)
            gpu_hours = _hours(frame, "gpus_per_worker", "GPU", seconds * workers, known, notes)
    return StudyCompute(trials=len(frame), finished=int((~diverged & ~is_stopped.to_numpy()).sum()),
                        diverged=int(diverged.sum()), stopped=int(is_stopped.sum()), trial_epochs=trial_epochs,
                        updates=updates, train_hours=train_hours, cpu_hours=cpu_hours, gpu_hours=gpu_hours,
                        notes=tuple(notes))


def _total(frame: pd.DataFrame, name: str, what: str, notes: list[str]) -> float | None:
    if name not in frame.columns:
        notes.append(f"no {name} column: {what} unknown")
        return None
    values = frame[name].to_numpy(float)
    known = np.isfinite(values)
    if not known.any():
        notes.append(f"no trial has {what}: unknown")
        return None
    if not known.all():
        notes.append(f"{int((~known).sum())} trials without {what} are left out of its sum")
    return float(values[known].sum())


def _hours(frame, name: str, kind: str, worker_seconds: np.ndarray, known: np.ndarray,
           notes: list[str]) -> float | None:
    if name not in frame.columns:
        notes.append(f"no {name} column: {kind} hours unknown")
        return None
    per_worker = frame[name].to_numpy(float)
    usable = known & np.isfinite(per_worker)
    return float((worker_seconds[usable] * per_worker[usable]).sum() / 3600)
