"""Where the adaptive search spends its next trials: the value of each possible trial for the law.

A *point set* is one (law group, B, m) cell over all its seeds: its candidate ε form a lattice
(:func:`lattice`), and a trial is (ε, seed). After each batch of results the search fits every cell's
ε* and the law with the analysis' own estimators (:func:`scalestudy.analysis.fits.cell_optimum.frontier.fit_frontier`,
:func:`scalestudy.analysis.fits.law.fit_law`) and ranks the next trials (:func:`next_trials`):

1. **Make cells usable first.** A cell not started gets a coarse design: its predicted ε* (the law so
   far, else the spec's reference ε) and ×2 either side, one seed (two in the first cells, so that the
   seeds' noise is known). A cell whose 95 % set reaches past its lowest (highest) ε gets the next ε a
   factor 2 further out (``edge_low`` / ``edge_high``), one whose every ε diverged a factor 4 down.
   These come first, cells of extreme B first (they weigh most on α).
2. **Then shrink the law's slopes' intervals** (α, and β when the cells span several momenta). The
   law is a weighted least squares with weights wᵢ = 1/(vᵢ + τ²) (vᵢ: the variance of cell i's ln ε*,
   read off its 95 % set; τ²: the between-cell scatter). With M = (XᵀWX)⁻¹,
   ∂Var(θⱼ)/∂vᵢ = wᵢ²·(M xᵢ)²ⱼ: the cells that move α most are those at extreme B with narrow sets.
   The law's covariance is s²M, s² the residual scale, so a cell also weighs by its share of the
   residuals; each slope's drop is taken as a share of its variance and the shares add
   (:func:`cell_gains`: the cell's gain). A step of k trials in cell i shrinks its noise by about
   k/(nᵢ + k) (nᵢ trials at the ε that may still be its optimum: a variance that falls as 1/n), so each
   of its trials is worth gainᵢ/(nᵢ + k). The trials bisect the gap between the best ε and the next one
   run (down to √2 steps), then any wider gap among the ε that may still be the optimum (a flat top's
   peak can sit in one), else add one more seed at every such ε (a block: the analysis reads a cell's
   noise off the ε every seed ran).
   A cell not yet started is valued by the exact drop of those shares when a row xᵢ of typical weight is
   added (Sherman–Morrison), spread over its coarse design's trials.

Every trial costs its epochs (all alike within a cell group), so value per trial is value per
trial-epoch up to a constant. Nothing here needs Ray or a trainer: the search state is plain data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

SQRT2 = math.sqrt(2.0)
REFINE_GAP = 4.01  # gaps of the listed ε up to ×4 are filled in √2 steps; a wider gap is a probe, kept
COARSE_SEEDS_FIRST_CELLS = 2  # cells started with two seeds per ε, so the seeds' noise is known early
QUEUE = 8  # trials ranked per refit (the rest waits for the next fit)


def lattice(grid: tuple[float, ...], beyond: int, bounds: tuple[float, float] | None) -> tuple[float, ...]:
    """The ε a cell may run: its listed ε, gaps up to ×4 filled in equal steps of at most √2, and
    ``beyond`` factors of 2 past each end (in √2 steps), inside ``bounds`` when given. The same floats
    from the same grid every time (trial keys are made from exact ε)."""
    listed = sorted(set(float(lr) for lr in grid))
    points = set(listed)
    for low, high in zip(listed, listed[1:]):
        ratio = high / low
        if SQRT2 * 1.01 < ratio <= REFINE_GAP:
            steps = math.ceil(math.log(ratio) / math.log(SQRT2) - 1e-9)
            points.update(low * ratio ** (k / steps) for k in range(1, steps))
    for k in range(1, 2 * beyond + 1):
        points.update((listed[0] * 2 ** (-k / 2), listed[-1] * 2 ** (k / 2)))
    if bounds is not None:
        points = {lr for lr in points if bounds[0] * (1 - 1e-12) <= lr <= bounds[1] * (1 + 1e-12)}
    return tuple(sorted(points))


def nearest(points: tuple[float, ...], lr: float, *, below: float | None = None, above: float | None = None) -> float | None:
    """The point nearest ``lr`` in ln ε, among those strictly below ``below`` / above ``above``."""
    pool = [p for p in points if (below is None or p < below * (1 - 1e-9)) and (above is None or p > above * (1 + 1e-9))]
    if not pool:
        return None
    return min(pool, key=lambda p: abs(math.log(p / lr)))


@dataclass
class PointSet:
    """One (law group, B, m) cell of the adaptive search, over its seeds."""

    key: tuple
    batch_size: int
    momentum: float
    lattice: tuple[float, ...]
    seeds: tuple[int, ...]  # the seed pool, in the order they are used
    start_lr: float  # reference ε (the spec's rule) until the law predicts one
    listed: tuple[float, ...] = ()  # the spec's ε for the cell (the coarse design spans them)
    runs: dict[tuple[float, int], str] = field(default_factory=dict)  # (ε, seed) → ok | diverged | pending | ...
    exhausted: set[str] = field(default_factory=set)  # sides that cannot go further: "low", "high"

    @property
    def started(self) -> bool:
        return bool(self.runs)

    def seeds_at(self, lr: float) -> list[int]:
        return [seed for (point, seed) in self.runs if point == lr]

    def next_seed(self, lr: float) -> int | None:
        used = set(self.seeds_at(lr))
        return next((seed for seed in self.seeds if seed not in used), None)

    def lrs(self) -> list[float]:
        return sorted({lr for lr, _ in self.runs})


@dataclass(frozen=True)
class Proposal:
    key: tuple  # the PointSet's
    lr: float
    seed: int
    value: float  # for ordering (inf: needed to make a cell usable at all)
    why: str


def coarse(points: PointSet, centre: float, seeds: int) -> list[Proposal]:
    """A cell's first trials: ε a factor 4 apart over its listed range (the user's prior on where ε*
    may be), anchored on the lattice point nearest ``centre``; at least that point and ×2 either side.
    A coarse look over the whole range finds an optimum far from the rule's, or a second basin."""
    mid = nearest(points.lattice, centre)
    low, high = min(points.listed), max(points.listed)
    span = range(-int(math.log(mid / low, 4) + 1.5), int(math.log(high / mid, 4) + 1.5) + 1)
    wanted = {nearest(points.lattice, mid * 4.0 ** k) for k in span if low / 1.5 <= mid * 4.0 ** k <= high * 1.5}
    if len(wanted) < 3:
        wanted |= {nearest(points.lattice, mid / 2, below=mid), mid, nearest(points.lattice, mid * 2, above=mid)}
    lrs = sorted(lr for lr in wanted if lr is not None)
    return [Proposal(points.key, lr, seed, math.inf, "coarse design")
            for lr in lrs for seed in points.seeds[:seeds] if (lr, seed) not in points.runs]


def outward(points: PointSet, side: str, factor: float = 2.0) -> list[Proposal]:
    """The next ε a factor ``factor`` past the cell's lowest (highest) ε, at its first seed; [] when the
    lattice ends there (the side is then exhausted)."""
    lrs = points.lrs()
    if side == "low":
        lr = nearest(points.lattice, lrs[0] / factor, below=lrs[0])
    else:
        lr = nearest(points.lattice, lrs[-1] * factor, above=lrs[-1])
    if lr is None:
        points.exhausted.add(side)
        return []
    seed = points.next_seed(lr)
    return [] if seed is None else [Proposal(points.key, lr, seed, math.inf, f"edge_{side}: extend")]


def missing(points: PointSet, lrs: list[float], seeds: list[int], value: float, why: str) -> list[Proposal]:
    """The trials that complete the block ``lrs`` × ``seeds`` (the analysis reads a cell's seed noise off
    the ε every seed ran: seeds are blocks, so seeds are added to several ε at once)."""
    return [Proposal(points.key, lr, seed, value, why) for lr in lrs for seed in seeds if (lr, seed) not in points.runs]


def firm_up(points: PointSet, side: str) -> list[Proposal]:
    """More seeds at the cell's outermost ε on ``side``: where the lattice ends, an edge cell can only
    show that its curve falls there by averaging more seeds. The end gets the seeds its neighbour
    has, else both get the next seed."""
    lrs = points.lrs()
    outer = lrs[:2] if side == "low" else lrs[-2:][::-1]
    have = sorted(set(points.seeds_at(outer[-1])) | set(points.seeds_at(outer[0])))
    fill = missing(points, outer, have, math.inf, f"edge_{side}: seeds at its end")
    if fill:
        return fill
    seed = next((s for s in points.seeds if s not in have), None)
    return [] if seed is None else missing(points, outer, [seed], math.inf, f"edge_{side}: one more seed at its end")


def contenders(points: PointSet, best_lr: float, interval: tuple[float, float] | None) -> list[float]:
    """The ε that may still be the cell's optimum: those inside its 95 % set and the nearest run ε
    outside it on each side (at least the best and its two neighbours)."""
    lrs = points.lrs()
    i = int(np.argmin([abs(math.log(lr / best_lr)) for lr in lrs]))
    low, high = max(0, i - 1), min(len(lrs) - 1, i + 1)
    if interval is not None:
        inside = [j for j, lr in enumerate(lrs) if interval[0] <= lr <= interval[1]]
        if inside:
            low, high = min(low, max(0, inside[0] - 1)), max(high, min(len(lrs) - 1, inside[-1] + 1))
    return lrs[low: high + 1]


def refinement(points: PointSet, best_lr: float, interval: tuple[float, float] | None = None) -> list[Proposal]:
    """The next trials that narrow a usable cell's ε* (valued 1 each; the caller scales them): the
    missing √2 neighbours of its best ε (inside the ε it ran) at the best ε's seeds, else the middle
    of the gap wider than √2 nearest the best among the ε that may still be the optimum
    (:func:`contenders`), else one more seed at every such ε (a block)."""
    lrs = points.lrs()
    i = int(np.argmin([abs(math.log(lr / best_lr)) for lr in lrs]))
    best = lrs[i]
    seeds = points.seeds_at(best)
    for j in (i - 1, i + 1):  # bisect the gap to the next ε run on each side, down to √2 steps
        if 0 <= j < len(lrs) and max(lrs[j], best) / min(lrs[j], best) > SQRT2 * 1.01:
            middle = _middle(points, min(lrs[j], best), max(lrs[j], best))
            if middle is not None:
                return missing(points, [middle], seeds, 1.0, "between the best ε and its neighbour")
    top = contenders(points, best, interval)
    gaps = sorted(zip(top, top[1:]), key=lambda pair: abs(math.log(pair[0] * pair[1] / best ** 2)))
    for low, high in gaps:  # a gap where the optimum may be, nearest the best first
        if high / low > SQRT2 * 1.01:
            middle = _middle(points, low, high)
            if middle is not None:
                return missing(points, [middle], seeds, 1.0, "a gap where the optimum may be")
    have = sorted(set().union(*(points.seeds_at(lr) for lr in top)))
    fill = missing(points, top, have, 1.0, "complete the seeds where the optimum may be")
    if fill:
        return fill
    seed = next((s for s in points.seeds if s not in have), None)
    return [] if seed is None else missing(points, top, [seed], 1.0, "one more seed where the optimum may be")


def _middle(points: PointSet, low: float, high: float) -> float | None:
    """The lattice point nearest the geometric middle of (low, high), strictly inside it."""
    return nearest(points.lattice, math.sqrt(low * high), below=high, above=low)


def trial_value(gain: float, trials_run: int, step: int) -> float:
    """What each of a step's ``step`` trials is worth in a cell with ``trials_run`` trials where its optimum
    may be: a variance falling as 1/n drops by the share step/(n + step) of it, spread over the step."""
    return gain / (trials_run + step)


def top_trials(points: PointSet, best_lr: float, interval: tuple[float, float] | None = None) -> int:
    """Trials (run or running) at the ε that may still be the cell's optimum."""
    top = set(contenders(points, best_lr, interval))
    return sum(1 for lr, _ in points.runs if lr in top)


def alpha_sensitivities(X: np.ndarray, weights: np.ndarray, alpha_index: int) -> tuple[np.ndarray, np.ndarray]:
    """(∂Var(θ)/∂vᵢ per cell for the term in column ``alpha_index``, M = (XᵀWX)⁻¹) of the weighted least
    squares (up to the common scale)."""
    M = np.linalg.pinv(X.T @ (X * weights[:, None]))
    leverage = X @ M[:, alpha_index]
    return weights ** 2 * leverage ** 2, M


def cell_gains(X: np.ndarray, y: np.ndarray, variances: np.ndarray, weights: np.ndarray, slopes: tuple[int, ...],
               min_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(what averaging each cell's ln ε* noise away would take off the law's slopes' variances, each as a
    share of it, summed over the columns ``slopes`` (α, and β when the cells span several momenta);
    M = (XᵀWX)⁻¹).

    The law's covariance is s²·M with s² = max(RSS/dof, ``min_scale``), RSS = Σ wᵢrᵢ² the weighted
    residuals of the cells' ln ε* about the line (Knapp–Hartung; :mod:`scalestudy.analysis.fits.law`).
    A cell's noise enters Var(θⱼ) twice: through its weight (∂Var(θⱼ)/∂vᵢ·vᵢ, scaled by s²) and, while the
    scale is above its floor, through its residual (Mⱼⱼ·wᵢrᵢ²/dof), which averages away as its vertex does.
    Seeds barely narrow a flat-topped cell's 95 % set but do shrink its residual, so the second term is
    what sends seeds to the middle batch sizes (docs/benchmarks.md, compute to law). Each slope's drop is
    divided by its variance s²·Mⱼⱼ, so α and β count alike whatever their units (the sum is the drop of
    Σⱼ ln Var(θⱼ) to first order); with α alone this orders the cells as α's own drop does."""
    M = np.linalg.pinv(X.T @ (X * weights[:, None]))
    dof = len(y) - X.shape[1]
    gains = np.zeros(len(y))
    shares = np.zeros(len(y))  # each cell's share of the residual scale, while the scale is above its floor
    if dof > 0:
        residual = weights * (y - X @ (M @ (X.T @ (weights * y)))) ** 2
        if residual.sum() / dof > min_scale:
            shares = residual / residual.sum()
    for j in slopes:
        if M[j, j] > 0:  # a slope the cells cannot determine (a singular design) has nothing to narrow
            # (s²·wᵢ²(M xᵢ)ⱼ²·vᵢ + Mⱼⱼ·wᵢrᵢ²/dof) / (s²·Mⱼⱼ): s² cancels from the first term
            gains += weights ** 2 * (X @ M[:, j]) ** 2 * variances / M[j, j] + shares
    return gains, M


def new_row_value(M: np.ndarray, x: np.ndarray, weight: float, slopes: tuple[int, ...]) -> float:
    """The drop of the slopes' variances, each as a share of it (as :func:`cell_gains`), when a row ``x``
    of weight ``weight`` joins the fit (Sherman–Morrison: M loses M x xᵀ M·w/(1 + w xᵀMx))."""
    Mx = M @ x
    return float(sum(weight * Mx[j] ** 2 / (1.0 + weight * x @ Mx) / M[j, j] for j in slopes if M[j, j] > 0))
