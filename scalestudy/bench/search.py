"""``bench search``: compute to law — the trial-epochs each search algorithm needs to estimate α.

A tabular ("surrogate") benchmark, standard practice for comparing HPO methods:

1. The full grid of the workload is trained once, for real, with the bare epoch loop
   (the same loop a Tune trial runs; no Ray or MLflow overhead), and cached under
   ``$SCALESTUDY_CACHE`` keyed by the spec hash. Its α (the analysis layer's fit) is the
   reference α_grid, and its trial-epochs (diverged trials count the epochs they ran)
   the reference cost.
2. The grid becomes a response surface: per (B, m) cell, the seed-mean final test
   accuracy interpolated in ln ε (makima), divergence above the midpoint (in ln ε)
   between the last grid ε where most seeds survived and the first where most diverged,
   and Gaussian evaluation noise with the seed-to-seed sd measured on the grid.
3. Each algorithm's real builder (the same SearchPlan and Searcher classes a study
   uses) is replayed against the surface by :func:`scalestudy.search.replay.replay`,
   at several ``trials_per_cell`` budgets and repetitions (search seed and noise seed
   change together); α is fitted on each run's trials with the analysis layer.

Reported per algorithm: trial-epochs needed for |α − α_grid| ≤ 0.1 (per repetition the
smallest budget from which every larger budget stays within 0.1; median over
repetitions), its ratio to the full grid, and the α reached within a fixed budget of a
quarter of the grid's trial-epochs.

A little over 300 lines on purpose: the benchmark's three steps read top to bottom in one file.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scalestudy.bench import BenchTable
from scalestudy.trial.readback import EPOCHS_COMPLETED, row_from_result, with_current_names

REPO_ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 0.1  # |α − α_grid| that counts as "found the law"
BUDGET_SHARE = 0.25  # the fixed budget: this share of the full grid's trial-epochs
CONCURRENCY = 4  # trials in flight during a replay (a small machine)

# The tiny workload (--tiny, CI): synthetic data, a small MLP, 3 epochs; about 20 s of training.
TINY_SPEC = {
    "name": "bench-search-tiny",
    "workload": {"dataset": "synthetic", "dataset_options": {"train_size": 512, "test_size": 256},
                 "model": "mlp", "model_options": {"hidden": [32]}, "epochs": 3, "ghost_batch_size": 16},
    "grid": {"batch_size": [16, 32, 64, 128],
             "lr": {"reference_batch_size": 32, "reference_lr": 0.05, "reference_momentum": 0.9,
                    "multipliers": [0.125, 0.25, 0.5, 1, 2, 4, 8, 64]},
             "momentum": [0.0, 0.9], "seeds": [0, 1]},
}


# ---------------------------------------------------------------------------------------
# 1. The full grid, trained once


def grid_spec(tiny: bool):
    """The workload: the quickstart's law section (constant schedule), or the tiny one."""
    from scalestudy.spec import load_spec, spec_from_dict

    if tiny:
        return spec_from_dict(TINY_SPEC)
    return load_spec(REPO_ROOT / "search_spaces" / "quickstart.yaml", ["sections={}"])


def cache_file(spec) -> Path:
    from scalestudy.data.mnist1d import cache_dir

    return cache_dir() / f"bench-search-{spec.name}-{spec.spec_hash()}.parquet"


def response_table(spec, processes: int | None = None, verbose: bool = False) -> tuple[pd.DataFrame, bool]:
    """Every trial of the spec's full grid, trained for real: (trial table, read from cache).

    One row per trial in the analysis layer's trial-table schema, plus ``test_acc_curve``
    (JSON list, one value per epoch run). The table is cached by spec hash."""
    path = cache_file(spec)
    if path.is_file():
        return with_current_names(pd.read_parquet(path)), True
    from scalestudy.trial.config import expand_trials

    # Longest trials (small batches) first, so the pool's last minutes are not one slow trial.
    trials = sorted(expand_trials(spec), key=lambda t: (t.batch_size, t.lr))
    processes = processes or max(1, min(len(trials), os.cpu_count() or 1))
    started = time.monotonic()
    rows = []
    # Import torch and dynamo (which the first optimizer imports) once, before the pool forks:
    # on a loaded 2-core machine each import costs tens of seconds per worker otherwise.
    import torch._dynamo  # noqa: F401

    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork")) as pool:
        for i, row in enumerate(pool.map(train_trial, trials, chunksize=1)):
            rows.append(row)
            if verbose:
                print(f"[{time.monotonic() - started:6.0f}s] grid trial {i + 1}/{len(trials)}: "
                      f"B={row['batch_size']} lr={row['lr']:.4g} m={row['momentum']:g} seed={row['seed']} "
                      f"test_acc={row['test_acc']:.3f}{' diverged' if row['diverged'] else ''}", flush=True)
    frame = pd.DataFrame(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    frame.to_parquet(partial)
    partial.replace(path)
    return frame, False


def train_trial(config) -> dict[str, Any]:
    """One grid trial with the bare epoch loop (one thread): its final values and accuracy curve."""
    import torch

    from scalestudy.train.loop import EpochLoop

    torch.set_num_threads(1)
    loop = EpochLoop(config, device="cpu")
    curve, last = [], None
    for report in loop.run():
        last = report
        curve.append(float(report.test_acc))
    return {**row_from_result(config, last.metrics()),
            "train_seconds": float(sum(h["epoch_seconds"] for h in loop.history)), "test_acc_curve": json.dumps(curve)}


# ---------------------------------------------------------------------------------------
# 2. The grid as a response surface


class Surface:
    """Final test accuracy of any ε in any (B, m) cell of the grid, with evaluation noise."""

    def __init__(self, frame: pd.DataFrame) -> None:
        from scipy.interpolate import Akima1DInterpolator

        self.cells: dict[tuple[int, float], dict[str, Any]] = {}
        for (batch_size, momentum), group in frame.groupby(["batch_size", "momentum"]):
            by_lr = group.groupby("lr").agg(diverged=("diverged", "mean"), epochs=(EPOCHS_COMPLETED, "mean"))
            acc = group[~group["diverged"]].groupby("lr")["test_acc"].mean()
            alive = by_lr.index[(by_lr["diverged"] < 0.5) & by_lr.index.isin(acc.index)]
            x, y = np.log(alive.to_numpy(float)), acc.loc[alive].to_numpy(float)
            dead = by_lr.index[(by_lr["diverged"] >= 0.5) & (by_lr.index > alive.max())]
            cell = {"x": x, "y": y, "curve": Akima1DInterpolator(x, y, method="makima") if len(x) > 2 else None,
                    "diverge_x": math.inf, "diverged_epochs": 1.0}
            if len(dead):
                cell["diverge_x"] = (x[-1] + math.log(dead.min())) / 2
                cell["diverged_epochs"] = float(by_lr.loc[dead.min(), "epochs"])
            self.cells[(int(batch_size), float(momentum))] = cell
        self.noise_sd = independent_noise(frame)

    def accuracy(self, batch_size: int, momentum: float, lr: float) -> float | None:
        """Noise-free accuracy at ε, or None where it diverges."""
        cell = self.cells[(batch_size, momentum)]
        x = math.log(lr)
        if x >= cell["diverge_x"]:
            return None
        if cell["curve"] is None or x <= cell["x"][0] or x >= cell["x"][-1]:  # flat outside the grid
            return float(np.interp(x, cell["x"], cell["y"]))
        return float(cell["curve"](x))

    def evaluator(self, rng: np.random.Generator, epochs: int):
        """``evaluate(trial) → last result`` for :func:`scalestudy.search.replay.replay`."""
        def evaluate(trial) -> dict[str, Any]:
            b, m = trial.batch_size, trial.momentum
            acc = self.accuracy(b, m, trial.lr)
            steps = math.ceil(trial.workload.dataset_size / b)
            if acc is None:
                ran = int(self.cells[(b, m)]["diverged_epochs"])
                return {"test_acc": math.nan, "diverged": 1, "epoch": ran, "updates": ran * steps}
            noisy = float(np.clip(acc + rng.normal(0.0, self.noise_sd), 0.0, 1.0))
            return {"test_acc": noisy, "diverged": 0, "epoch": epochs, "updates": epochs * steps}
        return evaluate

    def exact_alpha(self, cells: list[tuple[int, float]]) -> float | None:
        """α of the surface's own optima (noise-free argmax per cell) on the given cells."""
        points = []
        for b, m in cells:
            cell = self.cells[(b, m)]
            xs = np.linspace(cell["x"][0], min(cell["x"][-1], cell["diverge_x"]), 2001)
            best = xs[int(np.argmax([self.accuracy(b, m, math.exp(x)) or -1.0 for x in xs]))]
            points.append((math.log(b), math.log1p(-m), best))
        from scalestudy.analysis.fits.law import regress_law

        if len({p[0] for p in points}) < 2:
            return None
        u, v, y = (np.array(c) for c in zip(*points))
        return float(regress_law(u, v, y, ("alpha", "beta") if len(set(v)) > 1 else ("alpha",)).coef[1])


def independent_noise(frame: pd.DataFrame) -> float:
    """sd of one trial's final accuracy around its cell's curve, from the seeds near each peak
    (accuracy ≥ 90 % of the cell's best): the residual of a seed × ε two-way layout, so a
    seed that is better at every ε (shared initialisation, same test set) does not count —
    it moves a whole curve, not its argmax."""
    ok = frame[~frame["diverged"]]
    total, dof = 0.0, 0
    for _, group in ok.groupby(["batch_size", "momentum"]):
        table = group.pivot_table(index="seed", columns="lr", values="test_acc")
        table = table.loc[:, table.mean() >= 0.9 * table.mean().max()].dropna(axis=1)
        if table.shape[0] < 2 or table.shape[1] < 2:
            continue
        values = table.to_numpy(float)
        residual = values - values.mean(0) - values.mean(1, keepdims=True) + values.mean()
        total += float((residual ** 2).sum())
        dof += (values.shape[0] - 1) * (values.shape[1] - 1)
    return math.sqrt(total / dof) if dof else 0.0


# ---------------------------------------------------------------------------------------
# 3. Replaying each algorithm


def fit_alpha(frame: pd.DataFrame) -> tuple[float | None, list[tuple[int, float]]]:
    """α by the analysis layer (frontier, then law) and the (B, m) cells it was fitted on."""
    from scalestudy.analysis import fit_frontier, fit_law

    law = fit_law(list(fit_frontier(frame).cells))
    return law.alpha, [(c.batch_size, c.momentum) for c in law.cells]


def search_spec(grid, algorithm: str, budget: int | None, seed: int, seeds: list[int]):
    """The grid's workload searched as ``search_spaces/search_ALGORITHM.yaml`` searches it (its
    search block and its ε range, multipliers of the linear rule), with ``budget`` trials
    per cell and search seed ``seed``; ``algorithm`` "grid": the grid on ``seeds``."""
    from scalestudy.spec import parse_yaml, spec_from_dict

    raw = grid.model_dump(mode="json")
    raw["grid"]["seeds"] = seeds
    if algorithm != "grid":
        path = REPO_ROOT / "search_spaces" / f"search_{algorithm}.yaml"
        shipped = parse_yaml(path.read_text(), str(path))
        raw["grid"]["lr"]["multipliers"] = shipped["grid"]["lr"]["multipliers"]
        raw["search"] = {**shipped["search"], "trials_per_cell": budget, "seed": seed}
    return spec_from_dict(raw)


def run_search(spec, surface: Surface, rng: np.random.Generator) -> tuple[float | None, float]:
    """Replay one search on the surface: (α, trial-epochs)."""
    from scalestudy.search import SEARCHES
    from scalestudy.search.replay import replay, trial_rows
    from scalestudy.trial.config import expand_cells

    plan = SEARCHES.get(spec.search.algorithm)(spec, expand_cells(spec))
    done = replay(plan, surface.evaluator(rng, spec.workload.epochs), concurrency=CONCURRENCY)
    frame = pd.DataFrame(trial_rows(done))
    alpha, _ = fit_alpha(frame)
    return alpha, float(frame[EPOCHS_COMPLETED].sum())


def needed_epochs(runs: list[tuple[int, float | None, float]], alpha_grid: float) -> float:
    """Trial-epochs of the smallest budget from which every larger budget's α is within the
    tolerance (inf if none): ``runs`` are (budget, α, trial-epochs)."""
    needed = math.inf
    for budget, alpha, epochs in sorted(runs, reverse=True):
        if alpha is None or abs(alpha - alpha_grid) > TOLERANCE:
            break
        needed = epochs
    return needed


def bench_search(tiny: bool = False) -> BenchTable:
    started = time.monotonic()
    grid = grid_spec(tiny)
    frame, cached = response_table(grid)
    alpha_grid, law_cells = fit_alpha(frame)
    grid_epochs = float(frame[EPOCHS_COMPLETED].sum())
    if alpha_grid is None:
        raise RuntimeError("the full grid gives no α: no two batch sizes with an interior optimum")
    surface = Surface(frame)
    budgets, reps = ((3, 5), 2) if tiny else ((3, 4, 5, 6, 8, 10), 7)
    cap = BUDGET_SHARE * grid_epochs
    reach = f"trial-epochs to α±{TOLERANCE:g}"
    table = BenchTable("search", ["algorithm", "trials/cell", reach, "÷ full grid", "reps reaching", "α median",
                                  "|α−α_grid| median", "α range", "trial-epochs"])
    table.add(**{"algorithm": "grid (full, trained)", "trials/cell": "grid", reach: grid_epochs, "÷ full grid": 1.0,
                 "reps reaching": "reference", "α median": alpha_grid, "trial-epochs": grid_epochs})
    rows = [("grid", None, list(grid.grid.seeds), "grid (replayed)"), ("grid", None, [0], "grid, 1 seed")]
    rows += [(name, budgets, [0], name) for name in ("quasi_random", "optuna", "bracket")]
    for algorithm, sweep, seeds, label in rows:
        needed, shown = [], []
        for rep in range(reps):
            runs = []
            for budget in sweep or (None,):
                spec = search_spec(grid, algorithm, budget, seed=rep, seeds=seeds)
                alpha, epochs = run_search(spec, surface, np.random.default_rng(1000 + rep))
                runs.append((budget or 0, alpha, epochs))
            needed.append(needed_epochs(runs, alpha_grid))
            # What the algorithm reaches within a quarter of the grid's compute (grid rows: all of it).
            affordable = [r for r in runs if r[1] is not None and (r[2] <= cap or sweep is None)]
            if affordable:
                shown.append(max(affordable)[1:])
        median = float(np.median(needed))
        alphas = [alpha for alpha, _ in shown]
        errors = [abs(alpha - alpha_grid) for alpha in alphas]
        table.add(**{"algorithm": label, "trials/cell": ",".join(map(str, sweep)) if sweep else "grid",
                     reach: median if math.isfinite(median) else "not reached",
                     "÷ full grid": median / grid_epochs if math.isfinite(median) else "-",
                     "reps reaching": f"{sum(math.isfinite(n) for n in needed)}/{reps}",
                     "α median": float(np.median(alphas)) if alphas else "-",
                     "|α−α_grid| median": float(np.median(errors)) if errors else "-",
                     "α range": f"{min(alphas):.2f}..{max(alphas):.2f}" if alphas else "-",
                     "trial-epochs": float(np.median([e for _, e in shown])) if shown else "-"})
    law = _grid_law(frame)
    table.notes += [
        (f"workload: {grid.name} law grid, {len(frame)} trials, {grid_epochs:.0f} trial-epochs "
         f"({'read from ' + str(cache_file(grid)) if cached else 'trained now'}); α_grid = {alpha_grid:.3f}, "
         f"95% interval {law}; the surface's noise-free optima give α = {surface.exact_alpha(law_cells):.3f}"),
        (f"each search replayed on the grid's response surface (makima in ln ε, noise sd {surface.noise_sd:.4f} "
         f"per trial), {CONCURRENCY} trials in flight, {reps} repetitions (search and noise seeds), one training "
         "seed, search settings and ε range of search_spaces/search_ALGORITHM.yaml"),
        (f"{reach}: per repetition, the trial-epochs of the smallest trials_per_cell from which every larger one "
         f"in the sweep gives |α − α_grid| ≤ {TOLERANCE:g}; median over repetitions (not reached: in most of "
         "them, no budget of the sweep does)"),
        (f"α median, |α−α_grid| median, α range, trial-epochs: over repetitions, at the largest budget using at "
         f"most {cap:.0f} trial-epochs (a quarter of the grid's); grid rows: the whole grid, their spread is the "
         "noise floor of α on this workload"),
        f"{time.monotonic() - started:.0f} s",
    ]
    return table


def _grid_law(frame: pd.DataFrame) -> str:
    """α's 95 % interval from the full grid (the analysis layer's law fit)."""
    from scalestudy.analysis import fit_frontier, fit_law

    interval = fit_law(list(fit_frontier(frame).cells)).ci95.get("alpha")
    return f"[{interval[0]:.2f}, {interval[1]:.2f}]" if interval else "not available"
