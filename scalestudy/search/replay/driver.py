"""Run a SearchPlan without Ray: its trials are answered by a function (a tabular benchmark).

:func:`replay` drives the same plan a study hands Tune — a ``grid_search`` list or a
``Searcher`` — the way Tune does: ``suggest`` while fewer than ``concurrency`` trials
run, ``on_trial_complete`` with the trial's last result when one ends, until the
searcher says FINISHED or ``num_samples`` trials have started. A trial lasts as many
simulated time units as it makes updates (epochs run × ⌈N/B⌉), so small batches finish
last, as they do on a real machine. Early stopping (``plan.scheduler``) is not replayed.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scalestudy.search.plan import SearchPlan
from scalestudy.trial.config import TrialConfig
from scalestudy.trial.readback import row_from_result

Evaluate = Callable[[TrialConfig], dict[str, Any]]  # trial config → last result (objective, diverged, epoch)


@dataclass(frozen=True)
class Replayed:
    trial: TrialConfig  # the trial config the plan proposed
    result: dict[str, Any]  # what ``evaluate`` answered
    order: int  # position in completion order


def replay(plan: SearchPlan, evaluate: Evaluate, concurrency: int = 4) -> list[Replayed]:
    """Every trial the plan runs, in completion order."""
    if plan.search_alg is None:
        trials = [TrialConfig.from_dict(raw) for raw in plan.param_space["trial"]["grid_search"]]
        return [Replayed(trial, evaluate(trial), i) for i, trial in enumerate(trials)]
    from ray.tune.search import Searcher

    searcher = plan.search_alg
    running: list[tuple[float, int, str, dict[str, Any], dict[str, Any]]] = []
    done: list[Replayed] = []
    now, started, finished = 0.0, 0, False
    while True:
        while not finished and len(running) < concurrency and started < plan.num_samples:
            trial_id = f"replay_{started:05d}"
            suggestion = searcher.suggest(trial_id)
            if suggestion == Searcher.FINISHED:
                finished = True
            elif suggestion is None:
                break
            else:
                trial = TrialConfig.from_dict(suggestion["trial"])
                result = evaluate(trial)
                heapq.heappush(running, (now + _duration(trial, result), started, trial_id, trial, result))
                started += 1
        if not running:
            if not finished and started < plan.num_samples:
                raise RuntimeError(f"{type(searcher).__name__} waits for results but no trial is running")
            return done
        now, _, trial_id, trial, result = heapq.heappop(running)
        searcher.on_trial_complete(trial_id, result=result)
        done.append(Replayed(trial, result, len(done)))


def _duration(trial: TrialConfig, result: dict[str, Any]) -> float:
    steps_per_epoch = math.ceil(trial.workload.dataset_size / trial.batch_size)
    return max(1, int(result.get("epoch") or 1)) * steps_per_epoch


def trial_rows(replayed: list[Replayed]) -> list[dict[str, Any]]:
    """The replayed trials as trial-table rows (:func:`scalestudy.trial.readback.row_from_result`)."""
    return [row_from_result(item.trial, item.result) for item in replayed]
