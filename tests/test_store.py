"""The result store: atomic appends, corruption reporting, a writer killed mid-run, resume."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.store import Store, StoreCorruptError, StoreWarning, config_hash

ROOT = Path(__file__).resolve().parent.parent


def _run(store, seed, calls, fresh=False, config=None):
    def fn():
        calls.append(seed)
        return {"final": {"acc": 0.5 + seed / 100}, "wall_s": 0.01}

    return store.run(experiment="ltfn7_optimizer_2d_comparison", profile="cpu", arm="a",
                     config=config or {"lr": 0.1}, seed=seed, device="cpu", device_name="CPU",
                     fn=fn, fresh=fresh)


def test_append_and_read_back_with_provenance(tmp_path):
    store = Store(tmp_path)
    rec = _run(store, 0, [])
    assert rec["resumed"] is False and rec["status"] == "finished"
    (back,) = store.records()
    for key in ("experiment", "run_id", "metrics", "profile", "config", "config_hash", "seed", "final", "wall_s",
                "device_name", "versions", "git", "started_at", "finished_at"):
        assert key in back
    assert set(back["versions"]) >= {"python", "torch", "torchvision", "numpy"}
    assert "dirty" in back["git"]


def test_resume_reuses_finished_runs_unless_fresh(tmp_path):
    store, calls = Store(tmp_path), []
    for s in (0, 1):
        _run(store, s, calls)
    again = _run(store, 1, calls)
    assert calls == [0, 1] and again["resumed"] is True and again["final"]["acc"] == 0.51
    _run(store, 1, calls, config={"lr": 0.2})  # a different config is a different run
    _run(store, 1, calls, fresh=True)
    assert calls == [0, 1, 1, 1]


def test_publishing_resumes_only_the_runs_of_its_own_clean_commit(tmp_path, monkeypatch):
    """A publication names its commit on every page, so it resumes only runs that the clean checkout of that
    commit trained: a run from older code, or from a tree with uncommitted changes, is trained again."""
    import harness.store as store_mod

    store, calls = Store(tmp_path), []

    def trained_at(commit, dirty=False, publishing=None):
        monkeypatch.setattr(store_mod, "provenance", lambda: {"versions": {}, "host": "vm",
                                                              "git": {"commit": commit, "dirty": dirty}})
        return store.run(experiment="e", profile="cpu", arm="a", config={}, seed=0, device="cpu",
                         device_name="CPU", fn=lambda: calls.append(commit) or {"wall_s": 0.01}, commit=publishing)

    trained_at("old")
    assert trained_at("old", publishing="old")["resumed"] and calls == ["old"]
    assert not trained_at("new", publishing="new")["resumed"] and calls == ["old", "new"]
    assert trained_at("new")["resumed"]  # a user's own session resumes whatever this environment trained
    store = Store(tmp_path / "wip")
    trained_at("wip", dirty=True)
    assert not trained_at("wip", publishing="wip")["resumed"] and calls == ["old", "new", "wip", "wip"]


def test_failed_run_is_not_stored(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(RuntimeError):
        store.run(experiment="x", profile="cpu", arm="a", config={}, seed=0, device="cpu", device_name="CPU",
                  fn=lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    assert store.records() == []


def test_config_hash_is_stable_and_order_free():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_corrupted_line_is_reported_with_file_and_line(tmp_path):
    store = Store(tmp_path)
    for s in range(3):
        _run(store, s, [])
    lines = store.path.read_text().splitlines()
    lines[1] = lines[1].replace('"acc":0.51', '"acc":0.99')  # still valid JSON, but altered
    store.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(StoreCorruptError, match=r"runs\.jsonl:2: checksum mismatch"):
        store.records()
    lines[1] = "{not json"
    store.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(StoreCorruptError, match=r"runs\.jsonl:2: not valid JSON"):
        store.records()


def test_torn_tail_is_ignored_then_quarantined(tmp_path):
    store = Store(tmp_path)
    _run(store, 0, [])
    with open(store.path, "ab") as f:
        f.write(b'{"kind": "run", "experiment": "half-writ')
    with pytest.warns(StoreWarning, match=r"runs\.jsonl:2: ignoring an interrupted"):
        assert len(store.records()) == 1
    with pytest.warns(StoreWarning) as caught:
        _run(store, 1, [])
    assert any("moved an interrupted" in str(w.message) for w in caught)
    assert len(store.records()) == 2
    assert b"half-writ" in (tmp_path / "runs.jsonl.torn").read_bytes()


WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from harness.store import Store
    store = Store(sys.argv[2])
    payload = "x" * 200_000  # big lines make a kill inside a write likely
    i = 0
    while True:
        store.append({"kind": "run", "experiment": "c", "profile": "cpu", "seed": i, "status": "finished",
                      "config_hash": "h", "blob": payload})
        i += 1
""")


def test_writer_killed_mid_run_leaves_no_partial_record(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(ROOT), str(tmp_path)])
    deadline = time.time() + 30
    store = Store(tmp_path)
    while time.time() < deadline and (not store.path.exists() or store.path.stat().st_size < 3_000_000):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreWarning)
        recs = store.records()
    assert len(recs) >= 10
    assert [r["seed"] for r in recs] == list(range(len(recs)))  # complete, in order, none half-used
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreWarning)
        store.append({"kind": "run", "experiment": "c", "seed": -1})  # resuming writes after a clean tail
        assert store.records()[-1]["seed"] == -1
    for line in store.path.read_bytes().splitlines():
        json.loads(line)


def test_interrupted_suite_resumes_where_it_stopped(tmp_path):
    """A 'suite' of 4 seeds killed after 2 finished runs: the rerun trains only the missing 2."""
    store, calls = Store(tmp_path), []
    for s in range(2):
        _run(store, s, calls)
    calls.clear()
    for s in range(4):
        _run(store, s, calls)
    assert calls == [2, 3]


def test_runs_of_another_environment_are_not_resumed(tmp_path, monkeypatch):
    """Resume keys on the environment fingerprint (machine id, device and threads, versions), never on the
    host name: a clone on another CPU, or the same machine with another torch, trains again."""
    from harness import device as device_mod
    from harness import store as store_mod

    store, calls = Store(tmp_path), []
    _run(store, 0, calls)
    _run(store, 0, calls)
    assert calls == [0]  # same environment: resumed
    real = device_mod.environment
    monkeypatch.setattr(store_mod, "environment", lambda name: {**real(name), "torch": "2.9.1"})
    _run(store, 0, calls)
    assert calls == [0, 0]  # another torch version: trained again
    monkeypatch.setattr(store_mod, "environment", lambda name: {**real(name), "install_id": "elsewhere"})
    monkeypatch.setattr(store_mod, "provenance", lambda: {"versions": {}, "git": {}, "host": "vm"})
    _run(store, 0, calls)
    assert calls == [0, 0, 0]  # another installation (same host name, same image's machine id): trained again
    assert len({r["env_hash"] for r in store.records()}) == 3


def test_frame_has_one_row_per_run_with_metrics_as_columns(tmp_path):
    store = Store(tmp_path)
    for seed in range(3):
        store.run(experiment="e", profile="cpu", arm="a", config={}, seed=seed, device="cpu", device_name="CPU",
                  fn=lambda seed=seed: {"metrics": {"acc": seed / 10, "cost": None}})
    df = store.frame("cpu")
    assert list(df["seed"]) == [0, 1, 2] and list(df["acc"]) == [0.0, 0.1, 0.2] and df["cost"].isna().all()
    assert df["run_id"].nunique() == 3


def test_records_are_strict_json(tmp_path):
    store = Store(tmp_path)
    store.append({"kind": "run", "experiment": "e", "metrics": {"cost": float("inf"), "x": float("nan")}})
    line = (tmp_path / "runs.jsonl").read_text()
    assert "Infinity" not in line and "NaN" not in line
    json.loads(line, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


def test_torn_tail_heals_even_when_warnings_are_errors(tmp_path):
    """The suite runs with filterwarnings = error: the store's self-repair must not become a failure."""
    import warnings

    store = Store(tmp_path)
    _run(store, 0, [])
    with open(store.path, "ab") as f:
        f.write(b'{"kind": "run", "experiment": "half-writ')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(store.records()) == 1
        _run(store, 1, [])
    assert len(store.records()) == 2 and b"half-writ" in (tmp_path / "runs.jsonl.torn").read_bytes()


def test_a_short_write_is_cut_back_and_the_store_stays_usable(tmp_path, monkeypatch):
    """A full disk mid-line (simulated: the write stores half the bytes) leaves no partial line behind."""
    from harness import store as store_mod

    store = Store(tmp_path)
    _run(store, 0, [])
    before = store.path.read_bytes()
    real_write = os.write

    def half(fd, data):
        return real_write(fd, data[: len(data) // 2])

    monkeypatch.setattr(store_mod.os, "write", half)
    with pytest.raises(OSError, match="could not write a record to .*runs.jsonl.*nothing was changed"):
        _run(store, 1, [])
    monkeypatch.setattr(store_mod.os, "write", real_write)
    assert store.path.read_bytes() == before  # the half line was cut back
    _run(store, 1, [])  # space freed: the same store takes the run
    assert [r["seed"] for r in store.records()] == [0, 1]


def test_fresh_trains_each_run_once_per_session(tmp_path):
    """--fresh ignores what the store held before the session, yet two claims sharing a run within the
    session get the one training."""
    store, calls = Store(tmp_path), []
    _run(store, 0, calls)  # an earlier session
    session: dict = {}

    def fresh_run():
        return store.run(experiment="ltfn7_optimizer_2d_comparison", profile="cpu", arm="a", config={"lr": 0.1},
                         seed=0, device="cpu", device_name="CPU", fn=lambda: calls.append(0) or {}, fresh=True,
                         session=session)

    first, second = fresh_run(), fresh_run()
    assert calls == [0, 0] and first["run_id"] == second["run_id"] and second["resumed"]


CONCURRENT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from harness.store import Store
    store = Store(sys.argv[2])

    def fn():
        with open(sys.argv[3], "a") as f:
            f.write("trained\\n")
        time.sleep(1.0)
        return {"metrics": {"v": 1.0}}

    rec = store.run(experiment="e", profile="cpu", arm="a", config={}, seed=0, device="cpu", device_name="CPU", fn=fn)
    print(rec["run_id"])
""")


def test_two_processes_asking_for_one_run_train_it_once(tmp_path):
    """Exactly once across processes sharing a store (pytest-xdist workers, two terminals): the second waits
    for the first and then resumes its stored run."""
    marker = tmp_path / "trained.txt"
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(ROOT), str(tmp_path / "store"), str(marker)],
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    ids = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert marker.read_text().count("trained") == 1 and len(ids) == 1
    assert len([r for r in Store(tmp_path / "store").records() if r["kind"] == "run"]) == 1


def test_a_damaged_line_in_the_middle_is_moved_aside_and_the_rest_kept(tmp_path):
    store = Store(tmp_path)
    for seed in range(3):
        store.append({"kind": "run", "run_id": f"r{seed}", "seed": seed})
    lines = store.path.read_text().splitlines()
    store.path.write_text("\n".join([lines[0], "#### garbage from another program ####", lines[1], lines[2]]) + "\n")
    with pytest.raises(StoreCorruptError, match=":2: not valid JSON"):
        store.records()
    assert store.quarantine_damaged() == [2]
    assert [r["run_id"] for r in store.records()] == ["r0", "r1", "r2"]
    damaged = (tmp_path / "runs.jsonl.damaged").read_text()
    assert "garbage from another program" in damaged and "runs.jsonl:2" in damaged
    assert store.quarantine_damaged() == [] and not (tmp_path / "runs.jsonl.before-repair").exists()
    # an altered record still parses: that is tampering, not damage, and reading it stays an error
    forged = json.loads(lines[1])
    forged["seed"] = 99
    store.path.write_text("\n".join([lines[0], json.dumps(forged), lines[2]]) + "\n")
    assert store.quarantine_damaged() == []
    with pytest.raises(StoreCorruptError, match="checksum mismatch"):
        store.records()
