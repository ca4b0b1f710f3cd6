"""``fit_study``: a trial table → every fit of the study, as one frozen :class:`StudyFits`.

Pure: no file, no figure, no MLflow, no clock; the same table and options give the same
fits. The output steps read the fits: :mod:`~scalestudy.analysis.outputs.law_file` (law.json,
law.yaml, trials.parquet), :mod:`~scalestudy.analysis.figures.all_figures` (figures),
:mod:`~scalestudy.analysis.outputs.report` (report.md, the terminal summary),
:mod:`~scalestudy.analysis.outputs.mlflow_run` (the MLflow run);
:func:`scalestudy.analysis.pipeline.analyze` composes them.

Trials the search stopped early (status ``stopped``) did not finish: their final
accuracy is not comparable, so every fit of final values leaves them out; they count
in the compute, and in steps-to-target when they reached the target before stopping. Those
stopped by a bound on their final objective (``objective_bound``) enter the ε* fit as censored
observations (:mod:`~scalestudy.analysis.fits.cell_optimum.censored`).

A study over several dataset sizes N (``grid.dataset_size``) has one cell per (B, m, N): the law
fits γ in ε* ∝ N^γ over all of them, steps to target have one line per (m, N), and the noise scale
g* uses each cell's N; the generalization gap, sharpness and the gradient noise scale, which
compare batch sizes at one N, are read at the largest N (the closest to training at scale).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from scalestudy.analysis.errors import AnalysisError
from scalestudy.analysis.fits.cell_optimum.frontier import CellOptimum, Frontier, failure_accuracy, fit_frontier
from scalestudy.analysis.fits.cost import StudyCompute, study_compute
from scalestudy.analysis.fits.critical_batch import CriticalBatchComparison, critical_batch_sizes
from scalestudy.analysis.fits.generalization_gap import GapFit, fit_gap
from scalestudy.analysis.fits.gradient_noise_scale import CriticalBatch, critical_batch_from_noise
from scalestudy.analysis.fits.law import LawFit, fit_law
from scalestudy.analysis.fits.schedule_comparison import ScheduleComparison, compare_schedules
from scalestudy.analysis.fits.sgd_noise_scale import NoiseScaleFit, fit_noise_scale
from scalestudy.analysis.fits.sharpness_vs_batch import SharpnessFit, fit_sharpness
from scalestudy.analysis.fits.steps_to_target import StepsToTarget, fit_steps_to_target
from scalestudy.analysis.inputs.trial_table import ACCURACY, TrialTable, censored, objective_of, stopped
from scalestudy.optim import noise_scale_holds
from scalestudy.spec.objective import Objective


@dataclass(frozen=True)
class FitOptions:
    seed: int = 0  # the breakdown test's simulations (the same table gives the same law)


@dataclass(frozen=True)
class StudyFits:
    """Every fit of one study, and what the output steps need to say where it came from."""

    n_trials: int
    dataset_size: int | None  # N [examples]; None when the trials span several (each cell has its own)
    provenance: dict[str, Any]  # the trial table's: source, experiment, tracking_uri, input_file, ...
    warnings: tuple[str, ...]  # the table's, then the fits'
    frontier: Frontier  # ε* per (B, m) cell
    law_fit: LawFit  # the law and its breakdown
    noise: NoiseScaleFit  # g* over the law's cells
    gap: GapFit
    schedules: ScheduleComparison
    compute: StudyCompute
    critical_batch: CriticalBatch  # B_simple from the gradient noise scale vs the breakdown
    steps: StepsToTarget
    sharpness: SharpnessFit
    critical_sizes: CriticalBatchComparison  # B_crit three ways: steps to target, gradient noise, breakdown
    # The constant-schedule trials the law is fitted on (the accuracy-vs-noise figure reads them).
    law_trials: pd.DataFrame = field(compare=False, repr=False)
    optimizer: str = "sgd"  # of the law's trials ("adamw, sgd" when they mix); g* only where it is sgd
    objective: Objective = ACCURACY  # what every fit optimises (analysis.objective)

    @property
    def noise_scale_holds(self) -> bool:
        """Whether SGD's noise scale g describes these trials (``scalestudy.optim.noise_scale_holds``)."""
        return noise_scale_holds(self.optimizer)


def fit_study(trials: TrialTable | pd.DataFrame, options: FitOptions = FitOptions()) -> StudyFits:
    """Every fit of a trial table; bad or thin data raise a one-line :class:`AnalysisError`."""
    table = trials if isinstance(trials, TrialTable) else TrialTable.from_frame(trials)
    frame, warnings = table.frame, list(table.warnings)
    if frame["diverged"].all():
        raise AnalysisError(f"every trial diverged ({len(frame)} trials): no learning rate to fit")
    finished = frame[~stopped(frame)]
    if finished.empty:
        raise AnalysisError(f"every trial was stopped early ({len(frame)} trials): no final accuracy to fit")
    law_frame, notes = law_trials(frame)
    warnings += notes
    dataset_sizes = sorted(law_frame["dataset_size"].unique()) or sorted(frame["dataset_size"].unique())
    dataset_size = int(dataset_sizes[0]) if len(dataset_sizes) == 1 else None
    with_stopped = law_trials(frame, keep_stopped=True)[0]
    if law_frame.empty:
        frontier = Frontier((), failure_accuracy(frame), ())
        warnings.append("every constant-schedule trial was stopped early: the law is not fitted"
                        if not with_stopped.empty else "no constant-schedule trials: the law is not fitted")
    else:
        frontier = fit_frontier(law_frame, censored=censored_law_trials(with_stopped, law_frame))
    warnings += [*frontier.warnings, *stopped_past_edges(with_stopped, frontier)]
    law = fit_law(list(frontier.cells), seed=options.seed)
    one_n, one_n_cells = largest_dataset_size(law_frame, list(frontier.cells))
    if dataset_size is None:
        warnings.append(f"the trials span dataset sizes {', '.join(str(n) for n in dataset_sizes)}: the gap, "
                        f"sharpness and gradient noise scale are read at the largest, N = {dataset_sizes[-1]}")
    critical = critical_batch_from_noise(one_n, one_n_cells, law.breakdown)
    steps = fit_steps_to_target(with_stopped)
    warnings += steps.warnings  # censored points, counts on the epoch grid
    optimizer = trials_optimizer(law_frame if not law_frame.empty else frame)
    noise = fit_noise_scale(list(law.cells), dataset_size)
    gap = fit_gap(one_n, one_n_cells) if not law_frame.empty else GapFit((), None, None, "no trials")
    if not noise_scale_holds(optimizer):
        reason = (f"the noise scale g = ε/(1−m)·(N/B − 1) is SGD's (Smith & Le 2017); these trials trained with "
                  f"{optimizer}")
        noise, gap = NoiseScaleFit((), None, None, None, None, None, reason), replace(gap, vs_noise=None)
    return StudyFits(
        n_trials=len(frame), dataset_size=dataset_size, provenance=dict(table.provenance), warnings=tuple(warnings),
        frontier=frontier, law_fit=law, noise=noise, gap=gap, optimizer=optimizer,
        schedules=compare_schedules(finished), compute=study_compute(frame, table.provenance.get("train_seconds")),
        critical_batch=critical, steps=steps, sharpness=fit_sharpness(one_n, one_n_cells),
        critical_sizes=critical_batch_sizes(steps, critical, law.breakdown), law_trials=law_frame,
        objective=objective_of(frame))


def trials_optimizer(frame: pd.DataFrame) -> str:
    """The optimizer of these trials: ``sgd`` for tables written before optimizers were pluggable (no column,
    or an empty value), the names joined by ", " when they mix."""
    if "optimizer" not in frame.columns:
        return "sgd"
    return ", ".join(sorted({v if isinstance(v, str) and v else "sgd" for v in frame["optimizer"]})) or "sgd"


def largest_dataset_size(frame: pd.DataFrame, cells: list[CellOptimum]) -> tuple[pd.DataFrame, list[CellOptimum]]:
    """The trials and cells at the largest dataset size (all of them in a study of one N)."""
    if frame.empty or frame["dataset_size"].nunique() <= 1:
        return frame, cells
    largest = int(frame["dataset_size"].max())
    return frame[frame["dataset_size"] == largest], [c for c in cells if c.dataset_size == largest]


def law_trials(frame: pd.DataFrame, *, keep_stopped: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """The constant-schedule trials the law is fitted on (one section when there are several),
    without the trials the search stopped early unless ``keep_stopped``."""
    notes = []
    if "schedule" in frame.columns:
        frame = frame[frame["schedule"] == "constant"]
    early = stopped(frame)
    if early.any() and not keep_stopped:
        bounded = int(censored(frame).sum())
        if early.sum() > bounded:
            notes.append(f"{int(early.sum()) - bounded} constant-schedule trials stopped early by the search are left "
                         "out of the ε* fit (they did not finish: their final accuracy is not comparable); they "
                         "count in the compute")
        if bounded:
            notes.append(f"{bounded} constant-schedule trials stopped early by the search enter the ε* fit "
                         "censored: their final objective is known only to lie between the failure value and "
                         "their bound (objective_bound); they can widen a cell's interval, never narrow it")
        frame = frame[~early]
    if "section" in frame.columns and frame["section"].nunique() > 1:
        counts = frame["section"].value_counts()
        keep = counts.index[0]
        notes.append(f"law.json's law fitted on section {keep!r} ({counts.iloc[0]} constant-schedule trials); "
                     f"constant-schedule trials of {', '.join(repr(s) for s in counts.index[1:])} left out of it "
                     "(each section has its own law: laws/index.json)")
        frame = frame[frame["section"] == keep]
    return frame.reset_index(drop=True), notes


def censored_law_trials(with_stopped: pd.DataFrame, law_frame: pd.DataFrame) -> pd.DataFrame:
    """The trials of ``with_stopped`` (:func:`law_trials` with ``keep_stopped``) that enter the ε* fit
    censored at their bound, in the law's section."""
    rows = with_stopped[censored(with_stopped)]
    if "section" in rows.columns and "section" in law_frame.columns:
        rows = rows[rows["section"].isin(law_frame["section"].unique())]
    return rows.reset_index(drop=True)


def stopped_past_edges(trials: pd.DataFrame, frontier: Frontier) -> list[str]:
    """Cells whose best finished lr is at an edge although lrs past it were searched and stopped
    early: the grid was wide enough, the search cut the trials there short."""
    early = trials[stopped(trials)]
    notes = []
    for cell in frontier.cells:
        if not cell.status.startswith("edge_") or early.empty:
            continue
        lrs = early.loc[(early["batch_size"] == cell.batch_size) & (early["momentum"] == cell.momentum), "lr"]
        past = int((lrs < cell.best_lr).sum() if cell.status == "edge_low" else (lrs > cell.best_lr).sum())
        if past:
            notes.append(f"cell {cell.label}: {past} trials at lrs past its best lr {cell.best_lr:.4g} were stopped "
                         "early by the search, so the optimum is probably near it but cannot be interpolated")
    return notes
