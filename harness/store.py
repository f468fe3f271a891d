"""The result store: append-only JSON lines, one record per run or verdict, with provenance.

Layout: ``<store dir>/runs.jsonl``. Each line is one JSON object carrying ``_sha`` (sha256 of the rest of
the object, canonically encoded), so a line that was edited or damaged is detected even when it still
parses. Two kinds of record:

* ``kind == "run"``: one training/measurement run of one claim arm with one seed (its config hash,
  per-epoch metrics, final metrics, wall seconds, device and versions).
* ``kind == "verdict"``: a claim's decision for one profile (posts' value, ours with CI, checks, tables and
  figure data). The report is built from these alone.

Writes are atomic at the line level: a line is written with one ``write`` call under an exclusive lock,
then fsync'd. If a writer was killed mid-line, the torn tail (no trailing newline) is moved to
``runs.jsonl.torn`` on the next write and ignored (with a warning naming file and line) on read, so a
half-written record is never used and nothing is silently lost. A damaged line in the middle of the file
stops reading with an error that names the file and the line.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import os
import socket
import math
import subprocess
import time
import uuid
import warnings
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from harness.device import environment, environment_hash, versions

if TYPE_CHECKING:
    import pandas as pd

STORE_FILE = "runs.jsonl"
SCHEMA = 2  # 2: runs carry run_id and metrics; verdicts carry their rule, its hash and the run ids


class StoreCorruptError(RuntimeError):
    """A line of the store cannot be trusted; the message names the file and the line number."""


class StoreWarning(UserWarning):
    pass


def notice(message: str) -> None:
    """A StoreWarning that is always shown and never raised, whatever the warning filters (a test suite's
    ``filterwarnings = error`` must not turn the store's self-repair into a failure)."""
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn(message, StoreWarning, stacklevel=3)


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True, default=_default)


def strict(obj: Any) -> Any:
    """The record as strict JSON values: NaN and infinities become null (strict readers reject them)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    if hasattr(obj, "as_dict"):
        return strict(obj.as_dict())
    if hasattr(obj, "tolist"):
        return strict(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _default(o: Any) -> Any:
    if hasattr(o, "as_dict"):
        return o.as_dict()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot store {type(o).__name__} in a record")


def config_hash(config: dict) -> str:
    """Stable hash of a run's configuration (claim, profile, arm, budget, device type; not the seed)."""
    return hashlib.sha256(canonical(config).encode()).hexdigest()[:16]


def _line_sha(record: dict) -> str:
    body = {k: v for k, v in record.items() if k != "_sha"}
    return hashlib.sha256(canonical(body).encode()).hexdigest()


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@lru_cache(maxsize=1)
def git_info() -> dict[str, Any]:
    """Commit of the checkout the harness runs from and whether its code had uncommitted changes. The
    generated report (``reports/``: the store and its pages) does not count: the runs themselves write it, so
    a second session from a clean checkout would otherwise call itself dirty."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                 ":(exclude)reports"], cwd=root, capture_output=True, text=True, timeout=10,
                                check=True).stdout
        return {"commit": commit, "dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}


@lru_cache(maxsize=1)
def provenance() -> dict[str, Any]:
    # the host name is recorded for a reader, never used as an identity (containers and VMs share one)
    return {"versions": versions(), "git": git_info(), "host": socket.gethostname()}


def _clean_at(record: dict, commit: str) -> bool:
    """Whether a run was recorded by the clean checkout of ``commit``."""
    git = record.get("git") or {}
    return git.get("commit") == commit and git.get("dirty") is False


def _run_key(experiment: str, profile: str, arm: str, config: dict, device: str, device_name: str):
    """What a run is found by: (config hash, environment, environment hash)."""
    h = config_hash({"experiment": experiment, "profile": profile, "arm": arm, "config": config,
                     "device_type": device.split(":")[0]})
    env = environment(device_name)
    return h, env, environment_hash(env)


def same_run(record: dict) -> tuple:
    """A stored run's key apart from its environment: (profile, experiment, arm, config hash, seed). Two runs
    with one key are the same run trained in two environments."""
    return (record.get("profile"), record.get("experiment"), record.get("arm"), record.get("config_hash"),
            record.get("seed"))


class Store:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.path = self.root / STORE_FILE

    # writing
    def append(self, record: dict) -> dict:
        """Append one record atomically; returns the record as stored (with ``_sha``)."""
        rec = strict(dict(record))
        rec.setdefault("schema", SCHEMA)
        rec.setdefault("recorded_at", now_utc())
        rec["_sha"] = _line_sha(rec)
        line = (canonical(rec) + "\n").encode()
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._quarantine_torn_tail(fd)
            before = os.fstat(fd).st_size
            try:
                written = os.write(fd, line)
                if written != len(line):  # a short write to a regular file: disk full or similar
                    raise OSError(28, f"short write ({written} of {len(line)} bytes)")
                os.fsync(fd)
            except OSError as e:
                try:  # cut the partial line back, so the store stays usable once space is freed
                    os.ftruncate(fd, before)
                except OSError:
                    pass
                raise OSError(e.errno, f"could not write a record to {self.path}: {e.strerror or e}; nothing "
                                       "was changed (free space or fix permissions and re-run: finished runs "
                                       "are kept)") from None
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return rec

    def quarantine_damaged(self) -> list[int]:
        """Move every line that is not JSON (garbage from another program, a disk error) out of the middle of the
        store into ``runs.jsonl.damaged``, under the store's lock, and say which; returns their line numbers.
        Lines that parse but fail their checksum stay and stop reading: those were altered, not damaged."""
        if not self.path.exists():
            return []
        fd = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with open(self.path, "rb") as f:
                data = f.read()
            lines = data.split(b"\n")
            tail = lines.pop()  # a torn last line is the append path's to handle
            keep, bad = [], []
            for i, raw in enumerate(lines, start=1):
                try:
                    json.loads(raw) if raw.strip() else None
                    keep.append(raw)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    bad.append((i, raw))
            if not bad:
                return []
            with open(self.path.with_name(STORE_FILE + ".damaged"), "ab") as out:
                for i, raw in bad:
                    out.write(f"# {self.path}:{i}\n".encode() + raw + b"\n")
            backup = self.path.with_name(STORE_FILE + ".before-repair")  # kept until the rewrite is on disk
            with open(backup, "wb") as b:
                b.write(data)
                b.flush()
                os.fsync(b.fileno())
            body = b"".join(x + b"\n" for x in keep) + tail
            os.ftruncate(fd, 0)  # rewritten in place, under the lock every writer takes on this file
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, body)
            os.fsync(fd)
            backup.unlink()
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        nums = [i for i, _ in bad]
        where = ", ".join(map(str, nums[:10]))
        notice(f"{self.path}: moved {len(nums)} damaged line(s) (not JSON; line(s) {where}) to "
               f"{STORE_FILE}.damaged; every other record is kept")
        return nums

    def _quarantine_torn_tail(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        if size == 0:
            return
        os.lseek(fd, size - 1, os.SEEK_SET)
        if os.read(fd, 1) == b"\n":
            return
        # find the start of the torn line and move it aside before appending after it
        with open(self.path, "rb") as f:
            data = f.read()
        start = data.rfind(b"\n") + 1
        with open(self.path.with_name(STORE_FILE + ".torn"), "ab") as torn:
            torn.write(data[start:] + b"\n")
        os.ftruncate(fd, start)
        notice(f"{self.path}: moved an interrupted, half-written last line to {STORE_FILE}.torn")

    # reading
    def records(self) -> list[dict]:
        return list(self.iter_records())

    def iter_records(self) -> Iterator[dict]:
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            data = f.read()
        lines = data.split(b"\n")
        torn = lines.pop()  # b"" when the file ends with a newline
        for lineno, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise StoreCorruptError(f"{self.path}:{lineno}: not valid JSON ({e.msg if hasattr(e, 'msg') else e}); "
                                        "fix or remove that line, nothing was read past it") from None
            if not isinstance(rec, dict) or rec.get("_sha") != _line_sha(rec):
                raise StoreCorruptError(f"{self.path}:{lineno}: checksum mismatch, the record was altered "
                                        "or damaged; fix or remove that line")
            yield rec
        if torn.strip():
            notice(f"{self.path}:{len(lines) + 1}: ignoring an interrupted, half-written last line (it is "
                   "moved to runs.jsonl.torn on the next write)")

    def runs(self, experiment: str | None = None, profile: str | None = None) -> list[dict]:
        return [r for r in self.iter_records() if r.get("kind") == "run"
                and (experiment is None or r["experiment"] == experiment)
                and (profile is None or r["profile"] == profile)]

    def find_run(self, experiment: str, profile: str, cfg_hash: str, seed: int,
                 env_hash: str | None = None, commit: str | None = None) -> dict | None:
        """The latest finished run with this key (and, when given, produced in this environment, by the clean
        checkout of this commit)."""
        found = None
        for r in self.runs(experiment, profile):
            if (r.get("config_hash") == cfg_hash and r.get("seed") == seed and r.get("status") == "finished"
                    and (env_hash is None or r.get("env_hash") == env_hash)
                    and (commit is None or _clean_at(r, commit))):
                found = r
        return found

    def latest_verdicts(self) -> dict[tuple[str, str, str], dict]:
        """The newest verdict per (claim id, variant, profile)."""
        out: dict[tuple[str, str, str], dict] = {}
        for r in self.iter_records():
            if r.get("kind") == "verdict":
                out[(r["claim_id"], r.get("variant", ""), r["profile"])] = r
        return out

    # resume
    def frame(self, profile: str | None = None) -> "pd.DataFrame":
        """The store's analysis table: one row per run (experiment, arm, seed, run_id, config hash, profile,
        device, code commit) with every metric as a column; what the deciders and the report read."""
        import pandas as pd

        rows = [{"run_id": r.get("run_id"), "experiment": r.get("experiment"), "arm": r.get("arm"),
                 "seed": r.get("seed"), "profile": r.get("profile"), "config_hash": r.get("config_hash"),
                 "device_name": r.get("device_name"), "commit": (r.get("git") or {}).get("commit"),
                 "dirty": (r.get("git") or {}).get("dirty"), "wall_s": r.get("wall_s"),
                 **{k: (float("nan") if v is None else v) for k, v in (r.get("metrics") or {}).items()}}
                for r in self.runs(profile=profile)]
        return pd.DataFrame(rows)

    def is_finished(self, *, experiment: str, profile: str, arm: str, config: dict, seed: int, device: str,
                    device_name: str, fresh: bool = False, session: dict | None = None, commit: str | None = None,
                    **_) -> bool:
        """Whether :meth:`run` with these arguments would return a finished run without calling its function."""
        h, _, env_h = _run_key(experiment, profile, arm, config, device, device_name)
        if session is not None and (h, seed, env_h) in session:
            return True
        return not fresh and self.find_run(experiment, profile, h, seed, env_hash=env_h, commit=commit) is not None

    def run(self, *, experiment: str, profile: str, arm: str, config: dict, seed: int, device: str,
            device_name: str, fn: Callable[[], dict], fresh: bool = False,
            session: dict | None = None, role: str = "", commit: str | None = None) -> dict:
        """Return this environment's finished run for (claim, profile, arm config, seed), or run ``fn`` and store it.

        ``fn`` returns a dict of results (``history``, ``final``, ``wall_s``, ...). A run that raises is
        not stored, so the next invocation runs it again. With ``commit`` (publishing) only a run the clean
        checkout of that commit produced is resumed: the code a page names is the code that trained its runs.
        """
        h, env, env_h = _run_key(experiment, profile, arm, config, device, device_name)
        if session is not None and (h, seed, env_h) in session:  # trained once per session, --fresh or not
            return {**session[(h, seed, env_h)], "resumed": True}
        # One process trains a given run at a time: a second one that asks for it waits for the first and then
        # finds it stored (exactly once across processes sharing the store, e.g. pytest-xdist workers).
        with self._run_lock(f"{experiment}-{profile}-{h}-{seed}-{env_h}"):
            return self._run_locked(experiment, profile, arm, config, seed, device, device_name, fn, fresh,
                                    session, h, env, env_h, role, commit)

    @contextlib.contextmanager
    def _run_lock(self, key: str):
        lock_dir = self.root / "locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        path = lock_dir / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by the kernel if this process dies: a dead worker's run
            yield                           # is simply trained by the next one that asks for it
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _run_locked(self, experiment, profile, arm, config, seed, device, device_name, fn, fresh, session, h, env,
                    env_h, role="", commit=None) -> dict:
        if not fresh:  # resume only what this environment finished (machine, device, threads, versions)
            done = self.find_run(experiment, profile, h, seed, env_hash=env_h, commit=commit)
            if done is not None and done.get("run_id"):
                if session is not None:
                    session[(h, seed, env_h)] = done
                return {**done, "resumed": True}
        started = now_utc()
        t0 = time.perf_counter()
        result = dict(fn())
        if not result.get("wall_s"):  # a run that does not time itself is timed here, end to end
            result["wall_s"] = time.perf_counter() - t0
        result.setdefault("execution", {"mode": "run-by-run"})  # runners that stack seeds say so themselves
        rec = {
            "kind": "run", "run_id": uuid.uuid4().hex[:16], "status": "finished",
            "experiment": experiment, "profile": profile, "arm": arm,
            "seed": seed, "config": config, "config_hash": h, "device": device,
            "device_name": device_name, "started_at": started, "finished_at": now_utc(),
            "env": env, "env_hash": env_h, "metrics": {}, **provenance(), **result,
        }
        if role:
            rec["role"] = role  # e.g. "precision-control": shown beside a verdict, never deciding one
        stored = self.append(rec)
        if session is not None:
            session[(h, seed, env_h)] = stored
        return {**stored, "resumed": False}
