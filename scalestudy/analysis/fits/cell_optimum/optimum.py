"""A cell's optimum as the fits hold it: :class:`CellOptimum`, ε* of one (B, m[, N]) cell with its
interval, the curve it was read from and why it is missing; :class:`Frontier`, every cell of a study
(:func:`~scalestudy.analysis.fits.cell_optimum.frontier.fit_frontier` makes it)."""

from __future__ import annotations

from dataclasses import dataclass

from scalestudy.analysis.fits.cell_optimum.peak import USABLE


@dataclass(frozen=True)
class CellOptimum:
    """Optimal learning rate of one cell. ``lr_opt`` is in the units of ``lr`` (per update)."""

    batch_size: int
    momentum: float
    status: str  # ok | bounded_by_divergence | edge_low | edge_high | all_diverged | too_few_points
    lr_opt: float | None
    ci95: tuple[float, float] | None  # Student-t over per-seed optima (None: see seed_range, reason)
    best_lr: float | None  # the best searched ε (grid argmax, failures included)
    best_acc: float | None  # seed-mean test accuracy at best_lr
    lrs: tuple[float, ...]  # searched ε, ascending
    mean_acc: tuple[float, ...]  # seed-mean test accuracy per ε, failures included
    sd_acc: tuple[float, ...]  # sd over seeds per ε (0 with one seed)
    n_runs: tuple[int, ...]  # trials per ε
    n_diverged: tuple[int, ...]  # diverged trials per ε
    n_trials: int
    n_seeds: int
    reason: str | None = None
    seed_range: tuple[float, float] | None = None  # min–max of per-seed ε* where no 95 % interval holds
    lr_bound: float | None = None  # bounded_by_divergence: the diverged ε that bounds ε* above
    fit_lrs: tuple[float, ...] = ()  # the three ε the parabola goes through
    seed_lr_opt: tuple[float, ...] = ()  # each seed's own ε*, through the same three ε
    log_lr_var: float | None = None  # variance of ln ε*, for weighting the law (set by fit_frontier)
    direction: str = "max"  # the objective's: mean_acc, best_acc are its values, higher or lower is better
    dataset_size: int | None = None  # N of the cell's trials when the study varies N (None: a single N)
    n_censored: int = 0  # trials stopped early that entered the fit censored at their bound (censored.py)

    @property
    def usable(self) -> bool:
        return self.status in USABLE

    @property
    def key(self) -> tuple[int, float, int | None]:
        """(B, m, N): the cell's identity (N None in a study of one dataset size)."""
        return self.batch_size, self.momentum, self.dataset_size

    @property
    def diverged_lrs(self) -> tuple[float, ...]:
        """The ε where every trial diverged."""
        return tuple(lr for lr, n, d in zip(self.lrs, self.n_runs, self.n_diverged) if d == n)

    @property
    def label(self) -> str:
        return f"B={self.batch_size} m={self.momentum:g}" + (f" N={self.dataset_size}" if self.dataset_size else "")


@dataclass(frozen=True)
class Frontier:
    cells: tuple[CellOptimum, ...]
    failure_acc: float
    warnings: tuple[str, ...]

    def usable(self) -> list[CellOptimum]:
        return [cell for cell in self.cells if cell.usable]
