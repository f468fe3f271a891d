"""Runs executed elsewhere: the local process pool and submitit give what inline execution gives."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.executors import Local, Submitit, WorkerSetup, make_executor
from harness.profiles import UsageError

ROOT = Path(__file__).resolve().parent.parent
SETUP = WorkerSetup(precision="fp32", deterministic=False, device_type="cpu", threads=1)


def _call(fn, seed=0, arm="a"):
    return dict(experiment="e", profile="cpu", arm=arm, config={"k": 1}, seed=seed, device="cpu",
                device_name="CPU", fn=fn)


def _runs(store_dir: Path) -> dict:
    out = {}
    for line in (store_dir / "runs.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["kind"] == "run":
            out[(r["experiment"], r["arm"], r["seed"], r["config_hash"])] = r
    return out


def test_usage_errors_name_the_valid_choices(tmp_path):
    with pytest.raises(UsageError, match="valid executors: inline, local, submitit"):
        make_executor("slurm", device_type="cpu", workers=None, cache_dir=tmp_path)
    with pytest.raises(UsageError, match="--workers 0"):
        make_executor("local", device_type="cpu", workers=0, cache_dir=tmp_path)
    with pytest.raises(UsageError, match="unknown cluster 'pbs'"):
        make_executor("submitit", device_type="cpu", workers=None, cache_dir=tmp_path, cluster="pbs")
    assert make_executor(None, device_type="cpu", workers=None, cache_dir=tmp_path).name == "inline"
    local = make_executor("local", device_type="cpu", workers=3, cache_dir=tmp_path)
    assert local.name == "local" and local.workers == 3 and local.gpus == []


def test_local_pool_stores_each_run_once_and_retries_a_killed_worker(tmp_path):
    """A worker that dies mid-run (here: the first attempt of seed 1 kills its process) takes the pool down;
    the pool is rebuilt, the run trained again and stored once; nothing else is lost or duplicated."""
    marker = tmp_path / "killed-once"

    def train(seed):
        def fn():
            if seed == 1 and not marker.exists():
                marker.write_text("x")
                os._exit(9)  # as if killed (out of memory, preempted)
            return {"metrics": {"v": float(seed)}, "pid": os.getpid()}
        return fn

    ex = Local(workers=2)
    try:
        futures = [ex.submit(str(tmp_path / "store"), _call(train(s), seed=s), SETUP) for s in range(3)]
        recs = [f.result(timeout=120) for f in futures]
    finally:
        ex.close()
    assert marker.exists() and [r["metrics"]["v"] for r in recs] == [0.0, 1.0, 2.0]
    assert all(r["pid"] != os.getpid() for r in recs) and all(r["env"]["threads"] == 1 for r in recs)
    stored = _runs(tmp_path / "store")
    assert len(stored) == 3 and sorted(r["seed"] for r in stored.values()) == [0, 1, 2]
    # asked again (another session): found stored, trained by nobody
    ex = Local(workers=1)
    try:
        again = ex.submit(str(tmp_path / "store"), _call(train(0)), SETUP).result(timeout=120)
    finally:
        ex.close()
    assert again["resumed"] and again["run_id"] == recs[0]["run_id"]


def test_submitit_local_executor_runs_and_stores(tmp_path):
    pytest.importorskip("submitit")
    ex = Submitit(folder=tmp_path / "jobs", cluster="local", timeout_min=5)
    job = ex.submit(str(tmp_path / "store"), _call(lambda: {"metrics": {"v": 4.0}, "pid": os.getpid()}), SETUP)
    rec = job.result()
    assert rec["metrics"] == {"v": 4.0} and rec["pid"] != os.getpid() and not rec["resumed"]
    assert list(_runs(tmp_path / "store").values())[0]["run_id"] == rec["run_id"]
    assert list((tmp_path / "jobs").glob("*_log.out"))  # submitit's own job folder and logs


def _pytest(tmp_path: Path, *args, threads: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "CLAIMBENCH_DEVICE": "cpu", "CLAIMBENCH_OFFLINE": "1"}
    env.pop("CLAIMBENCH_PROFILE", None)
    env.pop("CLAIMBENCH_EXECUTOR", None)
    if threads:
        env["OMP_NUM_THREADS"] = threads
    data = os.environ.get("CLAIMBENCH_DATA_DIR") or str(ROOT.parent / "shared" / "datasets")
    return subprocess.run([sys.executable, "-m", "pytest", "benchmarks/test_vgg_mnist.py", "--profile", "smoke",
                           "--precision", "fp32", "--data-dir", data, "--report-dir", str(tmp_path / "rep"),
                           "--cache-dir", str(tmp_path / "cache"), "--benchmark-disable", "-p", "no:cacheprovider",
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.data
def test_local_executor_gives_what_inline_gives(tmp_path):
    """A real claim (the MNIST VGG comparison at the smoke profile) inline on one thread and with 2 local
    workers of one thread each: the same runs, bit for bit, and the same verdict text."""
    inline = _pytest(tmp_path / "inline", threads="1")
    if "not run (data)" in inline.stdout:
        pytest.skip("MNIST is not available here")
    local = _pytest(tmp_path / "local", "--executor", "local", "--workers", "2")
    assert inline.returncode == 0 and local.returncode == 0, local.stdout[-3000:] + local.stderr[-3000:]
    a, b = _runs(tmp_path / "inline" / "rep" / "store"), _runs(tmp_path / "local" / "rep" / "store")
    assert set(a) == set(b) and len(a) >= 2
    for k in a:
        assert a[k]["metrics"] == b[k]["metrics"], k
        assert a[k]["env_hash"] == b[k]["env_hash"]  # same machine, threads, precision, versions

    def ours(d):
        return sorted((v["claim_id"], v["variant"], v["ours"]) for v in
                      (json.loads(x) for x in (d / "rep" / "store" / "runs.jsonl").read_text().splitlines())
                      if v["kind"] == "verdict")
    assert ours(tmp_path / "inline") == ours(tmp_path / "local")


def test_submitit_local_executor_runs_claims_end_to_end(tmp_path):
    """The demo claims of the plugin tests through pytest with each run a submitit job: the same outcomes and
    verdicts as inline, every run trained in a job's process."""
    pytest.importorskip("submitit")
    from test_plugin import _run

    r = _run(tmp_path, "--profile", "cpu", "--precision", "fp32", "--executor", "submitit", "--cluster", "local",
             "--cache-dir", str(tmp_path / "cache"))
    assert "1 failed, 1 passed, 1 skipped, 1 xfailed" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    runs = [x for x in _runs(tmp_path / "rep" / "store").values()]
    assert len(runs) == 6 and len(list((tmp_path / "cache" / "submitit").glob("*_result.pkl"))) == 6
    verdicts = {json.loads(x)["variant"]: json.loads(x)["verdict"]
                for x in (tmp_path / "rep" / "store" / "runs.jsonl").read_text().splitlines()
                if json.loads(x)["kind"] == "verdict" and json.loads(x).get("arms")}
    assert verdicts == {"holds": "reproduced", "fails": "not_reproduced", "undecided": "inconclusive"}


CONTROLLER = '''
import os, sys, time
from harness.executors import Local, WorkerSetup

def slow():
    with open(sys.argv[2], "w") as f:
        f.write(str(os.getpid()))
    time.sleep(120)
    return {"metrics": {}}

if __name__ == "__main__":  # spawned workers import this file again: only the controller submits
    ex = Local(workers=1)
    ex.submit(sys.argv[1], dict(experiment="e", profile="cpu", arm="a", config={}, seed=0, device="cpu",
                                device_name="CPU", fn=slow), WorkerSetup("fp32", False, "cpu", 1))
    time.sleep(300)
'''


def _alive(pid: int) -> bool:
    """Running (a zombie that nobody has reaped yet has exited: it trains nothing)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    except OSError:
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False


def test_workers_die_with_a_killed_controller(tmp_path):
    """kill -9 of the controller (no chance to shut its pool down): no worker trains on for nobody."""
    import signal
    import time

    pid_file = tmp_path / "worker.pid"
    (tmp_path / "controller.py").write_text(CONTROLLER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ctl = subprocess.Popen([sys.executable, str(tmp_path / "controller.py"), str(tmp_path / "store"), str(pid_file)],
                           env=env, cwd=tmp_path)
    try:
        deadline = time.time() + 240
        while not (pid_file.exists() and pid_file.read_text()) and time.time() < deadline:
            if ctl.poll() is not None:
                raise AssertionError(f"the controller exited ({ctl.returncode}) before its worker started")
            time.sleep(0.2)
        if not (pid_file.exists() and pid_file.read_text()):
            pytest.skip("the pool's worker did not start within 240 s on this loaded machine; nothing to kill")
        worker = int(pid_file.read_text())
        os.kill(ctl.pid, signal.SIGKILL)
        ctl.wait(10)
        deadline = time.time() + 10
        while time.time() < deadline:
            if not _alive(worker):
                break
            time.sleep(0.2)
        else:
            os.kill(worker, signal.SIGKILL)
            raise AssertionError("the worker outlived its killed controller by 10 s")
    finally:
        if ctl.poll() is None:
            ctl.kill()
        ctl.wait(30)
