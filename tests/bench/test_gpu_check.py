""".ci/gpu-check runs every step (tiny, on CPU) with Ray, MLflow and Optuna unimportable, and returns JSON.

The GPU machine has none of the three: a ``sitecustomize`` on PYTHONPATH makes every Python
process the script starts (the pack benchmark's spawned workers too) refuse to import them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scalestudy.bench import BenchTable, rows_measured

REPO = Path(__file__).resolve().parents[2]
BLOCKED = ("ray", "mlflow", "optuna")
BLOCKER = f'''
import sys

class _Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {BLOCKED!r}:
            raise ImportError(f"{{name}} is not installed on the GPU machine (blocked by the test)")
        return None

sys.meta_path.insert(0, _Refuse())
'''


def _environment(blocker: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "OUT")}
    return env | {"PYTHONPATH": str(blocker), **extra}


@pytest.fixture(scope="module")
def blocker(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("blocker")
    (folder / "sitecustomize.py").write_text(BLOCKER)
    return folder


def test_the_blocker_refuses_ray_mlflow_and_optuna(blocker):
    for name in BLOCKED:
        result = subprocess.run([sys.executable, "-c", f"import {name}"], env=_environment(blocker),
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 1 and "blocked by the test" in result.stderr, name


@pytest.mark.slow
def test_gpu_check_runs_every_step_tiny_without_ray_mlflow_optuna(blocker, tmp_path):
    # A loaded CI machine runs the tiny steps in 3-5 minutes: the deadline is the next test's
    # subject, so here it is set out of the way (the steps keep their own limits).
    out = tmp_path / "out"
    result = subprocess.run(["bash", str(REPO / ".ci" / "gpu-check")], cwd=tmp_path, capture_output=True, text=True,
                            timeout=1200, env=_environment(blocker, OUT=str(out), GPU_CHECK_TINY="1",
                                                           GPU_CHECK_INSTALL="0", GPU_CHECK_DEADLINE_S="900"))
    log = (out / "gpu-check.log").read_text() if (out / "gpu-check.log").exists() else ""
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:] + log[-4000:]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["env.json", "loop.json", "ghostbn.json", "pack.json", "compile.json", "summary.json", "gpu-check.log"])
    summary = json.loads((out / "summary.json").read_text())
    assert {step: entry["status"] for step, entry in summary["steps"].items()} == dict.fromkeys(
        ["env", "loop", "ghostbn", "pack", "compile"], "ok")
    assert summary["environment"]["torch"] and summary["environment"]["cuda_available"] is False
    for step, figure in (("loop", "ratio"), ("ghostbn", "ratio"), ("pack", "vmap/processes"), ("compile", "ratio")):
        table = json.loads((out / f"{step}.json").read_text())
        assert table["complete"] and table["rows"], step
        assert all(math.isfinite(row[figure]) and row[figure] > 0 for row in table["rows"]), (step, table["rows"])
    pack = json.loads((out / "pack.json").read_text())
    assert {(row["workload"], row["k"]) for row in pack["rows"]} == {("mlp", 1), ("mlp", 2), ("resnet8", 1),
                                                                     ("resnet8", 2)}
    assert any("decision rule" in note for note in pack["notes"])
    assert "== gpu-check steps ==" in result.stdout  # the summary is printed last


def test_gpu_check_without_wheels_is_one_error_line_and_creates_nothing(tmp_path):
    (tmp_path / ".ci").mkdir()
    shutil.copy(REPO / ".ci" / "gpu-check", tmp_path / ".ci" / "gpu-check")  # a checkout with no .whl/
    out = tmp_path / "out"
    result = subprocess.run(["bash", ".ci/gpu-check"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "OUT": str(out)})
    assert result.returncode == 2 and not out.exists()
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error: .ci/gpu-check: no wheels")
    result = subprocess.run(["bash", ".ci/gpu-check", "bogus"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and result.stderr.startswith("error: .ci/gpu-check: unknown argument 'bogus'")


def test_rows_measured_sees_every_row_as_it_is_added():
    seen: list[int] = []
    table = BenchTable("t", ["a"])
    with rows_measured(lambda t: seen.append(len(t.rows))):
        table.add(a=1)
        table.add(a=2)
    table.add(a=3)  # outside the block: nobody is called
    assert seen == [1, 2]


def test_gpu_check_keeps_its_deadline_skipping_what_no_longer_fits(blocker, tmp_path):
    # 26 s leave env min(30, 26 − 15) = 11 s (10 if a second ticked); env alone takes more than 1 s
    # (it imports torch), so every later step has under 10 s left and is skipped, not started.
    out = tmp_path / "out"
    out.mkdir()
    (out / "pack.json").write_text('{"stale": "a previous check"}')  # must not pass for this check's figures
    (out / "notes.txt").write_text("the user's")  # not the check's: kept
    result = subprocess.run(["bash", str(REPO / ".ci" / "gpu-check")], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, env=_environment(blocker, OUT=str(out), GPU_CHECK_TINY="1",
                                                          GPU_CHECK_INSTALL="0", GPU_CHECK_DEADLINE_S="26"))
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-2000:]
    assert "== env (at most 11 s) ==" in result.stdout or "== env (at most 10 s) ==" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    statuses = {step: entry["status"] for step, entry in summary["steps"].items()}
    assert statuses.pop("env") in ("ok", "timeout")
    assert statuses == dict.fromkeys(["loop", "ghostbn", "pack", "compile"], "skipped")
    assert not any((out / f"{step}.json").exists() for step in statuses)  # skipped: never started
    assert summary["steps"]["pack"]["rows"] == 0 and (out / "notes.txt").read_text() == "the user's"


def test_bench_help_lists_every_benchmark_and_bad_flags_are_one_line(tmp_path):
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "scalestudy.cli", "bench", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)

    listed = cli("--help")
    assert listed.returncode == 0
    names = listed.stdout.split("positional arguments:")[1].split("options:")[0]
    assert {"pack", "compile", "loop", "ghostbn", "all"} <= {word.strip("|") for word in names.split()}
    for bad in (["pack", "--bogus"], [], ["pack", "--tiny=3"], ["nope"], ["pack", "compile"]):
        result = cli(*bad)
        assert result.returncode == 2 and result.stdout == "", bad
        assert result.stderr.startswith("error: ") and result.stderr.strip().count("\n") == 0, (bad, result.stderr)
    assert list(tmp_path.iterdir()) == []  # nothing created, nothing run
    for bad in (["bogus", "--out", str(tmp_path)], ["env", "--out", str(tmp_path / "missing")]):
        result = subprocess.run([sys.executable, "-m", "scalestudy.bench.gpu_check", *bad], capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 2 and result.stderr.startswith("error: "), bad
        assert result.stderr.strip().count("\n") == 0, result.stderr
