"""The noisy quadratic model (NQM) in closed form: the exact expected loss of SGD with heavy-ball
momentum, steps to a target, the critical batch size, and CBS(t)'s true value at a checkpoint.

The model (Zhang et al. 2019, "Which Algorithmic Choices Matter at Which Batch Sizes?", NeurIPS,
§3, the model's definition): L(θ) = ½ Σᵢ hᵢ θᵢ² with H = diag(h), and a minibatch of B examples gives the gradient
Hθ + ξ, ξ of covariance C/B; the NQM proper has C = σ²·H (``noise_power = 1``), other powers
are the misspecified variants. Every direction evolves on its own. With torch's heavy-ball SGD
(v ← m·v + g, θ ← θ − ε·v; ``precondition`` p: the preconditioned step ε·h^(−p) of Zhang et al.
§3, p = ½ their model of Adam), one update of a direction is the linear map

    θ' = (1 − εh)·θ − εm·v − ε·ξ,      v' = h·θ + m·v + ξ,      Var ξ = c/B,

so its second moments (E θ², E θv, E v²) follow an affine recurrence M' = T·M + u (Zhang et al.'s
appendix on heavy-ball momentum, written here for the second moments), exact for any state:
from θ₀ (M = (θ₀², 0, 0)), from a checkpoint's realised (θ, v) (M = (θ², θv, v²)), or from a
distribution of states. E L = ½ Σᵢ hᵢ·E θᵢ². No torch; numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from scalestudy.law.batch_warmup import scaled_lr
from scalestudy.law.transition import fit_transition

CHUNK = 32  # updates per block of precomputed powers in loss_curve
GRID_PER_OCTAVE = 8  # sizes per doubling of B on which cbs_truth looks for the largest within the tolerance
BISECTIONS = 24  # then halvings of the bracket in ln B: 2^-24 of a grid step


@dataclass(frozen=True)
class Quadratic:
    """Curvatures hᵢ and per-example gradient-noise variances cᵢ (the gradient of a batch of B has
    variance cᵢ/B along direction i)."""

    curvatures: np.ndarray
    noise: np.ndarray

    @classmethod
    def nqm(cls, dim: int, exponent: float = 1.0, noise_scale: float = 1.0, noise_power: float = 1.0) -> Quadratic:
        """hᵢ = i^(−exponent) (i = 1..dim), cᵢ = noise_scale²·hᵢ^noise_power (the NQM: power 1, C ∝ H)."""
        h = np.arange(1, dim + 1, dtype=float) ** -float(exponent)
        return cls(h, noise_scale**2 * h**noise_power)

    def loss(self, theta: np.ndarray) -> np.ndarray:
        """L(θ) = ½ Σ hᵢ θᵢ² over the last axis."""
        return 0.5 * np.sum(self.curvatures * np.asarray(theta) ** 2, axis=-1)


@dataclass(frozen=True)
class HeavyBall:
    """Torch's SGD with momentum (dampening 0, no Nesterov), optionally preconditioned by H^(−p)."""

    lr: float
    momentum: float = 0.0
    precondition: float = 0.0  # p: the step along i is lr·hᵢ^(−p)


def moments_of(theta: np.ndarray, velocity: np.ndarray | None = None) -> np.ndarray:
    """The second moments (θ², θv, v²) per direction of a known state, shape (dim, 3)."""
    theta = np.asarray(theta, dtype=float)
    v = np.zeros_like(theta) if velocity is None else np.asarray(velocity, dtype=float)
    return np.stack([theta**2, theta * v, v**2], axis=-1)


def update_map(problem: Quadratic, sgd: HeavyBall, batch_size: float) -> np.ndarray:
    """The affine map of one update on (E θ², E θv, E v², 1), per direction: shape (dim, 4, 4)."""
    h, m = problem.curvatures, sgd.momentum
    step = sgd.lr * h ** -sgd.precondition
    a, b, s = 1.0 - step * h, -step * m, problem.noise / batch_size  # θ' = aθ + bv − step·ξ
    rows = np.zeros((h.size, 4, 4))
    rows[:, 0, :] = np.stack([a * a, 2 * a * b, b * b, step * step * s], axis=-1)
    rows[:, 1, :] = np.stack([a * h, a * m + b * h, b * m, -step * s], axis=-1)
    rows[:, 2, :] = np.stack([h * h, 2 * h * m, np.full_like(h, m * m), s], axis=-1)
    rows[:, 3, 3] = 1.0
    return rows


def _homogeneous(moments: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(moments, dtype=float), np.ones((len(moments), 1))], axis=-1)


def moments_after(problem: Quadratic, moments: np.ndarray, sgd: HeavyBall, batch_size: float,
                  updates: int) -> np.ndarray:
    """The second moments after ``updates`` updates (matrix powers: O(log updates))."""
    power = np.linalg.matrix_power(update_map(problem, sgd, batch_size), int(updates))
    return np.einsum("dij,dj->di", power, _homogeneous(moments))[:, :3]


def loss_after(problem: Quadratic, moments: np.ndarray, sgd: HeavyBall, batch_size: float, updates: int) -> float:
    """E L after ``updates`` updates from the state whose second moments are ``moments``."""
    return float(0.5 * np.sum(problem.curvatures * moments_after(problem, moments, sgd, batch_size, updates)[:, 0]))


def loss_curve(problem: Quadratic, moments: np.ndarray, sgd: HeavyBall, batch_size: float, updates: int) -> np.ndarray:
    """E L after 0, 1, …, ``updates`` updates (``updates`` + 1 values); inf once it overflows."""
    step = update_map(problem, sgd, batch_size)
    powers = [step]
    for _ in range(CHUNK - 1):
        powers.append(np.einsum("dij,djk->dik", step, powers[-1]))
    block = np.stack(powers)  # (CHUNK, dim, 4, 4): T¹ … T^CHUNK
    state = _homogeneous(moments)
    losses = [0.5 * np.sum(problem.curvatures * state[:, 0])]
    with np.errstate(over="ignore", invalid="ignore"):
        while len(losses) <= updates:
            ahead = np.einsum("kdij,dj->kdi", block, state)
            losses.extend(0.5 * np.sum(problem.curvatures * ahead[:, :, 0], axis=1))
            state = ahead[-1]
            if not np.isfinite(losses[-1]):
                break
    curve = np.full(updates + 1, np.inf)
    curve[:min(len(losses), updates + 1)] = losses[:updates + 1]
    return np.where(np.isfinite(curve), curve, np.inf)


def steps_to_target(problem: Quadratic, moments: np.ndarray, lrs: np.ndarray, momentum: float, batch_size: float,
                    target: float, max_updates: int, precondition: float = 0.0) -> tuple[float, float]:
    """(S, ε): the fewest updates after which E L ≤ ``target``, over the learning rates ``lrs`` (the best ε
    per B, as Shallue et al. 2019 tune it), and that ε; (inf, nan) when none reaches it."""
    best, best_lr = math.inf, math.nan
    for lr in lrs:
        below = np.nonzero(loss_curve(problem, moments, HeavyBall(float(lr), momentum, precondition), batch_size,
                                      max_updates) <= target)[0]
        if below.size and below[0] < best:
            best, best_lr = float(below[0]), float(lr)
    return best, best_lr


def critical_batch_size(batch_sizes: np.ndarray, steps: np.ndarray) -> tuple[float | None, float | None]:
    """(B_crit, S_min) of S(B) = S_min·(1 + B_crit/B) (McCandlish et al. 2018 eq. 2.11, the form Shallue et al.
    2019 fit; B_crit = E_min/S_min), fitted by ``scalestudy.law.transition`` (the law's one home for it)."""
    finite = np.isfinite(steps) & (np.asarray(steps) > 0)
    fit = fit_transition(list(np.asarray(batch_sizes)[finite]), list(np.asarray(steps)[finite]), None)
    return fit.value, fit.min_updates


@dataclass(frozen=True)
class Branching:
    """How CBS(t) is measured (``scalestudy.law.cbs``): branches at B with ε from ``scaled_lr`` over
    ``window_examples``, against the control at (B₀, ε₀), from the same checkpoint."""

    base_lr: float
    base_batch_size: int
    momentum: float
    rule: str  # linear | sqrt | law
    window_examples: int
    tolerance: float
    precondition: float = 0.0
    rule_exponent: float | None = None  # α of the law rule

    def sgd(self, batch_size: float) -> HeavyBall:
        return HeavyBall(scaled_lr(self.base_lr, self.base_batch_size, batch_size, self.rule, self.rule_exponent),
                         self.momentum, self.precondition)

    def updates(self, batch_size: float) -> float:
        """Updates in the window at B: window/B, a whole number at the sizes a study tests (divisors of the
        window); between them the expected loss is read between the whole counts around it (``window_loss``)."""
        return self.window_examples / batch_size


def window_loss(problem: Quadratic, moments: np.ndarray, branching: Branching, batch_size: float) -> float:
    """E L at the window's end at B: after window/B updates, linear in the count between the whole numbers
    around it (continuous in B, exact at every size that divides the window); inf once it overflows."""
    updates = branching.updates(batch_size)
    whole = math.floor(updates)
    sgd = branching.sgd(batch_size)
    with np.errstate(over="ignore", invalid="ignore"):
        loss = loss_after(problem, moments, sgd, batch_size, whole)
        if updates > whole:
            loss += (updates - whole) * (loss_after(problem, moments, sgd, batch_size, whole + 1) - loss)
    return loss if math.isfinite(loss) else math.inf


def loss_excess(problem: Quadratic, moments: np.ndarray, branching: Branching, batch_size: float) -> float:
    """Δ(B): the branch's expected loss at the window's end minus the control's (inf: it diverged)."""
    return window_loss(problem, moments, branching, batch_size) - \
        window_loss(problem, moments, branching, branching.base_batch_size)


def cbs_truth(problem: Quadratic, moments: np.ndarray, branching: Branching, max_batch_size: float) -> float:
    """CBS at a checkpoint with second moments ``moments`` (``scalestudy.law.cbs``): the largest B ≥ B₀ whose
    Δ(B) ≤ tolerance, found on GRID_PER_OCTAVE sizes per doubling up to ``max_batch_size``, then by bisection in
    ln B towards the next size; inf when the largest size is still within the tolerance."""
    base = float(branching.base_batch_size)
    control = window_loss(problem, moments, branching, base)
    within = lambda size: window_loss(problem, moments, branching, size) - control <= branching.tolerance  # noqa: E731
    steps = int(math.ceil(math.log2(max_batch_size / base) * GRID_PER_OCTAVE))
    grid = np.minimum(base * 2.0 ** (np.arange(0, steps + 1) / GRID_PER_OCTAVE), max_batch_size)
    kept = [index for index, size in enumerate(grid) if index == 0 or within(size)]
    if kept[-1] == steps:
        return math.inf
    low, high = grid[kept[-1]], grid[kept[-1] + 1]
    for _ in range(BISECTIONS):
        middle = math.sqrt(low * high)
        low, high = (middle, high) if within(middle) else (low, middle)
    return float(low)
