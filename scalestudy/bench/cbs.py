"""``scalestudy bench cbs``: how often CBS(t)'s 95 % interval (``analysis.fits.branch_cbs``) holds the
closed-form CBS(t) of the noisy quadratic model (``scalestudy.nqm``), on branched studies drawn
exactly (``testing.branched_nqm``): one base run per repetition, 6 checkpoints, every tested size
branched with a few seeds.

The estimator knows nothing of the NQM; the variants change what it could lean on: the spectrum,
noise covariance not ∝ H (isotropic, ∝ √H), momentum 0.9, the Adam-type model (H^(−½)-preconditioned
steps, the sqrt rule), a few directions (skewed, non-Gaussian loss differences), a tolerance as small
as one seed's noise, 2 or 8 seeds, and tested sizes not centred on the truth (all below it; a ×4 grid). One more row trains the studies with
the torch workload itself (``bench.cbs_torch``), a quarter as many. A point counts as covered when
low ≤ truth ≤ high (high = ∞ for a point censored ``above``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd

from scalestudy.analysis.fits.branch_cbs import estimate_cbs
from scalestudy.bench import BenchTable
from scalestudy.nqm import Branching, Quadratic
from scalestudy.testing.branched_nqm import BranchedDesign, simulate_branched_study

TARGET = 0.90
REPETITIONS = 20
CHECKPOINTS = (128, 256, 512, 1024, 2048, 4096)  # base-run updates
GRID = (8, 16, 32, 64, 128, 256, 512)
TORCH_DIM = 50
NOISE = 0.5  # σ: gradient noise of one example along i has variance σ²·hᵢ


def _base() -> BranchedDesign:
    """dim 200, hᵢ = 1/i, C = σ²H with σ = 0.5, θ₀ = 1; SGD at B₀ = 8, ε₀ = 0.1, linear rule, windows of 2048
    examples, tolerance 0.005 (about 2 % of the loss mid-run), 4 seeds per size."""
    return BranchedDesign(problem=Quadratic.nqm(200, noise_scale=NOISE),
                          branching=Branching(0.1, 8, 0.0, "linear", 2048, 0.005),
                          checkpoints=CHECKPOINTS, batch_sizes=GRID, seeds=4)


def variants() -> dict[str, BranchedDesign]:
    base = _base()
    branching = base.branching
    return {
        "NQM (its own model)": base,
        "spectrum hᵢ = i⁻²": replace(base, problem=Quadratic.nqm(200, exponent=2.0, noise_scale=NOISE)),
        "spectrum hᵢ = i^-0.5": replace(base, problem=Quadratic.nqm(200, exponent=0.5, noise_scale=NOISE),
                                        branching=replace(branching, tolerance=0.03)),
        "noise ∝ I": replace(base, problem=Quadratic.nqm(200, noise_scale=NOISE / 2, noise_power=0.0)),
        "noise ∝ √H": replace(base, problem=Quadratic.nqm(200, noise_scale=NOISE, noise_power=0.5)),
        "momentum 0.9": replace(base, branching=replace(branching, base_lr=0.01, momentum=0.9)),
        "Adam-type: H^-½ steps, sqrt rule": replace(base, branching=replace(branching, base_lr=0.5,
                                                                            rule="sqrt", precondition=0.5)),
        "8 directions (skewed losses)": replace(base, problem=Quadratic.nqm(8, noise_scale=NOISE),
                                                branching=replace(branching, tolerance=0.002)),
        "tolerance 0.002 (≈ one seed's noise)": replace(base, branching=replace(branching, tolerance=0.002)),
        "2 seeds": replace(base, seeds=2),
        "8 seeds": replace(base, seeds=8),
        "sizes all below the truth (8–64)": replace(base, batch_sizes=(8, 16, 32, 64), truth_max_batch_size=512),
        "×4 grid (8, 32, 128, 512)": replace(base, batch_sizes=(8, 32, 128, 512)),
        # Under-scaled ε: a larger B makes less progress per example, so Δ grows gradually and CBS(t)
        # grows over training (≈ 10 at the first checkpoint, ≈ 390 at the last), as Merrill et al. find.
        "SGD under the sqrt rule (CBS(t) grows ×40)": replace(base, branching=replace(
            branching, base_lr=0.3, rule="sqrt", tolerance=0.01)),
    }


def _measure(design: BranchedDesign, repetitions: int, seed: int,
             study: Callable[[int], pd.DataFrame] | None = None) -> dict[str, float]:
    """Coverage and the rest over ``repetitions`` studies: drawn exactly, or made by ``study(repetition)``."""
    rng = np.random.default_rng(seed)
    covered, widths, errors, censored, truths = [], [], [], [], []
    for repetition in range(repetitions):
        rows = simulate_branched_study(design, rng) if study is None else study(repetition)
        points = estimate_cbs(rows, tolerance=design.branching.tolerance,
                              base_batch_size=design.branching.base_batch_size)
        truth_by_checkpoint = rows.groupby("checkpoint")["true_cbs"].first()
        for point in points:
            truth = float(truth_by_checkpoint[point.checkpoint])
            truths.append(truth)
            censored.append(point.censored is not None)
            if point.ci95 is None:
                covered.append(False)
                continue
            high = math.inf if point.censored == "above" else point.ci95.high
            covered.append(point.ci95.low <= truth <= high)
            widths.append(high / point.ci95.low)
            if point.cbs is not None and math.isfinite(truth):
                errors.append(abs(math.log(point.cbs / truth)))
    return {"points": len(covered), "coverage": float(np.mean(covered)),
            "width": float(np.median(widths)) if widths else math.nan,
            "point_error": float(np.exp(np.median(errors))) if errors else math.nan,
            "censored": float(np.mean(censored)), "truth": float(np.median(truths))}


def bench_cbs(tiny: bool = False, repetitions: int | None = None) -> BenchTable:
    repetitions = repetitions or (2 if tiny else REPETITIONS)
    table = BenchTable("cbs", ["design", "points", "coverage", "target", "width", "point_error", "censored", "truth"])
    chosen = variants()
    if tiny:
        chosen = {name: chosen[name] for name in list(chosen)[:2]}
    for index, (name, design) in enumerate(chosen.items()):
        measured = _measure(design, repetitions, seed=index)
        table.add(design=name, target=f"≥ {TARGET:.2f}", **measured)
    if not tiny:  # the torch workload itself: a few studies (each trains about 30 000 small updates)
        from scalestudy.bench.cbs_torch import torch_branched_study

        design = _base()
        runs = max(1, repetitions // 4)
        measured = _measure(design, runs, 0, lambda rep: torch_branched_study(design, TORCH_DIM, NOISE, seed=rep))
        table.add(design=f"torch workload (dim {TORCH_DIM}, torch SGD)", target=f"≥ {TARGET:.2f}", **measured)
    table.notes += [
        f"{repetitions} base runs per design × {len(CHECKPOINTS)} checkpoints; coverage: the 95 % interval holds the "
        "closed-form CBS(t) (scalestudy.nqm.cbs_truth) from the realised checkpoint state: low ≤ truth ≤ high, "
        "high = ∞ for a point censored above (CBS ≥ the largest tested)",
        "width: median high/low of the interval (∞ when censored above); point_error: median factor between the "
        "interpolated estimate and the truth; truth: median closed-form CBS(t) [examples per update]",
    ]
    return table
