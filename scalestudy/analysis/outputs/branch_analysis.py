"""``analyze`` of a branched study (issue 23): the branch table (MLflow, read by
:mod:`~scalestudy.analysis.inputs.branch_table`) → CBS at each checkpoint
(``scalestudy.analysis.fits.branch_cbs.estimate_cbs``) → ``cbs.json`` (:class:`~scalestudy.law.cbs.CBSCurve`),
``batch_warmup.json`` (:func:`~scalestudy.law.batch_warmup.warmup_from_cbs`), ``branches.parquet``,
``cbs_vs_examples.png`` and ``report.md``, logged to an ``analysis`` run under the study's parent run.
This module only composes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from scalestudy.analysis.errors import AnalysisError
from scalestudy.analysis.figures.cbs_curve import cbs_figure_info, draw_cbs_curve
from scalestudy.analysis.figures.warmup_curves import draw_warmup_curves
from scalestudy.analysis.fits.warmup_comparison import WarmupComparison, compare_to_constant
from scalestudy.analysis.inputs.branch_table import BranchStudy, load_comparison_curves
from scalestudy.analysis.outputs.mlflow_run import log_analysis_run
from scalestudy.law.batch_warmup import BatchWarmup, warmup_from_cbs
from scalestudy.law.cbs import CBS_SCHEMA, CBSCurve

# The estimator's input columns (its contract), of the branch table's.
ESTIMATOR_COLUMNS = ("checkpoint", "checkpoint_examples", "checkpoint_updates", "base_loss", "batch_size", "seed",
                     "window_loss", "noise_scale")


BASIS_WORDS = {"ci_low": "B up to CBS's lower 95 % bound", "estimate": "B up to the CBS estimate"}


@dataclass
class BranchAnalysis:
    curve: CBSCurve
    warmup: BatchWarmup | None
    out_dir: Path
    files: list[Path]
    compute_ratio: float  # all trials' examples / the base run's
    comparison: WarmupComparison | None = None  # branching.compare: the warmup and the late switch
    warnings: list[str] = field(default_factory=list)
    analysis_run_id: str | None = None

    def summary(self) -> str:
        lines = [f"CBS(t) at {len(self.curve.points)} checkpoints (B₀={self.curve.base_batch_size}, rule "
                 f"{self.curve.rule}, tolerance {self.curve.tolerance:g}); compute {self.compute_ratio:.2f}× the "
                 "base run's"]
        lines += [f"  {p.examples:>9} examples: {_cbs_text(p)}" for p in self.curve.points]
        if self.comparison is not None:
            lines += comparison_lines(self.comparison)[2:]
        if self.warmup is not None:
            lines.append("batch warmup: " + ", ".join(f"B={s.batch_size} from {s.start_examples} examples"
                                                      for s in self.warmup.stages))
        lines += [f"warning: {w}" for w in self.warnings]
        lines.append(f"written: {', '.join(str(p) for p in self.files)}")
        return "\n".join(lines)


def _cbs_text(point) -> str:
    if point.cbs is None:
        return f"no estimate ({point.note})" if point.note else "no estimate"
    band = f" [{point.ci95.low:.0f}, {point.ci95.high:.0f}]" if point.ci95 else ""
    side = {"above": " (≥: every tested B kept the loss)", "below": " (<: even the second size lost more)"}
    noise = f"; B_simple {point.noise_scale:.0f}" if point.noise_scale is not None else ""
    return f"CBS {point.cbs:.0f}{band}{side.get(point.censored, '')}{noise}"


def compute_ratio(study: BranchStudy, trained_examples: float) -> float:
    """(the base's examples + the branches') / the base's: what measuring CBS(t) cost."""
    return (study.total_examples + trained_examples) / study.total_examples


def cbs_curve(study: BranchStudy) -> CBSCurve:
    """CBS(t) of the study's branch table (``fits.branch_cbs.estimate_cbs``) as the cbs.json record."""
    from scalestudy.analysis.fits.branch_cbs import estimate_cbs

    table = study.table
    if table.empty:
        raise AnalysisError("no branch of the study ended: nothing to estimate CBS from")
    columns = [c for c in (*ESTIMATOR_COLUMNS, "true_cbs") if c in table.columns]
    points = estimate_cbs(table[columns], tolerance=study.tolerance, base_batch_size=study.base_batch_size)
    return CBSCurve(CBS_SCHEMA, study.base_batch_size, study.base_lr, study.momentum, study.optimizer, study.rule,
                    study.tolerance, study.window_examples, study.dataset_size, study.total_examples,
                    tuple(sorted(points, key=lambda p: p.examples)), workload=study.workload,
                    experiment=study.experiment_id, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    rule_exponent=study.rule_exponent)


def analyze_branches(study: BranchStudy, out_dir: Path, *, log_to_mlflow: bool = True) -> BranchAnalysis:
    table = study.table
    curve = cbs_curve(study)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [curve.save(out_dir / "cbs.json")]
    warnings = ([f"{study.missing} branch(es) did not end (errored or interrupted) and are left out"]
                if study.missing else [])
    warmup = None
    try:
        warmup = warmup_from_cbs(curve, basis=study.warmup_basis, source="cbs.json")
        files.append(warmup.save(out_dir / "batch_warmup.json"))
    except ValueError as error:
        warnings.append(f"no batch warmup: {error}")
    table.to_parquet(out_dir / "branches.parquet", index=False)
    files.append(out_dir / "branches.parquet")
    files.append(draw_cbs_curve(cbs_figure_info(curve, warmup), out_dir / "cbs_vs_examples.png"))
    ratio = compute_ratio(study, float(table["examples_trained"].sum()) if "examples_trained" in table else math.nan)
    comparison = None
    curves = load_comparison_curves(study.tracking_uri, study.experiment_id, study.objective) if log_to_mlflow else None
    if curves is not None and not curves.empty and "constant" in set(curves["kind"]):
        comparison = compare_to_constant(curves)
        curves.to_parquet(out_dir / "comparison_curves.parquet", index=False)
        files += [out_dir / "comparison_curves.parquet",
                  draw_warmup_curves(curves, comparison, study.objective, out_dir / "warmup_vs_constant.png")]
    result = BranchAnalysis(curve, warmup, out_dir, files, ratio, comparison, warnings)
    report = out_dir / "report.md"
    report.write_text(branch_report(result, study))
    files.append(report)
    if log_to_mlflow:
        provenance = {"tracking_uri": study.tracking_uri, "experiment_id": study.experiment_id,
                      "parent_run_id": study.parent_run_id}
        metrics = {f"cbs.checkpoint_{p.checkpoint}": p.cbs for p in curve.points if p.cbs is not None}
        for kind in comparison.kinds if comparison is not None else ():
            if kind.steps_ratio.mean is not None:
                metrics[f"compare.{kind.kind}.steps_ratio"] = kind.steps_ratio.mean
        try:
            result.analysis_run_id = log_analysis_run(provenance, out_dir, {**metrics, "cbs.compute_ratio": ratio},
                                                      {"branches": str(len(table)), "kind": "branching"})
        except Exception as error:  # noqa: BLE001 - the files are written; say why the run is missing
            warnings.append(f"the analysis run was not logged to MLflow: {str(error).strip().splitlines()[0]}")
    return result


def branch_report(result: BranchAnalysis, study: BranchStudy) -> str:
    curve = result.curve
    lines = [f"# CBS(t) by branching: {curve.workload}", "",
             f"Base run B₀ = {curve.base_batch_size}, ε = {curve.base_lr:g}, m = {curve.momentum:g} "
             f"({curve.optimizer}); branch windows of {curve.window_examples} examples rounded up to whole epochs, "
             f"lr by the "
             f"{curve.rule} rule, tolerance {curve.tolerance:g} in {study.objective}. Compute: "
             f"{result.compute_ratio:.2f}× the base run's examples.", "",
             "| checkpoint | examples | updates | base loss | CBS | 95 % interval | censored | B_simple |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for p in curve.points:
        band = f"[{p.ci95.low:.0f}, {p.ci95.high:.0f}]" if p.ci95 else "—"
        lines.append(f"| {p.checkpoint} | {p.examples} | {p.updates} | {p.base_loss:.4f} | "
                     f"{'—' if p.cbs is None else f'{p.cbs:.0f}'} | {band} | {p.censored or ''} | "
                     f"{'—' if p.noise_scale is None else f'{p.noise_scale:.0f}'} |")
    if result.warmup is not None:
        lines += ["", f"Batch warmup ({result.warmup.basis}: {BASIS_WORDS[result.warmup.basis]}): " + ", ".join(
            f"B = {s.batch_size} (ε = {s.lr:.4g}) from {s.start_examples} examples (update {s.start_step})"
            for s in result.warmup.stages) + f"; {result.warmup.total_steps} updates in all."]
    lines += ["", "![CBS(t)](cbs_vs_examples.png)"]
    if result.comparison is not None:
        lines += ["", *comparison_lines(result.comparison)]
    lines += [f"", *[f"- warning: {w}" for w in result.warnings]] if result.warnings else []
    return "\n".join(lines) + "\n"


def _ratio_text(summary) -> str:
    if summary.mean is None:
        return "—"
    band = f" [{summary.ci95.low:.2f}, {summary.ci95.high:.2f}]" if summary.ci95 else ""
    return f"{summary.mean:.2f}{band}"


def comparison_lines(comparison: WarmupComparison) -> list[str]:
    """The comparison's table: steps and examples to the constant run's final loss, as ratios to the constant's."""
    lines = ["Steps and examples to the constant run's final loss (per seed), as a ratio to the constant run's "
             "(mean over seeds, Student-t 95 % interval):", "",
             "| run | seeds | reached | steps ratio | examples ratio | final loss | updates |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for kind in comparison.kinds:
        lines.append(f"| {kind.kind} | {kind.seeds} | {kind.seeds - kind.not_reached} | "
                     f"{_ratio_text(kind.steps_ratio)} | "
                     f"{_ratio_text(kind.examples_ratio)} | {kind.final_loss:.4f} | {kind.total_updates:.0f} |")
    return lines
