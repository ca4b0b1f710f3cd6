"""A search's trials answered from a recorded study: looked up, never trained or interpolated.

:class:`RecordedAnswers` is the ``evaluate`` of :func:`~scalestudy.search.replay.replay`. A proposed
trial (N, B, m, ε, seed s) is answered by one recorded row:

* ε snaps to the nearest recorded lr of its (N, B, m) cell in ln ε (a proposal outside the cell's
  recorded range snaps to its end); a snap by more than :data:`FAR_SNAP` is counted;
* s maps through the repetition's permutation of the recorded seeds, so repetitions differ in which
  seed a search's first seed is (a seed the table lacks maps to one it has, by its value);
* where the table has no row at that (lr, seed), the nearest recorded seed at that lr answers (counted).

The answer is the result dict a trial reports at its end (what :meth:`Outcome.from_result
<scalestudy.search.cell_search.Outcome.from_result>` reads): ``epoch``, ``diverged``, the final
metrics, and the recorded objective under the replay spec's objective metric. The rows answered
become the replay's trial table (:meth:`RecordedAnswers.trials`), lr as recorded.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from scalestudy.search.replay.recorded import EPOCHS_RUN, RecordedStudy
from scalestudy.trial.config import TrialConfig
from scalestudy.trial.readback import FINAL_METRICS

FAR_SNAP = 1.1  # a proposal this far (a factor) from every recorded lr of its cell is counted


class RecordedAnswers:
    """``evaluate(trial) → last result`` from a recorded study, for one repetition."""

    def __init__(self, study: RecordedStudy, seed_order: list[int] | None = None) -> None:
        """``seed_order``: the recorded seeds in the order a search's seeds take them (the search's
        ``study.seeds[i]`` is answered by ``seed_order[i]``); None: unpermuted."""
        self.study = study
        order = list(study.seeds) if seed_order is None else [int(s) for s in seed_order]
        if sorted(order) != list(study.seeds):
            raise ValueError(f"seed_order must permute the recorded seeds {list(study.seeds)}, got {order}")
        self.seed_map = dict(zip(study.seeds, order))
        self.answered: list[int] = []  # recorded row of each trial, in the order they were asked
        self.proposals = 0
        self.snapped_far = 0  # proposals more than FAR_SNAP from every recorded lr of their cell
        self.other_seed = 0  # answered by another seed: the (lr, seed) was not recorded
        self._log_lrs = {key: np.log(np.asarray(cell.lrs)) for key, cell in study.cells.items()}

    @classmethod
    def permuted(cls, study: RecordedStudy, rng: np.random.Generator) -> RecordedAnswers:
        return cls(study, [int(s) for s in rng.permutation(np.asarray(study.seeds))])

    def __call__(self, trial: TrialConfig) -> dict[str, Any]:
        row = self.row_for(trial.workload.dataset_size, trial.batch_size, trial.momentum, trial.lr, trial.seed)
        self.answered.append(row)
        return self.result(row, trial.objective.metric, trial.workload.epochs)

    def row_for(self, dataset_size: int, batch_size: int, momentum: float, lr: float, seed: int) -> int:
        """The recorded row that answers a proposed trial (counting snaps and substituted seeds)."""
        key = (int(dataset_size), int(batch_size), float(momentum))
        cell = self.study.cells.get(key)
        if cell is None:
            raise KeyError(f"no recorded cell N={dataset_size} B={batch_size} m={momentum:g}")
        self.proposals += 1
        distance = np.abs(self._log_lrs[key] - math.log(lr))
        nearest = int(np.argmin(distance))
        if distance[nearest] > math.log(FAR_SNAP):
            self.snapped_far += 1
        recorded_lr = cell.lrs[nearest]
        wanted = self._recorded_seed(seed)
        row = cell.rows.get((recorded_lr, wanted))
        if row is None:
            self.other_seed += 1
            at_lr = cell.seeds_at(recorded_lr)
            row = cell.rows[(recorded_lr, min(at_lr, key=lambda s: (abs(s - wanted), s)))]
        return row

    def result(self, row: int, metric: str, planned_epochs: int) -> dict[str, Any]:
        """The recorded row as a trial's last result: a trial that did not diverge ran its planned epochs
        (the replay spec's; the row's own epochs say what it cost)."""
        recorded = self.study.trials.loc[row]
        diverged = bool(recorded["diverged"])
        result: dict[str, Any] = {name: _number(recorded.get(name)) for name in FINAL_METRICS if name in recorded}
        result.update({metric: _number(recorded["objective"]), "diverged": int(diverged),
                       "epoch": int(recorded[EPOCHS_RUN]) if diverged else planned_epochs})
        return result

    def _recorded_seed(self, seed: int) -> int:
        if seed in self.seed_map:
            return self.seed_map[seed]
        seeds = self.study.seeds  # a seed the table lacks (an adaptive search's next): one of them, by its value
        return self.seed_map[seeds[int(seed) % len(seeds)]]

    def trials(self) -> pd.DataFrame:
        """The replay's trial table: each recorded row answered, once (a row asked twice is one trial)."""
        return self.study.trials.loc[sorted(set(self.answered))].reset_index(drop=True)

    @property
    def repeats(self) -> int:
        """Trials answered by a row an earlier trial of the replay already had."""
        return len(self.answered) - len(set(self.answered))

    @property
    def trial_epochs(self) -> float:
        """What the replayed search spent [trial-epochs]: every trial asked, repeats included."""
        return float(self.study.trials[EPOCHS_RUN].to_numpy()[self.answered].sum())


def _number(value: Any) -> float:
    return math.nan if value is None or isinstance(value, bool) else float(value)
