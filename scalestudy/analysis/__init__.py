"""Analysis of a finished study: trial table → ε*(B, m), the scaling law and its breakdown,
the noise scale, the generalization gap, the schedule comparison, the critical batch size
from the gradient noise scale, steps to target, sharpness and the compute used → law.json,
figures, report.

Only :mod:`runs` touches MLflow (imported on use); everything else is a pure function of
the trial table returning a dataclass. Importing this package loads neither torch nor ray.
"""

from scalestudy.analysis.compute import StudyCompute, study_compute
from scalestudy.analysis.critical import CriticalBatch, critical_batch_from_noise
from scalestudy.analysis.errors import AnalysisError
from scalestudy.analysis.frontier import CellOptimum, Frontier, fit_frontier
from scalestudy.analysis.gap import GapFit, fit_gap
from scalestudy.analysis.lawfit import Breakdown, LawFit, fit_breakdown, fit_law
from scalestudy.analysis.noise import NoiseScaleFit, fit_noise_scale
from scalestudy.analysis.pipeline import AnalysisResult, analyze, law_trials
from scalestudy.analysis.schedules import ScheduleComparison, compare_schedules
from scalestudy.analysis.sharpness import SharpnessFit, fit_sharpness
from scalestudy.analysis.steps import StepsToTarget, Transition, fit_steps_to_target
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
    "AnalysisError", "AnalysisResult", "Breakdown", "CellOptimum", "CriticalBatch", "Frontier", "GapFit", "LawFit",
    "NoiseScaleFit", "ScheduleComparison", "SharpnessFit", "StepsToTarget", "StudyCompute", "Transition",
    "TrialTable", "analyze", "compare_schedules", "critical_batch_from_noise", "fit_breakdown", "fit_frontier",
    "fit_gap", "fit_law", "fit_noise_scale", "fit_sharpness", "fit_steps_to_target", "law_trials",
    "load_trials_from_mlflow", "load_trials_from_parquet", "study_compute", "validate_trials",
]
