"""``bench coverage``, AdamW rows (issue 24): λ*'s and τ*_epoch's exponents and τ*_epoch itself, read
back from law.json, and the surge test's false peaks and power.

λ rows (:func:`~scalestudy.testing.adamw_studies.decay_study`): a known τ*_epoch (so λ* ∝ B at the
study's fixed ε), each study through :func:`fit_study` and :func:`build_law` as ``analyze`` runs it;
a row counts how often law.json's 95 % intervals hold x = 1 (λ*), x = 0 (τ*_epoch), τ*_epoch, λ* at the
reference B and each cell's λ*. Designs: Gaussian peaks in ln λ (the fits' own model: it cannot fail
alone), and asymmetric, flat-topped peaks with per-cell noise, a shared part per seed and a grid
centred on a rule (λ ∝ B^½) that is not the truth, at 2, 3 and 5 seeds, flat tops alone (power 4),
and a study that sweeps ε too.

Surge rows (:func:`~scalestudy.testing.adamw_studies.epsilon_study`): ε swept per cell, each study's
cells through :func:`fit_frontier` and :func:`surge_test`. False peaks on monotone truths (a power
law, a bend that saturates, a hinge flat above it), power on Li et al.'s surge, and how often the
peak's interval holds B_noise when a peak is declared. Real rows: the test on subsamples of the
shipped reference studies (there is no real study that sweeps λ: the λ rows are simulations only).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from scalestudy.analysis.fits.cell_optimum.frontier import fit_frontier
from scalestudy.analysis.fits.study import FitOptions, fit_study
from scalestudy.analysis.fits.surge import surge_test
from scalestudy.analysis.outputs.law_file import build_law
from scalestudy.bench import BenchTable
from scalestudy.testing.adamw_studies import (
    GAUSSIAN,
    DecayDesign,
    SurgeLaw,
    decay_study,
    epsilon_study,
    monotone_law,
)
from scalestudy.testing.realistic import PeakShape, random_shape

TARGET, FALSE_PEAK_TARGET = 0.90, 0.05
WIDE = tuple(16 * 2 ** k for k in range(9))  # B = 16-4096


def bench_coverage_adamw(tiny: bool = False) -> BenchTable:
    """The rows as a table of their own: 100 studies per λ row, 60 per surge row (3 and 3 with ``tiny``)."""
    table = BenchTable("coverage_adamw", ["measure", "design", "n", "rate", "target", "detail"])
    add_adamw_rows(table, 3 if tiny else 100, 3 if tiny else 60, tiny)
    return table


def add_adamw_rows(table: BenchTable, studies: int, surge_studies: int, tiny: bool = False) -> None:
    flat = lambda rng: _with_power(random_shape(rng), 4.0)  # noqa: E731
    decay_designs = [("planted Gaussian peaks in ln λ, 3 seeds", DecayDesign(seeds=3), lambda rng: GAUSSIAN),
                     *((f"misspecified, real-like peaks, {s} seeds", DecayDesign(seeds=s), random_shape)
                       for s in (2, 3, 5)),
                     ("misspecified, flat tops (power 4), 3 seeds", DecayDesign(seeds=3), flat),
                     ("misspecified, ε swept too (×2, 3 lrs), 3 seeds",
                      DecayDesign(seeds=3, lrs=(5e-4, 1e-3, 2e-3)), random_shape)]
    for index, (label, design, shape) in enumerate(decay_designs[:2] if tiny else decay_designs):
        _decay_rows(table, label, design, shape, studies, seed=24_000 + index)
    monotone = [(f"monotone {kind}, real-like, 3 seeds", lambda rng, k=kind: monotone_law(rng, k), 3, random_shape,
                 SIZES) for kind in ("power", "bend", "hinge")]
    monotone.append(("monotone bend, Gaussian peaks, 3 seeds", lambda rng: monotone_law(rng, "bend"), 3,
                     lambda rng: GAUSSIAN, SIZES))
    surges = [("Li et al.'s surge, Gaussian peaks, 3 seeds", 3, lambda rng: GAUSSIAN, SIZES),
              ("Li et al.'s surge, real-like, 3 seeds", 3, random_shape, SIZES),
              ("Li et al.'s surge, real-like, 5 seeds", 5, random_shape, SIZES),
              ("Li et al.'s surge, real-like, 3 seeds, B = 16-4096", 3, random_shape, WIDE)]
    for index, (label, law, seeds, shape, sizes) in enumerate(monotone[:1] if tiny else monotone):
        _false_peak_row(table, label, law, seeds, shape, sizes, surge_studies, seed=24_100 + index)
    for index, (label, seeds, shape, sizes) in enumerate(surges[:1] if tiny else surges):
        _power_rows(table, label, seeds, shape, sizes, surge_studies, seed=24_200 + index)
    if not tiny:
        _real_rows(table, 20)
    table.notes += [
        "λ studies: B = 16-512, m = 0.9, ε = 1e-3 fixed (or 5e-4, 1e-3, 2e-3), τ*_epoch ~ log-U(1, 20) epochs, "
        "λ grid ×2 steps (9 points) through λ ∝ B^½ missing the truth by up to 2×; each read from law.json",
        "surge studies: B = 16-1024 (7 sizes) unless said, m = 0.9, 8 lrs in ×2 steps centred up to 2× off each "
        "cell's ε*; Li et al.'s ε_max/(½(√(B_noise/B) + √(B/B_noise))) with B_noise ~ log-U(64, 256)",
    ]


SIZES = (16, 32, 64, 128, 256, 512, 1024)


def _with_power(shape: PeakShape, power: float) -> PeakShape:
    return PeakShape(shape.left, shape.right, power, shape.left_drop, shape.right_floor)


def _decay_rows(table: BenchTable, label: str, design: DecayDesign, shape: Callable, studies: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    hits = {name: [] for name in ("decay_x", "tau_x", "tau", "reference", "cells")}
    widths = {"decay_x": [], "tau": []}
    for index in range(studies):
        study = decay_study(rng, design, shape=shape(rng))
        adamw = build_law(fit_study(study.frame, FitOptions(seed=index))).adamw
        if adamw is None:
            continue
        for name, fit, truth in (("decay_x", adamw.weight_decay_vs_batch, 1.0), ("tau_x", adamw.tau_epoch_vs_batch, 0.0)):
            if fit is not None and fit.ci95 is not None:
                hits[name].append(fit.ci95.low <= truth <= fit.ci95.high)
                if name == "decay_x":
                    widths[name].append(fit.ci95.high - fit.ci95.low)
        if adamw.tau_epoch_ci95 is not None:
            hits["tau"].append(adamw.tau_epoch_ci95.low <= study.tau_epoch <= adamw.tau_epoch_ci95.high)
            widths["tau"].append(adamw.tau_epoch_ci95.high / adamw.tau_epoch_ci95.low)
        if adamw.weight_decay_reference_ci95 is not None:
            truth = study.weight_decay_opt(adamw.reference_batch_size)
            hits["reference"].append(adamw.weight_decay_reference_ci95.low <= truth
                                     <= adamw.weight_decay_reference_ci95.high)
        hits["cells"] += [c.weight_decay_ci95.low <= study.weight_decay_opt(c.batch_size, c.lr)
                          <= c.weight_decay_ci95.high for c in adamw.cells if c.weight_decay_ci95 is not None]
    rows = (("decay_x", "λ* ∝ B^x: 95 % interval holds x = 1", f"median width {_median(widths['decay_x']):.2f}"),
            ("tau_x", "τ*_epoch ∝ B^x: 95 % interval holds x = 0", ""),
            ("tau", "τ*_epoch 95 % interval (law.adamw)", f"median high/low {_median(widths['tau']):.1f}"),
            ("reference", "λ* at the reference B 95 % interval", ""),
            ("cells", "cell λ* 95 % interval", ""))
    for name, measure, detail in rows:
        found = hits[name]
        table.add(measure=measure, design=label, n=len(found), rate=float(np.mean(found)) if found else None,
                  target=f"≥ {TARGET}", detail=detail or f"{studies} studies")


def _false_peak_row(table, label, law, seeds, shape, sizes, studies, seed) -> None:
    rng = np.random.default_rng(seed)
    verdicts = [_surge(rng, law(rng), seeds, shape, sizes, index).verdict for index in range(studies)]
    table.add(measure="surge test: false peaks", design=label, n=len(verdicts),
              rate=verdicts.count("peak") / len(verdicts), target=f"≤ {FALSE_PEAK_TARGET}",
              detail=f"{verdicts.count('inconclusive')} inconclusive")


def _power_rows(table, label, seeds, shape, sizes, studies, seed) -> None:
    rng = np.random.default_rng(seed)
    fits, truths = [], []
    for index in range(studies):
        law = SurgeLaw(1e-3, math.exp(rng.uniform(math.log(64), math.log(256))))
        fits.append(_surge(rng, law, seeds, shape, sizes, index))
        truths.append(law.noise_batch)
    peaks = [(f, b) for f, b in zip(fits, truths) if f.verdict == "peak"]
    bounded = [f.peak_ci95[0] <= b <= f.peak_ci95[1] for f, b in peaks if f.peak_ci95 is not None]
    table.add(measure="surge test: power (peak declared)", design=label, n=studies, rate=len(peaks) / studies,
              target="reported", detail="")
    table.add(measure="surge test: peak interval holds B_noise", design=label, n=len(bounded),
              rate=float(np.mean(bounded)) if bounded else None, target=f"≥ {TARGET}",
              detail=f"{len(peaks) - len(bounded)} peaks with an interval open on a side")


def _surge(rng, law, seeds, shape, sizes, index):
    study = epsilon_study(rng, law, seeds=seeds, shape=shape(rng), batch_sizes=sizes)
    return surge_test(list(fit_frontier(study.frame).cells), seed=index)


def _real_rows(table: BenchTable, draws: int) -> None:
    """The test on the reference studies, whole and subsampled (3 of 8 seeds, ×2 lr steps): no truth is
    known, so a row reports the whole table's verdict and how often subsamples reach another."""
    from scalestudy.calibration.reference import available, load_reference
    from scalestudy.calibration.subsample import SubsampleDesign, subsample

    for name in available():
        frame = load_reference(name)
        whole = surge_test(list(fit_frontier(frame).cells))
        rng = np.random.default_rng(24_300)
        verdicts = [surge_test(list(fit_frontier(subsample(frame, SubsampleDesign(3), rng)).cells), seed=i).verdict
                    for i in range(draws)]
        p = f"p = {whole.p_value:.2g}" if whole.p_value is not None else whole.reason
        table.add(measure="surge test: peaks in real subsamples", design=f"real {name}: 3 seeds, ×2 lr steps",
                  n=draws, rate=verdicts.count("peak") / draws,
                  target="≤ 0.05" if whole.verdict == "monotone" else "reported",
                  detail=f"whole table: {whole.verdict} ({p}); {verdicts.count('inconclusive')} inconclusive")


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")
