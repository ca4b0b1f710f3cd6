"""A recorded study: the trials its law was fitted on, cell by cell, ready to be looked up.

A replay answers a search's trials from a trial table as ``analyze`` writes it (trials.parquet), so
the study is read the way the analysis reads it: validated as a trial table, then the law's trials
(:func:`~scalestudy.analysis.fits.study.law_trials`: constant schedule, one section, no trial stopped
early). Per (N, B, m) cell it keeps the recorded lrs and the row of each (lr, seed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from scalestudy.analysis.errors import AnalysisError
from scalestudy.analysis.fits.study import law_trials
from scalestudy.analysis.inputs.trial_table import TrialTable, load_trials_from_parquet, objective_of
from scalestudy.spec import Objective
from scalestudy.trial.readback import EPOCHS_COMPLETED, EPOCHS_PLANNED

EPOCHS_RUN = "epochs_run"  # what a trial cost: epochs it ran (a diverged one: until it diverged) [epochs]
MIN_SEEDS = 2  # a seed permutation needs two to differ between repetitions
MIN_BATCH_SIZES = 3  # a law with a 95 % interval of α needs more cells than its parameters

CellKey = tuple[int, int, float]  # (N, B, m)


@dataclass(frozen=True)
class RecordedCell:
    """One (N, B, m) cell of a recorded study."""

    dataset_size: int
    batch_size: int
    momentum: float
    lrs: tuple[float, ...]  # the distinct recorded lrs, ascending
    rows: dict[tuple[float, int], int]  # (lr, seed) → row of RecordedStudy.trials

    def seeds_at(self, lr: float) -> list[int]:
        return sorted(seed for at, seed in self.rows if at == lr)


@dataclass(frozen=True)
class RecordedStudy:
    name: str
    trials: pd.DataFrame  # the law's trials, index 0..n-1, with EPOCHS_RUN
    cells: dict[CellKey, RecordedCell]
    seeds: tuple[int, ...]  # every recorded seed, ascending
    objective: Objective
    epochs: int  # the trials' planned epochs (the largest, where they differ)
    notes: tuple[str, ...]  # what was left out of the table, for the report

    @property
    def batch_sizes(self) -> list[int]:
        return sorted({key[1] for key in self.cells})

    @property
    def momenta(self) -> list[float]:
        return sorted({key[2] for key in self.cells})

    @property
    def dataset_sizes(self) -> list[int]:
        return sorted({key[0] for key in self.cells})

    @property
    def trial_epochs(self) -> float:
        """What the whole recorded study cost [trial-epochs]."""
        return float(self.trials[EPOCHS_RUN].sum())

    @classmethod
    def from_parquet(cls, path: str | Path, what: str = "--replay") -> RecordedStudy:
        """The study of a trials.parquet; any problem is one :class:`AnalysisError` line starting
        ``WHAT PATH:``."""
        path = Path(path)
        prefix = f"{what} {path}"
        try:
            table = load_trials_from_parquet(path)
        except AnalysisError as error:
            reason = str(error).removeprefix(f"{path}: ")
            raise AnalysisError(f"{prefix}: {reason}") from None
        return cls.from_table(table, _spec_name(path.stem), prefix)

    @classmethod
    def from_table(cls, table: TrialTable | pd.DataFrame, name: str, where: str = "trial table") -> RecordedStudy:
        if not isinstance(table, TrialTable):
            try:
                table = TrialTable.from_frame(table, where=where)
            except AnalysisError as error:
                raise AnalysisError(f"{where}: {str(error).removeprefix(f'{where}: ')}") from None
        frame, notes = law_trials(table.frame)
        if frame.empty:
            raise AnalysisError(f"{where}: no constant-schedule trial that finished or diverged: nothing the "
                                "law is fitted on to replay")
        frame = with_epochs_run(frame, where)
        seeds = sorted(int(s) for s in frame["seed"].unique())
        batch_sizes = sorted(int(b) for b in frame["batch_size"].unique())
        if len(seeds) < MIN_SEEDS:
            raise AnalysisError(f"{where}: the law's trials have {len(seeds)} seed ({seeds[0]}); a replay needs "
                                f"at least {MIN_SEEDS} (it permutes them between repetitions)")
        if len(batch_sizes) < MIN_BATCH_SIZES:
            raise AnalysisError(f"{where}: the law's trials have {len(batch_sizes)} batch sizes "
                                f"({', '.join(map(str, batch_sizes))}); a law with an interval of α needs at least "
                                f"{MIN_BATCH_SIZES}")
        frame, repeated = _first_of_each(frame)
        if repeated:
            notes.append(f"{repeated} trials repeat an earlier (N, B, m, lr, seed): the first of each is replayed")
        planned = frame[EPOCHS_PLANNED] if EPOCHS_PLANNED in frame.columns else frame[EPOCHS_RUN]
        epochs = int(np.nanmax(planned.to_numpy(float)))
        return cls(name=name, trials=frame, cells=_cells(frame), seeds=tuple(seeds), objective=objective_of(frame),
                   epochs=max(1, epochs), notes=tuple(notes))


def with_epochs_run(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """The table with :data:`EPOCHS_RUN`: epochs_completed, or the planned epochs where it is missing."""
    if EPOCHS_COMPLETED not in frame.columns and EPOCHS_PLANNED not in frame.columns:
        raise AnalysisError(f"{where}: neither {EPOCHS_COMPLETED!r} nor {EPOCHS_PLANNED!r} is a column: the "
                            "replay cannot count what its trials cost")
    completed = frame[EPOCHS_COMPLETED] if EPOCHS_COMPLETED in frame.columns else frame[EPOCHS_PLANNED]
    planned = frame[EPOCHS_PLANNED] if EPOCHS_PLANNED in frame.columns else completed
    run = completed.fillna(planned).astype(float)
    if run.isna().any() or (run < 0).any():
        raise AnalysisError(f"{where}: {int(run.isna().sum() + (run < 0).sum())} trials without a number of "
                            "epochs run: the replay cannot count what they cost")
    return frame.assign(**{EPOCHS_RUN: run})


def _first_of_each(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    repeated = frame.duplicated(["dataset_size", "batch_size", "momentum", "lr", "seed"])
    return frame[~repeated].reset_index(drop=True), int(repeated.sum())


def _cells(frame: pd.DataFrame) -> dict[CellKey, RecordedCell]:
    cells = {}
    for (size, batch, momentum), group in frame.groupby(["dataset_size", "batch_size", "momentum"]):
        rows = {(float(lr), int(seed)): int(i) for i, lr, seed in zip(group.index, group["lr"], group["seed"])}
        cells[(int(size), int(batch), float(momentum))] = RecordedCell(
            int(size), int(batch), float(momentum), tuple(sorted({lr for lr, _ in rows})), rows)
    return cells


def _spec_name(stem: str) -> str:
    """A study name a spec accepts, from a file's name."""
    return (re.sub(r"[^A-Za-z0-9_.-]", "_", stem).lstrip("_.-") or "table")[:80]
