"""Branched studies simulated on the noisy quadratic model, with CBS(t)'s closed-form value at each
checkpoint: the rows :func:`scalestudy.analysis.fits.branch_cbs.estimate_cbs` reads, drawn exactly.

    design = BranchedDesign(problem=Quadratic.nqm(100), branching=Branching(0.1, 8, 0.0, "linear", 512, 0.003),
                            checkpoints=(64, 128, 256, 512, 1024, 2048), batch_sizes=(8, 16, 32, 64, 128, 256))
    rows = simulate_branched_study(design, np.random.default_rng(0))   # a pandas DataFrame

SGD on the NQM is linear in its noise, so the state after n updates from a known (θ, v) is Gaussian
with mean Aⁿ·(θ, v) and the covariance the second-moment recurrence gives from the zero state
(:mod:`scalestudy.nqm`): the base run is drawn checkpoint to checkpoint and each branch's window in
one draw each, exactly as running every update would draw them. The truth is the closed-form CBS
from the realised checkpoint state (what the branches, all started from it, measure).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalestudy.nqm import Branching, HeavyBall, Quadratic, cbs_truth, moments_after, moments_of

DIVERGED_LOSS = 1e30  # a window ending above this has overflowed float32 training: NaN, as a trial reports it


@dataclass(frozen=True)
class BranchedDesign:
    problem: Quadratic
    branching: Branching
    checkpoints: tuple[int, ...]  # the base run's updates at each checkpoint
    batch_sizes: tuple[int, ...]  # tested sizes, the base B₀ first
    seeds: int = 3  # branch seeds per size (the control too)
    theta0_scale: float = 1.0  # θ₀ = scale·(1, …, 1), velocity 0
    # Where the truth is looked for: the largest tested size by default (beyond it the estimator can only say
    # "above"; far past it a single giant step can bring Δ back within the tolerance, which no study tests).
    truth_max_batch_size: float | None = None


def _advance(problem: Quadratic, sgd: HeavyBall, batch_size: float, theta: np.ndarray, velocity: np.ndarray,
             updates: int, draws: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``draws`` independent states after ``updates`` updates from (θ, v): shape (draws, dim) each."""
    dim = theta.size
    h, m = problem.curvatures, sgd.momentum
    step = sgd.lr * h ** -sgd.precondition
    one = np.zeros((dim, 2, 2))
    one[:, 0, 0], one[:, 0, 1], one[:, 1, 0], one[:, 1, 1] = 1 - step * h, -step * m, h, m
    with np.errstate(over="ignore", invalid="ignore"):
        mean = np.einsum("dij,dj->di", np.linalg.matrix_power(one, updates), np.stack([theta, velocity], axis=-1))
        tt, tv, vv = moments_after(problem, np.zeros((dim, 3)), sgd, batch_size, updates).T
        first = rng.standard_normal((draws, dim))
        second = rng.standard_normal((draws, dim))
        sd_theta = np.sqrt(np.maximum(tt, 0.0))
        slope = np.divide(tv, sd_theta, out=np.zeros_like(tv), where=sd_theta > 0)
        rest = np.sqrt(np.maximum(vv - slope**2, 0.0))
        return mean[:, 0] + sd_theta * first, mean[:, 1] + slope * first + rest * second


def simulate_branched_study(design: BranchedDesign, rng: np.random.Generator) -> pd.DataFrame:
    """One base run and its branches: one row per (checkpoint, batch size, seed), with ``true_cbs``
    (inf where the largest size searched is still within the tolerance)."""
    problem, branching = design.problem, design.branching
    base = branching.base_batch_size
    uneven = [size for size in design.batch_sizes if branching.window_examples % size]
    if uneven or design.batch_sizes[0] != base:
        raise ValueError(f"batch_sizes {design.batch_sizes}: B₀ = {base} first, each dividing the window of "
                         f"{branching.window_examples} examples (not {uneven})")
    theta = np.full(problem.curvatures.size, float(design.theta0_scale))
    velocity = np.zeros_like(theta)
    done, rows = 0, []
    limit = design.truth_max_batch_size or float(max(design.batch_sizes))
    for index, updates in enumerate(design.checkpoints):
        theta, velocity = (x[0] for x in _advance(problem, branching.sgd(base), base, theta, velocity,
                                                   updates - done, 1, rng))
        done = updates
        truth = cbs_truth(problem, moments_of(theta, velocity), branching, limit)
        for size in design.batch_sizes:
            end, _ = _advance(problem, branching.sgd(size), size, theta, velocity, int(branching.updates(size)),
                              design.seeds, rng)
            losses = problem.loss(end)
            for seed, loss in enumerate(losses):
                rows.append({"checkpoint": index, "checkpoint_examples": updates * base, "checkpoint_updates": updates,
                             "base_loss": float(problem.loss(theta)), "batch_size": size, "seed": seed,
                             "window_loss": float(loss) if math.isfinite(loss) and loss < DIVERGED_LOSS else math.nan,
                             "true_cbs": truth})
    return pd.DataFrame(rows)
