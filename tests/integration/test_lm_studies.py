"""The language-model studies (Malladi et al. 2022): AdamW on the square-root rule next to SGD on the
linear rule, same byte-level transformer. Every spec validates; the small AdamW variant runs end to
end through the CLI at a tiny size, and its analysis says which batch-size rule α supports."""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scalestudy.spec import load_spec
from scalestudy.spec.schema import LinearRuleLR

REPO = Path(__file__).resolve().parents[2]
SPECS = [REPO / "search_spaces" / f"{name}.yaml" for name in ("adamw_lm", "sgd_lm")]
SPECS += [REPO / "search_spaces" / "small" / f"{name}.yaml" for name in ("adamw_lm", "sgd_lm")]


def cli(*args, cwd: Path, timeout: float = 600):
    return subprocess.run([sys.executable, "-m", "scalestudy.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_the_language_model_specs_pair_adamw_on_sqrt_with_sgd_on_linear(path):
    spec = load_spec(path)
    workload = spec.workload
    assert (workload.dataset, workload.model, workload.task) == ("text_bytes", "transformer", "language_model")
    assert "paths" not in workload.dataset_options  # the default corpus: the standard library, offline
    assert (spec.objective.metric, spec.objective.direction) == ("test_loss", "min")
    assert isinstance(spec.grid.lr, LinearRuleLR) and len(spec.grid.batch_size) >= 4 and len(spec.grid.momentum) == 2
    rule = {"adamw": "sqrt", "sgd": "linear"}[spec.optimizer.name]
    assert spec.grid.lr.rule == rule and path.stem.startswith(spec.optimizer.name)
    # The pair differs in the optimizer (and the lr grid it is centred by) alone.
    twin = load_spec(path.with_name(path.name.replace(path.stem, "sgd_lm" if rule == "sqrt" else "adamw_lm")))
    assert (twin.workload, twin.grid.batch_size, twin.grid.momentum, twin.grid.seeds) == (
        workload, spec.grid.batch_size, spec.grid.momentum, spec.grid.seeds)


@pytest.mark.slow
def test_the_small_adamw_variant_runs_and_its_report_names_the_rule(tmp_path):
    spec_path = REPO / "search_spaces" / "small" / "adamw_lm.yaml"
    proc = cli("validate", str(spec_path), cwd=tmp_path)
    assert proc.returncode == 0 and "adamw_lm_small: valid" in proc.stdout, proc.stdout + proc.stderr
    # Tiny: 3 batch sizes x 3 learning rates at one beta1, one epoch on 20 kB of the corpus.
    shrink = ["--set", "workload.dataset_options.max_bytes=20000", "--set", "workload.epochs=1",
              "--set", "grid.batch_size=[8,16,32]", "--set", "grid.lr.multipliers=[0.5,1,2]",
              "--set", "grid.momentum=[0.9]"]
    proc = cli("run", str(spec_path), "--quiet", *shrink, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "analysis"
    proc = cli("analyze", "--experiment", "adamw_lm_small", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    law = json.loads((out / "law.json").read_text())
    assert law["optimizer"] == "adamw"
    assert law["alpha"] is not None or law["reasons"]["alpha"]  # α, or why not
    report = (out / "report.md").read_text()
    assert "Batch-size rule (adamw): " in report and "test_loss" in report
    assert law["alpha"] is None or "  rule: " in proc.stdout  # the terminal summary names the rule α supports
    gap = [line for line in proc.stdout.splitlines() if line.startswith("generalization gap")]
    assert all("points" not in line for line in gap)  # a loss gap is in nats, not accuracy points
    shutil.rmtree(tmp_path / "ray_results", ignore_errors=True)


@pytest.mark.slow
def test_an_lm_bracket_study_with_early_stopping_ranks_trials_by_test_loss(tmp_path):
    """A language model reports no test_acc: its objective (test_loss, min) is what the bracket search, ASHA,
    the progress line and the summary rank by (before, every trial errored on ASHA's missing test_acc)."""
    import yaml
    from mlflow.tracking import MlflowClient

    raw = yaml.safe_load((REPO / "search_spaces" / "small" / "adamw_lm.yaml").read_text())
    raw["workload"] |= {"dataset_options": {"max_bytes": 12000, "seq_len": 32}, "epochs": 2}
    raw["grid"] |= {"batch_size": [16, 32], "momentum": [0.9]}
    raw["search"] = {"algorithm": "bracket", "trials_per_cell": 4,
                     "early_stopping": {"grace_period": 1, "reduction_factor": 2}}
    raw["resources"] = {"max_concurrent_trials": 2}
    (tmp_path / "lm.yaml").write_text(yaml.safe_dump(raw))
    proc = cli("run", "lm.yaml", cwd=tmp_path)
    assert proc.returncode == 0 and " 0 errored" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = client.get_experiment_by_name("adamw_lm_small").experiment_id
    runs = client.search_runs([experiment_id], "tags.`scalestudy.role` = 'trial'")
    assert runs and {run.data.tags["scalestudy.status"] for run in runs} <= {"ok", "stopped"}

    def losses(run) -> dict[int, float]:  # epoch → test_loss
        return {m.step: m.value for m in client.get_metric_history(run.info.run_id, "test_loss")}

    cells: dict[int, list] = {}
    for run in runs:
        assert run.data.params["objective_metric"] == "test_loss" and math.isfinite(run.data.metrics["test_loss"])
        cells.setdefault(int(run.data.params["batch_size"]), []).append(run)
    # Bracketing with steps of 2 cannot converge in four trials: each cell spends its budget.
    assert set(cells) == {16, 32} and all(len(members) == 4 for members in cells.values())
    summary = {int(line.split()[3]): line.split() for line in proc.stdout.splitlines()
               if line.startswith("main ") and len(line.split()) == 9}
    stepped = 0
    for batch_size, members in cells.items():
        # The summary keeps each cell's lowest final test_loss (not its highest, as test_acc's max would).
        best = min(members, key=lambda run: run.data.metrics["test_loss"])
        assert float(summary[batch_size][6]) == pytest.approx(float(best.data.params["lr"]), rel=1e-3)
        assert float(summary[batch_size][7]) == pytest.approx(best.data.metrics["test_loss"], abs=1e-4)
        # ASHA stopped a trial only when a trial of its cell had a lower test_loss at the same epoch.
        for run in members:
            if run.data.tags["scalestudy.status"] == "stopped":
                epoch = max(losses(run))
                assert any(losses(other).get(epoch, math.inf) < losses(run)[epoch] for other in members)
        # The bracket runs three ε at once, then steps towards the lowest loss among them (when it is
        # clearly lowest: by more than search.min_drop; a stopped trial ranks below every finished one).
        ordered = sorted(members, key=lambda run: run.info.start_time)
        first, after = ordered[:3], ordered[3]
        final = {run.info.run_id: (math.inf if run.data.tags["scalestudy.status"] == "stopped"
                                   else run.data.metrics["test_loss"]) for run in first}
        leader = min(first, key=lambda run: final[run.info.run_id])
        if all(final[run.info.run_id] > final[leader.info.run_id] + 0.02 for run in first if run is not leader):
            lrs, lr = sorted(float(run.data.params["lr"]) for run in first), float(after.data.params["lr"])
            side = {lrs[0]: lr < lrs[0], lrs[1]: lrs[0] < lr < lrs[2], lrs[2]: lr > lrs[2]}
            assert side[float(leader.data.params["lr"])], (lrs, float(leader.data.params["lr"]), lr)
            stepped += 1
    assert stepped  # at least one cell's step was checked
    # The progress line's best: the lowest final loss (the summary table's), not the lowest of any epoch.
    lowest = min(run.data.metrics["test_loss"] for run in runs)
    assert f"best final test_loss {lowest:.4f}" in proc.stdout
    shutil.rmtree(tmp_path / "ray_results", ignore_errors=True)
