"""``bench analysis``: seconds from an N-trial MLflow SQLite store to law.json.

:func:`make_mlflow_store` writes a study following the engine's MLflow contract (an
experiment, a parent run, one trial run per row of a planted-law table, per-epoch
metrics), with the tag, param and metric names the engine itself logs. Creating 10,000
runs through ``MlflowClient`` takes about 60 ms each here, so for a SQLite store the trial
runs are bulk-inserted into MLflow's tables in one transaction (a one-off fixture; the
experiment and parent run go through the client, which also creates the schema).
:func:`time_analysis` times load + analyze.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
import uuid
from pathlib import Path

import pandas as pd

from scalestudy import __version__
from scalestudy.bench import BenchTable
from scalestudy.noise import noise_scale
from scalestudy.testing.planted import make_planted_table
from scalestudy.trial import record
from scalestudy.trial.record import KEY_TAG, METRIC_KEYS, PARAM_KEYS, PARENT_TAG, ROLE_TAG, STATUS_TAG

_MAX_FLOAT = 1.7976931348623157e308  # MLflow's SQL stores keep ±inf as ±max float


def bench_analysis(tiny: bool = False) -> BenchTable:
    trials = 300 if tiny else 10_000
    result = run_bench(trials)
    table = BenchTable("analysis", ["trials", "write store s", "load s", "analyze s", "total s", "alpha (planted 1.0)"])
    table.add(**{"trials": trials, "write store s": result["write_s"], "load s": result["load_s"],
                 "analyze s": result["analyze_s"], "total s": result["load_s"] + result["analyze_s"],
                 "alpha (planted 1.0)": result["alpha"]})
    table.notes.append("target: ≤ 30 s from a 10,000-trial store to law.json (load + analyze; writing the "
                       "store is the fixture)")
    return table


def run_bench(n_trials: int = 10_000, folder: Path | None = None) -> dict[str, float]:
    """Write an ``n_trials`` store in ``folder`` (default: a temporary one) and time its analysis.

    Returns trials, write_s (fixture), load_s, analyze_s, total_s (target: under 30 s for
    10,000 trials on a 2-core machine) and the fitted alpha (planted: 1.0).
    """
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(folder or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{(folder / 'bench.db').resolve()}"
        start = time.perf_counter()
        make_mlflow_store(uri, n_trials)
        written = time.perf_counter() - start
        return {"write_s": written, **time_analysis(uri, "bench", folder / "analysis")}


def time_analysis(uri: str, experiment: str, out_dir: Path, log_to_mlflow: bool = True) -> dict[str, float]:
    """Seconds to read the store, to analyze (fits, files, figures, MLflow run), and in total."""
    from scalestudy.analysis import analyze, load_trials_from_mlflow

    start = time.perf_counter()
    trials = load_trials_from_mlflow(experiment, uri)
    loaded = time.perf_counter()
    result = analyze(trials, out_dir, log_to_mlflow=log_to_mlflow)
    done = time.perf_counter()
    return {"trials": len(trials), "load_s": loaded - start, "analyze_s": done - loaded, "total_s": done - start,
            "alpha": result.law.alpha if result.law.alpha is not None else float("nan")}


def planted_trials(n_trials: int, seed: int = 0) -> pd.DataFrame:
    """About ``n_trials`` rows: 10 batch sizes × 5 momenta × 21 lrs × enough seeds, cut to n."""
    cells = 10 * 5 * 21
    seeds = tuple(range(max(1, math.ceil(n_trials / cells))))
    frame = make_planted_table(alpha=1.0, beta=1.0, k=1e-3, breakdown=2048, noise=0.01, seeds=seeds,
                               batch_sizes=tuple(2 ** i for i in range(4, 14)), momenta=(0.0, 0.5, 0.8, 0.9, 0.95),
                               lr_points=21, dataset_size=60_000, rng=seed)
    return frame.sort_values(["seed", "batch_size", "momentum", "lr"]).head(n_trials).reset_index(drop=True)


def make_mlflow_store(uri: str, n_trials: int, experiment: str = "bench", epochs: int = 3, seed: int = 0) -> str:
    """Write a study of ``n_trials`` trial runs; returns the experiment id."""
    from mlflow.tracking import MlflowClient

    if not uri.startswith("sqlite:///"):
        raise ValueError("make_mlflow_store bulk-writes SQLite stores only")
    client = MlflowClient(tracking_uri=uri)
    artifacts = Path(uri[len("sqlite:///"):]).resolve().parent / "mlartifacts"  # not the working directory
    experiment_id = client.create_experiment(experiment, artifact_location=artifacts.as_uri(),
                                             tags={record.EXPERIMENT_KIND_TAG: record.EXPERIMENT_KIND})
    parent = client.create_run(experiment_id, run_name=f"study {experiment}", tags={
        ROLE_TAG: record.STUDY_ROLE, record.STUDY_TAG: experiment, record.SPEC_HASH_TAG: "bench",
        record.VERSION_TAG: __version__}).info.run_id
    frame = planted_trials(n_trials, seed)
    _bulk_insert(uri[len("sqlite:///"):], client.get_experiment(experiment_id).artifact_location,
                 int(experiment_id), parent, frame, epochs)
    return experiment_id


def trial_params(row, epochs: int) -> dict[str, str]:
    """The engine's params of a planted trial (every name in PARAM_KEYS; "" where unset)."""
    values = {"dataset": "planted", "model": "none", "dataset_size": row.dataset_size, "epochs": epochs,
              "batch_size": row.batch_size, "lr": row.lr, "momentum": row.momentum, "nesterov": False,
              "weight_decay": 0.0, "seed": row.seed, "schedule": row.schedule, "schedule_args": json.dumps({}),
              "section": row.section, "workers": 1, "cpus_per_worker": 1.0, "gpus_per_worker": 0.0,
              "grad_norm_penalty": 0.0, "trial_key": row.trial_key}
    unknown = set(values) - set(PARAM_KEYS)
    if unknown:  # the engine renamed a param: the fixture must follow
        raise KeyError(f"not an engine param: {sorted(unknown)}")
    return {key: "" if values.get(key) is None else str(values[key]) for key in PARAM_KEYS}


def epoch_metrics(row, epoch: int, epochs: int) -> dict[str, float]:
    """Every metric the engine logs per epoch (METRIC_KEYS), for a planted trial at ``epoch``."""
    share = epoch / epochs
    values = {"epoch": epoch, "updates": epoch * math.ceil(row.dataset_size / row.batch_size),
              "examples_seen": epoch * row.dataset_size, "batch_size": row.batch_size, "lr": row.lr,
              "momentum": row.momentum, "effective_lr": row.lr / (1 - row.momentum),
              "noise_scale": noise_scale(row.lr, row.momentum, row.dataset_size, row.batch_size),
              "train_loss": row.train_loss, "train_acc": row.train_acc * share, "test_loss": row.test_loss,
              "test_acc": row.test_acc * share, "gen_gap": (row.train_acc - row.test_acc) * share,
              "running_loss": row.train_loss, "epoch_seconds": 0.5,
              "diverged": float(row.diverged and epoch == (1 if row.diverged else epochs))}
    return {key: float(values[key]) for key in METRIC_KEYS}


def _bulk_insert(db_path: str, artifact_root: str, experiment_id: int, parent: str, frame, epochs: int) -> None:
    import sqlite3

    now = int(time.time() * 1000)
    runs, tags, params, metrics, latest = [], [], [], [], []
    for row in frame.itertuples(index=False):
        run_id = uuid.uuid4().hex
        name = record.display_name(row.section, row.batch_size, row.momentum, row.seed, "constant", lr=row.lr)
        runs.append((run_id, name, "UNKNOWN", "", "", "bench", "FINISHED", now, now + 1, "", "active",
                     f"{artifact_root}/{run_id}/artifacts", experiment_id))
        status = record.DIVERGED if row.diverged else record.OK
        for tag, value in ((PARENT_TAG, parent), (ROLE_TAG, record.TRIAL_ROLE), (record.RUN_NAME_TAG, name),
                           (KEY_TAG, row.trial_key), (STATUS_TAG, status), (record.SECTION_TAG, row.section)):
            tags.append((tag, value, run_id))
        params.extend((k, v, run_id) for k, v in trial_params(row, epochs).items())
        last = 1 if row.diverged else epochs
        for epoch in range(1, last + 1):
            for metric, value in epoch_metrics(row, epoch, epochs).items():
                is_nan = math.isnan(value)
                value = 0.0 if is_nan else max(min(value, _MAX_FLOAT), -_MAX_FLOAT)
                metrics.append((metric, value, now, run_id, epoch, int(is_nan)))
                if epoch == last:
                    latest.append((metric, value, now, epoch, int(is_nan), run_id))
    db = sqlite3.connect(db_path)
    try:
        with db:
            db.executemany("INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, "
                           "status, start_time, end_time, source_version, lifecycle_stage, artifact_uri, "
                           "experiment_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", runs)
            db.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?,?,?)", tags)
            db.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?,?,?)", params)
            db.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                           "VALUES (?,?,?,?,?,?)", metrics)
            db.executemany("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
                           "VALUES (?,?,?,?,?,?)", latest)
    finally:
        db.close()
