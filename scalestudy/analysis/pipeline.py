"""``analyze``: trial table → fits → law.json/law.yaml, figures, report.md (and an MLflow run).

Everything between reading the table and writing the files is a pure function of the
table (frontier, law, noise, gap, schedules, compute, critical batch size, steps to
target, sharpness); this module only orchestrates.

Trials the search stopped early (status ``stopped``) did not finish: their final
accuracy is not comparable, so every fit of final values leaves them out; they count
in the compute, and in steps-to-target when they reached the target before stopping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from scalestudy.analysis import figures, plots, report
from scalestudy.analysis.compute import StudyCompute, study_compute
from scalestudy.analysis.critical import CriticalBatch, critical_batch_from_noise
from scalestudy.analysis.errors import AnalysisError
from scalestudy.analysis.export import build_law
from scalestudy.analysis.frontier import Frontier, failure_accuracy, fit_frontier
from scalestudy.analysis.gap import GapFit, fit_gap
from scalestudy.analysis.lawfit import LawFit, fit_law
from scalestudy.analysis.noise import NoiseScaleFit, fit_noise_scale
from scalestudy.analysis.schedules import ScheduleComparison, compare_schedules
from scalestudy.analysis.sharpness import SharpnessFit, fit_sharpness
from scalestudy.analysis.steps import StepsToTarget, fit_steps_to_target
from scalestudy.analysis.table import TrialTable, stopped
from scalestudy.law import ScalingLaw


@dataclass
class AnalysisResult:
    law: ScalingLaw
    out_dir: Path
    report_path: Path
    figures: list[Path]
    warnings: list[str]
    files: list[Path]
    frontier: Frontier
    law_fit: LawFit
    noise: NoiseScaleFit
    gap: GapFit
    schedules: ScheduleComparison
    n_trials: int
    compute: StudyCompute
    critical_batch: CriticalBatch  # B_simple from the gradient noise scale vs the breakdown
    steps: StepsToTarget
    sharpness: SharpnessFit
    figure_notes: list[str] = field(default_factory=list)
    analysis_run_id: str | None = None

    def summary(self) -> str:
        """A few lines for the terminal."""
        return report.summary(self)


def law_trials(frame: pd.DataFrame, *, keep_stopped: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """The constant-schedule trials the law is fitted on (one section when there are several),
    without the trials the search stopped early unless ``keep_stopped``."""
    notes = []
    if "schedule" in frame.columns:
        frame = frame[frame["schedule"] == "constant"]
    early = stopped(frame)
    if early.any() and not keep_stopped:
        notes.append(f"{int(early.sum())} constant-schedule trials stopped early by the search are left out of "
                     "the ε* fit (they did not finish: their final accuracy is not comparable); they count in "
                     "the compute")
        frame = frame[~early]
    if "section" in frame.columns and frame["section"].nunique() > 1:
        counts = frame["section"].value_counts()
        keep = counts.index[0]
        notes.append(f"law fitted on section {keep!r} ({counts.iloc[0]} constant-schedule trials); "
                     f"constant-schedule trials of {', '.join(repr(s) for s in counts.index[1:])} left out")
        frame = frame[frame["section"] == keep]
    return frame.reset_index(drop=True), notes


def _stopped_past_edges(trials: pd.DataFrame, frontier: Frontier) -> list[str]:
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


def analyze(trials: TrialTable | pd.DataFrame, out_dir: Path, *, log_to_mlflow: bool = True,
            seed: int = 0) -> AnalysisResult:
    """Fit everything, write trials.parquet, law.json, law.yaml, PNG figures and report.md to
    ``out_dir``; when the table came from MLflow, also log them to an ``analysis`` run under
    the study's parent run. Bad or thin data raise a one-line :class:`AnalysisError`.
    ``seed``: the breakdown test's simulations (the same table gives the same law)."""
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
    if len(dataset_sizes) > 1:
        raise AnalysisError(f"the trials span several dataset sizes {dataset_sizes[:4]}: analyze one study at a time")
    dataset_size = int(dataset_sizes[0])
    if law_frame.empty:
        frontier = Frontier((), failure_accuracy(frame), ())
        every_stopped = not law_trials(frame, keep_stopped=True)[0].empty
        warnings.append("every constant-schedule trial was stopped early: the law is not fitted" if every_stopped
                        else "no constant-schedule trials: the law is not fitted")
    else:
        frontier = fit_frontier(law_frame)
    warnings += [*frontier.warnings, *_stopped_past_edges(law_trials(frame, keep_stopped=True)[0], frontier)]
    law_fit = fit_law(list(frontier.cells), seed=seed)
    noise = fit_noise_scale(list(law_fit.cells), dataset_size)
    gap = fit_gap(law_frame, list(frontier.cells)) if not law_frame.empty else GapFit((), None, None, "no trials")
    schedules = compare_schedules(finished)
    compute = study_compute(frame, table.provenance.get("train_seconds"))
    critical = critical_batch_from_noise(law_frame, list(frontier.cells), law_fit.breakdown)
    steps = fit_steps_to_target(law_trials(frame, keep_stopped=True)[0])
    sharpness = fit_sharpness(law_frame, list(frontier.cells))
    law = build_law(law_fit, frontier, noise, gap, dataset_size, table.provenance, compute, critical)

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise AnalysisError(f"--out {out_dir} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [table.to_parquet(out_dir / "trials.parquet"), law.save(out_dir / "law.json"),
             law.save(out_dir / "law.yaml")]
    result = AnalysisResult(law, out_dir, out_dir / "report.md", [], warnings, files, frontier, law_fit, noise, gap,
                            schedules, len(frame), compute, critical, steps, sharpness)
    result.figures, result.figure_notes = _draw(out_dir, law_frame, result, table)
    result.files += result.figures
    result.report_path.write_text(report.markdown(result))
    result.files.append(result.report_path)
    if log_to_mlflow and table.provenance.get("source") == "mlflow":
        from scalestudy.analysis.runs import log_analysis_run

        try:
            result.analysis_run_id = log_analysis_run(table.provenance, out_dir, _run_metrics(law),
                                                      {"trials": len(frame), "cells": len(frontier.cells)})
        except Exception as error:  # noqa: BLE001 - the files are written; say why the run is missing
            warnings.append(f"the analysis run was not logged to MLflow: {str(error).strip().splitlines()[0]}")
    return result


def _draw(out_dir: Path, law_frame: pd.DataFrame, result: AnalysisResult, table: TrialTable):
    frontier, law_fit, noise, gap, schedules = result.frontier, result.law_fit, result.noise, result.gap, \
        result.schedules
    warnings, drawn, notes = result.warnings, [], []
    if frontier.cells:
        drawn.append(plots.draw_accuracy_vs_lr(figures.accuracy_vs_lr(frontier), out_dir / "accuracy_vs_lr.png"))
    if frontier.usable():
        drawn.append(plots.draw_lr_law(figures.lr_law(frontier, law_fit), out_dir / "lr_opt_vs_batch_size.png"))
    else:
        notes.append("no ε* vs B figure: no cell has an interior optimum")
    if not law_frame.empty:
        drawn.append(plots.draw_accuracy_vs_noise(figures.accuracy_vs_noise(law_frame, noise),
                                                  out_dir / "accuracy_vs_noise_scale.png"))
    if gap.cells:
        drawn.append(plots.draw_gap(gap, out_dir / "gap_vs_batch_size.png"))
    if result.steps.lines:
        drawn.append(plots.draw_steps_to_target(figures.steps_to_target(result.steps, result.critical_batch),
                                                out_dir / "steps_to_target.png"))
    elif "updates_to_target" in law_frame.columns:
        notes.append(f"no steps-to-target figure: {result.steps.reason}")
    sharpness = figures.sharpness_vs_batch(result.sharpness)
    if sharpness.panels:
        drawn.append(plots.draw_sharpness(sharpness, out_dir / "sharpness_vs_batch_size.png"))
    elif result.sharpness.keys:
        notes.append(f"no sharpness figure: {result.sharpness.reason}")
    if schedules.groups:
        group = schedules.groups[0]
        run_ids = [r for row in group.rows for r in row.run_ids]
        uri = table.provenance.get("tracking_uri")
        if table.provenance.get("source") == "mlflow" and run_ids and uri:
            from scalestudy.analysis.runs import load_histories

            try:
                histories = load_histories(uri, run_ids)
            except Exception as error:  # noqa: BLE001 - the figure is optional; the numbers are in the report
                warnings.append(f"schedule curves not drawn: cannot read histories ({str(error).splitlines()[0]})")
            else:
                info = figures.schedule_curves(group, histories)
                if info.curves:
                    drawn.append(plots.draw_schedules(info, out_dir / "schedules.png"))
        else:
            notes.append("no schedule-curve figure: per-epoch histories are read from MLflow only "
                         "(this table has none)")
    return drawn, notes


def _run_metrics(law: ScalingLaw) -> dict[str, float]:
    compute = law.compute or {}
    values = {"law.alpha": law.alpha, "law.beta": law.beta, "law.k": law.k, "law.r2": law.r2,
              "law.breakdown_batch_size": law.breakdown_batch_size,
              "law.noise_scale_opt": (law.noise_scale_opt or {}).get("value"),
              "law.gap_slope": (law.gap_slope or {}).get("value"),
              "law.gradient_noise_scale": (law.gradient_noise_scale or {}).get("value"),
              **{f"compute.{key}": compute.get(key) for key in ("trials", "trial_epochs", "updates", "cpu_hours",
                                                                "gpu_hours")}}
    return {key: value for key, value in values.items() if value is not None}
