"""Synthetic trial tables generated from a known ("planted") scaling law (tests, benchmarks).

ε*(B, m, N) = k · min(B, B_c)^α · (1 − m)^β · N^γ: the optimal learning rate follows the law
below the breakdown batch size B_c and saturates above it; γ = 0 (the default) plants no
dependence on the dataset size N, and ``dataset_sizes`` makes a study over several N. Final test accuracy is a
Gaussian bump in x = ln(ε/ε*) of width ``width`` (e-folds), whose height falls slowly
with B, plus noise; trials with ε above ``diverge_factor`` · ε* diverge (one factor, or one
per batch size: large batches diverge closer to their optimum). The lr grid of each cell
is powers of ``lr_step`` around ε*, as a user centring a grid would search, or the
spec's own linear-rule grid (``lr_grid``, as in the quickstart: multipliers of
ε ∝ B(1−m) through a reference lr that is the user's guess, not the truth).

:func:`add_diagnostics` adds the optional per-trial diagnostics (gradient noise scale,
steps to target, sharpness, training time and resources) from a :class:`PlantedDiagnostics`;
:func:`stop_early` marks the worst trials of each cell as stopped by the search, as ASHA does.
:func:`planted_study` draws a quickstart-like study with a random true law (``scalestudy bench
coverage`` analyses hundreds of them). AdamW studies that sweep λ with a known τ*_epoch, and ε*(B)
surges, are planted by :mod:`scalestudy.testing.adamw_studies` (:func:`make_planted_adamw_table` here).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalestudy.spec import LinearRuleLR, Objective
from scalestudy.trial.readback import EPOCHS_COMPLETED, EPOCHS_PLANNED, KEY

ACC_MIN = 0.1  # chance level of a 10-class problem: what a diverged trial scores


def planted_lr(batch_size, momentum, alpha, beta, k, breakdown=None, dataset_size=1.0, gamma=0.0):
    """ε*(B, m, N) of the planted law (per update)."""
    b = np.minimum(batch_size, breakdown) if breakdown else np.asarray(batch_size, float)
    n = np.power(np.asarray(dataset_size, float), gamma)
    return k * np.power(b, alpha) * np.power(1.0 - np.asarray(momentum, float), beta) * n


def make_planted_table(alpha: float = 1.0, beta: float = 1.0, k: float = 1e-3, breakdown: float | None = None,
                       noise: float = 0.005, seeds: Sequence[int] = (0, 1), *,
                       batch_sizes: Sequence[int] = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096),
                       momenta: Sequence[float] = (0.0, 0.5, 0.9), lr_step: float = 2.0, lr_points: int = 11,
                       lr_grid: LinearRuleLR | None = None, dataset_size: int = 50_000,
                       diverge_factor: float | Mapping[int, float] = 4.0, width: float = 1.0,
                       acc_max: float = 0.92, acc_drop_per_doubling: float = 0.005,
                       gap0: float = 0.02, gap_per_doubling: float = 0.01, epochs: int = 10,
                       schedules: bool = False, centre_on_rule: bool = False,
                       gamma: float = 0.0, dataset_sizes: Sequence[int] | None = None,
                       rng: int | np.random.Generator = 0) -> pd.DataFrame:
    """One row per trial in the trial-table schema (see :mod:`scalestudy.analysis.inputs.trial_table`).

    ``centre_on_rule``: centre each cell's lr grid on the unbroken law instead of on ε*, as
    a study designed around the linear rule does; past the breakdown the optimum then
    drifts to the bottom of the grid. ``lr_grid``: search each cell at the spec's linear-rule
    lrs instead (``lr_step``, ``lr_points`` and ``centre_on_rule`` then do not apply).
    ``diverge_factor``: one factor, or a factor per batch size. ``gamma`` and ``dataset_sizes``: a
    study over several N with ε* ∝ N^γ (``dataset_size`` is the N of a study of one)."""
    rng = np.random.default_rng(rng)
    rows = []
    b_min = min(batch_sizes)
    cells = [(b, m, n) for n in (dataset_sizes or (dataset_size,)) for b in batch_sizes for m in momenta]
    for batch_size, momentum, n in cells:
        lr_opt = float(planted_lr(batch_size, momentum, alpha, beta, k, breakdown, n, gamma))
        guess = float(planted_lr(batch_size, momentum, alpha, beta, k, None, n, gamma)) if centre_on_rule else lr_opt
        if lr_grid is None:
            centre = round(math.log(guess, lr_step))
            grid = lr_step ** np.arange(centre - lr_points // 2, centre + lr_points // 2 + 1)
        else:
            grid = lr_grid.lr_for(batch_size, momentum)
        factor = diverge_factor[batch_size] if isinstance(diverge_factor, Mapping) else diverge_factor
        for seed in seeds:
            for lr in grid:
                rows.append(_trial(batch_size, float(lr), momentum, seed, lr_opt, b_min, rng, noise, n, factor,
                                   width, acc_max, acc_drop_per_doubling, gap0, gap_per_doubling, epochs))
    frame = pd.DataFrame(rows)
    if schedules:
        frame = pd.concat([frame, _schedule_rows(alpha, beta, k, breakdown, seeds, dataset_size, epochs, rng)],
                          ignore_index=True)
    return frame


def _trial(batch_size, lr, momentum, seed, lr_opt, b_min, rng, noise, dataset_size, diverge_factor, width,
           acc_max, acc_drop, gap0, gap_slope, epochs):
    doublings = math.log2(batch_size / b_min)
    updates = epochs * math.ceil(dataset_size / batch_size)
    base = {"batch_size": batch_size, "lr": lr, "momentum": momentum, "seed": seed, "dataset_size": dataset_size,
                "schedule": "constant", "section": "law", EPOCHS_COMPLETED: float(epochs), "updates": float(updates),
                KEY: f"B{batch_size}-lr{lr:.6g}-m{momentum:g}-s{seed}"}
    if lr > diverge_factor * lr_opt:
        return {**base, "test_acc": ACC_MIN, "train_acc": ACC_MIN, "diverged": True,
                "test_loss": math.nan, "train_loss": math.inf, EPOCHS_COMPLETED: 1.0, "updates": float(updates // epochs)}
    x = math.log(lr / lr_opt)
    peak = acc_max - acc_drop * doublings
    test_acc = ACC_MIN + (peak - ACC_MIN) * math.exp(-x * x / (2 * width ** 2)) + rng.normal(0, noise)
    gap = (gap0 + gap_slope * doublings) * math.exp(-x * x / (2 * (2 * width) ** 2)) + rng.normal(0, noise / 2)
    test_acc = float(np.clip(test_acc, 0, 1))
    return {**base, "test_acc": test_acc, "train_acc": float(np.clip(test_acc + gap, 0, 1)), "diverged": False,
            "test_loss": 2.3 * (1 - test_acc), "train_loss": 2.3 * (1 - test_acc - gap)}


def _schedule_rows(alpha, beta, k, breakdown, seeds, dataset_size, epochs, rng):
    """Smith et al.'s comparison at B0=128, m=0.9: same final accuracy, fewer updates when B grows."""
    b0, m0 = 128, 0.9
    lr0 = float(planted_lr(b0, m0, alpha, beta, k, breakdown))
    base_updates = epochs * math.ceil(dataset_size / b0)
    # (schedule, accuracy offset, updates relative to step_decay_lr)
    kinds = [("step_decay_lr", 0.0, 1.0), ("increase_batch", -0.002, 0.42), ("hybrid", -0.001, 0.61),
             ("constant", -0.03, 1.0)]
    rows = []
    for kind, offset, ratio in kinds:
        for seed in seeds:
            rows.append({"batch_size": b0, "lr": lr0, "momentum": m0, "seed": seed, "dataset_size": dataset_size,
                             "schedule": kind, "section": "schedules", EPOCHS_COMPLETED: float(epochs),
                             "updates": float(round(base_updates * ratio)), "diverged": False,
                             "test_acc": 0.9 + offset + rng.normal(0, 0.002), "train_acc": 0.95,
                             "test_loss": 0.3, "train_loss": 0.1, KEY: f"{kind}-s{seed}"})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class PlantedDiagnostics:
    """Planted values of the per-trial diagnostics (units as in the trial-table schema)."""

    noise_scale: float = 512.0  # final B_simple of every trial [examples] ...
    noise_scatter: float = 0.2  # ... times exp(N(0, scatter²))
    target_accuracy: float = 0.5
    min_updates: float = 100.0  # S_min of S(B) = S_min·(1 + B_crit/B) at ε* [updates]
    critical_batch: float = 512.0  # B_crit of that curve [examples]
    steps_width: float = 1.0  # S grows by exp(x²/(2 w²)) away from ε*, x = ln(ε/ε*); unreached past the budget
    steps_scatter: float = 0.0  # ... times exp(N(0, scatter²)) per trial (seed-to-seed noise of S)
    sharpness: float = 0.05  # full-space sharpness at the smallest B [percent] ...
    sharpness_per_doubling: float = 1.3  # ... times this per doubling of B
    subspace: str | None = "sharpness_subspace"  # also this column, a tenth of the full-space value
    seconds_per_update: float = 0.01  # train_seconds = updates × this [s]
    workers: int = 1
    cpus_per_worker: float = 2.0
    gpus_per_worker: float = 0.0


def add_diagnostics(frame: pd.DataFrame, planted: PlantedDiagnostics = PlantedDiagnostics(), *,
                    alpha: float = 1.0, beta: float = 1.0, k: float = 1e-3, breakdown: float | None = None,
                    gamma: float = 0.0, rng: int | np.random.Generator = 0) -> pd.DataFrame:
    """The trial table with the diagnostic columns a spec with every diagnostic on would log.
    ``alpha``, ``beta``, ``k``, ``breakdown``, ``gamma``: the law the table was planted with (for ε*)."""
    rng = np.random.default_rng(rng)
    frame = frame.copy()
    b, alive = frame["batch_size"].to_numpy(float), ~frame["diverged"].to_numpy(bool)
    lr_opt = planted_lr(b, frame["momentum"].to_numpy(float), alpha, beta, k, breakdown,
                        frame["dataset_size"].to_numpy(float), gamma)
    x = np.log(frame["lr"].to_numpy(float) / lr_opt)
    steps = planted.min_updates * (1 + planted.critical_batch / b) * np.exp(x ** 2 / (2 * planted.steps_width ** 2))
    if planted.steps_scatter:
        steps = steps * np.exp(rng.normal(0, planted.steps_scatter, len(frame)))
    steps = np.ceil(steps)
    reached = alive & (steps <= frame["updates"].to_numpy(float))
    frame["target_accuracy"] = planted.target_accuracy
    frame["updates_to_target"] = np.where(reached, steps, np.nan)
    frame["examples_to_target"] = frame["updates_to_target"] * b
    frame["gradient_noise_scale"] = np.where(
        alive, planted.noise_scale * np.exp(rng.normal(0, planted.noise_scatter, len(frame))), np.nan)
    sharp = planted.sharpness * planted.sharpness_per_doubling ** np.log2(b / b.min())
    frame["sharpness"] = np.where(alive, sharp * np.exp(rng.normal(0, 0.05, len(frame))), np.nan)
    if planted.subspace:
        frame[planted.subspace] = frame["sharpness"] / 10
    frame["train_seconds"] = frame["updates"] * planted.seconds_per_update
    frame["workers"], frame["cpus_per_worker"] = float(planted.workers), planted.cpus_per_worker
    frame["gpus_per_worker"] = planted.gpus_per_worker
    frame[EPOCHS_PLANNED] = frame[EPOCHS_COMPLETED].where(alive, frame[EPOCHS_COMPLETED].max())
    frame["status"] = np.where(alive, "ok", "diverged")
    return frame


def stop_early(frame: pd.DataFrame, keep: float = 0.5, rung: int = 1) -> pd.DataFrame:
    """ASHA-like: in each (section, schedule, B, m, seed) group, the trials outside the best ``keep``
    share by final test accuracy stop after ``rung`` epochs (status ``stopped``, at a third of
    their accuracy, their updates and training time cut to the epochs run). Diverged trials and
    groups of one trial are left as they are."""
    frame = frame.copy()
    if "status" not in frame.columns:
        frame["status"] = np.where(frame["diverged"], "diverged", "ok")
    keys = [k for k in ("section", "schedule") if k in frame.columns] + ["batch_size", "momentum", "seed"]
    groups = frame.groupby(keys)["test_acc"]
    position = groups.rank(ascending=False, method="first")
    stop = (position > np.ceil(keep * groups.transform("size"))) & ~frame["diverged"]
    share = rung / frame.loc[stop, EPOCHS_COMPLETED]
    frame.loc[stop, "status"] = "stopped"
    frame.loc[stop, "test_acc"] = frame.loc[stop, "test_acc"] / 3
    for column in ("updates", "train_seconds"):
        if column in frame.columns:
            frame.loc[stop, column] = frame.loc[stop, column] * share
    frame.loc[stop, EPOCHS_COMPLETED] = float(rung)
    if "updates_to_target" in frame.columns:  # reached before the stop, or unknown
        late = stop & ~(frame["updates_to_target"] <= frame["updates"])
        frame.loc[late, ["updates_to_target", "examples_to_target"]] = np.nan
    for column in frame.columns:  # measured at the final epoch only
        if str(column).startswith("sharpness"):
            frame.loc[stop, column] = np.nan
    return frame


# --- quickstart-like studies with a random true law ---------------------------------------------

QUICKSTART_GRID = LinearRuleLR(reference_batch_size=64, reference_lr=0.02, reference_momentum=0.9,
                               multipliers=[0.125, 0.25, 0.5, 1, 2, 4, 8, 512])
QUICKSTART_BATCH_SIZES = (16, 32, 64, 128, 256, 512)
QUICKSTART_NOISE = 0.01  # seed-to-seed sd of final accuracy (the quickstart's was 0.013)


@dataclass(frozen=True)
class PlantedStudy:
    """A simulated study's trial table and the law it was planted with."""

    frame: pd.DataFrame
    alpha: float
    beta: float
    k: float
    breakdown: float | None

    def lr_opt(self, batch_size: int, momentum: float) -> float:
        return float(planted_lr(batch_size, momentum, self.alpha, self.beta, self.k, self.breakdown))


def with_objective(frame: pd.DataFrame, metric: str, direction: str) -> pd.DataFrame:
    """The table with its objective columns: ``metric`` (and its train counterpart), ``direction``."""
    train = Objective.train_metric_of(metric)
    return frame.assign(objective=frame[metric], objective_train=frame[train] if train in frame else np.nan,
                        objective_metric=metric, objective_direction=direction)


def planted_study(rng: np.random.Generator, seeds: int, *, batch_sizes: Sequence[int] = QUICKSTART_BATCH_SIZES,
                  momenta: Sequence[float] = (0.0, 0.9), breakdown: float | None = None,
                  noise: float = QUICKSTART_NOISE, objective: str = "test_acc") -> PlantedStudy:
    """One study shaped like the quickstart: batch sizes from 16 up by doublings, momenta 0 and
    0.9, the spec's linear-rule lr grid (multipliers 0.125–8 and a ×512 probe around
    ε = 0.02·(B/64)·(1−m)/0.1), ``seeds`` seeds. The truth differs from the rule the grid is
    centred on, as it does in practice: α ~ U(0.6, 1), β ~ U(0.8, 1.2), and the reference lr is
    off from the true ε* at (64, 0.9) by a factor up to 2 either way. Accuracy is a Gaussian peak
    in ln ε of width U(0.8, 1.5) e-folds with seed noise sd ``noise``; trials diverge above 4·ε*
    at the smallest B, closer to ε* at larger B (down to 1.25·ε*, so the largest batch sizes are
    bounded by divergence, as on real grids). ``objective="test_loss"``: the same study analysed on its
    test loss, 2.3·(1 − accuracy), minimised (a loss bowl in ln ε, inverted Gaussian; NaN when diverged)."""
    alpha, beta = rng.uniform(0.6, 1.0), rng.uniform(0.8, 1.2)
    reference = QUICKSTART_GRID.reference_lr * math.exp(rng.uniform(-math.log(2), math.log(2)))
    k = reference / (QUICKSTART_GRID.reference_batch_size ** alpha * (1 - QUICKSTART_GRID.reference_momentum) ** beta)
    smallest = min(batch_sizes)
    diverge = {b: max(1.25, 4.0 * (b / smallest) ** -0.4) for b in batch_sizes}
    frame = make_planted_table(alpha, beta, k, breakdown, noise=noise, seeds=tuple(range(seeds)),
                               batch_sizes=tuple(batch_sizes), momenta=tuple(momenta), lr_grid=QUICKSTART_GRID,
                               diverge_factor=diverge, width=rng.uniform(0.8, 1.5), rng=rng)
    if objective == "test_loss":
        frame = with_objective(frame, "test_loss", "min")
    return PlantedStudy(frame, alpha, beta, k, breakdown)


def make_planted_adamw_table(tau_epoch: float = 5.0, lr: float = 1e-3, *, seeds: int = 3,
                             batch_sizes: Sequence[int] = (16, 32, 64, 128, 256, 512),
                             rng: int | np.random.Generator = 0) -> pd.DataFrame:
    """An AdamW trial table sweeping λ at a fixed ``lr`` with a known τ*_epoch (so λ* = B/(ε·τ*·N) ∝ B):
    Gaussian peaks in ln λ (:func:`scalestudy.testing.adamw_studies.decay_study`, N = 4000)."""
    from scalestudy.testing.adamw_studies import GAUSSIAN, DecayDesign, decay_study

    design = DecayDesign(batch_sizes=tuple(batch_sizes), seeds=seeds, lr=lr)
    return decay_study(np.random.default_rng(rng), design, tau_epoch=tau_epoch, shape=GAUSSIAN).frame
