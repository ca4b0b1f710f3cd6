"""The laws of a study with several (one per optimizer and section): their files (``laws/*.json``
and ``laws/index.json``), their report section, their terminal lines and their MLflow metrics.

law.json keeps the primary law, as before; nothing here runs for a study of one law.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from scalestudy.analysis.fits.law_groups import LawGroup
from scalestudy.analysis.outputs.law_file import build_law
from scalestudy.analysis.outputs.mlflow_run import run_metrics
from scalestudy.analysis.outputs.phrases import breakdown_text, estimate, law_line, rule_lines
from scalestudy.analysis.outputs.report import cell_table
from scalestudy.law import ScalingLaw
from scalestudy.law.groups import INDEX_FILE, LAWS_FOLDER, IndexedLaw, LawIndex, group_file_name


def group_laws(groups: tuple[LawGroup, ...]) -> dict[str, ScalingLaw]:
    """Each fitted group's law file content, its ``group`` set; groups without fits have none."""
    return {g.name: replace(build_law(g.fits), group=g.name) for g in groups if g.fits is not None}


def write_group_files(groups: tuple[LawGroup, ...], laws: dict[str, ScalingLaw], out_dir: Path) -> list[Path]:
    """``laws/<optimizer>-<section>.json`` per fitted group and ``laws/index.json`` listing them."""
    folder = out_dir / LAWS_FOLDER
    folder.mkdir(exist_ok=True)
    files, rows = [], []
    for group in groups:
        if group.name not in laws:
            continue
        name = group_file_name(group.name)
        files.append(laws[group.name].save(folder / name))
        rows.append(IndexedLaw(group.name, group.optimizer, group.section, name, group.primary))
    return [*files, LawIndex(tuple(rows)).save(folder / INDEX_FILE)]


def group_metrics(laws: dict[str, ScalingLaw]) -> dict[str, float]:
    """The analysis run's metrics of each group's law: ``laws/<optimizer>-<section>.alpha``, ... (the
    slash makes the MLflow UI chart them in one section per study, beside ``law.*`` of law.json)."""
    return {f"{LAWS_FOLDER}/{group_file_name(name).removesuffix('.json')}.{key.removeprefix('law.')}": value
            for name, law in laws.items() for key, value in run_metrics(law).items() if key.startswith("law.")}


def report_section(groups: tuple[LawGroup, ...], laws: dict[str, ScalingLaw]) -> list[str]:
    """report.md's "Laws by optimizer and section": one row per group, then each group's law in detail."""
    out = ["## Laws by optimizer and section", "",
           (f"The study's sections trained with their own settings, so each has its own law (fitted on its "
            f"constant-schedule trials alone, as the law above; files in `{LAWS_FOLDER}/`, listed in "
            f"`{LAWS_FOLDER}/{INDEX_FILE}`). law.json is the primary law (the group with the most trials)."), "",
           "| law | optimizer | cells | α [95 %] | β [95 %] | k [95 %] | breakdown | file |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for group in groups:
        law = laws.get(group.name)
        mark = " (primary)" if group.primary else ""
        if law is None:
            out.append(f"| {group.name}{mark} | {group.optimizer} | – | – | – | – | – "
                       f"| not fitted: {group.reason} |")
            continue
        values = [estimate(getattr(law, p), getattr(law.ci95, p), 3, law.reasons.get(p))
                  for p in ("alpha", "beta", "k")]
        outcome = law.breakdown_test.outcome if law.breakdown_test else "–"
        out.append(f"| {group.name}{mark} | {group.optimizer} | {law.fitted_on.cells} | {' | '.join(values)} "
                   f"| {outcome} | `{LAWS_FOLDER}/{group_file_name(group.name)}` |")
    for group in groups:
        out += ["", f"### {group.name}", ""]
        law = laws.get(group.name)
        if law is None or group.fits is None:
            out.append(f"Not fitted: {group.reason}.")
            continue
        out += [f"**{law_line(law)}**", ""]
        out += [f"{which} rule ({group.optimizer}): {wording}." for which, wording in rule_lines(law)]
        out += ["", f"Fitted on {law.fitted_on.cells} cells ({law.fitted_on.trials} trials). "
                    f"Breakdown batch size: {breakdown_text(law, 4)}."]
        out += cell_table(group.fits.frontier)
        out += [f"- {warning}" for warning in group.fits.warnings]
    return out + [""]


def summary_lines(groups: tuple[LawGroup, ...], laws: dict[str, ScalingLaw]) -> list[str]:
    """The terminal's line per group."""
    lines = [f"{len(groups)} laws (one per optimizer and section, in {LAWS_FOLDER}/):"]
    for group in groups:
        law = laws.get(group.name)
        if law is None or law.alpha is None:
            why = group.reason if law is None else law.reasons.get("alpha", "not fitted")
            lines.append(f"  {group.name}: no law ({why})")
            continue
        where = " (law.json)" if group.primary else ""
        lines.append(f"  {group.name}{where}: alpha {estimate(law.alpha, law.ci95.alpha)}"
                     f"   beta {estimate(law.beta, law.ci95.beta, reason=law.reasons.get('beta'))}"
                     f"   k {estimate(law.k, law.ci95.k)}")
    return lines
