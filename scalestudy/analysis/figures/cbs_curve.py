"""cbs_vs_examples.png: the critical batch size during training, CBS(t), measured by branching
(Merrill et al. 2025, arXiv 2505.23971, Fig. 1's layout): each checkpoint's CBS with its 95 %
band, censored points as triangles at the tested edge, the gradient noise scale B_simple of the base
at each checkpoint (McCandlish et al. 2018, eq. 2.8) and the batch warmup derived from CBS(t)
(``law.batch_warmup.warmup_from_cbs``) on the same axes, all in examples per update against the
base run's examples."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scalestudy.analysis.figures.style import plain_log_y, pyplot, save_png
from scalestudy.law.batch_warmup import BatchWarmup
from scalestudy.law.cbs import CBSCurve, rule_label


@dataclass(frozen=True)
class CBSFigureInfo:
    """What the figure draws (tests assert on it)."""

    examples: tuple[int, ...]  # at each checkpoint with an estimate
    cbs: tuple[float, ...]
    low: tuple[float, ...]  # the 95 % band (the estimate itself where there is no interval)
    high: tuple[float, ...]
    censored: tuple[tuple[int, float, str], ...]  # (examples, the tested edge, above | below)
    noise_examples: tuple[int, ...]
    noise_scale: tuple[float, ...]
    true_examples: tuple[int, ...]
    true_cbs: tuple[float, ...]
    warmup_examples: tuple[int, ...]  # the warmup's stages as a step line, to the run's end
    warmup_batch: tuple[int, ...]
    base_batch_size: int
    title: str
    warmup_basis: str = "lower bound"  # what the warmup's B is held under, in words


def cbs_figure_info(curve: CBSCurve, warmup: BatchWarmup | None) -> CBSFigureInfo:
    estimated = [p for p in curve.points if p.cbs is not None and p.censored is None]
    censored = []
    for p in curve.points:
        if p.censored == "above":
            censored.append((p.examples, float(max(p.tested_batch_sizes, default=curve.base_batch_size)), "above"))
        elif p.censored == "below":
            censored.append((p.examples, float(curve.base_batch_size), "below"))
    noisy = [p for p in curve.points if p.noise_scale is not None]
    known = [p for p in curve.points if p.true_cbs is not None]
    stages = warmup.stages if warmup is not None else ()
    return CBSFigureInfo(
        tuple(p.examples for p in estimated), tuple(p.cbs for p in estimated),
        tuple(p.ci95.low if p.ci95 else p.cbs for p in estimated),
        tuple(p.ci95.high if p.ci95 else p.cbs for p in estimated), tuple(censored),
        tuple(p.examples for p in noisy), tuple(p.noise_scale for p in noisy),
        tuple(p.examples for p in known), tuple(p.true_cbs for p in known),
        tuple([s.start_examples for s in stages] + ([warmup.total_examples] if stages else [])),
        tuple([s.batch_size for s in stages] + ([stages[-1].batch_size] if stages else [])),
        curve.base_batch_size,
        f"CBS(t) by branching: {curve.workload or ''} B₀={curve.base_batch_size}, "
        f"rule {rule_label(curve.rule, curve.rule_exponent)}, tolerance {curve.tolerance:g}",
        {"ci_low": "lower 95 % bound", "estimate": "estimate"}.get(warmup.basis, warmup.basis) if warmup else "")


def draw_cbs_curve(info: CBSFigureInfo, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    if info.examples:
        ax.fill_between(info.examples, info.low, info.high, color="C0", alpha=0.2, label="CBS 95 % interval")
        ax.plot(info.examples, info.cbs, "o-", color="C0", label="CBS (branches within tolerance)")
    for examples, edge, side in info.censored:
        ax.plot([examples], [edge], "^" if side == "above" else "v", color="C0", mfc="none", ms=8)
    if info.censored:
        ax.plot([], [], "^", color="C0", mfc="none", label="censored: ≥ largest tested (▲), < second (▼)")
    if info.noise_examples:
        ax.plot(info.noise_examples, info.noise_scale, "s--", color="C1", ms=4, label="gradient noise scale B_simple")
    if info.true_examples:
        ax.plot(info.true_examples, info.true_cbs, "k:", label="closed-form CBS")
    if info.warmup_examples:
        # Log x (the checkpoints are spaced geometrically): the warmup's first stage is drawn from half the
        # first checkpoint's examples rather than from 0.
        start = min([*info.examples, *info.noise_examples, *(c[0] for c in info.censored)], default=1) / 2
        ax.step([max(info.warmup_examples[0], start), *info.warmup_examples[1:]], info.warmup_batch, where="post",
                color="C2", lw=1.5, label=f"batch warmup from CBS's {info.warmup_basis}")
    ax.axhline(info.base_batch_size, color="gray", lw=0.8, ls=":", label=f"base B₀ = {info.base_batch_size}")
    plain_log_y(ax)
    ax.set_xscale("log")
    ax.set_xlabel("examples the base run had seen at the checkpoint")
    ax.set_ylabel("batch size (examples per update)")
    ax.set_title(info.title, fontsize=9)
    # Below the axes: the band spans most of the height, so no corner inside is free.
    fig.legend(fontsize=7, loc="outside lower center", ncol=2, frameon=False)
    return save_png(fig, path)
