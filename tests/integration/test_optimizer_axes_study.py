"""A study over the timescale axes and a model EMA, end to end: local Ray, MLflow on SQLite, real torch
training; the trial table read back from MLflow holds the axes' columns with the spec's timescales."""

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

SPEC = {
    "name": "axes_study",
    "workload": {"dataset": "synthetic", "dataset_options": {"train_size": 256, "test_size": 64}, "model": "mlp",
                 "model_options": {"hidden": [16]}, "epochs": 2},
    "optimizer": {"name": "adamw", "options": {"eps": 1.0e-8}, "ema": {"half_life_examples": 512}},
    "grid": {"batch_size": [32, 64], "lr": [0.003, 0.01], "momentum": [0.9], "tau_epochs": [4.0],
             "beta2_half_life_examples": [2000.0]},
    "resources": {"cpus_per_worker": 1},
}


def cli(*args, cwd: Path):
    return subprocess.run([sys.executable, "-m", "scalestudy.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_a_timescale_study_tracks_its_axes_and_its_ema(tmp_path):
    spec = tmp_path / "axes.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    proc = cli("run", str(spec), "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    proc = cli("analyze", "--experiment", "axes_study", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = pd.read_parquet(tmp_path / "out" / "trials.parquet")
    assert len(table) == 4 and set(table["optimizer"]) == {"adamw"}
    # Every trial held τ_epoch = 4 and β2's half-life 2000 examples, whatever its B and ε.
    assert table["tau_epoch"].to_numpy() == pytest.approx([4.0] * 4)
    assert table["beta2_half_life_examples"].to_numpy() == pytest.approx([2000.0] * 4)
    for row in table.itertuples():
        assert row.weight_decay == pytest.approx(row.batch_size / (row.lr * 256 * 4.0))
        assert row.beta2 == pytest.approx(0.5 ** (row.batch_size / 2000))
        assert row.ema_momentum == pytest.approx(0.5 ** (row.batch_size / 512))
        assert math.isfinite(row.ema_test_loss) and 0 <= row.ema_test_acc <= 1
