"""Analysis of a finished study: trial table → ε*(B, m), the scaling law and its breakdown,
the noise scale, the generalization gap, the schedule comparison, the critical batch size
from the gradient noise scale, steps to target, sharpness and the compute used → law.json,
figures, report.

By stage:

* :mod:`.inputs`: MLflow (:mod:`.inputs.mlflow_runs`) or Parquet → the trial table
  (:mod:`.inputs.trial_table`), the only I/O on the way in (and the trial runs' per-epoch histories
  for the cells' runs, :mod:`.inputs.trial_histories`, and for the bounds of trials stopped early,
  :mod:`.inputs.stop_bounds`);
* :mod:`.fits`: pure functions of the table, one module per quantity (ε* of a cell in
  :mod:`.fits.cell_optimum`, the law in :mod:`.fits.law`, ...); :func:`fit_study`
  (:mod:`.fits.study`) runs them all and returns one frozen :class:`StudyFits`;
* :mod:`.figures`: one module per figure, its data (an info object) and its drawing;
* :mod:`.outputs`: law.json, law.yaml and trials.parquet (:mod:`.outputs.law_file`), report.md and
  the terminal summary (:mod:`.outputs.report`), the MLflow run (:mod:`.outputs.mlflow_run`), and one
  MLflow run per cell with its seeds aggregated (:mod:`.outputs.cell_runs`, from
  :mod:`.fits.seed_aggregate`).

:func:`analyze` (:mod:`.pipeline`) composes them. :mod:`.export` and :mod:`.check` only keep the
import paths of :func:`build_law` and :func:`check_law` from before the stages. Importing this package loads neither torch nor
ray (nor MLflow, matplotlib or scipy, until used).
"""

from scalestudy.analysis.errors import AnalysisError
from scalestudy.analysis.fits.cell_optimum.frontier import CellOptimum, Frontier, fit_frontier
from scalestudy.analysis.fits.cost import StudyCompute, study_compute
from scalestudy.analysis.fits.generalization_gap import GapFit, fit_gap
from scalestudy.analysis.fits.gradient_noise_scale import CriticalBatch, critical_batch_from_noise
from scalestudy.analysis.fits.law import Breakdown, LawFit, fit_breakdown, fit_law
from scalestudy.analysis.fits.law_check import LawCheck, check_law
from scalestudy.analysis.fits.schedule_comparison import ScheduleComparison, compare_schedules
from scalestudy.analysis.fits.sgd_noise_scale import NoiseScaleFit, fit_noise_scale
from scalestudy.analysis.fits.sharpness_vs_batch import SharpnessFit, fit_sharpness
from scalestudy.analysis.fits.steps_to_target import StepsToTarget, TransitionFit, fit_steps_to_target
from scalestudy.analysis.fits.study import FitOptions, StudyFits, fit_study, law_trials
from scalestudy.analysis.inputs.trial_table import (
    TrialTable,
    load_trials_from_parquet,
    validate_trials,
)
from scalestudy.analysis.outputs.cell_runs import CellRunsSummary, publish_cell_runs
from scalestudy.analysis.outputs.law_file import build_law
from scalestudy.analysis.pipeline import AnalysisResult, analyze


def load_trials_from_mlflow(experiment: str, tracking_uri: str | None = None, *, method: str = "auto",
                            allow_partial: bool = False) -> TrialTable:
    """All finished trial runs of an MLflow experiment as a :class:`TrialTable`, one per trial; a study
    that did not finish is refused unless ``allow_partial`` (see
    :mod:`~scalestudy.analysis.inputs.mlflow_runs`)."""
    from scalestudy.analysis.inputs.mlflow_runs import load_trials_from_mlflow as load

    return load(experiment, tracking_uri, method=method, allow_partial=allow_partial)


__all__ = [
    "AnalysisError", "AnalysisResult", "Breakdown", "CellOptimum", "CellRunsSummary", "CriticalBatch", "FitOptions",
    "Frontier", "GapFit", "LawCheck", "LawFit", "NoiseScaleFit", "ScheduleComparison", "SharpnessFit", "StepsToTarget",
    "StudyCompute", "StudyFits", "TransitionFit", "TrialTable", "analyze", "build_law", "check_law",
    "compare_schedules", "critical_batch_from_noise", "fit_breakdown", "fit_frontier", "fit_gap", "fit_law",
    "fit_noise_scale", "fit_sharpness", "fit_steps_to_target", "fit_study", "law_trials", "load_trials_from_mlflow",
    "load_trials_from_parquet", "publish_cell_runs", "study_compute", "validate_trials",
]
