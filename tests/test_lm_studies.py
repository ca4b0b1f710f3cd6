"""The language-model studies (Malladi et al. 2022): AdamW on the square-root rule next to SGD on the
linear rule, same byte-level transformer. Every spec validates; the small AdamW variant runs end to
end through the CLI at a tiny size, and its analysis says which batch-size rule α supports."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scalestudy.spec import load_spec
from scalestudy.spec.schema import LinearRuleLR

REPO = Path(__file__).resolve().parents[1]
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
    gap = [line for line in proc.stdout.splitlines() if line.startswith("generalization gap:")]
    assert all("points" not in line for line in gap)  # a loss gap is in nats, not accuracy points
    shutil.rmtree(tmp_path / "ray_results", ignore_errors=True)
