"""``bench memory``: peak resident memory of the driver and of trial processes.

Runs a shrunk quickstart study in this process (the driver), then reads each
process's high-water mark (``VmHWM`` in ``/proc/PID/status``, Linux) while the Ray
worker processes are still alive: the driver's, and that of every Ray worker that ran
a trial.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from scalestudy.bench import BenchTable


def peak_rss_mib(pid: int | str = "self") -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _ray_trial_workers() -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmdline.startswith("ray::") and ("tune_trial" in cmdline or "ImplicitFunc" in cmdline):
            found.append((int(entry.name), cmdline.split()[0]))
    return found


def bench_memory(tiny: bool = False) -> BenchTable:
    import ray

    from scalestudy.spec import find_search_space, load_spec
    from scalestudy.run.study import run_study

    overrides = ["grid.seeds=[0]", "grid.batch_size=[32,256]", "grid.lr.multipliers=[0.5,2]",
                 "grid.momentum=[0.9]", "sections.schedules.grid.seeds=[0]"]
    if tiny:
        overrides += ["workload.epochs=2", "sections.schedules.schedule=[{kind: constant}]"]
    spec = load_spec(find_search_space("quickstart.yaml"), overrides)
    table = BenchTable("memory", ["process", "peak RSS MiB"])
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            result = run_study(spec, storage=str(Path(tmp) / "ray_results"), verbose=False)
            workers = _ray_trial_workers()
            table.add(process="driver (Tune + MLflow callback)", **{"peak RSS MiB": peak_rss_mib()})
            peaks = [p for p in (peak_rss_mib(pid) for pid, _ in workers) if p is not None]
            if peaks:
                table.add(process=f"trial process (max of {len(peaks)})", **{"peak RSS MiB": max(peaks)})
            table.notes.append(f"quickstart shrunk to {len(result.rows)} trials; dataset mnist1d N=4000")
        finally:
            os.chdir(cwd)
            ray.shutdown()
    return table
