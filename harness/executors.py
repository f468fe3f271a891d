"""Where runs execute: in the test's process, in a pool of local worker processes, or as cluster jobs.

A run is the unit of work: one arm, one seed, one config. A claim test asks for its runs with ``ctx.run``;
with ``--executor inline`` (the default) each trains on the spot, as it always did. With another executor
``ctx.run`` submits the run and returns a :class:`PendingRun` at once, so the seeds and arms a claim asks for
in a row (``[ctx.run(...) for s in seeds]``) execute side by side; the first read of a pending run's fields
waits for it. The claim then decides in the test's process, from the stored records.

A submitted run is self-contained: the call (experiment, arm, config, seed and the function that trains it)
travels with cloudpickle, with a light stand-in for the claim context (device, budget, seeds, profile, cache
and data folders; no pytest state). The worker sets up the session's precision, determinism and device, then
calls ``Store.run`` itself, so the run is stored under the store's per-run lock: exactly once across every
process and host sharing the store (a second asker waits and then finds it; a run whose worker died is
trained again by the next asker, since the kernel drops a dead process's lock).

Executors (``--executor`` / ``CLAIMBENCH_EXECUTOR``):

* ``inline``: today's behaviour.
* ``local``: a ``concurrent.futures`` process pool on this machine (spawned workers): one worker per visible
  GPU, each pinned through ``CUDA_VISIBLE_DEVICES`` to one entry of the caller's own list; on the CPU
  ``--workers`` N (default 2) with the torch threads divided between them. A worker that dies takes the pool
  down; the pool is rebuilt and the unfinished runs are submitted again (finished ones are found stored).
* ``submitit``: each run a job of submitit's executor (``--cluster slurm`` on a SLURM cluster, ``local`` for
  submitit's own local executor, which the tests use); ``--slurm-partition``, ``--gpus-per-node``,
  ``--timeout-min``. A preempted or timed-out job is requeued by submitit (``checkpoint``) and resumes from
  the store: finished runs are found, the interrupted one trains again.
"""
from __future__ import annotations

import collections.abc
import concurrent.futures as cf
import importlib.util
import multiprocessing
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from harness.profiles import UsageError

EXECUTORS = ("inline", "local", "submitit")
EXECUTOR_ENV = "CLAIMBENCH_EXECUTOR"


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker process needs to train a run the way this session would."""

    precision: str
    deterministic: bool
    device_type: str  # "cpu" | "cuda"
    threads: int | None = None  # torch threads in the worker (CPU workers share the cores)


def _apply_setup(setup: WorkerSetup) -> Any:
    import torch

    from harness.device import set_deterministic

    if setup.threads:
        torch.set_num_threads(setup.threads)
    device = torch.device("cuda", 0) if setup.device_type == "cuda" else torch.device("cpu")
    set_deterministic(setup.deterministic)
    return device


class RemoteContext(SimpleNamespace):
    """What a run's function may use of its claim context in another process (no pytest state)."""

    def announce(self, message: str) -> None:
        print(f"[{self.case}] {message}", file=sys.stderr)

    def run(self, *a, **k):
        raise RuntimeError("a run's function cannot ask for further runs when it executes in a worker; "
                           "ask for them from the claim test")


def execute(store_root: str, call: dict, setup: WorkerSetup) -> dict:
    """A worker's job: the session's settings, then ``Store.run`` (resumes what is stored, else trains)."""
    from harness.device import Precision, device_name
    from harness.store import Store

    device = _apply_setup(setup)
    call = dict(call, device=str(device), device_name=device_name(device))
    ctx = call.pop("ctx", None)
    if ctx is not None:  # the stand-in sees the worker's device
        ctx.device = device
    with Precision(setup.precision, "", setup.deterministic).activate():  # the session's choice: no new measurement
        return Store(store_root).run(**call)


def _execute_pickled(store_root: str, payload: bytes, setup: WorkerSetup) -> dict:
    import cloudpickle

    return execute(store_root, cloudpickle.loads(payload), setup)


class PendingRun(collections.abc.Mapping):
    """A submitted run; reading any field waits for it (then it behaves as the stored record)."""

    def __init__(self, future: Any, call: dict, on_done: Callable[["PendingRun", dict], None]):
        self._future, self.call, self._on_done, self._rec = future, call, on_done, None

    def resolve(self) -> dict:
        if self._rec is None:
            self._rec = self._future.result()
            self._on_done(self, self._rec)
        return self._rec

    def __getitem__(self, key):
        return self.resolve()[key]

    def __iter__(self):
        return iter(self.resolve())

    def __len__(self) -> int:
        return len(self.resolve())

    def __repr__(self) -> str:
        state = "done" if self._rec is not None else "pending"
        return f"PendingRun({self.call.get('experiment')}/{self.call.get('arm')}/seed {self.call.get('seed')}, {state})"


class Inline:
    name = "inline"

    def submit(self, store_root: str, call: dict, setup: WorkerSetup) -> cf.Future:
        raise NotImplementedError("inline runs are not submitted")

    def close(self) -> None:
        pass


@dataclass
class Local:
    """A process pool on this machine; one worker per visible GPU, or ``workers`` CPU workers."""

    workers: int = 2
    gpus: list[str] = field(default_factory=list)  # entries of the caller's CUDA_VISIBLE_DEVICES (or indices)
    retries: int = 2
    name: str = "local"
    _pool: cf.ProcessPoolExecutor | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _start(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")  # CUDA cannot be used in forked children
            n = len(self.gpus) or self.workers
            slots = ctx.Queue()
            for i in range(n):
                slots.put(self.gpus[i] if self.gpus else None)
            self._pool = cf.ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_take_slot,
                                                initargs=(slots,))
        return self._pool

    def submit(self, store_root: str, call: dict, setup: WorkerSetup) -> cf.Future:
        import cloudpickle

        payload = cloudpickle.dumps(call)
        outer: cf.Future = cf.Future()

        def attempt(left: int) -> None:
            with self._lock:  # one pool at a time: the runs a dead worker broke all retry into the same new one
                pool = self._start()
                try:
                    inner = pool.submit(_execute_pickled, store_root, payload, setup)
                except cf.process.BrokenProcessPool:
                    self._retire(pool)
                    pool = self._start()
                    inner = pool.submit(_execute_pickled, store_root, payload, setup)

            def done(f: cf.Future) -> None:
                exc = f.exception()
                if isinstance(exc, cf.process.BrokenProcessPool) and left > 0:
                    # a worker died (killed, out of memory): rebuild the pool and ask again; the store's lock
                    # died with the worker, and a run it had finished is found stored
                    with self._lock:
                        self._retire(pool)
                    attempt(left - 1)
                elif exc is not None:
                    outer.set_exception(exc)
                else:
                    outer.set_result(f.result())

            inner.add_done_callback(done)

        attempt(self.retries)
        return outer

    def _retire(self, broken: cf.ProcessPoolExecutor) -> None:
        """Drop the pool that broke (call with the lock held); a newer pool another run already started stays."""
        if self._pool is broken:
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _take_slot(slots) -> None:
    """Pool initializer: this worker's GPU (an entry of the caller's visible list) before torch sees CUDA, and a
    watch on its controller: a worker whose controller died (kill -9, a closed terminal) exits within a second
    instead of training on for nobody."""
    gpu = slots.get()
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True, name="claimbench-orphan").start()


def _exit_with_parent(parent: int, every: float = 0.5) -> None:
    while True:
        time.sleep(every)
        if os.getppid() != parent:  # reparented: the controller is gone
            os._exit(3)


class RunJob:
    """One run as a submitit job; requeued on preemption or timeout, resuming from the store."""

    def __call__(self, store_root: str, payload: bytes, setup: WorkerSetup) -> dict:
        return _execute_pickled(store_root, payload, setup)

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)  # finished runs are found stored


@dataclass
class Submitit:
    folder: Path
    cluster: str | None = None  # None: SLURM where sbatch exists, else local; "local"; "slurm"
    partition: str | None = None
    gpus_per_node: int = 0
    timeout_min: int = 240
    cpus_per_task: int | None = None
    name: str = "submitit"
    _executor: Any = None

    def _start(self):
        if self._executor is None:
            import submitit

            ex = submitit.AutoExecutor(folder=str(self.folder), cluster=self.cluster)
            params: dict[str, Any] = {"timeout_min": self.timeout_min, "name": "claimbench"}
            if self.gpus_per_node:
                params["gpus_per_node"] = self.gpus_per_node
            if self.cpus_per_task:
                params["cpus_per_task"] = self.cpus_per_task
            if self.partition:
                params["slurm_partition"] = self.partition
            ex.update_parameters(**params)
            self._executor = ex
        return self._executor

    def submit(self, store_root: str, call: dict, setup: WorkerSetup):
        import cloudpickle

        return self._start().submit(RunJob(), store_root, cloudpickle.dumps(call), setup)

    def close(self) -> None:
        self._executor = None


def visible_gpus() -> list[str]:
    """The caller's own GPU list: the entries of CUDA_VISIBLE_DEVICES, else 0..count-1."""
    import torch

    if not torch.cuda.is_available():
        return []
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None and env.strip():
        return [g.strip() for g in env.split(",") if g.strip()][:torch.cuda.device_count()]
    return [str(i) for i in range(torch.cuda.device_count())]


def make_executor(kind: str | None, *, device_type: str, workers: int | None, cache_dir: Path,
                  cluster: str | None = None, partition: str | None = None, gpus_per_node: int | None = None,
                  timeout_min: int | None = None):
    """The executor named by ``--executor`` (or $CLAIMBENCH_EXECUTOR); a bad name is a UsageError."""
    kind = (kind or os.environ.get(EXECUTOR_ENV) or "inline").strip().lower()
    if kind not in EXECUTORS:
        raise UsageError(f"unknown executor {kind!r}; valid executors: {', '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers {workers}: give at least 1")
    if kind == "inline":
        return Inline()
    if kind == "local":
        gpus = visible_gpus() if device_type == "cuda" else []
        return Local(workers=workers or 2, gpus=gpus[:workers] if workers else gpus)
    if importlib.util.find_spec("submitit") is None:
        raise UsageError("--executor submitit needs the submitit package: pip install submitit "
                         "(or pip install 'claimbench[cluster]')")
    if cluster not in (None, "local", "slurm", "debug"):
        raise UsageError(f"unknown cluster {cluster!r}; valid: slurm, local, debug (default: slurm where "
                         "sbatch exists, else local)")
    return Submitit(folder=cache_dir / "submitit", cluster=cluster, partition=partition,
                    gpus_per_node=gpus_per_node if gpus_per_node is not None else (1 if device_type == "cuda" else 0),
                    timeout_min=timeout_min or 240)
