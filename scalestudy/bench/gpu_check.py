"""The Python side of ``.ci/gpu-check``: one step per call, its figures as JSON in a folder.

    python3 -m scalestudy.bench.gpu_check STEP --out DIR [--tiny]
    python3 -m scalestudy.bench.gpu_check summary --out DIR [--status STEP=STATUS:SECONDS ...]

STEP is ``env`` (the machine: GPU, driver, torch, CUDA, cuDNN) or a benchmark (``loop``,
``ghostbn``, ``pack``, ``compile``: the same code as ``scalestudy bench NAME``). A benchmark's
JSON is rewritten after every row, ``"complete": false`` until its end, so a step the script
stops at its time limit still returns what it measured. ``summary`` prints every table and each
step's status and writes ``summary.json``.

Nothing here imports Ray, MLflow or Optuna: the GPU machine has none of them, and the check
runs the benchmarks directly (the epoch loop knows nothing of either).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from scalestudy.bench import BenchTable, rows_measured, run_benchmark

BENCH_STEPS = ("loop", "ghostbn", "pack", "compile")
STEPS = ("env", *BENCH_STEPS)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Whole or not at all: a reader (or a kill) never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=2, default=str)
    os.replace(tmp, path)


def run_bench(name: str, out: Path, tiny: bool) -> None:
    def save(table: BenchTable, complete: bool) -> None:
        write_json(out / f"{name}.json", {**asdict(table), "complete": complete})

    with rows_measured(lambda table: save(table, complete=False)):
        table = run_benchmark(name, tiny=tiny)
    save(table, complete=True)
    print(table.render(), flush=True)


def _nvidia_smi() -> str | None:
    try:
        result = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                                 "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None


def environment() -> dict[str, Any]:
    import torch

    env: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cpus": os.cpu_count(), "cuda_available": torch.cuda.is_available(), "nvidia_smi": _nvidia_smi(),
    }
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        env.update(device=properties.name, capability=f"{properties.major}.{properties.minor}",
                   memory_gib=round(properties.total_memory / 2**30, 1),
                   multiprocessors=properties.multi_processor_count)
    else:
        env["device"] = f"CPU ({platform.processor() or platform.machine()})"
    return env


def summary(out: Path, statuses: list[str]) -> dict[str, Any]:
    steps: dict[str, Any] = {}
    for item in statuses:
        step, _, rest = item.partition("=")
        status, _, seconds = rest.partition(":")
        steps[step] = {"status": status, "seconds": float(seconds) if seconds else None}
    for step in BENCH_STEPS:
        path = out / f"{step}.json"
        payload = json.loads(path.read_text()) if path.is_file() else None
        entry = steps.setdefault(step, {"status": "not run", "seconds": None})
        entry.update(rows=len(payload["rows"]) if payload else 0, complete=bool(payload and payload["complete"]))
        if payload:
            table = BenchTable(payload["name"], payload["columns"], payload["rows"], payload["notes"])
            print(table.render() + ("" if payload["complete"] else "\n(partial: the step was stopped)"))
    env_path = out / "env.json"
    result = {"environment": json.loads(env_path.read_text()) if env_path.is_file() else None, "steps": steps}
    write_json(out / "summary.json", result)
    print("== gpu-check steps ==")
    for step, entry in steps.items():
        seconds = "" if entry["seconds"] is None else f" {entry['seconds']:.0f} s"
        rows = "" if "rows" not in entry else f", {entry['rows']} rows" + ("" if entry["complete"] else " (partial)")
        print(f"{step:8s} {entry['status']}{seconds}{rows}")
    if result["environment"]:
        environment_line = {k: result["environment"].get(k) for k in ("device", "torch", "cuda", "cudnn")}
        print("environment:", json.dumps(environment_line))
    return result


class _OneLineErrors(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's usage block would make it two lines
        self.exit(2, f"error: {self.prog}: {message}\n")


def main(argv: list[str] | None = None) -> int:
    parser = _OneLineErrors(prog="python3 -m scalestudy.bench.gpu_check", description=__doc__.split("\n")[0])
    parser.add_argument("step", choices=(*STEPS, "summary"))
    parser.add_argument("--out", type=Path, required=True, help="folder for the JSON files (must exist)")
    parser.add_argument("--tiny", action="store_true", help="every step at its smallest size (CI, CPU)")
    parser.add_argument("--status", action="append", default=[], metavar="STEP=STATUS:SECONDS",
                        help="summary: how each step ended, as the script saw it")
    args = parser.parse_args(argv)
    if not args.out.is_dir():
        parser.error(f"--out {args.out}: not a folder")
    if args.step == "env":
        env = environment()
        write_json(args.out / "env.json", env)
        print(json.dumps(env), flush=True)
    elif args.step == "summary":
        summary(args.out, args.status)
    else:
        run_bench(args.step, args.out, args.tiny)
    return 0


if __name__ == "__main__":
    sys.exit(main())
