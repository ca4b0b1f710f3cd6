"""report.md and the terminal summary, from the study's fits and its law: each fit stated with its
95 % interval, or why it is missing.

Its 300-odd lines are one report's sections in reading order; each is a short function."""

from __future__ import annotations

from pathlib import Path

from scalestudy.analysis.fits.study import StudyFits
from scalestudy.analysis.inputs.trial_table import ACCURACY
from scalestudy.analysis.outputs.phrases import (
    accuracy,
    breakdown_text,
    smooth_bend_text,
    compute_line,
    critical_line,
    estimate,
    gamma_text,
    hours,
    law_line,
    number,
    points,
    rule_lines,
)
from scalestudy.law import ScalingLaw


def terminal_summary(fits: StudyFits, law: ScalingLaw, warnings: list[str], report_path: Path) -> str:
    """A few lines for the terminal."""
    lines = [law_line(law)]
    if fits.objective.metric != ACCURACY.metric:
        lines.append(f"  on the objective {fits.objective.metric} ({fits.objective.direction}imised)")
    if law.alpha is not None:
        lines.append(f"  alpha {estimate(law.alpha, law.ci95.alpha)}   "
                     f"beta {estimate(law.beta, law.ci95.beta, reason=law.reasons.get('beta'))}   "
                     f"k {estimate(law.k, law.ci95.k)}   R² {estimate(law.r2)}")
        lines.append(f"  gamma {gamma_text(law)}")
        lines += [f"  rule: {wording}" for _, wording in rule_lines(law)]
    domain = law.domain
    if domain.batch_size:
        lines.append(f"  fitted on {law.fitted_on.cells} cells ({law.fitted_on.trials} trials), "
                     f"B {domain.batch_size[0]:g}–{domain.batch_size[1]:g}, "
                     f"m {domain.momentum[0]:g}–{domain.momentum[1]:g}")
    lines.append("breakdown batch size: " + breakdown_text(law))
    if smooth_bend_text(law):
        lines.append("smooth bend (McCandlish et al.): " + smooth_bend_text(law))
    if law.noise_scale_opt:
        lines.append(f"noise scale at ε*: g* {estimate(law.noise_scale_opt.value, law.noise_scale_opt.ci95)}")
    if law.gap_slope:
        gap = law.gap_slope  # accuracy points for an accuracy; another objective in its own units
        shown = points(gap.value, gap.ci95) if fits.objective.metric.endswith("_acc") else estimate(gap.value, gap.ci95, 3)
        order = "train − test" if fits.objective.maximise else "test − train"
        lines.append(f"generalization gap ({order} at ε*, > 0: overfitting): {shown} per {gap.per}"
                     + (f"; {fits.gap.train_metrics} train metrics" if fits.gap.train_metrics else ""))
    if fits.critical_batch.value is not None:
        lines.append("critical batch size: " + critical_line(fits.critical_batch))
    sizes = fits.critical_sizes
    if sizes.verdict != "none":
        ways = "; ".join(f"{e.label} {estimate(e.value, e.ci95)}" for e in sizes.estimates if e.value is not None)
        lines.append(f"B_crit three ways: {ways} ({sizes.verdict})")
    lines.append("compute: " + compute_line(fits.compute))
    percent = fits.objective.metric.endswith("_acc")
    for group in fits.schedules.groups[:1]:
        parts = [f"{r.schedule} {accuracy(r, percent)}" + (f" ×{r.update_ratio:.2f} updates" if r.update_ratio else "")
                 for r in group.rows]
        lines.append(f"schedules ({group.label}): " + "; ".join(parts))
    lines += [f"note: {note}" for note in law.notes]
    if warnings:
        lines.append(f"{len(warnings)} warning(s), see the report")
    lines.append(f"report: {report_path}")
    return "\n".join(lines)


def report_markdown(fits: StudyFits, law: ScalingLaw, figures: list[Path], figure_notes: list[str],
             warnings: list[str], laws_section: list[str] = ()) -> str:
    """report.md: the law and every other fit, the figures, the warnings; ``laws_section``: the laws of a
    study with several (``law_group_outputs.report_section``), after the primary law's section."""
    prov = law.provenance
    if prov.experiment:
        source = f"MLflow experiment `{prov.experiment}` ({prov.tracking_uri})"
    else:
        source = f"`{prov.input_file}`" if prov.input_file else "an in-memory trial table"
    fitted, domain = law.fitted_on, law.domain
    out = ["# Scaling-law analysis", "",
           (f"Source: {source}; {fits.n_trials} trials; spec hash `{prov.spec_hash}`; "
           f"scalestudy {prov.scalestudy_version}; created {prov.created}."), "",
           "## Optimal learning rate", "",
           (f"Objective: {fits.objective.label} (`{fits.objective.metric}`) at each trial's final epoch (as the "
           f"run's summary table ranks trials), {fits.objective.direction}imised. "
           f"Form: `{law.form}` (lr per update, B in examples). ε* of each (B, m) cell is the vertex of a "
           f"quadratic in ln ε through {_curve(fits.objective)} at the best ε and its neighbours; "
           "its 95 % interval is every ε where the seed means (each seed's own level taken out) are "
           "consistent with a curve that rises to it and falls after it, whatever the peak's shape (a flat "
           "top widens it); a cell whose best ε is within the seeds' noise of the smallest or largest "
           "searched is an edge cell. A cell whose next larger ε diverged in "
           "every trial is bounded by divergence: ε* is extrapolated below that ε and the cell stays in the "
           "law. The law is a least-squares fit of ln ε* on the cells at or below the breakdown, "
           f"{fitted.weighting or 'with equal weights'}, with Student-t 95 % intervals."), "",
           f"**{law_line(law)}**", "",
           "| parameter | estimate [95 % interval] |", "| --- | --- |"]
    for name in ("alpha", "beta", "k"):
        out.append(f"| {name} | {estimate(getattr(law, name), getattr(law.ci95, name), 4, law.reasons.get(name))} |")
    out.append(f"| gamma (ε* ∝ N^γ) | {gamma_text(law, 4)} |")
    out.append(f"| R² | {estimate(law.r2, None, 4)} |")
    out.append(f"| breakdown batch size | {breakdown_text(law, 4)} |")
    if smooth_bend_text(law, 4):
        out.append(f"| smooth bend ε* = ε_max·(1−m)^β/(1 + B_noise/B)^α | {smooth_bend_text(law, 4)} |")
    for which, wording in rule_lines(law):
        optimizer = f" ({law.optimizer or 'sgd'})" if which == "Batch-size" else ""
        out += ["", f"{which} rule{optimizer}: {wording}."]
    out += ["", f"Fitted on {fitted.cells} cells ({fitted.trials} trials)"
            + (f", batch size {domain.batch_size[0]:g} to {domain.batch_size[1]:g}, momentum "
               f"{domain.momentum[0]:g} to {domain.momentum[1]:g}." if domain.batch_size else ".")]
    bd = fits.law_fit.breakdown
    out.append(f"Breakdown test: {bd.outcome}, {bd.reason}.")
    if fitted.above_breakdown:
        out.append(f"Cells above the breakdown (not in the law): {', '.join(fitted.above_breakdown)}.")
    if fitted.bounded_by_divergence:
        out.append("Cells bounded by divergence (in the law; every trial at the next larger lr diverged, so ε* "
                   f"lies below it): {', '.join(fitted.bounded_by_divergence)}.")
    out += cell_table(fits.frontier)
    if fitted.excluded_cells:
        out.append(f"Cells left out: {', '.join(fitted.excluded_cells)}.")
    out += [f"- {note}" for note in law.notes]
    out += ["", *laws_section] if laws_section else []
    out += ["", "## Noise scale at the optimum", ""]
    noise = fits.noise
    if noise.value is None:
        out.append(f"Not available ({noise.reason}).")
    else:
        n = f"N = {law.dataset_size}" if law.dataset_size else "each cell at its own N"
        out.append(f"g* = ε*/(1−m)·(N/B − 1) over the law's cells: geometric mean "
                   f"{estimate(noise.value, noise.ci95, 4)} ({n}); "
                   f"sd of ln g* between cells {estimate(noise.log_sd, None, 3)}; slope of ln g* against ln B "
                   f"{estimate(noise.slope_vs_log_b, noise.slope_ci95, 3, noise.reason)} "
                   "(0 when g* is constant, as α = 1 implies).")
    out += ["", "## Critical batch size", ""] + _critical_section(fits, law)
    out += ["", "## Generalization gap", ""]
    gap = fits.gap
    if gap.vs_batch is None:
        out.append(f"Not available ({gap.reason}).")
    else:
        objective = fits.objective
        if objective.metric.endswith("_acc"):
            out.append(f"Train − test accuracy at ε*, over {len(gap.cells)} cells: "
                       f"{points(gap.vs_batch.value, gap.vs_batch.ci95)} per {gap.vs_batch.per}"
                       + (f"; {points(gap.vs_noise.value, gap.vs_noise.ci95)} per {gap.vs_noise.per}."
                          if gap.vs_noise else "."))
        else:
            name = objective.metric.removeprefix("test_")
            order = "train − test" if objective.maximise else "test − train"
            out.append(f"{order} {name} at ε*, over {len(gap.cells)} cells: "
                       f"{estimate(gap.vs_batch.value, gap.vs_batch.ci95, 3)} per {gap.vs_batch.per}"
                       + (f"; {estimate(gap.vs_noise.value, gap.vs_noise.ci95, 3)} per {gap.vs_noise.per}."
                          if gap.vs_noise else "."))
        out.append(_gap_meaning(gap, objective))
    out += ["", "## Schedules", ""] + _schedules_section(fits.schedules, fits.objective.metric.endswith("_acc"))
    out += ["", "## Steps to target", ""] + _steps_section(fits.steps)
    out += ["", "## Sharpness", ""] + _sharpness_section(fits.sharpness)
    out += ["", "## Compute", ""] + _compute_section(fits.compute)
    out += ["", "## Figures", ""]
    out += [f"![{path.stem}]({path.name})" for path in figures]
    out += [f"- {note}" for note in figure_notes]
    if warnings:
        out += ["", "## Warnings", ""] + [f"- {w}" for w in warnings]
    return "\n".join(out) + "\n"


def _gap_meaning(gap, objective) -> str:
    """The gap's sign and how its train side was measured, for the report."""
    name = "accuracy" if objective.metric.endswith("_acc") else objective.metric.removeprefix("test_")
    order = "train − test" if objective.maximise else "test − train"
    sign = (f"The gap is {order} {name} at each cell's ε*, both at the final epoch, so a positive gap means the "
            "model scores better on its training data than on unseen data (overfitting); the slope is its "
            "change per doubling of B. ")
    how = {"eval": f"Train {name} is an eval-mode pass over a fixed training subset as large as the test set "
                   "(workload.train_metrics: eval).",
           "running": f"Train {name} is the running train-mode mean over each epoch's batches (workload."
                      "train_metrics: running): taken while the weights change, with train-mode batch norm and "
                      "augmentation, it trails what the final weights score, so the gap reads low (it can turn "
                      "negative); set train_metrics: eval for a clean one.",
           "mixed": f"The trials measured train {name} in both ways (workload.train_metrics eval and running): "
                    "the gap mixes them."}
    return sign + how.get(gap.train_metrics, f"How train {name} was measured is not recorded (before scalestudy "
                                             "recorded it, the running train-mode mean unless train_metrics: eval).")


def _curve(objective) -> str:
    """What the ε* parabola goes through, for the report."""
    if objective.maximise:
        return f"the log seed-mean {objective.label}"
    return f"the seed-mean {objective.label}"


def _schedules_section(schedules, percent: bool = True) -> list[str]:
    out = []
    if not schedules.groups:
        out.append(f"No comparison ({schedules.reason}).")
    for group in schedules.groups:
        out += [f"From {group.label}:", "",
                (f"| schedule | trials | diverged | final {'test accuracy' if percent else 'objective'} (mean ± sd) "
                 "| updates | updates / step_decay_lr |"),
                "| --- | --- | --- | --- | --- | --- |"]
        for r in group.rows:
            updates = f"{r.updates_mean:.0f}" if r.updates_mean is not None else "–"
            ratio = f"{r.update_ratio:.3f}" if r.update_ratio is not None else "–"
            out.append(f"| {r.schedule} | {r.n_trials} | {r.n_diverged} | {accuracy(r, percent)} | {updates} "
                       f"| {ratio} |")
        out.append("")
        out += [f"- {line}" for line in _verdicts(group)]
        out.append("")
    if schedules.reason and schedules.groups:
        out.append(f"Note: {schedules.reason}.")
    return out

def cell_table(frontier) -> list[str]:
    """One row per cell: status (an edge cell's reason), ε* and its 95 % interval, the divergence bound, and
    the trials stopped early that entered it censored (when any cell has some)."""
    if not frontier.cells:
        return []
    censored = any(cell.n_censored for cell in frontier.cells)
    out = ["", "| cell | status | ε* | 95 % interval | diverged at |" + (" stopped, censored |" if censored else ""),
           "| --- | --- | --- | --- | --- |" + (" --- |" if censored else "")]
    for cell in frontier.cells:
        lr = f"{cell.lr_opt:.4g}" if cell.lr_opt is not None else "–"
        bound = f"{cell.lr_bound:.4g}" if cell.lr_bound is not None else "–"
        why = f" ({cell.reason})" if cell.status.startswith("edge") and cell.reason else ""
        out.append(f"| {cell.label} | {cell.status}{why} | {lr} | {_span(cell.ci95)} | {bound} |"
                   + (f" {cell.n_censored} |" if censored else ""))
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


def _critical_section(fits: StudyFits, law: ScalingLaw) -> list[str]:
    critical, out = fits.critical_batch, []
    breakdown = breakdown_text(law, 4)
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
    return out + [""] + three_ways_paragraph(fits.critical_sizes)


def three_ways_paragraph(sizes) -> list[str]:
    """The critical batch size from steps to target, from the gradient noise scale and from the
    lr law's breakdown, side by side, and whether they agree."""
    out = ["**The critical batch size three ways** (examples per update, 95 % intervals):", "",
           "| way | B_crit | 95 % interval | from |", "| --- | --- | --- | --- |"]
    line = sizes.steps_line
    sources = {
        "steps_to_target": (f"S(B) = S_min·(1 + B_crit/B) through the fewest updates to "
                            f"{100 * sizes.target:.4g} % at each B ({line.label})" if line and sizes.target
                            else f"S(B) = S_min·(1 + B_crit/B) ({line.label})" if line else "steps to target"),
        "gradient_noise": "median B_simple over the trials at each cell's best lr (distribution-free interval)",
        "lr_breakdown": "the breakdown test's hinge in ε*(B) (profile-likelihood interval)"}
    for way in sizes.estimates:
        if way.value is None:
            out.append(f"| {way.label} | – | – | not available: {way.reason} |")
        else:
            interval = _span(way.ci95) if way.ci95 else f"– ({way.reason or 'none'})"
            out.append(f"| {way.label} | {number(way.value)} | {interval} | {way.source or sources[way.method]} |")
    out += ["", sizes.agreement]
    if line is not None:
        fit = line.transition
        out.append(f"Steps to target ({line.label}): S_min = {number(fit.min_updates)} updates, E_min = "
                   f"{number(fit.min_examples)} examples; at B_crit training takes 2·S_min updates and 2·E_min "
                   "examples (McCandlish et al. 2018, eq. 2.11).")
    return out


def _steps_section(steps) -> list[str]:
    if not steps.lines:
        return [f"Not available ({steps.reason})."]
    if steps.metric == "test_acc":
        target = f"test accuracy {100 * steps.target:.4g} %" if steps.target is not None else "the target"
    else:
        target = f"{steps.metric} {steps.target:.4g}" if steps.target is not None else "the target"
    out = [(f"Fewest parameter updates to first reach {target}, over the lr searched at each batch "
            "size (an lr counts when every trial run at it reached the target; seed mean). Perfect scaling halves "
            "the updates when B doubles; past the critical batch size the returns diminish."), ""]
    labels = [line.label for line in steps.lines]
    out += ["| B | " + " | ".join(labels) + " |", "| --- |" + " --- |" * len(labels)]
    values = {(p.batch_size, line.label): ("≤ " if p.censored else "") + f"{p.updates:,.0f}"
              for line in steps.lines for p in line.points}
    for b in sorted({b for b, _ in values}):
        cells = [values.get((b, label), "–") for label in labels]
        out.append(f"| {b} | " + " | ".join(cells) + " |")
    if steps.censored:
        out += ["", "≤: censored, reached before the first evaluation after the initial model (known only as a "
                    "bound); left out of the S(B) fit."]
    out.append("")
    for line in steps.lines:
        if line.transition is not None:
            t = line.transition
            interval = f" [{number(t.ci95[0])}, {number(t.ci95[1])}]" if t.ci95 else f" (no interval: {line.reason})"
            out.append(f"- {line.label}: S_min = {number(t.min_updates)} updates, E_min = "
                       f"{number(t.min_examples)} examples, B_crit = E_min/S_min ≈ {number(t.value)}{interval}.")
        else:
            out.append(f"- {line.label}: no transition fitted ({line.reason}).")
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
            (f"| {epochs} | {updates} | {hours(compute.train_hours)} | {hours(compute.cpu_hours)} "
             f"| {hours(compute.gpu_hours)} |"), "",
            ("Hours are training + evaluation wall time summed over trials (Σ epoch_seconds); CPU and GPU hours "
             "multiply it by the workers and the CPUs or GPUs reserved per worker.")]
    out += [f"- {note}" for note in compute.notes]
    return out
