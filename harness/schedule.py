"""With pytest-xdist (``-n N``): the claims handed to the workers costliest first, claims that share runs together.

xdist's default (``--dist load``) sends each worker a block of consecutive tests at the start and the rest as
workers free up, so what a worker gets follows the order of the test files, not what the tests cost: on the
cpu profile with ``-n 2`` one worker finished about 17 minutes before the other. And two claims that decide on
the same runs (the transfer claims all use the paintings and kittencat runs) could run on two workers at once,
one of them waiting on the store's lock of each run the other trains.

``CostliestFirst`` is xdist's ``loadscope`` scheduler with claimbench's units: the claims that share a run form
one unit, run on one worker, and a worker that needs work takes the costliest unit left (longest processing
time first). A unit's tests run the one that uses the most training first, so the rest reuse its runs: a worker
must know its next test before it starts its current one, and this way it commits to its next unit when the
current one is nearly done. Costs are the training times of the runs that the current verdicts of the
session's profile were decided on in the published store. Where that store holds no verdict of the profile
(smoke, a profile never published), the plugin leaves the scheduling to xdist. Measured on 2 CPU cores (the
guide's *Measured cost of the publications*): balanced workers, but little time saved, since a run trains
faster while the other core idles; the order matters most where it does not (a GPU per worker).

The order only decides which worker trains a run and when; each run's seed, configuration and thread count
(cores / workers) are what they would be in any other order.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from harness.decide import latest_decided, run_index
from harness.store import same_run

UNIT_PREFIX = "claimbench-unit::"  # a unit's name; never a test's node id


def case_id(nodeid: str) -> str:
    """The parameter id of a test's node id, which for a claim test is ``str(case)`` (the benchmarks parametrise
    with ``ids=str``): ``benchmarks/test_init.py::test_init_claims[ltfn6_he_xavier_init_better-mnist]`` gives
    ``ltfn6_he_xavier_init_better-mnist``; a test without parameters gives ``""``."""
    name = nodeid.rsplit("::", 1)[-1]
    return name[name.index("[") + 1:-1] if name.endswith("]") and "[" in name else ""


@dataclass
class Plan:
    keys: dict[str, set[tuple]]  # case id -> the keys of the runs its current verdict was decided on
    seconds: dict[tuple, float]  # run key -> seconds of training
    unit_of: dict[str, str]  # case id -> unit
    unit_s: dict[str, float] = field(init=False)  # unit -> seconds of training, each run once
    test_s: dict[str, float] = field(init=False)  # case id -> seconds of training of all the runs it decides on

    def __post_init__(self) -> None:
        unit_keys: dict[str, set[tuple]] = {}
        for c, keys in self.keys.items():
            unit_keys.setdefault(self.unit_of[c], set()).update(keys)
        self.unit_s = {u: self._s(keys) for u, keys in unit_keys.items()}
        self.test_s = {c: self._s(keys) for c, keys in self.keys.items()}

    def _s(self, keys) -> float:
        return sum(self.seconds[k] for k in keys)

    def left_s(self, selected: Iterable[str], done: Iterable[str], elapsed_s: float) -> float | None:
        """Seconds left at the pace so far: ``elapsed_s`` times the training the ``selected`` claims still need
        over what the ``done`` ones held (each run once, in the published runs' seconds); None until a done
        claim held any."""
        def runs(cases):
            return set().union(*(self.keys.get(c, set()) for c in cases))
        wanted, held = runs(selected), runs(done)
        held_s = self._s(held & wanted)
        return elapsed_s * self._s(wanted - held) / held_s if held_s else None


def plan(records: Iterable[dict], profile: str) -> Plan:
    """From a store's records. Claims whose current verdicts of ``profile`` decide on the same run (by
    ``same_run``: a fresh store trains it once, whatever the environments of the published runs) are one unit."""
    records = list(records)
    runs = run_index(records)
    seconds: dict[tuple, float] = {}
    decided: dict[str, set[tuple]] = {}
    for (cid, var), v in latest_decided(records, profile).items():
        keys = decided.setdefault(f"{cid}-{var}" if var else cid, set())
        for run in (runs[i] for ids in (v.get("arms") or {}).values() for i in ids if i in runs):
            key = same_run(run)
            keys.add(key)
            seconds[key] = float(run.get("wall_s") or 0.0)
    parent = {c: c for c in decided}

    def root(c: str) -> str:
        while parent[c] != c:
            c = parent[c]
        return c

    first_user: dict[tuple, str] = {}
    for c in sorted(decided):
        for key in decided[c]:
            parent[root(c)] = root(first_user.setdefault(key, c))
    return Plan(decided, seconds, {c: UNIT_PREFIX + root(c) for c in decided})


def make_scheduler(config, log, p: Plan):
    """An xdist scheduler handing out ``p``'s units costliest first (tests it does not know are units of their
    own, costing nothing, so they come last)."""
    from xdist.scheduler import LoadScopeScheduling

    class CostliestFirst(LoadScopeScheduling):
        def left_s(self, done: Iterable[str], elapsed_s: float) -> float | None:
            """The session's time left (:meth:`Plan.left_s`) over the tests the workers collected."""
            return p.left_s([case_id(nodeid) for nodeid in self.collection or ()], done, elapsed_s)

        def _split_scope(self, nodeid: str) -> str:
            return p.unit_of.get(case_id(nodeid), nodeid)

        def _assign_work_unit(self, node) -> None:
            unit = max(self.workqueue, key=lambda u: p.unit_s.get(u, 0.0))  # the first of equals
            tests = self.workqueue.pop(unit)
            self.workqueue[unit] = dict(sorted(tests.items(), key=lambda t: -p.test_s.get(case_id(t[0]), 0.0)))
            self.workqueue.move_to_end(unit, last=False)
            super()._assign_work_unit(node)

    return CostliestFirst(config, log)
