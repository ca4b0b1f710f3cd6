"""report.md and the terminal summary: each fit stated with its 95 % interval."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scalestudy.analysis.pipeline import AnalysisResult


def estimate(value: float | None, ci=None, digits: int = 3, reason: str | None = None) -> str:
    """'0.982 [0.951, 1.013]', or 'not fitted (reason)'."""
    if value is None:
        return f"not fitted ({reason})" if reason else "not fitted"
    text = number(value, digits)
    if ci:
        text += f" [{number(ci[0], digits)}, {number(ci[1], digits)}]"
    return text


def number(value: float, digits: int = 3) -> str:
    """Significant digits, without exponents for values from 100 to a million."""
    return f"{value:.0f}" if 100 <= abs(value) < 1e6 else f"{value:.{digits}g}"


def law_line(result: AnalysisResult) -> str:
    law = result.law
    if law.k is None or law.alpha is None:
        reason = law.reasons.get("alpha") or law.reasons.get("k") or "not fitted"
        return f"law: not fitted ({reason})"
    text = f"lr = {law.k:.4g} · B^{law.alpha:.3f}"
    if law.beta is not None:
        text += f" · (1-m)^{law.beta:.3f}"
    return text


def summary(result: AnalysisResult) -> str:
    law = result.law
    lines = [law_line(result)]
    if law.alpha is not None:
        lines.append(f"  alpha {estimate(law.alpha, law.ci95.get('alpha'))}   "
                     f"beta {estimate(law.beta, law.ci95.get('beta'), reason=law.reasons.get('beta'))}   "
                     f"k {estimate(law.k, law.ci95.get('k'))}   R² {estimate(law.r2)}")
    domain = law.domain
    if domain.get("batch_size"):
        lines.append(f"  fitted on {law.fitted_on['cells']} cells ({law.fitted_on['trials']} trials), "
                     f"B {domain['batch_size'][0]:g}–{domain['batch_size'][1]:g}, "
                     f"m {domain['momentum'][0]:g}–{domain['momentum'][1]:g}")
    lines.append("breakdown batch size: " + estimate(law.breakdown_batch_size, law.ci95.get("breakdown_batch_size"),
                                                    reason=law.reasons.get("breakdown_batch_size")))
    if law.noise_scale_opt:
        lines.append(f"noise scale at ε*: g* {estimate(law.noise_scale_opt['value'], law.noise_scale_opt['ci95'])}")
    if law.gap_slope:
        gap = law.gap_slope
        lines.append(f"generalization gap: {_points(gap['value'], gap['ci95'])} per {gap['per']}")
    for group in result.schedules.groups[:1]:
        parts = [f"{r.schedule} {_acc(r)}" + (f" ×{r.update_ratio:.2f} updates" if r.update_ratio else "")
                 for r in group.rows]
        lines.append(f"schedules ({group.label}): " + "; ".join(parts))
    lines += [f"note: {note}" for note in law.notes]
    if result.warnings:
        lines.append(f"{len(result.warnings)} warning(s), see the report")
    lines.append(f"report: {result.report_path}")
    return "\n".join(lines)


def _points(value: float, ci) -> str:
    text = f"{100 * value:+.2f} points"
    if ci:
        text += f" [{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]"
    return text


def _acc(row) -> str:
    if row.test_acc_mean is None:
        return "diverged"
    sd = f" ± {100 * row.test_acc_sd:.2f}" if row.test_acc_sd is not None else ""
    return f"{100 * row.test_acc_mean:.2f}{sd}%"


def markdown(result: AnalysisResult) -> str:
    law, prov = result.law, result.law.provenance
    if prov.get("experiment"):
        source = f"MLflow experiment `{prov['experiment']}` ({prov.get('tracking_uri')})"
    else:
        source = f"`{prov['input_file']}`" if prov.get("input_file") else "an in-memory trial table"
    out = ["# Scaling-law analysis", "",
           (f"Source: {source}; {result.n_trials} trials; spec hash `{prov.get('spec_hash')}`; "
           f"scalestudy {prov.get('scalestudy_version')}; created {prov.get('created')}."), "",
           "## Optimal learning rate", "",
           (f"Form: `{law.form}` (lr per update, B in examples). ε* of each (B, m) cell is the vertex of a "
           "quadratic in ln ε through the log seed-mean test accuracy at the best ε and its neighbours; "
           "its interval is a bootstrap over seeds. The law is a least-squares fit of ln ε* on the cells "
           "at or below the breakdown, with Student-t 95 % intervals."), "",
           f"**{law_line(result)}**", "",
           "| parameter | estimate [95 % interval] |", "| --- | --- |"]
    for name in ("alpha", "beta", "k"):
        out.append(f"| {name} | {estimate(getattr(law, name), law.ci95.get(name), 4, law.reasons.get(name))} |")
    out.append(f"| R² | {estimate(law.r2, None, 4)} |")
    breakdown = estimate(law.breakdown_batch_size, law.ci95.get("breakdown_batch_size"), 4,
                         law.reasons.get("breakdown_batch_size"))
    out.append(f"| breakdown batch size | {breakdown} |")
    fitted = law.fitted_on
    domain = law.domain
    out += ["", f"Fitted on {fitted['cells']} cells ({fitted['trials']} trials)"
            + (f", batch size {domain['batch_size'][0]:g} to {domain['batch_size'][1]:g}, momentum "
               f"{domain['momentum'][0]:g} to {domain['momentum'][1]:g}." if domain.get("batch_size") else ".")]
    bd = result.law_fit.breakdown
    out.append(f"Breakdown test: {bd.reason}.")
    if fitted.get("above_breakdown"):
        out.append(f"Cells above the breakdown (not in the law): {', '.join(fitted['above_breakdown'])}.")
    if fitted.get("excluded_cells"):
        out.append(f"Cells left out: {', '.join(fitted['excluded_cells'])}.")
    out += [f"- {note}" for note in law.notes]
    out += ["", "## Noise scale at the optimum", ""]
    noise = result.noise
    if noise.value is None:
        out.append(f"Not available ({noise.reason}).")
    else:
        out.append(f"g* = ε*/(1−m)·(N/B − 1) over the law's cells: geometric mean "
                   f"{estimate(noise.value, noise.ci95, 4)} (N = {law.dataset_size}); "
                   f"sd of ln g* between cells {estimate(noise.log_sd, None, 3)}; slope of ln g* against ln B "
                   f"{estimate(noise.slope_vs_log_b, noise.slope_ci95, 3, noise.reason)} "
                   "(0 when g* is constant, as α = 1 implies).")
    out += ["", "## Generalization gap", ""]
    gap = result.gap
    if gap.vs_batch is None:
        out.append(f"Not available ({gap.reason}).")
    else:
        out.append(f"Train − test accuracy at ε*, over {len(gap.cells)} cells: "
                   f"{_points(gap.vs_batch.value, gap.vs_batch.ci95)} per {gap.vs_batch.per}"
                   + (f"; {_points(gap.vs_noise.value, gap.vs_noise.ci95)} per {gap.vs_noise.per}."
                      if gap.vs_noise else "."))
    out += ["", "## Schedules", ""]
    if not result.schedules.groups:
        out.append(f"No comparison ({result.schedules.reason}).")
    for group in result.schedules.groups:
        out += [f"From {group.label}:", "",
                ("| schedule | trials | diverged | final test accuracy (mean ± sd) | updates "
                "| updates / step_decay_lr |"),
                "| --- | --- | --- | --- | --- | --- |"]
        for r in group.rows:
            updates = f"{r.updates_mean:.0f}" if r.updates_mean is not None else "–"
            ratio = f"{r.update_ratio:.3f}" if r.update_ratio is not None else "–"
            out.append(f"| {r.schedule} | {r.n_trials} | {r.n_diverged} | {_acc(r)} | {updates} | {ratio} |")
        out.append("")
        out += [f"- {line}" for line in _verdicts(group)]
        out.append("")
    if result.schedules.reason and result.schedules.groups:
        out.append(f"Note: {result.schedules.reason}.")
    out += ["", "## Figures", ""]
    out += [f"![{path.stem}]({path.name})" for path in result.figures]
    out += [f"- {note}" for note in result.figure_notes]
    if result.warnings:
        out += ["", "## Warnings", ""] + [f"- {w}" for w in result.warnings]
    return "\n".join(out) + "\n"


def _verdicts(group) -> list[str]:
    """One sentence per schedule against step_decay_lr: accuracy difference and updates."""
    lines = []
    for r in group.rows:
        if r.acc_vs_baseline is None:
            continue
        se = f" ± {100 * r.acc_vs_baseline_se:.2f}" if r.acc_vs_baseline_se is not None else ""
        same = {True: "the same accuracy within noise", False: "a different accuracy",
                None: "an accuracy whose difference cannot be judged (one seed)"}[r.matches_baseline]
        updates = f" with {r.update_ratio:.2f}× the parameter updates" if r.update_ratio is not None else ""
        lines.append(f"{r.schedule}: {100 * r.acc_vs_baseline:+.2f}{se} points against step_decay_lr, "
                     f"{same}{updates}.")
    return lines
