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
    lines.append("breakdown batch size: " + breakdown_text(law))
    if law.noise_scale_opt:
        lines.append(f"noise scale at ε*: g* {estimate(law.noise_scale_opt['value'], law.noise_scale_opt['ci95'])}")
    if law.gap_slope:
        gap = law.gap_slope
        lines.append(f"generalization gap: {_points(gap['value'], gap['ci95'])} per {gap['per']}")
    if result.critical_batch.value is not None:
        lines.append("critical batch size: " + critical_line(result.critical_batch))
    lines.append("compute: " + compute_line(result.compute))
    for group in result.schedules.groups[:1]:
        parts = [f"{r.schedule} {_acc(r)}" + (f" ×{r.update_ratio:.2f} updates" if r.update_ratio else "")
                 for r in group.rows]
        lines.append(f"schedules ({group.label}): " + "; ".join(parts))
    lines += [f"note: {note}" for note in law.notes]
    if result.warnings:
        lines.append(f"{len(result.warnings)} warning(s), see the report")
    lines.append(f"report: {result.report_path}")
    return "\n".join(lines)


def breakdown_text(law, digits: int = 3) -> str:
    """'1024 [870, 1200]', 'none (reason)' or 'inconclusive (reason)'."""
    if law.breakdown_batch_size is not None:
        return estimate(law.breakdown_batch_size, law.ci95.get("breakdown_batch_size"), digits)
    outcome = (law.breakdown_test or {}).get("outcome", "not fitted")
    reason = law.reasons.get("breakdown_batch_size")
    return f"{outcome} ({reason})" if reason else outcome


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
           "its 95 % interval is a Student-t interval over the seeds' own optima (a min–max seed range, "
           "labelled so, where a seed's optimum leaves its three ε). A cell whose next larger ε diverged in "
           "every trial is bounded by divergence: ε* is extrapolated below that ε and the cell stays in the "
           "law. The law is a least-squares fit of ln ε* on the cells at or below the breakdown, "
           f"{law.fitted_on.get('weighting', 'with equal weights')}, with Student-t 95 % intervals."), "",
           f"**{law_line(result)}**", "",
           "| parameter | estimate [95 % interval] |", "| --- | --- |"]
    for name in ("alpha", "beta", "k"):
        out.append(f"| {name} | {estimate(getattr(law, name), law.ci95.get(name), 4, law.reasons.get(name))} |")
    out.append(f"| R² | {estimate(law.r2, None, 4)} |")
    out.append(f"| breakdown batch size | {breakdown_text(law, 4)} |")
    fitted = law.fitted_on
    domain = law.domain
    out += ["", f"Fitted on {fitted['cells']} cells ({fitted['trials']} trials)"
            + (f", batch size {domain['batch_size'][0]:g} to {domain['batch_size'][1]:g}, momentum "
               f"{domain['momentum'][0]:g} to {domain['momentum'][1]:g}." if domain.get("batch_size") else ".")]
    bd = result.law_fit.breakdown
    out.append(f"Breakdown test: {bd.outcome}, {bd.reason}.")
    if fitted.get("above_breakdown"):
        out.append(f"Cells above the breakdown (not in the law): {', '.join(fitted['above_breakdown'])}.")
    if fitted.get("bounded_by_divergence"):
        out.append("Cells bounded by divergence (in the law; every trial at the next larger lr diverged, so ε* "
                   f"lies below it): {', '.join(fitted['bounded_by_divergence'])}.")
    out += _cell_table(result.frontier)
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
    out += ["", "## Critical batch size", ""] + _critical_section(result)
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
    out += ["", "## Steps to target", ""] + _steps_section(result.steps)
    out += ["", "## Sharpness", ""] + _sharpness_section(result.sharpness)
    out += ["", "## Compute", ""] + _compute_section(result.compute)
    out += ["", "## Figures", ""]
    out += [f"![{path.stem}]({path.name})" for path in result.figures]
    out += [f"- {note}" for note in result.figure_notes]
    if result.warnings:
        out += ["", "## Warnings", ""] + [f"- {w}" for w in result.warnings]
    return "\n".join(out) + "\n"


def _cell_table(frontier) -> list[str]:
    """One row per cell: status, ε* and its interval (or seed range), the divergence bound."""
    if not frontier.cells:
        return []
    out = ["", "| cell | status | ε* | 95 % interval | seed range (not 95 %) | diverged at |",
           "| --- | --- | --- | --- | --- | --- |"]
    for cell in frontier.cells:
        lr = f"{cell.lr_opt:.4g}" if cell.lr_opt is not None else "–"
        bound = f"{cell.lr_bound:.4g}" if cell.lr_bound is not None else "–"
        out.append(f"| {cell.label} | {cell.status} | {lr} | {_span(cell.ci95)} | {_span(cell.seed_range)} | {bound} |")
    return out + [""]


def _span(values) -> str:
    return f"{values[0]:.4g} – {values[1]:.4g}" if values else "–"


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


def critical_line(critical) -> str:
    """'B_simple ≈ 480 (54 trials) vs breakdown 1024 [870, 1200]'."""
    if critical.value is None:
        return f"gradient noise scale not available ({critical.reason})"
    text = f"B_simple ≈ {number(critical.value)} examples ({critical.n_trials} trials at the best lr) vs "
    if critical.breakdown is None:
        return text + "no fitted breakdown"
    breakdown = estimate(critical.breakdown, critical.breakdown_ci95)
    return text + f"breakdown {breakdown} (ratio {critical.ratio_to_breakdown:.2f})"


def compute_line(compute) -> str:
    parts = [f"{compute.trials} trials" + (f" ({compute.stopped} stopped early)" if compute.stopped else "")]
    if compute.trial_epochs is not None:
        parts.append(f"{compute.trial_epochs:,.0f} trial-epochs")
    if compute.updates is not None:
        parts.append(f"{compute.updates:,.0f} updates")
    parts.append(f"{_hours(compute.cpu_hours)} CPU h, {_hours(compute.gpu_hours)} GPU h")
    return ", ".join(parts)


def _hours(value: float | None) -> str:
    return "?" if value is None else f"{value:.3g}"


def _critical_section(result: AnalysisResult) -> list[str]:
    critical, out = result.critical_batch, []
    breakdown = breakdown_text(result.law, 4)
    if critical.value is None:
        out.append(f"Gradient noise scale: not available ({critical.reason}). Breakdown of the lr law: {breakdown}.")
    else:
        iqr = critical.iqr
        out.append(f"McCandlish et al. (2018) predict the critical batch size B_crit ≈ B_simple. Here B_simple ≈ "
                   f"**{number(critical.value)} examples** (interquartile range {number(iqr[0])} to {number(iqr[1])}, "
                   f"{critical.n_trials} trials in {len(critical.cells)} cells); taken as the {critical.taken}: "
                   "read at the end of training because B_simple grows as the loss falls, at the best lr because "
                   "that is where the law is measured, and as a median because the estimate is a noisy ratio.")
        out.append("")
        if critical.breakdown is None:
            out.append(f"Breakdown of the lr law: {breakdown}; nothing to compare with.")
        else:
            inside = {True: "inside", False: "outside", None: "(no interval to compare with)"}[
                critical.within_breakdown_ci]
            out.append(f"Breakdown of the lr law: {breakdown}. B_simple / breakdown = "
                       f"{critical.ratio_to_breakdown:.2f}; B_simple lies {inside} the breakdown's 95 % interval.")
    fitted = [line for line in result.steps.lines if line.transition is not None]
    if fitted:
        fits = "; ".join(f"m = {line.momentum:g}: B_crit ≈ {number(line.transition.batch_size)}" for line in fitted)
        out += ["", f"Steps to target, fitted S(B) = S_min·(1 + B_crit/B) per momentum: {fits}."]
    return out


def _steps_section(steps) -> list[str]:
    if not steps.lines:
        return [f"Not available ({steps.reason})."]
    target = f"{100 * steps.target:.4g} %" if steps.target is not None else "the target"
    out = [(f"Fewest parameter updates to first reach test accuracy {target}, over the lr searched at each batch "
            "size (an lr counts when every trial run at it reached the target; seed mean). Perfect scaling halves "
            "the updates when B doubles; past the critical batch size the returns diminish."), ""]
    momenta = [line.momentum for line in steps.lines]
    out += ["| B | " + " | ".join(f"m = {m:g}" for m in momenta) + " |", "| --- |" + " --- |" * len(momenta)]
    values = {(p.batch_size, line.momentum): p.updates for line in steps.lines for p in line.points}
    for b in sorted({b for b, _ in values}):
        cells = [f"{values[(b, m)]:,.0f}" if (b, m) in values else "–" for m in momenta]
        out.append(f"| {b} | " + " | ".join(cells) + " |")
    out.append("")
    for line in steps.lines:
        if line.transition is not None:
            t = line.transition
            out.append(f"- m = {line.momentum:g}: S_min = {number(t.min_updates)} updates, E_min = "
                       f"{number(t.min_examples)} examples, B_crit = E_min/S_min ≈ {number(t.batch_size)}.")
        else:
            out.append(f"- m = {line.momentum:g}: no transition fitted ({line.reason}).")
    if steps.reason:
        out.append(f"- {steps.reason}.")
    return out


def _sharpness_section(fit) -> list[str]:
    if not fit.comparisons:
        return [f"Not available ({fit.reason})."]
    out = [("ε-sharpness (Keskar et al. 2017, percent) at each cell's best searched lr, smallest against largest "
            "batch size:"), ""]
    for key in fit.keys:
        rows = [c for c in fit.comparisons if c.key == key]
        if not rows:
            continue
        larger = sum(c.large > c.small for c in rows)
        parts = "; ".join(f"m = {c.momentum:g}: B = {c.small_batch} {c.small:.3g} → B = {c.large_batch} "
                          f"{c.large:.3g} (×{c.ratio:.2f})" for c in rows)
        verdict = ("larger at the largest batch size, as Keskar et al. report" if larger == len(rows) else
                   "not larger at the largest batch size, unlike Keskar et al.'s report" if larger == 0 else
                   f"larger at the largest batch size for {larger} of {len(rows)} momenta")
        out.append(f"- `{key}`: {parts}: {verdict}.")
    return out


def _compute_section(compute) -> list[str]:
    out = [(f"{compute.trials} trials: {compute.finished} finished, {compute.diverged} diverged, "
            f"{compute.stopped} stopped early by the search.")]
    if compute.stopped:
        out[0] += (" Stopped trials did not finish: they are left out of the ε* fit, the law, the gap and the "
                   "schedule comparison (their final accuracy is not comparable), and counted here.")
    epochs = f"{compute.trial_epochs:,.0f}" if compute.trial_epochs is not None else "unknown"
    updates = f"{compute.updates:,.0f}" if compute.updates is not None else "unknown"
    out += ["", "| trial-epochs | parameter updates | training hours | CPU hours | GPU hours |",
            "| --- | --- | --- | --- | --- |",
            (f"| {epochs} | {updates} | {_hours(compute.train_hours)} | {_hours(compute.cpu_hours)} "
             f"| {_hours(compute.gpu_hours)} |"), "",
            ("Hours are training + evaluation wall time summed over trials (Σ epoch_seconds); CPU and GPU hours "
             "multiply it by the workers and the CPUs or GPUs reserved per worker.")]
    out += [f"- {note}" for note in compute.notes]
    return out
