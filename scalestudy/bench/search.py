"""``bench search``: compute to law — α's interval each search algorithm reaches at equal compute,
replayed on recorded studies.

A tabular benchmark: each algorithm's real builder (the SearchPlan and Searcher a study hands Tune)
is driven by :func:`scalestudy.search.replay.replay` under the recorded study's own spec
(:func:`~scalestudy.search.replay.replay_spec`), and each trial it proposes is answered by the
recorded row it lands on (:class:`~scalestudy.search.replay.RecordedAnswers`: nearest recorded lr,
the repetition's permutation of the seeds); nothing is trained or interpolated. The law is fitted
on the rows a replay was answered with, by the analysis (``fit_study(...).law_fit``), and compared
with the law of the whole table.

Equal budget, per repetition: ``adaptive`` may spend ``--fraction`` of the grid's trial-epochs
(``search.budget.grid_fraction``); the per-cell algorithms get the ``trials_per_cell`` whose
trial-epochs come nearest to what the adaptive spent (to the fraction of the table where it is not
available), at least their minimum, once on every recorded seed and once on :data:`FEW_SEEDS` (with
as many more trials per cell); ``grid_subsample`` is what a user would run instead at that
compute: every other recorded lr (×2 steps on a √2 grid, random phase) with as many seeds as the
budget pays for (at least 2; :func:`scalestudy.calibration.subsample.subsample`).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from scalestudy.bench import BenchTable
from scalestudy.bench.search_summary import SearchRun, fit_alpha, summary_rows, table_notes
from scalestudy.calibration.reference import DATA
from scalestudy.calibration.subsample import SubsampleDesign, subsample
from scalestudy.search import SEARCHES
from scalestudy.search.cells import stable_seed
from scalestudy.search.replay import EPOCHS_RUN, RecordedAnswers, RecordedStudy, replay, replay_spec
from scalestudy.spec.checks import min_trials_per_cell
from scalestudy.trial.config import expand_cells

TABLES = ("mnist1d_mlp_m0", "mnist1d_mlp_m09", "mnist1d_cnn1d_m09", "text_lm_adamw")  # shipped in calibration/data
TINY_TABLE = "text_lm_adamw"  # the cheapest of them to replay (fewest trials)
ADAPTIVE = "adaptive"
PER_CELL = ("quasi_random", "optuna", "bracket")
GRID_SUBSAMPLE = "grid_subsample"
CONCURRENCY = 4  # trials in flight during a replay (a small machine)
MIN_SUBSAMPLE_SEEDS = 2
# The per-cell searches also run on this many seeds, with as many more trials per cell: on every recorded seed,
# a quarter of the grid leaves them 3 trials per (B, m, seed) cell, fewer than they are made for.
FEW_SEEDS = 2


def replay_search(study: RecordedStudy, algorithm: str, search: dict, repetition: int,
                  seeds: int | None = None) -> SearchRun:
    """Replay one algorithm on the study (``search``: its spec's search fields; ``seeds``: on the first
    that many seeds of the grid, None: all recorded)."""
    label = algorithm if seeds is None else f"{algorithm}, {seeds} seeds"
    spec = replay_spec(study, algorithm, {**search, "seed": repetition}, seeds)
    try:
        build = SEARCHES.get(algorithm)
    except (ImportError, AttributeError):  # an algorithm not in this build (yet)
        return SearchRun(label, available=False)
    answers = RecordedAnswers.permuted(study, np.random.default_rng(stable_seed(study.name, repetition)))
    replay(build(spec, expand_cells(spec)), answers, concurrency=CONCURRENCY)
    trials = answers.trials()
    per_cell = f"{search['trials_per_cell']}/cell × " if "trials_per_cell" in search else "budget, "
    design = f"{per_cell}{len(spec.grid.seeds)} seeds"
    return SearchRun(label, True, design, answers.trial_epochs, len(answers.answered), len(trials),
                     fit_alpha(trials), answers.snapped_far, answers.other_seed)


def grid_subsample_run(study: RecordedStudy, budget: float, repetition: int) -> SearchRun:
    """The recorded grid thinned as a user would thin it to spend ``budget`` trial-epochs."""
    per_seed = study.trial_epochs / (2 * len(study.seeds))  # every other lr, one seed
    seeds = min(len(study.seeds), max(MIN_SUBSAMPLE_SEEDS, math.floor(budget / per_seed + 0.5)))
    rng = np.random.default_rng(stable_seed(study.name, repetition, GRID_SUBSAMPLE))
    trials = subsample(study.trials, SubsampleDesign(seeds=seeds, grid_step=2), rng)
    return SearchRun(GRID_SUBSAMPLE, True, f"½ lrs, {seeds}/{len(study.seeds)} seeds",
                     float(trials[EPOCHS_RUN].sum()), len(trials), len(trials), fit_alpha(trials))


def per_cell_budget(study: RecordedStudy, algorithm: str, budget: float, seeds: int) -> int:
    """``trials_per_cell`` whose trial-epochs come nearest ``budget`` on ``seeds`` seeds, at least the
    algorithm's minimum."""
    cells = len(study.dataset_sizes) * len(study.batch_sizes) * len(study.momenta) * seeds
    return max(min_trials_per_cell(algorithm), math.floor(budget / (cells * study.epochs) + 0.5))


def repetition(job: tuple[RecordedStudy, int, float]) -> list[SearchRun]:
    """Every algorithm replayed once on one table, at the budget the adaptive search sets."""
    study, rep, fraction = job
    adaptive = replay_search(study, ADAPTIVE, {"budget": {"grid_fraction": fraction}}, rep)
    budget = adaptive.trial_epochs if adaptive.available else fraction * study.trial_epochs
    runs = [adaptive]
    for seeds in dict.fromkeys([len(study.seeds), min(FEW_SEEDS, len(study.seeds))]):
        for algorithm in PER_CELL:
            per_cell = per_cell_budget(study, algorithm, budget, seeds)
            runs.append(replay_search(study, algorithm, {"trials_per_cell": per_cell}, rep,
                                      None if seeds == len(study.seeds) else seeds))
    runs.append(grid_subsample_run(study, budget, rep))
    return runs


def load_tables(replay: Path | None) -> list[RecordedStudy]:
    if replay is not None:
        return [RecordedStudy.from_parquet(replay, what="--replay")]
    return [RecordedStudy.from_parquet(DATA / f"{name}.parquet", what="table") for name in TABLES]


def bench_search(tiny: bool = False, replay: Path | None = None, repetitions: int | None = None,
                 fraction: float = 0.25) -> BenchTable:
    started = time.monotonic()
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction: must be in (0, 1], got {fraction}")
    studies = load_tables(replay)  # a bad --replay fails here, before anything runs
    if tiny and replay is None:
        studies = [s for s in studies if s.name == TINY_TABLE]
    repetitions = repetitions or (2 if tiny else 20)
    references = {study.name: fit_alpha(study.trials) for study in studies}
    jobs = [(study, rep, fraction) for study in studies for rep in range(repetitions)]
    results = run_jobs(jobs)
    table = BenchTable("search", ["table", "algorithm", "design", "compute_fraction", "alpha_width_ratio",
                                  "ratio_q25_q75", "fitted", "coverage", "coverage_95", "alpha_median"])
    notes = []
    for study in studies:
        runs = [run for (s, _, _), reps in zip(jobs, results) if s is study for run in reps]
        for row in summary_rows(study, references[study.name], runs):
            table.add(**row)
        notes += table_notes(study, references[study.name], runs)
    adaptive = any(run.available for runs in results for run in runs if run.algorithm == ADAPTIVE)
    budget = (f"adaptive search.budget.grid_fraction {fraction:g}, the others matched to what it spent" if adaptive
              else f"{fraction:g} of each table (adaptive is not in this build)")
    table.notes = notes + [
        f"{repetitions} repetitions per table (search seed, seed permutation, subsample); budget: {budget}; "
        f"{CONCURRENCY} trials in flight; {time.monotonic() - started:.0f} s on {_processes(len(jobs))} processes"]
    return table


def run_jobs(jobs: list[tuple[RecordedStudy, int, float]]) -> list[list[SearchRun]]:
    """Repetitions over processes (forked after the searches' imports, which cost seconds each)."""
    processes = _processes(len(jobs))
    if processes == 1:
        return [repetition(job) for job in jobs]
    import optuna  # noqa: F401
    import ray.tune.search  # noqa: F401

    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(repetition, jobs, chunksize=1))


def _processes(jobs: int) -> int:
    return max(1, min(jobs, os.cpu_count() or 1))
