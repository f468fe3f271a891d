"""pytest-benchmark: the same set of runs inline and through ``--executor local`` with 2 workers, and what the
executor adds per run.

Not a claim: a speed check of the scale-out machinery. The set is 4 short ConvNet trainings (quarter width,
Adam, 60 steps of batch 100 on a fixed random batch bank) — the shape of a cpu-profile run, shortened. On this
2-core machine inline and local should be near parity (2 workers of 1 thread vs 1 process of 2 threads; the
point is that nothing serialises); the per-run overhead (a run that does no work, through the pool) must stay
under 2% of one of these runs.

    pytest benchmarks/test_executor_overhead.py --benchmark-only --benchmark-group-by=group
"""
from __future__ import annotations

import tempfile
import time

import pytest

from harness.executors import Local, WorkerSetup
from harness.store import Store

RUNS, STEPS = 4, 60
SETUP = WorkerSetup(precision="fp32", deterministic=False, device_type="cpu", threads=1)


def _train(seed: int):
    def fn():
        import torch
        import torch.nn.functional as F

        from fixtures.models import make_convnet4

        g = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        x = torch.rand(1000, 1, 28, 28, generator=g)
        y = torch.randint(0, 10, (1000,), generator=g)
        model = make_convnet4(width=0.25)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        t0 = time.perf_counter()
        for k in range(STEPS):
            i = (k * 100) % 900
            loss = F.cross_entropy(model(x[i:i + 100]), y[i:i + 100])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return {"metrics": {"loss": float(loss.detach())}, "wall_s": time.perf_counter() - t0}
    return fn


def _call(seed: int, fn) -> dict:
    return dict(experiment="overhead", profile="cpu", arm="a", config={}, seed=seed, device="cpu",
                device_name="CPU", fn=fn)


def _inline():
    root = tempfile.mkdtemp(prefix="claimbench-exec-")
    return [Store(root).run(**_call(s, _train(s))) for s in range(RUNS)]


_POOL: dict = {}


def _local():
    root = tempfile.mkdtemp(prefix="claimbench-exec-")
    ex = _POOL.setdefault("pool", Local(workers=2))
    return [f.result() for f in [ex.submit(root, _call(s, _train(s)), SETUP) for s in range(RUNS)]]


@pytest.fixture(scope="module", autouse=True)
def _close_pool():
    yield
    if "pool" in _POOL:
        _POOL.pop("pool").close()


@pytest.mark.benchmark(group="runs_inline_vs_local")
@pytest.mark.parametrize("how", [_inline, _local], ids=["inline", "local_2_workers"])
def test_same_runs_inline_and_local(benchmark, how):
    if how is _local:  # start the pool's workers outside the timing (a session starts them once)
        ex = _POOL.setdefault("pool", Local(workers=2))
        [f.result() for f in [ex.submit(tempfile.mkdtemp(), _call(99 + i, lambda: {}), SETUP) for i in range(2)]]
    recs = benchmark.pedantic(how, rounds=1, iterations=1, warmup_rounds=0)
    assert len(recs) == RUNS and all(r["metrics"]["loss"] == r["metrics"]["loss"] for r in recs)


def test_executor_overhead_per_run_under_2_percent(benchmark):
    """The pool's cost per run (submit, pickle, worker's store lookup and append, result back) for a run that
    does no work, against the time of one of the runs above, trained inline here."""
    run_s = Store(tempfile.mkdtemp()).run(**_call(0, _train(0)))["wall_s"]
    ex = _POOL.setdefault("pool", Local(workers=2))
    root = tempfile.mkdtemp(prefix="claimbench-exec-")
    counter = iter(range(10_000))

    def empty_runs():
        return [f.result() for f in [ex.submit(root, _call(next(counter), lambda: {"wall_s": 0.0}), SETUP)
                                     for _ in range(8)]]
    empty_runs()  # workers started
    benchmark.pedantic(empty_runs, rounds=3, iterations=1)
    per_run = benchmark.stats.stats.mean / 8 if benchmark.stats else None
    if per_run is None:  # --benchmark-disable: time it once here
        t0 = time.perf_counter()
        empty_runs()
        per_run = (time.perf_counter() - t0) / 8
    benchmark.extra_info.update(run_s=run_s, overhead_per_run_s=per_run, share=per_run / run_s)
    assert per_run < 0.02 * run_s, f"executor overhead {per_run * 1e3:.1f} ms per run vs a {run_s:.2f} s run"
