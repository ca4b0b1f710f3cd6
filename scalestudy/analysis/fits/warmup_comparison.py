"""Steps and examples to the constant base's final loss, for a branched study's comparison runs
(issue 23: the batch warmup from CBS(t), Merrill et al. 2025, §5; the late switch, Wang et al. 2026,
arXiv 2602.14208) against the constant run at the same seed.

The target of seed s is the constant run's final objective at seed s; a run reaches it at the first
epoch end where its objective is ≤ the target (epoch resolution: the loop reports at epoch ends). Per
seed, the ratio of its updates (and examples) to the constant run's; over seeds, the mean ratio with a
Student-t 95 % interval (``n − 1`` degrees of freedom; none with one seed). A seed whose run never reaches
the target has no ratio and is counted in ``not_reached`` (the mean is then over the others, and says so).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalestudy.analysis.fits._stats import t_quantile
from scalestudy.law.records import Interval

CURVE_COLUMNS = ("kind", "seed", "epoch", "updates", "examples", "loss")


@dataclass(frozen=True)
class RatioSummary:
    mean: float | None  # mean over the seeds that reached the target
    ci95: Interval | None  # Student-t, n − 1 dof (None with fewer than 2 seeds)
    per_seed: tuple[float, ...]


@dataclass(frozen=True)
class KindComparison:
    kind: str  # warmup | late_switch | constant
    seeds: int
    not_reached: int  # seeds whose run never reached the target
    steps_ratio: RatioSummary  # its updates to the target / the constant run's
    examples_ratio: RatioSummary
    final_loss: float  # mean over seeds of the run's final objective
    total_updates: float  # mean over seeds of the run's updates


@dataclass(frozen=True)
class WarmupComparison:
    targets: dict[int, float]  # seed → the constant run's final objective
    kinds: tuple[KindComparison, ...]


def _summary(values: list[float]) -> RatioSummary:
    if not values:
        return RatioSummary(None, None, ())
    mean = float(np.mean(values))
    if len(values) < 2:
        return RatioSummary(mean, None, tuple(values))
    half = t_quantile(0.975, len(values) - 1) * float(np.std(values, ddof=1)) / math.sqrt(len(values))
    return RatioSummary(mean, Interval(mean - half, mean + half), tuple(values))


def reached(curve: pd.DataFrame, target: float) -> tuple[float, float] | None:
    """(updates, examples) at the first epoch end where the objective is ≤ ``target``; None if never."""
    hit = curve[curve["loss"] <= target].sort_values("epoch")
    return None if hit.empty else (float(hit["updates"].iloc[0]), float(hit["examples"].iloc[0]))


def compare_to_constant(curves: pd.DataFrame) -> WarmupComparison:
    """``curves``: one row per (run, epoch), :data:`CURVE_COLUMNS`; every seed has a ``constant`` run."""
    finals = curves.sort_values("epoch").groupby(["kind", "seed"]).last()
    targets = {int(seed): float(row["loss"]) for (kind, seed), row in finals.iterrows() if kind == "constant"}
    kinds = []
    for kind in sorted(curves["kind"].unique(), key=lambda k: (k != "constant", k)):
        steps, examples, missing = [], [], 0
        seeds = sorted(int(s) for s in curves.loc[curves["kind"] == kind, "seed"].unique())
        for seed in seeds:
            if seed not in targets:
                continue
            run = curves[(curves["kind"] == kind) & (curves["seed"] == seed)]
            constant = reached(curves[(curves["kind"] == "constant") & (curves["seed"] == seed)], targets[seed])
            hit = reached(run, targets[seed])
            if hit is None:
                missing += 1
                continue
            steps.append(hit[0] / constant[0])
            examples.append(hit[1] / constant[1])
        mine = finals.loc[kind]
        kinds.append(KindComparison(kind, len(seeds), missing, _summary(steps), _summary(examples),
                                    float(mine["loss"].mean()), float(mine["updates"].mean())))
    return WarmupComparison(targets, tuple(kinds))
