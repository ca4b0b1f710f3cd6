"""Fits and numbers as short phrases, shared by report.md and the terminal summary
(:mod:`~scalestudy.analysis.outputs.report`): each estimate with its 95 % interval, or why it is
missing."""

from __future__ import annotations

from scalestudy.analysis.fits.cost import StudyCompute
from scalestudy.analysis.fits.gradient_noise_scale import CriticalBatch
from scalestudy.analysis.fits.schedule_comparison import ScheduleRow
from scalestudy.analysis.outputs.rule_wording import ALPHA_RULES, BETA_RULES, GAMMA_RULES, rule_wording
from scalestudy.law import ScalingLaw


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


def points(value: float, ci) -> str:
    """An accuracy change in points: '+0.98 points [+0.95, +1.00]'."""
    text = f"{100 * value:+.2f} points"
    if ci:
        text += f" [{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]"
    return text


def accuracy(row: ScheduleRow, percent: bool = True) -> str:
    """A schedule's final objective: '90.16 ± 0.51%' (an accuracy), '1.823 ± 0.004' (another
    objective, ``percent=False``), or 'diverged'."""
    if row.test_acc_mean is None:
        return "diverged"
    if not percent:
        sd = f" ± {number(row.test_acc_sd, 4)}" if row.test_acc_sd is not None else ""
        return f"{number(row.test_acc_mean, 4)}{sd}"
    sd = f" ± {100 * row.test_acc_sd:.2f}" if row.test_acc_sd is not None else ""
    return f"{100 * row.test_acc_mean:.2f}{sd}%"


def law_line(law: ScalingLaw) -> str:
    """'lr = 0.0009974 · B^1.000 · (1-m)^0.999', or 'law: not fitted (reason)'."""
    if law.k is None or law.alpha is None:
        reason = law.reasons.get("alpha") or law.reasons.get("k") or "not fitted"
        return f"law: not fitted ({reason})"
    text = f"lr = {law.k:.4g} · B^{law.alpha:.3f}"
    if law.beta is not None:
        text += f" · (1-m)^{law.beta:.3f}"
    if law.gamma is not None:
        text += f" · N^{law.gamma:.3f}"
    return text


def rule_lines(law: ScalingLaw) -> list[tuple[str, str]]:
    """(which rule, its wording) for each fitted exponent of the law: α always, β and γ when fitted."""
    lines = [("Batch-size", rule_wording("α", law.alpha, law.ci95.alpha, ALPHA_RULES))]
    if law.beta is not None:
        lines.append(("Momentum", rule_wording("β", law.beta, law.ci95.beta, BETA_RULES)))
    if law.gamma is not None:
        lines.append(("Dataset-size", rule_wording("γ", law.gamma, law.ci95.gamma, GAMMA_RULES)))
    return lines


def gamma_text(law: ScalingLaw, digits: int = 3) -> str:
    """'−0.98 [−1.05, −0.91]', or why there is none (the rules it is held against: :func:`rule_lines`)."""
    if law.gamma is None:
        return f"not fitted ({law.reasons.get('gamma', 'a single dataset size')})"
    return estimate(law.gamma, law.ci95.gamma, digits)


def breakdown_text(law: ScalingLaw, digits: int = 3) -> str:
    """'1024 [870, 1200]', 'none (reason)' or 'inconclusive (reason)'."""
    if law.breakdown_batch_size is not None:
        return estimate(law.breakdown_batch_size, law.ci95.breakdown_batch_size, digits)
    outcome = law.breakdown_test.outcome if law.breakdown_test else "not fitted"
    reason = law.reasons.get("breakdown_batch_size")
    return f"{outcome} ({reason})" if reason else outcome


def smooth_bend_text(law: ScalingLaw, digits: int = 3) -> str | None:
    """McCandlish et al.'s smooth bend beside the hinge: 'small-B slope 0.95 [0.8, 1.1], B_noise 512
    [300, 900]; the data prefer: smooth (reason)'; None when the law file has none."""
    bend = law.smooth_bend
    if bend is None:
        return None
    slope = estimate(bend.alpha, bend.ci95.alpha, digits)
    preferred = f"the data prefer: {bend.preferred}" + (f" ({bend.reason})" if bend.reason else "")
    if bend.ci95.alpha is None and bend.noise_batch_size is not None:
        return f"no small-B slope to report; {preferred}"  # the bend lies below the tested batch sizes
    if bend.noise_batch_size is None:
        noise = "no bend within the tested batch sizes"
    elif bend.ci95.noise_batch_size is None and bend.noise_batch_size_at_least is not None:
        noise = f"B_noise {number(bend.noise_batch_size)} (≥ {number(bend.noise_batch_size_at_least)}, not bounded above)"
    else:
        noise = f"B_noise {estimate(bend.noise_batch_size, bend.ci95.noise_batch_size, digits)}"
    return f"small-B slope α {slope}, {noise}; {preferred}"


def critical_line(critical: CriticalBatch) -> str:
    """'B_simple ≈ 480 (54 trials) vs breakdown 1024 [870, 1200]'."""
    if critical.value is None:
        return f"gradient noise scale not available ({critical.reason})"
    text = f"B_simple ≈ {number(critical.value)} examples ({critical.n_trials} trials at the best lr) vs "
    if critical.breakdown is None:
        return text + "no fitted breakdown"
    breakdown = estimate(critical.breakdown, critical.breakdown_ci95)
    return text + f"breakdown {breakdown} (ratio {critical.ratio_to_breakdown:.2f})"


def compute_line(compute: StudyCompute) -> str:
    parts = [f"{compute.trials} trials" + (f" ({compute.stopped} stopped early)" if compute.stopped else "")]
    if compute.trial_epochs is not None:
        parts.append(f"{compute.trial_epochs:,.0f} trial-epochs")
    if compute.updates is not None:
        parts.append(f"{compute.updates:,.0f} updates")
    parts.append(f"{hours(compute.cpu_hours)} CPU h, {hours(compute.gpu_hours)} GPU h")
    return ", ".join(parts)


def hours(value: float | None) -> str:
    return "?" if value is None else f"{value:.3g}"
