"""CBS(t) from a branched study's rows: at each checkpoint of the base run, the largest batch size
whose branch loses no more than ``tolerance`` against the control (``scalestudy.law.cbs`` states the
definition; Merrill et al. 2025, arXiv 2505.23971, §3).

    points = estimate_cbs(rows, tolerance=0.01, base_batch_size=64)   # tuple[CBSPoint, ...]

``rows``: one row per branch run: ``checkpoint``, ``checkpoint_examples``, ``checkpoint_updates``,
``base_loss``, ``batch_size``, ``seed``, ``window_loss`` (the objective at the window's end; NaN: the
branch diverged, which fails the tolerance), optionally ``noise_scale`` and ``true_cbs`` (carried
into the point). Rows at ``batch_size == base_batch_size`` are the control. ``window_loss`` is lower-is-better
(a loss, as ``cbs.py``'s tolerance is "in the objective's units (loss)"): pass a maximised objective negated.

At each tested B the loss excess Δ(B) = E[window_loss(B)] − E[window_loss(B₀)] is estimated from the
seeds: paired by seed when every branch seed has a control run (the pairing removes whatever the two
share), else Welch's difference of means; a diverged seed makes Δ(B) infinite (the expected loss of a
run that may diverge is unbounded). The estimate is the largest tested size whose mean Δ is within
the tolerance (Δ(B₀) = 0 exactly), moved towards the next size, by linear interpolation in ln B, to
where the mean Δ crosses the tolerance.

The 95 % interval does not trust that interpolation: Δ(B) is a curve seen only at the tested sizes,
flat and then steep, so a chord between two sizes a factor 2 apart says little about where inside
the cell it crosses. CBS ≥ B_j whenever Δ(B_j) ≤ tolerance, so the interval's low end is the largest
size whose one-sided 97.5 % Student-t upper bound of Δ is within the tolerance (else B₀). Its high
end is the smallest size from which every larger tested size's lower bound (Student-t, or Markov's
for a branch that lost by orders of magnitude) is past the tolerance, else the largest tested, with
a note: the data do not bound CBS above. It assumes that Δ stays past the tolerance between the
tested sizes above it. Both ends are tested sizes; ``scalestudy bench cbs`` measures the coverage of
the closed-form CBS(t) on the noisy quadratic model, misspecified variants included
(docs/benchmarks.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalestudy.analysis.fits._stats import t_quantile
from scalestudy.law.cbs import CBSPoint
from scalestudy.law.records import Interval

REQUIRED = ("checkpoint", "checkpoint_examples", "checkpoint_updates", "base_loss", "batch_size", "seed",
            "window_loss")
ONE_SIDED = 0.975  # each end of the interval is a one-sided 97.5 % bound: 95 % together


@dataclass(frozen=True)
class Excess:
    """Δ at one tested size: its mean and one-sided 97.5 % bounds (equal to the mean without an error)."""

    batch_size: int
    mean: float
    lower: float
    upper: float
    has_error: bool


def estimate_cbs(rows: pd.DataFrame, *, tolerance: float, base_batch_size: int) -> tuple[CBSPoint, ...]:
    """One :class:`CBSPoint` per checkpoint, in order of the base run's examples (see the module docstring)."""
    missing = [column for column in REQUIRED if column not in rows.columns]
    if missing:
        raise ValueError(f"estimate_cbs: rows lack the column(s) {', '.join(missing)}; needed: {', '.join(REQUIRED)}")
    if not math.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"estimate_cbs: tolerance {tolerance!r}; allowed: a finite loss ≥ 0")
    if base_batch_size <= 0:
        raise ValueError(f"estimate_cbs: base_batch_size {base_batch_size!r}; allowed: a whole number > 0")
    points = [_point(group, tolerance, int(base_batch_size)) for _, group in rows.groupby("checkpoint", sort=True)]
    return tuple(sorted(points, key=lambda point: (point.examples, point.checkpoint)))


def _first(group: pd.DataFrame, column: str) -> float | None:
    if column not in group.columns:
        return None
    values = group[column].dropna()
    return float(values.iloc[0]) if len(values) else None


def _point(group: pd.DataFrame, tolerance: float, base: int) -> CBSPoint:
    sizes = sorted(int(b) for b in group["batch_size"].unique() if b > base)
    true_cbs = _first(group, "true_cbs")
    point = dict(checkpoint=int(group["checkpoint"].iloc[0]), examples=int(group["checkpoint_examples"].iloc[0]),
                 updates=int(group["checkpoint_updates"].iloc[0]), base_loss=float(group["base_loss"].iloc[0]),
                 tested_batch_sizes=(base, *sizes), noise_scale=_first(group, "noise_scale"),
                 true_cbs=true_cbs if true_cbs is None or math.isfinite(true_cbs) else None)
    control = _per_seed(group[group["batch_size"] == base])
    control = control[np.isfinite(control.to_numpy())]  # a diverged control compares nothing
    if control.empty:
        return CBSPoint(**point, cbs=None, note=f"no finite control run at B₀ = {base}")
    if not sizes:
        return CBSPoint(**point, cbs=None, note=f"no branch above B₀ = {base}")
    branches = {size: _per_seed(group[group["batch_size"] == size]) for size in sizes}
    excesses = [_excess(branch, control, _paired(branch, control), size) for size, branch in branches.items()]
    cbs, censored = _crossing(base, excesses, tolerance)
    if not all(e.has_error for e in excesses):
        return CBSPoint(**point, cbs=cbs, censored=censored,
                        note="one seed at some size: no interval (run at least two seeds per size)")
    low, high, open_above = _bracket(base, excesses, tolerance)
    note = None
    if open_above and censored is None:
        note = "the interval's upper end is the largest tested size: no size lost more than the tolerance at 95 %"
    return CBSPoint(**point, cbs=cbs, ci95=Interval(float(low), float(high)), censored=censored, note=note)


def _per_seed(rows: pd.DataFrame) -> pd.Series:
    """window_loss per seed (a repeated seed: its mean); a diverged run (NaN, inf) is +inf."""
    loss = rows["window_loss"].astype(float).where(lambda v: np.isfinite(v), math.inf)
    return loss.groupby(rows["seed"].to_numpy()).mean()


def _paired(branch: pd.Series, control: pd.Series) -> np.ndarray | None:
    """The branch's loss minus the control's, seed by seed, when every branch seed (two at least) has a control
    run and none diverged; else None."""
    if len(branch) < 2 or not set(branch.index) <= set(control.index) or not np.all(np.isfinite(branch.to_numpy())):
        return None
    return branch.to_numpy() - control.loc[branch.index].to_numpy()


def _excess(branch: pd.Series, control: pd.Series, differences: np.ndarray | None, size: int) -> Excess:
    if not np.all(np.isfinite(branch.to_numpy())):
        return Excess(size, math.inf, math.inf, math.inf, True)
    if differences is not None:  # paired by seed
        mean, n = float(differences.mean()), len(differences)
        error, dof = float(differences.std(ddof=1)) / math.sqrt(n), n - 1
    else:  # Welch: independent seeds, unequal variances
        mean = float(branch.mean() - control.mean())
        if len(branch) < 2 or len(control) < 2:
            return Excess(size, mean, mean, mean, False)
        parts = branch.var(ddof=1) / len(branch), control.var(ddof=1) / len(control)
        error = math.sqrt(sum(parts))
        dof = sum(parts) ** 2 / sum(p * p / (k - 1) for p, k in zip(parts, (len(branch), len(control)))) \
            if error > 0 else len(branch) + len(control) - 2
    half = t_quantile(ONE_SIDED, max(1, int(dof))) * error  # floor of the dof: a little wider, never narrower
    return Excess(size, mean, max(mean - half, _markov_lower(branch, control)), mean + half, True)


def _markov_lower(branch: pd.Series, control: pd.Series) -> float:
    """A distribution-free lower bound of Δ for a nonnegative loss: Markov's inequality gives E L_B ≥
    (1 − 0.975)·mean(L_B) at 97.5 %, less the control's largest seed. The Student-t bound is useless for a
    branch that lost by orders of magnitude with seeds spread as widely (its lower end falls below 0);
    this one is loose but holds whatever the losses' distribution. -inf for losses that can be negative."""
    if (branch < 0).any() or (control < 0).any():
        return -math.inf
    return (1.0 - ONE_SIDED) * float(branch.mean()) - float(control.max())


def _crossing(base: int, excesses: list[Excess], tolerance: float) -> tuple[float, str | None]:
    """The largest tested size whose mean Δ is within the tolerance, moved towards the next size by linear
    interpolation in ln B to where the mean Δ crosses it; censored ``above`` (the largest tested is within:
    CBS ≥ it) or ``below`` (no branch is within: CBS < the smallest branch, interpolated from Δ(B₀) = 0)."""
    sizes = [base, *(e.batch_size for e in excesses)]
    means = [0.0, *(e.mean for e in excesses)]
    last = max(index for index, mean in enumerate(means) if mean <= tolerance)
    if last == len(sizes) - 1:
        return float(sizes[-1]), "above"
    step = means[last + 1] - means[last]
    share = (tolerance - means[last]) / step if math.isfinite(step) else 0.0  # past a divergence: no slope to read
    cbs = math.exp(math.log(sizes[last]) + share * math.log(sizes[last + 1] / sizes[last]))
    return cbs, "below" if last == 0 else None


def _bracket(base: int, excesses: list[Excess], tolerance: float) -> tuple[int, int, bool]:
    """(low, high, open above): CBS ≥ a size where Δ ≤ tolerance, so low is the largest size whose upper bound
    is within it (else B₀); high is the smallest size from which every larger tested size's lower bound is past
    it (else the largest tested: the data do not bound CBS above)."""
    within = [e.batch_size for e in excesses if e.upper <= tolerance]
    low = max(within, default=base)
    high = None
    for excess in reversed(excesses):
        if excess.lower <= tolerance:
            break
        high = excess.batch_size
    return low, high if high is not None else excesses[-1].batch_size, high is None
