"""``analyze``: trial table → fits → law.json/law.yaml, trials.parquet, figures, report.md (and an
MLflow run): :func:`~scalestudy.analysis.fits.study.fit_study` (pure), then the output steps in
order: :mod:`~scalestudy.analysis.outputs.law_file`, :mod:`~scalestudy.analysis.figures.all_figures`,
:mod:`~scalestudy.analysis.outputs.report`, :mod:`~scalestudy.analysis.outputs.mlflow_run` and
:mod:`~scalestudy.analysis.outputs.cell_runs` (each cell's seeds aggregated in a run of its own). This
module only composes them; the per-epoch histories of the schedule figure are its one read (from
MLflow, through :mod:`~scalestudy.analysis.inputs.mlflow_runs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from scalestudy.analysis.errors import AnalysisError
from scalestudy.analysis.figures.all_figures import draw_fit_figures, draw_schedule_curves
from scalestudy.analysis.fits.cell_optimum.frontier import Frontier
from scalestudy.analysis.fits.cost import StudyCompute
from scalestudy.analysis.fits.generalization_gap import GapFit
from scalestudy.analysis.fits.gradient_noise_scale import CriticalBatch
from scalestudy.analysis.fits.law import LawFit
from scalestudy.analysis.fits.law_groups import LawGroup, fit_law_groups
from scalestudy.analysis.fits.schedule_comparison import ScheduleComparison
from scalestudy.analysis.fits.sgd_noise_scale import NoiseScaleFit
from scalestudy.analysis.fits.sharpness_vs_batch import SharpnessFit
from scalestudy.analysis.fits.steps_to_target import StepsToTarget
from scalestudy.analysis.fits.study import FitOptions, StudyFits, fit_study
from scalestudy.analysis.inputs.trial_table import TrialTable
from scalestudy.analysis.outputs.cell_runs import CellRunsSummary, publish_cell_runs
from scalestudy.analysis.outputs.law_file import build_law, write_files
from scalestudy.analysis.outputs.law_group_outputs import (
    group_laws,
    group_metrics,
    report_section,
    summary_lines,
    write_group_files,
)
from scalestudy.analysis.outputs.mlflow_run import publish_analysis
from scalestudy.analysis.outputs.report import report_markdown, terminal_summary
from scalestudy.law import ScalingLaw


@dataclass
class AnalysisResult:
    """What ``analyze`` wrote, and the fits it wrote it from."""

    fits: StudyFits
    law: ScalingLaw
    out_dir: Path
    files: list[Path]  # every file written, figures and report.md included
    figures: list[Path]
    figure_notes: list[str]  # figures the study could have had and did not, and why
    warnings: list[str]  # the fits', then the output steps'
    analysis_run_id: str | None = None
    cell_runs: CellRunsSummary | None = None  # the cells' runs over seeds, when the table came from MLflow
    groups: tuple[LawGroup, ...] = ()  # one law per (optimizer, section) when the study has several
    group_laws: dict[str, ScalingLaw] = field(default_factory=dict)  # by group name: laws/*.json

    @property
    def report_path(self) -> Path:
        return self.out_dir / "report.md"

    def summary(self) -> str:
        """A few lines for the terminal."""
        text = terminal_summary(self.fits, self.law, self.warnings, self.report_path)
        return "\n".join([text, *summary_lines(self.groups, self.group_laws)]) if self.groups else text

    # The fits, by name.
    @property
    def n_trials(self) -> int:
        return self.fits.n_trials

    @property
    def frontier(self) -> Frontier:
        return self.fits.frontier

    @property
    def law_fit(self) -> LawFit:
        return self.fits.law_fit

    @property
    def noise(self) -> NoiseScaleFit:
        return self.fits.noise

    @property
    def gap(self) -> GapFit:
        return self.fits.gap

    @property
    def schedules(self) -> ScheduleComparison:
        return self.fits.schedules

    @property
    def compute(self) -> StudyCompute:
        return self.fits.compute

    @property
    def critical_batch(self) -> CriticalBatch:
        return self.fits.critical_batch

    @property
    def steps(self) -> StepsToTarget:
        return self.fits.steps

    @property
    def sharpness(self) -> SharpnessFit:
        return self.fits.sharpness


def analyze(trials: TrialTable | pd.DataFrame, out_dir: Path, *, log_to_mlflow: bool = True,
            seed: int = 0) -> AnalysisResult:
    """Fit everything, write trials.parquet, law.json, law.yaml, PNG figures and report.md to
    ``out_dir``; when the table came from MLflow, also log them to an ``analysis`` run under
    the study's parent run, and write or update one run per cell holding its seeds aggregated
    (:func:`~scalestudy.analysis.outputs.cell_runs.publish_cell_runs`). Bad or thin data raise a
    one-line :class:`AnalysisError` before anything is written. ``seed``: the breakdown test's
    simulations (the same table gives the same law)."""
    table = trials if isinstance(trials, TrialTable) else TrialTable.from_frame(trials)
    fits = fit_study(table, FitOptions(seed=seed))
    groups = fit_law_groups(table, fits, FitOptions(seed=seed))
    laws = group_laws(groups)
    primary = next((g.name for g in groups if g.primary), None)
    law = replace(build_law(fits), group=primary)  # null for a study of one law, as before
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise AnalysisError(f"--out {out_dir} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    files = write_files(table, law, out_dir) + (write_group_files(groups, laws, out_dir) if groups else [])
    warnings = list(fits.warnings) + [f"no law for {g.name}: {g.reason}" for g in groups if g.fits is None]
    figures, notes = draw_fit_figures(fits, out_dir)
    figures += _schedule_figure(fits, out_dir, notes, warnings)
    result = AnalysisResult(fits, law, out_dir, files + figures, figures, notes, warnings, groups=groups,
                            group_laws=laws)
    laws_section = report_section(groups, laws) if groups else []
    result.report_path.write_text(report_markdown(fits, law, figures, notes, warnings, laws_section))
    result.files.append(result.report_path)
    if log_to_mlflow and fits.provenance.get("source") == "mlflow":
        try:
            params = {"trials": fits.n_trials, "cells": len(fits.frontier.cells),
                      **({"laws": ", ".join(g.name for g in groups)} if groups else {})}
            result.analysis_run_id = publish_analysis(law, fits.provenance, out_dir, params, group_metrics(laws))
        except Exception as error:  # noqa: BLE001 - the files are written; say why the run is missing
            warnings.append(f"the analysis run was not logged to MLflow: {str(error).strip().splitlines()[0]}")
        try:
            result.cell_runs = publish_cell_runs(fits.provenance["tracking_uri"], fits.provenance["experiment_id"])
        except Exception as error:  # noqa: BLE001 - as the analysis run
            warnings.append(f"the cells' runs over seeds were not logged to MLflow: "
                            f"{str(error).strip().splitlines()[0]}")
    return result


def _schedule_figure(fits: StudyFits, out_dir: Path, notes: list[str], warnings: list[str]) -> list[Path]:
    """The schedule comparison's curves, drawn from the per-epoch histories of its first group's
    runs; those live in MLflow only (a note otherwise, a warning when they cannot be read)."""
    if not fits.schedules.groups:
        return []
    group = fits.schedules.groups[0]
    run_ids = [r for row in group.rows for r in row.run_ids]
    uri = fits.provenance.get("tracking_uri")
    if not (fits.provenance.get("source") == "mlflow" and run_ids and uri):
        notes.append("no schedule-curve figure: per-epoch histories are read from MLflow only "
                     "(this table has none)")
        return []
    # The MLflow reader, imported on use like the loader.
    from scalestudy.analysis.inputs.mlflow_runs import load_histories

    try:
        histories = load_histories(uri, run_ids)
    except Exception as error:  # noqa: BLE001 - the figure is optional; the numbers are in the report
        warnings.append(f"schedule curves not drawn: cannot read histories ({str(error).splitlines()[0]})")
        return []
    path = draw_schedule_curves(group, histories, out_dir)
    return [path] if path else []
