"""``check-law``'s files: check.json (schema ``scalestudy.check/v1``), check.md and check.png
(measured against predicted ε*, log–log, with y = x and both intervals), the terminal table and the
verdict with the check's power, and the check's MLflow run (:func:`publish_check`)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from scalestudy import __version__
from scalestudy.analysis.figures.law_check import draw_check
from scalestudy.analysis.fits.law_check import FAMILY_LEVEL, CellCheck, LawCheck
from scalestudy.law import ScalingLaw
from scalestudy.law.records import to_json

CHECK_SCHEMA = "scalestudy.check/v1"


def write_check(check: LawCheck, law: ScalingLaw, law_path: Path, source: str, out_dir: Path) -> list[Path]:
    """check.json, check.md and check.png in ``out_dir``."""
    data = {"schema": CHECK_SCHEMA, "law": str(law_path), "law_form": law.form,
            "law_experiment": law.provenance.experiment, "source": source,
            "family_level": FAMILY_LEVEL, "cell_level": check.level, "tested": check.tested,
            "counts": {outcome: check.count(outcome) for outcome in ("pass", "fail", "inconclusive")},
            "passed": check.passed, "verdict": verdict(check), "power": power_entry(check),
            "cells": [dict(to_json(cell), label=cell.label, ratio=cell.ratio) for cell in check.cells],
            "warnings": list(check.warnings), "scalestudy_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    files = [out_dir / "check.json", out_dir / "check.md"]
    files[0].write_text(json.dumps(to_json(data), indent=2, allow_nan=False) + "\n")
    figure = draw_check(check, out_dir / "check.png")
    files[1].write_text(check_markdown(check, law_path, source, figure.name))
    return [*files, figure]


def check_table(check: LawCheck) -> list[str]:
    """The cells as a table for the terminal (and check.md)."""
    rows = ["| cell | outcome | measured ε* [95 %] | law's ε* [95 % prediction] | measured / law | why | "
            "detects |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for cell in check.cells:
        ratio = f"{cell.ratio:.3f}" if cell.ratio is not None else "–"
        note = cell.reason + (f" ({cell.extrapolation})" if cell.extrapolation else "")
        detects = f"×{cell.detectable:.3g}" if cell.detectable is not None else "–"
        rows.append(f"| {cell.label} | **{cell.outcome}** | {_value(cell.measured, cell.measured_ci95)} | "
                    f"{_value(cell.predicted, cell.predicted_ci95)} | {ratio} | {note} | {detects} |")
    return rows


def verdict(check: LawCheck) -> str:
    """One sentence: holds or not, and the smallest deviation the check could have detected."""
    counts = ", ".join(f"{check.count(o)} {o}" for o in ("pass", "fail", "inconclusive") if check.count(o))
    if check.passed:
        text = (f"the law holds on every cell tested ({counts}; a cell fails at p ≤ {check.level:.2g}, "
                f"{FAMILY_LEVEL:g} over the {check.tested} cells tested)")
    else:
        failed = ", ".join(c.label for c in check.cells if c.outcome == "fail")
        text = f"the law does not transfer to {failed} ({counts}; a cell fails at p ≤ {check.level:.2g})"
    return f"{text}{', ' if check.passed else '; '}{power_phrase(check)}"


def power_phrase(check: LawCheck) -> str:
    best = check.power
    if best is None:
        return ("no cell measured ε* (only bounds from one side): the check could not have detected a deviation "
                "inside the law's interval")
    return (f"but it could not have detected a deviation of ε* smaller than ×{best.detectable:.3g} (its most "
            f"sensitive cell, {best.label})" if check.passed else
            f"the smallest deviation of ε* it could detect was ×{best.detectable:.3g} (at {best.label})")


def power_entry(check: LawCheck) -> dict | None:
    """check.json's ``power``: the smallest factor between measured and predicted ε* that fails a cell."""
    best = check.power
    return None if best is None else {"detectable_factor": best.detectable, "cell": best.label}


def check_markdown(check: LawCheck, law_path: Path, source: str, figure: str) -> str:
    out = ["# Does the law transfer?", "", f"Law: `{law_path}`. Check study: {source}.", "",
           f"**Verdict: {verdict(check)}.**", "",
           ("Each cell's ε* is fitted as the law's cells were (the vertex of a parabola in ln ε through the "
            "seed-mean accuracy) and compared with the law's prediction: t = (ln ε̂ − ln ε_law) / √(var ε̂ + "
            "var ε_law + τ²), with τ² the law's scatter of cells; a cell fails when its two-sided p-value is "
            f"at most {FAMILY_LEVEL:g} divided by the number of cells tested (Bonferroni: a law that holds fails "
            f"a check in at most {FAMILY_LEVEL:.0%} of checks). Cells whose optimum lies outside the searched lrs "
            "fail when the law's interval lies wholly beyond the bound they give, and are inconclusive "
            "otherwise. A cell's power is the smallest factor between its ε̂ and the law's ε* that would fail it "
            "(the table's last column): a law that holds has held to within that factor, no closer."), "",
           *check_table(check), "", f"![measured vs predicted]({figure})"]
    if check.warnings:
        out += ["", "## Warnings", "", *(f"- {w}" for w in check.warnings)]
    return "\n".join(out) + "\n"


def _value(value: float | None, ci: tuple[float, float] | None) -> str:
    if value is None:
        return "–"
    return f"{value:.4g}" + (f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "")


__all__ = ["CHECK_SCHEMA", "CellCheck", "check_markdown", "check_table", "power_entry", "power_phrase", "verdict",
           "write_check"]
