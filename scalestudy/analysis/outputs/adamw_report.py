"""report.md's and the terminal's words for ``law.adamw`` (λ*, τ*_epoch against B) and ``law.surge``
(does ε*(B) fall past a peak), read from the law's records."""

from __future__ import annotations

from scalestudy.analysis.outputs.phrases import estimate, number
from scalestudy.law import ScalingLaw
from scalestudy.law.adamw_fields import ExponentFit


def adamw_summary_lines(law: ScalingLaw) -> list[str]:
    """A line for τ*_epoch and λ*'s exponent, one for the surge test, each when the law has it."""
    lines = []
    adamw = law.adamw
    if adamw is not None:
        lines.append(f"AdamW: τ*_epoch {estimate(adamw.tau_epoch, adamw.tau_epoch_ci95)} epochs; "
                     f"λ* ∝ B^x, x {exponent_text(adamw.weight_decay_vs_batch)}; "
                     f"τ*_epoch ∝ B^x, x {exponent_text(adamw.tau_epoch_vs_batch)}")
    if law.surge is not None and law.surge.verdict != "inconclusive":
        lines.append("surge test (Li et al. 2024): " + surge_text(law))
    return lines


def adamw_section(law: ScalingLaw) -> list[str]:
    """The report's AdamW section (empty when the law has neither record)."""
    out = []
    adamw = law.adamw
    if adamw is not None:
        out += ["", "## AdamW timescales", "",
                ("λ* of each cell is the optimum of the final objective over ln λ at the cell's lr, read as ε* is "
                 "over ln ε (the same vertex and unimodal 95 % set); τ*_epoch = B/(ε·λ*·N) is AdamW's weight-EMA "
                 "timescale in epochs (Wang & Aitchison 2025). The exponents are weighted like the law."), "",
                "| quantity | estimate [95 % interval] | rule |", "| --- | --- | --- |",
                f"| τ*_epoch (all cells) | {estimate(adamw.tau_epoch, adamw.tau_epoch_ci95, 4)} epochs | – |",
                (f"| λ* ∝ B^x | x {exponent_text(adamw.weight_decay_vs_batch, 4)} | x = 1 (Power Lines, "
                 "Bergsma et al. 2025) |"),
                (f"| τ*_epoch ∝ B^x | x {exponent_text(adamw.tau_epoch_vs_batch, 4)} | x = 0 (Wang & Aitchison "
                 "2025) |")]
        if adamw.reference_batch_size:
            out.append(f"| λ* at B = {adamw.reference_batch_size} | "
                       f"{estimate(adamw.weight_decay_reference, adamw.weight_decay_reference_ci95, 4)} | – |")
        for name, half in (("β2", adamw.beta2_half_life), ("model EMA", adamw.ema_half_life)):
            if half is not None:
                out.append(f"| {name} half-life | {number(half.examples)} examples ({half.source}) | fixed in "
                           "examples (Marek et al. 2025) |")
        out += ["", "| cell | lr | status | λ* [95 %] | τ*_epoch [95 %] |", "| --- | --- | --- | --- | --- |"]
        out += [f"| B={c.batch_size} m={c.momentum:g} | {c.lr:.4g} | {c.status} | "
                f"{estimate(c.weight_decay, c.weight_decay_ci95)} | {estimate(c.tau_epoch, c.tau_epoch_ci95)} |"
                for c in adamw.cells]
        out += [f"- {note}" for note in adamw.notes]
    if law.surge is not None:
        out += ["", "## Surge test", "", ("Does ε*(B) fall past a peak batch size, as Li et al. (2024) show for "
                                          "Adam? " + surge_text(law) + ".")]
    return out


def exponent_text(fit: ExponentFit | None, digits: int = 3) -> str:
    """"1.02 [0.70, 1.33], p = 0.88 against 1" or "not fitted"."""
    if fit is None:
        return "not fitted"
    test = f", p = {fit.p_value:.2g} against {fit.hypothesis:g}" if fit.p_value is not None else ""
    return estimate(fit.exponent, fit.ci95, digits) + test + f" ({fit.cells} cells)"


def surge_text(law: ScalingLaw) -> str:
    surge = law.surge
    p = f"p = {surge.p_value:.2g}" if surge.p_value is not None else "no p-value"
    if surge.verdict == "peak":
        where = estimate(surge.peak_batch_size, surge.peak_ci95)
        return f"a peak at B ≈ {where} ({p}{'; ' + surge.reason if surge.reason else ''})"
    if surge.verdict == "monotone":
        return f"monotone over the range, no fall detected ({p})"
    return f"inconclusive ({surge.reason})"
