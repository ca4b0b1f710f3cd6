"""check.png (``scalestudy check-law``): measured against predicted ε* (log–log), the y = x line, both
intervals as error bars."""

from __future__ import annotations

from pathlib import Path

from scalestudy.analysis.figures.style import pyplot, save_png
from scalestudy.analysis.fits.law_check import LawCheck

MARKERS = {"pass": ("o", "tab:green"), "fail": ("X", "tab:red"), "inconclusive": ("^", "tab:gray")}


def draw_check(check: LawCheck, path: Path) -> Path:
    """Measured against predicted ε* (log–log), the y = x line, both intervals as error bars."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 5.0), layout="constrained")
    shown: list[float] = []
    for cell in check.cells:
        if cell.measured is None or cell.predicted is None:
            continue
        marker, color = MARKERS[cell.outcome]
        xerr = _errors(cell.predicted, cell.predicted_ci95)
        yerr = _errors(cell.measured, cell.measured_ci95)
        ax.errorbar([cell.predicted], [cell.measured], xerr=xerr, yerr=yerr, fmt=marker, color=color, ms=7,
                    capsize=3, lw=1)
        ax.annotate(f"B={cell.batch_size}", (cell.predicted, cell.measured), textcoords="offset points",
                    xytext=(5, 4), fontsize=7)
        shown += [cell.predicted, cell.measured, *(cell.predicted_ci95 or ()), *(cell.measured_ci95 or ())]
    if shown:
        low, high = min(shown) / 1.5, max(shown) * 1.5
        ax.plot([low, high], [low, high], "k--", lw=1, label="measured = predicted")
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
    for outcome, (marker, color) in MARKERS.items():
        if check.count(outcome):
            ax.plot([], [], marker, color=color, label=outcome)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("the law's ε* (95 % prediction interval)")
    ax.set_ylabel("measured ε* (95 % interval; ▲ a bound)")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title("Does the law transfer? measured vs predicted optimal lr", fontsize=10)
    return save_png(fig, path)


def _errors(value: float, ci: tuple[float, float] | None):
    if ci is None:
        return None
    return [[max(value - ci[0], 0.0)], [max(ci[1] - value, 0.0)]]
