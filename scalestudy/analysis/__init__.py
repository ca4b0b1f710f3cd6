"""Analysis of a finished study: trial table → ε*(B, m), the scaling law and its breakdown,
the noise scale, the generalization gap, the schedule comparison, the critical batch size
from the gradient noise scale, steps to target, sharpness and the compute used → law.json,
figures, report.

In: :mod:`runs` (MLflow) and :mod:`table` (Parquet, DataFrames) make the trial table, the only
I/O on the way in. Fits: :func:`fit_study` (:mod:`fit`) runs the pure fit modules (frontier,
peak, lawfit, breakdown, noise, gap, schedules, steps, sharpness, critical, compute) and returns
one frozen :class:`StudyFits`. Out: :mod:`export` (law.json, law.yaml, trials.parquet),
:mod:`draw` (figures: :mod:`figures` infos, drawn by :mod:`plots` and :mod:`plots_diagnostics`),
:mod:`report` (report.md, the terminal summary; phrases in :mod:`text`), :mod:`publish` (the
MLflow run). :func:`analyze` (:mod:`pipeline`) composes them. Importing this package loads
neither torch nor ray (nor MLflow, matplotlib or scipy, until used).
"""

from scalestudy.analysis.compute import StudyCompute, study_compute
from scalestudy.analysis.critical import CriticalBatch, critical_batch_from_noise
from scalestudy.analysis.errors import AnalysisError
from scalestudy.analysis.fit import FitOptions, StudyFits, fit_study, law_trials
from scalestudy.analysis.frontier import CellOptimum, Frontier, fit_frontier
from scalestudy.analysis.gap import GapFit, fit_gap
from scalestudy.analysis.lawfit import Breakdown, LawFit, fit_breakdown, fit_law
from scalestudy.analysis.noise import NoiseScaleFit, fit_noise_scale
from scalestudy.analysis.pipeline import AnalysisResult, analyze
from scalestudy.analysis.schedules import ScheduleComparison, compare_schedules
from scalestudy.analysis.sharpness import SharpnessFit, fit_sharpness
from scalestudy.analysis.steps import StepsToTarget, TransitionFit, fit_steps_to_target
from scalestudy.analysis.table import (
    TrialTable,
    load_trials_from_parquet,
    validate_trials,
)


def load_trials_from_mlflow(experiment: str, tracking_uri: str | None = None, *, method: str = "auto") -> TrialTable:
    """All finished trial runs of an MLflow experiment as a :class:`TrialTable` (see :mod:`runs`)."""
    from scalestudy.analysis.runs import load_trials_from_mlflow as load

    return load(experiment, tracking_uri, method=method)


__all__ = [
    "AnalysisError", "AnalysisResult", "Breakdown", "CellOptimum", "CriticalBatch", "FitOptions", "Frontier",
    "GapFit", "LawFit", "NoiseScaleFit", "ScheduleComparison", "SharpnessFit", "StepsToTarget", "StudyCompute",
    "StudyFits", "TransitionFit", "TrialTable", "analyze", "compare_schedules", "critical_batch_from_noise",
    "fit_breakdown", "fit_frontier", "fit_gap", "fit_law", "fit_noise_scale", "fit_sharpness", "fit_steps_to_target",
    "fit_study", "law_trials", "load_trials_from_mlflow", "load_trials_from_parquet", "study_compute",
    "validate_trials",
]
