"""``bench coverage`` rows for the law-to-production statistics (issue 14), each simulated on planted
data where the truth is known:

- the critical batch size from steps to target: S(B) = S_min·(1 + B_crit/B) with lognormal scatter,
  fitted by :func:`scalestudy.law.transition.fit_transition`; coverage of the profile-likelihood
  95 % interval and its median width (high/low);
- γ in ε* ∝ N^γ: studies over 3 dataset sizes × 5 batch sizes × 2 momenta with γ ~ U(−1.2, −0.3),
  analysed by the real fits; coverage, and the median half-width against 1.96 × the sd of γ̂ − γ
  (an interval no wider than the estimates' own scatter justifies has a ratio near 1);
- ``check-law``: a law fitted on quickstart-like studies, checked on B = 1024 and 2048 (2 seeds,
  grids centred on the law): how often a check fails where the law holds (target ≤ 5 %), and how
  often it fails past a breakdown planted at B = 512.
"""

from __future__ import annotations

import math

import numpy as np

from scalestudy.analysis.fits._stats import f_quantile
from scalestudy.analysis.fits.cell_optimum.frontier import fit_frontier
from scalestudy.analysis.fits.law import fit_law
from scalestudy.analysis.fits.law_check import check_law
from scalestudy.analysis.fits.study import FitOptions, fit_study
from scalestudy.analysis.outputs.law_file import build_law
from scalestudy.law.transition import fit_transition
from scalestudy.testing.planted import make_planted_table, planted_study

NOMINAL = 0.95


def add_scale_rows(table, studies: int) -> None:
    """The rows above, ``studies`` simulations each."""
    for batch_sizes, scatter in ((9, 0.1), (5, 0.1), (5, 0.2)):
        _critical_row(table, studies, batch_sizes, scatter)
    _gamma_row(table, studies)
    for breakdown in (None, 512):
        _check_row(table, max(studies // 4, 4), breakdown)


def _critical_row(table, studies: int, n_batch: int, scatter: float) -> None:
    rng = np.random.default_rng(n_batch * 10 + int(scatter * 100))
    b = 16.0 * 2.0 ** np.arange(n_batch)
    hits, widths, open_ended = [], [], 0
    for _ in range(studies):
        truth = math.exp(rng.uniform(math.log(b[1]), math.log(b[-2])))
        updates = 100 * (1 + truth / b) * np.exp(rng.normal(0, scatter, n_batch))
        fit = fit_transition(b, updates, f_quantile(0.95, 1, n_batch - 2))
        if fit.ci95 is None:
            open_ended += 1
            continue
        hits.append(fit.ci95[0] <= truth <= fit.ci95[1])
        widths.append(fit.ci95[1] / fit.ci95[0])
    table.add(measure="B_crit 95 % interval (steps to target)", design=f"{n_batch} batch sizes, {scatter:.0%} scatter",
              n=len(hits), rate=float(np.mean(hits)) if hits else None, target=NOMINAL,
              detail=f"median high/low {np.median(widths):.2f}; {open_ended} intervals open-ended (no bound)")


def _gamma_row(table, studies: int) -> None:
    rng = np.random.default_rng(14)
    hits, halves, errors = [], [], []
    for index in range(studies):
        gamma = rng.uniform(-1.2, -0.3)
        frame = make_planted_table(rng.uniform(0.6, 1.0), rng.uniform(0.8, 1.2), 0.05, None,
                                   batch_sizes=(16, 32, 64, 128, 256), momenta=(0.0, 0.9),
                                   dataset_sizes=(1000, 2000, 4000), gamma=gamma, noise=0.01, lr_points=7,
                                   width=rng.uniform(0.8, 1.5), rng=rng)
        law = fit_law(list(fit_frontier(frame).cells), seed=index)
        if law.ci95.get("gamma") is None:
            continue
        low, high = law.ci95["gamma"]
        hits.append(low <= gamma <= high)
        halves.append((high - low) / 2)
        errors.append(law.gamma - gamma)
    ratio = np.median(halves) / (1.96 * np.std(errors))
    table.add(measure="law gamma 95 % interval", design="3 N × 5 B × 2 m, 2 seeds", n=len(hits),
              rate=float(np.mean(hits)), target=f"≥ {NOMINAL}",
              detail=f"median half-width {np.median(halves):.4f} = {ratio:.2f} × 1.96 sd of the estimates")


def _check_row(table, studies: int, breakdown: float | None) -> None:
    rng = np.random.default_rng(512 if breakdown else 0)
    failed = cells = failed_cells = 0
    for index in range(studies):
        study = planted_study(rng, 2)
        law = build_law(fit_study(study.frame, FitOptions(seed=index)))
        frame = make_planted_table(study.alpha, study.beta, study.k, breakdown, batch_sizes=(1024, 2048),
                                   momenta=(0.9,), seeds=(0, 1), centre_on_rule=True, noise=0.01, lr_points=7,
                                   diverge_factor=1.5, rng=rng)
        check = check_law(law, frame)
        failed += not check.passed
        cells += len(check.cells)
        failed_cells += check.count("fail")
    if breakdown is None:
        table.add(measure="check-law fails where the law holds", design="B = 1024, 2048 vs a law fitted at 16-512",
                  n=studies, rate=failed / studies, target="≤ 0.05",
                  detail=f"cells failed {failed_cells / cells:.1%} (each at 0.05 / cells)")
    else:
        table.add(measure="check-law fails past a breakdown", design=f"breakdown planted at B = {breakdown:g}",
                  n=studies, rate=failed / studies, target="–", detail=f"cells failed {failed_cells / cells:.1%}")
