"""Three ways to run k trials on one device at once, each timed over the same work.

* **processes**: k processes, each its own model and data, as Ray Tune runs k trials that each
  ask for 1/k of a GPU (``resources.gpus_per_worker``). A pool of spawned workers is started
  once; for each setting the first k build their trial, warm up, report ready, and start on
  one "go". On CUDA without MPS, the processes' kernels take turns on the device.
* **streams**: k threads in one process, each training its own trial on its own CUDA stream
  (on CPU: k threads and no stream). One interpreter issues all the kernels.
* **vmap**: one :class:`StackedMembers` of k trials: each kernel works for all k at once.

Each returns the examples/s of the whole device: k·steps·B over the wall time from the first
trial's start to the last one's end, measured after a warm-up, with no host sync inside.
"""

from __future__ import annotations

import contextlib
import multiprocessing.connection
import threading
import time
import traceback
from collections.abc import Callable

import torch

from scalestudy.bench.device import synchronize
from scalestudy.bench.pack_members import WORKLOADS, Member, PackWorkload, StackedMembers
from scalestudy.data.base import InMemoryDataset

WARMUP_STEPS = 2
REPLY_TIMEOUT_S = 300.0  # a worker that does not answer by then is stuck, not slow


def _timed(device: torch.device, run: Callable[[], None]) -> tuple[float, float]:
    synchronize(device)
    start = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process of the machine
    run()
    synchronize(device)
    return start, time.monotonic()


def time_vmap(workload: PackWorkload, data: InMemoryDataset, batch_size: int, k: int, steps: int,
              device: torch.device) -> float:
    stack = StackedMembers(workload, data, batch_size, seeds=range(k), device=device)
    for _ in range(WARMUP_STEPS):
        stack.step()

    def run() -> None:
        for _ in range(steps):
            stack.step()

    start, end = _timed(device, run)
    return k * steps * batch_size / (end - start)


def time_streams(workload: PackWorkload, data: InMemoryDataset, batch_size: int, k: int, steps: int,
                 device: torch.device) -> float:
    members = [Member(workload, data, batch_size, seed, device) for seed in range(k)]
    streams = [torch.cuda.Stream(device) if device.type == "cuda" else None for _ in range(k)]
    for member in members:
        for _ in range(WARMUP_STEPS):
            member.step()
    synchronize(device)
    start_line = threading.Barrier(k + 1)
    errors: list[BaseException] = []

    def train(member: Member, stream: torch.cuda.Stream | None) -> None:
        try:
            start_line.wait()
            with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
                for _ in range(steps):
                    member.step()
        except BaseException as error:  # noqa: BLE001 - re-raised in the timing thread
            errors.append(error)

    threads = [threading.Thread(target=train, args=pair, daemon=True) for pair in zip(members, streams)]
    for thread in threads:
        thread.start()

    def run() -> None:
        start_line.wait()
        for thread in threads:
            thread.join()

    start, end = _timed(device, run)
    if errors:
        raise errors[0]
    return k * steps * batch_size / (end - start)


def serve(conn: multiprocessing.connection.Connection, device_name: str) -> None:
    """A pool worker: builds the trial each task names, warms up, waits for "go", trains, reports times."""
    torch.set_num_threads(1)  # one CPU per trial, as cpus_per_worker: 1 gives
    device = torch.device(device_name)
    torch.empty(1, device=device)  # the CUDA context, before any timing
    datasets: dict[str, InMemoryDataset] = {}
    conn.send(("up", None))
    while (task := _next_task(conn)) is not None:
        name, batch_size, seed, steps, tiny = task
        try:
            workload = WORKLOADS[name]
            if name not in datasets:
                datasets[name] = workload.dataset(device, tiny)
            member = Member(workload, datasets[name], batch_size, seed, device)
            for _ in range(WARMUP_STEPS):
                member.step()
            synchronize(device)
        except BaseException:  # noqa: BLE001 - the parent reports it
            conn.send(("error", traceback.format_exc()))
            continue
        conn.send(("ready", None))
        if _next_task(conn) != "go":
            return
        try:
            conn.send(("done", _timed(device, lambda: [member.step() for _ in range(steps)])))
        except BaseException:  # noqa: BLE001
            conn.send(("error", traceback.format_exc()))


def _next_task(conn: multiprocessing.connection.Connection) -> tuple | None:
    try:
        return conn.recv()
    except EOFError:  # the parent is gone (stopped at its time limit): nothing more to do
        return None


class ProcessPool:
    """``size`` spawned workers (see :func:`serve`); :meth:`time` runs one setting on the first k."""

    def __init__(self, size: int, device: torch.device) -> None:
        context = torch.multiprocessing.get_context("spawn")
        self.conns, self.processes = [], []
        for _ in range(size):
            parent, child = context.Pipe()
            process = context.Process(target=serve, args=(child, str(device)), daemon=True)
            process.start()
            child.close()
            self.conns.append(parent)
            self.processes.append(process)
        # Every worker imported torch and holds its context: nothing of the start-up storm
        # (size interpreters importing at once) overlaps a measurement.
        for index in range(size):
            self._reply(index)

    def _reply(self, index: int) -> tuple[str, object]:
        conn = self.conns[index]
        if not conn.poll(REPLY_TIMEOUT_S):
            raise TimeoutError(f"pack worker {index} gave no answer within {REPLY_TIMEOUT_S:.0f} s")
        try:
            return conn.recv()
        except (EOFError, OSError):
            self.processes[index].join(timeout=5)
            raise RuntimeError(f"pack worker {index} exited (exit code {self.processes[index].exitcode})") from None

    def time(self, workload: str, batch_size: int, k: int, steps: int, tiny: bool) -> float:
        if k > len(self.conns):
            raise ValueError(f"k={k} trials, but the pool has {len(self.conns)} workers")
        for seed in range(k):
            self.conns[seed].send((workload, batch_size, seed, steps, tiny))
        replies = [self._reply(i) for i in range(k)]
        ready = [i for i, (kind, _) in enumerate(replies) if kind == "ready"]
        for i in ready:
            self.conns[i].send("go")
        replies = [self._reply(i) if i in ready else reply for i, reply in enumerate(replies)]
        failed = [payload for kind, payload in replies if kind == "error"]
        if failed:
            raise RuntimeError(f"a pack worker failed: {str(failed[0]).strip().splitlines()[-1]}")
        spans = [payload for _, payload in replies]
        return k * steps * batch_size / (max(end for _, end in spans) - min(start for start, _ in spans))

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(None)
            except OSError:
                pass
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()

    def __enter__(self) -> ProcessPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
