"""How many trials a cluster holds at once, in Ray's own resource arithmetic."""

from __future__ import annotations

from scalestudy.spec import StudySpec

# Ray counts resources in fixed point, 1/10000 of a unit (ray._raylet.RESOURCE_UNIT_SCALING).
RESOURCE_UNITS = 10_000


def _units(quantity: float) -> int:
    return round(quantity * RESOURCE_UNITS)


def max_concurrency(spec: StudySpec, cluster: dict[str, float]) -> int:
    """How many trials the cluster holds at once (Tune does not count DDP workers' CPUs).

    In Ray's own arithmetic: fixed point (so 0.1 GPU fits 10 times in one, where float floor
    division gives 9), and a GPU is a unit instance: a fraction g ≤ 1 of one is packed
    ⌊1/g⌋ times into each GPU (0.4 twice, not 2.5 times), so k trials share a GPU with
    ``gpus_per_worker: 1/k``. CPUs are a pool, and bound it too.
    """
    resources = spec.resources
    if resources.max_concurrent_trials:
        return resources.max_concurrent_trials
    workers = resources.workers_per_trial
    limits = [_units(cluster.get("CPU", 1)) // _units(workers * resources.cpus_per_worker)]
    gpus = resources.gpus_per_worker
    if gpus:
        whole_gpus = int(cluster.get("GPU", 0) + 1e-9)
        limits.append(whole_gpus * (RESOURCE_UNITS // _units(gpus)) if gpus < 1
                      else whole_gpus // round(workers * gpus))
    return max(1, min(limits))
