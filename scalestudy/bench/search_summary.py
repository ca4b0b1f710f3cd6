"""``bench search``'s figures: what one replay gave (:class:`SearchRun`), and per table and algorithm,
its repetitions summed up as one row.

``compute_fraction``: trial-epochs spent ÷ the whole table's (median over repetitions);
``alpha_width_ratio``: width of α's 95 % interval from the replay ÷ the whole table's (median; a
replay whose law has no interval counts ∞); ``coverage``: share of repetitions whose interval holds
the whole table's α, with ``coverage_interval``, its Wilson 95 % interval (20 repetitions pin a
coverage of 90 % only to about 70–97 %); ``fitted``: share with an interval. Where the table spans several momenta
the JSON also gives ``beta_width_ratio`` and ``beta_coverage``, the same for β.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from scalestudy.analysis import AnalysisError
from scalestudy.analysis.fits.study import fit_study
from scalestudy.search.replay import FAR_SNAP, RecordedStudy, lattice_match, replay_spec
from scalestudy.trial.config import expand_cells


@dataclass(frozen=True)
class LawEstimate:
    """α of a law fit and its 95 % interval (None: no interval, the law is not fitted)."""

    alpha: float | None
    interval: tuple[float, float] | None
    batch_sizes: tuple[int, ...] = ()  # of the cells α is fitted on
    breakdown: float | None = None  # the batch size where the law's power law breaks down [examples]
    beta: float | None = None  # the momentum exponent, where the cells span several momenta
    beta_interval: tuple[float, float] | None = None

    @property
    def beta_width(self) -> float:
        return self.beta_interval[1] - self.beta_interval[0] if self.beta_interval else math.inf

    def holds_beta(self, beta: float) -> bool:
        return self.beta_interval is not None and self.beta_interval[0] <= beta <= self.beta_interval[1]

    @property
    def fitted(self) -> bool:
        return self.interval is not None

    @property
    def width(self) -> float:
        return self.interval[1] - self.interval[0] if self.interval else math.inf

    def holds(self, alpha: float) -> bool:
        return self.interval is not None and self.interval[0] <= alpha <= self.interval[1]


@dataclass(frozen=True)
class SearchRun:
    """One algorithm replayed once on one table."""

    algorithm: str
    available: bool
    design: str = ""  # trials per cell, or the subsample's shape
    trial_epochs: float = 0.0  # spent, every trial asked (a repeated row too) [trial-epochs]
    trials: int = 0  # asked
    rows: int = 0  # distinct recorded rows answered: the trials the law is fitted on
    law: LawEstimate = LawEstimate(None, None)
    snapped_far: int = 0  # proposals more than FAR_SNAP from every recorded lr of their cell
    other_seed: int = 0  # answered by another seed: the (lr, seed) was not recorded


def fit_alpha(frame) -> LawEstimate:
    """α and its interval from the analysis' law fit of a trial table."""
    try:
        with warnings.catch_warnings():  # NumPy's empty-slice warnings of thin replays, hundreds of them
            warnings.simplefilter("ignore", RuntimeWarning)
            law = fit_study(frame).law_fit
    except AnalysisError:  # thin data: every trial diverged, ...
        return LawEstimate(None, None)
    interval, beta = law.ci95.get("alpha"), law.ci95.get("beta")
    return LawEstimate(law.alpha, (float(interval[0]), float(interval[1])) if interval else None,
                       tuple(sorted({c.batch_size for c in law.cells})), law.breakdown.batch_size,
                       law.beta, (float(beta[0]), float(beta[1])) if beta else None)


def summary_rows(study: RecordedStudy, reference: LawEstimate, runs: list[SearchRun]) -> list[dict[str, Any]]:
    """The whole table's row, then one per algorithm (in the order they ran)."""
    rows = [{"table": study.name, "algorithm": "whole table", "design": f"{len(study.trials)} trials",
             "compute_fraction": 1.0, "alpha_width_ratio": 1.0 if reference.fitted else "-",
             "fitted": 1.0 if reference.fitted else 0.0, "coverage": "-",
             "alpha_median": reference.alpha if reference.alpha is not None else "-",
             "alpha_interval": list(reference.interval) if reference.interval else None,
             **({"beta_median": reference.beta, "beta_interval": list(reference.beta_interval)}
                if reference.beta_interval else {})}]
    for algorithm in dict.fromkeys(run.algorithm for run in runs):
        mine = [run for run in runs if run.algorithm == algorithm]
        if not any(run.available for run in mine):
            rows.append({"table": study.name, "algorithm": algorithm, "design": "not available"})
            continue
        rows.append(_algorithm_row(study, reference, [run for run in mine if run.available]))
    return rows


def _algorithm_row(study: RecordedStudy, reference: LawEstimate, runs: list[SearchRun]) -> dict[str, Any]:
    fractions = [run.trial_epochs / study.trial_epochs for run in runs]
    alphas = [run.law.alpha for run in runs if run.law.fitted]
    row: dict[str, Any] = {
        "table": study.name, "algorithm": runs[0].algorithm, "repetitions": len(runs),
        "design": ", ".join(dict.fromkeys(run.design for run in runs)),
        "compute_fraction": float(np.median(fractions)),
        "compute_fraction_range": [float(min(fractions)), float(max(fractions))],
        "fitted": float(np.mean([run.law.fitted for run in runs])),
        "alpha_median": float(np.median(alphas)) if alphas else "-",
        "trials_median": float(np.median([run.trials for run in runs])),
        "repeated_trials": int(sum(run.trials - run.rows for run in runs)),
        "snapped_far": int(sum(run.snapped_far for run in runs)),
        "other_seed": int(sum(run.other_seed for run in runs)),
    }
    if reference.fitted:
        ratios = [run.law.width / reference.width for run in runs]
        q25, median, q75 = (quantile(ratios, q) for q in (0.25, 0.5, 0.75))
        row.update({"alpha_width_ratio": median, "alpha_width_ratio_q25": q25, "alpha_width_ratio_q75": q75,
                    "ratio_q25_q75": f"{_shown(q25)}–{_shown(q75)}",
                    **_coverage("coverage", [run.law.holds(reference.alpha) for run in runs])})
        if alphas:
            row["alpha_error_median"] = float(np.median([abs(a - reference.alpha) for a in alphas]))
    else:
        row.update({"alpha_width_ratio": "-", "coverage": "-"})
    if reference.beta_interval is not None:  # the cells span several momenta: β's interval, judged alike
        ratios = [run.law.beta_width / reference.beta_width for run in runs]
        row.update({"beta_width_ratio": quantile(ratios, 0.5),
                    **_coverage("beta_coverage", [run.law.holds_beta(reference.beta) for run in runs])})
    return row


def table_notes(study: RecordedStudy, reference: LawEstimate, runs: list[SearchRun]) -> list[str]:
    """What a table is and what its replays had to bend: snapped lrs, substituted seeds, repeated rows."""
    cells = expand_cells(replay_spec(study, "grid"))
    match = lattice_match(study, {(c.workload.dataset_size, c.batch_size, c.momentum): list(c.lr_grid) for c in cells})
    law = "no interval of α: the ratios cannot be formed"
    if reference.fitted:
        sizes = reference.batch_sizes
        law = (f"α = {reference.alpha:.3f}, 95 % interval [{reference.interval[0]:.3f}, {reference.interval[1]:.3f}] "
               f"on B {sizes[0]}–{sizes[-1]}" + (f" (a breakdown at B ≈ {reference.breakdown:.0f} above)"
                                                 if reference.breakdown else ""))
    notes = [f"{study.name}: {len(study.trials)} law trials, {study.trial_epochs:.0f} trial-epochs, "
             f"B {study.batch_sizes[0]}–{study.batch_sizes[-1]}, m {', '.join(f'{m:g}' for m in study.momenta)}, "
             f"{len(study.seeds)} seeds, {study.objective.metric} ({study.objective.direction}); {law}; "
             f"{match.describe()}", *(f"{study.name}: {note}" for note in study.notes)]
    bent = []
    for algorithm in dict.fromkeys(run.algorithm for run in runs if run.available and run.trials):
        mine = [run for run in runs if run.algorithm == algorithm]
        asked = sum(run.trials for run in mine)
        far, repeated = sum(run.snapped_far for run in mine), sum(run.trials - run.rows for run in mine)
        other = sum(run.other_seed for run in mine)
        if far or repeated or other:
            bent.append(f"{algorithm} {_percent(far, asked)} snapped, {_percent(repeated, asked)} repeated"
                        + (f", {_percent(other, asked)} another seed" if other else ""))
    if bent:
        notes.append(f"{study.name}: of the trials asked, snapped by more than ×{FAR_SNAP:g} to a recorded lr / "
                     f"answered by a row already answered: {'; '.join(bent)}")
    return notes


def _coverage(name: str, held: list[bool]) -> dict[str, Any]:
    """``name``: the share held; ``name_interval``: its Wilson interval; ``name_95``: that, as shown."""
    low, high = wilson_interval(sum(held), len(held))
    return {name: float(np.mean(held)), f"{name}_interval": [low, high],
            f"{name}_95": f"{100 * low:.0f}–{100 * high:.0f} %"}


def wilson_interval(hits: int, n: int) -> tuple[float, float]:
    """The Wilson score 95 % interval of a binomial share (Brown, Cai & DasGupta 2001 §4.1 recommend it
    for small n): unlike p̂ ± 1.96·se it stays inside [0, 1] and does not collapse to a point at 20/20."""
    from scipy.stats import binomtest

    if n <= 0:
        return 0.0, 1.0
    interval = binomtest(int(hits), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return float(interval.low), float(interval.high)


def quantile(values: list[float], q: float) -> float:
    """The q-quantile (linear between order statistics), ∞ counted as larger than any number: NumPy
    would make the ∞ − ∞ of two unfitted replays a NaN."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    if high == low:
        return float(ordered[low])
    if math.isinf(ordered[high]):
        return math.inf
    return float(ordered[low] + (position - low) * (ordered[high] - ordered[low]))


def _shown(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:.2f}"


def _percent(part: int, whole: int) -> str:
    share = 100 * part / whole
    return "<1 %" if 0 < share < 0.5 else f"{share:.0f} %"
