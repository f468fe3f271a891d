"""The claim API the benchmark modules use: ``ClaimBench`` (the session: profile, device, seeds, store,
executor, progress) and ``ClaimContext`` (one claim: its runs, their fp32 control, the decision by its
registered rule, the stored verdict record and the test outcome).

The pytest hooks that build a ``ClaimBench`` from the command line live in ``harness.plugin``; benchmarks
import this module only.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, NoReturn

import pytest
import torch

from harness.claims import Case
from harness import decide as D
from harness.device import (Precision, active_precision, environment, environment_hash, precision_override,
                            threads_per_worker)
from harness.executors import PendingRun, RemoteContext, WorkerSetup
from harness.profiles import Budget, NoNetwork, Scale, seeds_for
from harness.records import Figure, Ref, Table, as_stored
from harness.rulebook import decision
from harness.rules import NotDecided
from harness.store import Store, git_info, now_utc
from harness.summary import named_paths
from harness.verdict import LABELS, NOT_RUN, NOT_RUN_REASONS, VERDICTS
from harness.verdicts import outcome_label

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED = ROOT / "reports"  # the published report: written only with --publish
USER_RESULTS = ROOT / "results"  # a user's own runs and report (untracked)


@dataclass
class ClaimBench:
    """Session state shared by every claim test."""

    profile: Any
    seeds: tuple[int, ...] | None
    device: torch.device
    device_name: str
    data_dir: Path | None
    allow_download: bool
    report_dir: Path
    fresh: bool
    claims: tuple[str, ...] | None
    resume_commit: str | None = None  # --publish: resume only runs the clean checkout of this commit trained
    user_weights: bool = False
    device_chosen: bool = False  # --device / CLAIMBENCH_DEVICE named a device (not "auto")
    weights_file: Path | None = None
    folders: dict[str, Path] = field(default_factory=dict)
    cache_dir: Path = ROOT / ".cache"
    announce: Callable[[str], None] = print
    session_verdicts: list[dict] = field(default_factory=list)
    session_runs: dict = field(default_factory=dict)  # runs this session trained or resumed, each trained once
    controlled_families: set = field(default_factory=set)  # families with their fp32 control seed this session
    executor: Any = None  # harness.executors: None / Inline = runs train in this process
    vary: str = "all"  # --vary: the one source of randomness that follows the seed ("all": every source)
    stack: bool = False  # --stack: the seeds of an arm train together where the runner can stack them
    report_error: str = ""
    comparison: list = field(default_factory=list)  # the session's verdicts beside the published ones
    precision: Precision = Precision()  # the session's numerics (--precision, --deterministic), resolved once
    stored_elsewhere: bool = False  # pytest-xdist controller: a worker stored runs (the report is built here)
    planned: int = 0  # claim tests selected for this session
    started: float = field(default_factory=time.perf_counter)  # every claim id with a test, before -k / --claims
    trained_runs: int = 0
    resumed_runs: int = 0
    trained_s: float = 0.0
    training_claims: int = 0  # claims that trained at least one run (the pace of the ETA)
    idle_s: float = 0.0  # time spent on claims that trained nothing (left out of the pace)
    _trained_before: int = 0
    _claim_started: float = field(default_factory=time.perf_counter)
    current_test: str = ""  # node id of the test now running (its claim line replaces pytest's status letter)
    lined: set = field(default_factory=set)  # node ids whose outcome a claim line already showed
    # pytest-xdist: a worker has no terminal; its claim line travels to the controller with the test's report
    # (``relay``), and the controller counts the claims finished across workers (``relayed``; those that trained
    # in ``training_claims``, which the controller, training nothing itself, does not otherwise count)
    worker: str = ""  # this process's xdist worker id ("gw0"), "" outside a worker
    relay: dict | None = None
    relayed: list = field(default_factory=list)  # the claims (case ids) the workers finished, in that order
    scheduler: Any = None  # the controller's harness.schedule scheduler, whose costs give the time left
    worker_lines: Any = None  # the controller's harness.workerlines.Folder: what the workers would print

    def count_run(self, rec: dict, say: Callable[[str], None]) -> None:
        """A run this session asked for: trained here (with its seconds) or resumed from the store. On an xdist
        worker, which shows no bar, a trained run is also a line, said through ``say`` (its claim's announce)."""
        if rec.get("resumed"):
            self.resumed_runs += 1
            return
        wall_s = float(rec.get("wall_s") or 0.0)
        self.trained_runs += 1
        self.trained_s += wall_s
        if self.worker:  # the controller prints it while this worker goes on
            say(f"run {self.trained_runs} trained in {wall_s:.0f} s: {rec.get('experiment')} / {rec.get('arm')}, "
                f"seed {rec.get('seed')} ({self.trained_s / 60:.1f} min of runs on this worker)")

    def claim_done(self, rec: dict) -> None:
        """A line per claim: which claim of how many, its outcome, runs trained and resumed so far, and the time
        left at the pace of the claims that trained (instant ones, resumed or not run, do not make it look fast)."""
        trained_now = self.trained_runs - self._trained_before
        self._trained_before = self.trained_runs
        if trained_now:
            self.training_claims += 1
        if os.environ.get("CI") or not self.planned:
            return
        done = len(self.session_verdicts)
        elapsed = time.perf_counter() - self.started
        name = rec["claim_id"] + (f"-{rec['variant']}" if rec.get("variant") else "")
        outcome = outcome_label(rec) + (" (exploratory)" if rec.get("exploratory") else "")
        if self.worker:  # the controller prints it (``relayed_line``), numbered among every worker's claims
            self.relay = {"name": name, "outcome": outcome, "trained": trained_now, "worker": self.worker,
                          "planned": self.planned, "runs": self.trained_runs, "run_min": self.trained_s / 60,
                          "resumed": self.resumed_runs}
            return
        left = ""
        if self.training_claims:
            per = (elapsed - self.idle_s) / self.training_claims
            left = f", about {per * max(0, self.planned - done) / 60:.0f} min left at {per / 60:.1f} min per claim"
        self.announce(self._claim_line(done, name, outcome, "", self.trained_runs, self.trained_s / 60,
                                       self.resumed_runs, elapsed, left))
        self.lined.add(self.current_test)
        if not trained_now:
            self.idle_s += time.perf_counter() - self._claim_started
        self._claim_started = time.perf_counter()

    def relayed_line(self, relay: dict) -> str:
        """On the xdist controller: the claim line of a claim a worker finished (``relay``). The runs are that
        worker's; the count, the elapsed time and the time left are the session's: with claimbench's scheduler,
        the training left over the training done, in the published runs' seconds; otherwise at the pace of the
        claims that trained, finished by the workers side by side."""
        self.relayed.append(relay["name"])
        self.training_claims += bool(relay["trained"])
        self.planned = max(self.planned, int(relay.get("planned") or 0))  # the controller collects no test
        elapsed = time.perf_counter() - self.started
        left = ""
        by_cost = self.scheduler.left_s(self.relayed, elapsed) if self.scheduler is not None else None
        if by_cost is not None:  # the claims come costliest first: a count of claims would say hours
            left = f", about {by_cost / 60:.0f} min left"
        elif self.training_claims:
            per = elapsed / self.training_claims
            left = f", about {per * max(0, self.planned - len(self.relayed)) / 60:.0f} min left"
        return self._claim_line(len(self.relayed), relay["name"], relay["outcome"],
                                f"{relay['worker']} of {relay.get('workers', '?')} workers: ", relay["runs"],
                                relay["run_min"], relay["resumed"], elapsed, left)

    def _claim_line(self, done: int, name: str, outcome: str, who: str, runs: int, run_min: float, resumed: int,
                    elapsed: float, left: str) -> str:
        """The claim line of a serial run (``who`` empty) and of a worker's claim printed by the controller."""
        return (f"claimbench: [{done}/{self.planned}] {name}: {outcome} | {who}runs {runs} trained "
                f"({run_min:.1f} min), {resumed} resumed | {elapsed / 60:.1f} min elapsed{left}")

    @property
    def store(self) -> Store:
        return Store(self.report_dir / "store")

    def start(self, case: Case) -> "ClaimContext":
        budget: Budget = case.budgets[self.profile.name]
        seeds = self.seeds if self.seeds is not None else D.confirmatory_seeds(case.claim_id, self.profile.name,
                                                                               budget.seeds)
        ctx = ClaimContext(self, case, budget, seeds_for(budget, seeds))
        if ctx.numerics != self.precision:
            ctx.announce(f"trains in {ctx.numerics.mode} ({ctx.numerics.note})")
        if budget.needs_cuda and self.device.type != "cuda":
            ctx.not_run("device", f"the {self.profile.name} profile of this claim needs CUDA; "
                                  f"running on {self.device_name}")
        if self.profile.name == "full" and self.device.type != "cuda" and not self.device_chosen:
            ctx.not_run("device", f"the full profile is the posts' scale, meant for a GPU, and none is visible "
                                  f"({self.device_name}); give --device cpu to run it on the CPU on purpose")
        return ctx


@dataclass
class ClaimContext:
    bench: ClaimBench
    case: Case
    budget: Budget
    seeds: tuple[int, ...]
    label: str = ""  # said beside the verdict, e.g. "user-supplied weights, not the posts'"
    _calls: dict = field(default_factory=dict)  # run id -> how it was asked for (to train its fp32 control)

    @property
    def claim(self):
        return self.case.claim

    @property
    def profile(self) -> str:
        return self.bench.profile.name

    @property
    def device(self) -> torch.device:
        return self.bench.device

    @property
    def vary(self) -> str:
        return self.bench.vary

    @property
    def numerics(self) -> Precision:
        """The precision this claim trains at: the session's, except that where ``--precision auto`` chose bf16 on
        a CPU and the claim's network is slower in bf16 there (``Scale.cpu_bf16``: EfficientNet-Lite0's
        depthwise convolutions), fp32 (the posts' numerics, and faster); and fp32 on every device for a claim
        that trains no network (``NoNetwork``). An explicit ``--precision bf16`` is kept; otherwise on CUDA bf16
        is kept."""
        p = getattr(self.bench, "precision", None)
        if p is None:  # a stand-in bench without a session (a test's): whatever precision is active
            return active_precision()
        settings = getattr(self.budget, "settings", None)
        if p.auto and p.on(self.device) == "bf16":
            if isinstance(settings, NoNetwork):
                return replace(p, mode="fp32", note="auto: fp32, no network trained")
            if self.device.type == "cpu" and isinstance(settings, Scale) and not settings.cpu_bf16():
                return replace(p, mode="fp32", note="auto: fp32 for this network, slower in bf16 on the CPU")
        return p

    def run(self, arm: str, seed: int, fn: Callable[[], dict], config: dict | None = None,
            experiment: str | None = None) -> dict:
        """One stored, resumable run of an arm with a seed; ``fn`` returns the result fields.

        By default a run belongs to this claim and its config covers the claim's budget and parameters.
        Runs that several claims of a family share (the same init trained the same way) name an
        ``experiment`` instead: then ``config`` alone must say everything that determines the run, and
        any claim asking for the same experiment, arm, config and seed reuses it.
        """
        call = self._call(arm, seed, fn, config, experiment)
        ex = self.bench.executor
        if ex is None or ex.name == "inline":
            with self.numerics.activate():
                out = self.bench.store.run(**call)
            self._calls[out["run_id"]] = call
            self._count(out)
            return out
        # another process or host trains it; reading the returned run's fields waits for it
        remote = {k: v for k, v in call.items() if k != "session"}
        remote["ctx"] = self  # pickled as a RemoteContext, the same object the run's function closes over
        threads = threads_per_worker(getattr(ex, "workers", 1)) if self.device.type == "cpu" else None
        numerics = self.numerics
        setup = WorkerSetup(numerics.on(self.device), numerics.deterministic, self.device.type, threads)

        def done(pending, rec):
            self._calls[rec["run_id"]] = call
            self._count(rec)

        return PendingRun(ex.submit(str(self.bench.store.root), remote, setup), call, done)

    def _count(self, rec: dict) -> None:
        """Tell the session about a run (the progress line); a stand-in bench without counters is left alone."""
        count = getattr(self.bench, "count_run", None)
        if count is not None:
            count(rec, self.announce)

    def stacking(self, n_seeds: int) -> bool:
        """Whether the seeds of an arm train together here: ``--stack`` (auto: on CUDA), more than one seed,
        runs in this process (another executor trains run by run) and no ``--vary`` session."""
        ex = self.bench.executor
        return (self.bench.stack and n_seeds > 1 and (ex is None or ex.name == "inline")
                and self.bench.vary == "all")

    def run_group(self, arm: str, seeds, train_many: Callable[[list[int]], dict[int, dict]],
                  train_one: Callable[[int], Callable[[], dict]], config: dict | None = None,
                  experiment: str | None = None) -> list[dict]:
        """The runs of one arm for ``seeds``, as :meth:`run` gives them one by one, but the seeds this
        environment has not finished are trained together by ``train_many(seeds) -> {seed: result}``. Each
        is stored as its own run (resume, locks and records as for :meth:`run`); ``train_one(seed)`` is the
        run-by-run function, kept for the run's fp32 control twin."""
        with self.numerics.activate():
            return self._run_group(arm, seeds, train_many, config, experiment, train_one)

    def _run_group(self, arm, seeds, train_many, config, experiment, train_one) -> list[dict]:
        store = self.bench.store
        calls = {seed: self._call(arm, seed, train_one(seed), config, experiment) for seed in seeds}
        todo = [seed for seed in seeds if not store.is_finished(**calls[seed])]
        results = {}
        if todo:
            try:
                results = train_many(todo)
            except torch.cuda.OutOfMemoryError:  # the stack does not fit: the same runs, one at a time
                self.announce(f"{arm}: {len(todo)} stacked seeds ran out of GPU memory; training them one by one")
                torch.cuda.empty_cache()
        out = []
        for seed in seeds:
            call = calls[seed]
            fn = (lambda r=results[seed]: r) if seed in results else call["fn"]
            rec = store.run(**{**call, "fn": fn})
            self._calls[rec["run_id"]] = call
            self._count(rec)
            out.append(rec)
        return out

    def _call(self, arm: str, seed: int, fn: Callable[[], dict], config: dict | None,
              experiment: str | None) -> dict:
        if experiment is None:
            cfg = {"budget": self.budget.as_config(), "params": self.case.param,
                   "variant": self.case.variant, **(config or {})}
        else:
            cfg = dict(config or {})
        return dict(experiment=experiment or self.case.claim_id, profile=self.profile, arm=arm,
                    config=cfg, seed=seed, device=str(self.device), device_name=self.bench.device_name, fn=fn,
                    fresh=self.bench.fresh, session=self.bench.session_runs, commit=self.bench.resume_commit)

    def __reduce__(self):
        """Pickled into a run's function for another process: a stand-in without pytest state."""
        bench = SimpleNamespace(cache_dir=self.bench.cache_dir, data_dir=self.bench.data_dir,
                                device_name=self.bench.device_name, profile=self.bench.profile)
        return (RemoteContext, (), {"case": self.case, "budget": self.budget, "seeds": self.seeds,
                                    "profile": self.profile, "device": self.device, "label": self.label,
                                    "bench": bench})

    def _precision_control(self, arms: dict[str, list[dict]]) -> dict | None:
        """Under bf16, the first claim a family decides in a session gets one fp32 control seed: its first
        arm's first run trained again at fp32 (stored with its own environment and role, never deciding)."""
        family = self.claim.family
        if self.numerics.on(self.device) != "bf16" or family in self.bench.controlled_families:
            return None
        for label, runs in arms.items():
            for r in runs:
                call = self._calls.get(r.get("run_id"))
                if call is None:
                    continue
                self.bench.controlled_families.add(family)
                with precision_override("fp32"):
                    twin = self.bench.store.run(**call, role="precision-control")
                return {"arm": label, "seed": r["seed"], "bf16_run": r["run_id"], "fp32_run": twin["run_id"]}
        return None

    def _env_hash(self) -> str:
        with self.numerics.activate():
            return environment_hash(environment(self.bench.device_name))

    def announce(self, message: str) -> None:
        """A line on the terminal now (not captured), e.g. the estimated cost before a long claim."""
        self.bench.announce(f"[{self.case}] {message}")

    def _deviation(self) -> str:
        """The budget's departure from the posts, plus what the device adds (bf16 autocast on CUDA)."""
        extra = ("trained under bf16 autocast with channels_last convolutions (the posts: fp32; one fp32 control "
                 "seed per family is shown on its page)" if self.numerics.on(self.device) == "bf16" else "")
        return "; ".join(x for x in (self.budget.deviation, extra) if x)

    def rule_refs(self, metric: str, scale: float = 1.0, unit: str = "") -> list[Ref]:
        """The levels this profile's registered rule holds ``metric`` to (at least / at most, also inside all-of),
        as threshold lines for a figure whose axis is ``scale`` times the metric (100 for percent)."""
        d = decision(self.case.claim_id, self.case.variant, self.profile)
        levels = [leaf for leaf in (d.rule.leaves() if d is not None else [])
                  if hasattr(leaf, "level") and getattr(leaf, "term", None) is not None and leaf.term.metric == metric]
        return [Ref(y=leaf.level * scale, label=f"rule: {leaf.op} {leaf.level * scale:g}{unit}", color="tab:red",
                    role="threshold") for leaf in levels]

    def require_decided(self) -> None:
        """Ends the claim as "not run (profile)", with the rulebook's reason, where this profile's registered
        rule does not decide it (``NotDecided``): its runs would decide nothing, so none are trained. The smoke
        profile has no rules and always runs the machinery."""
        d = decision(self.case.claim_id, self.case.variant, self.profile)
        if d is not None and isinstance(d.rule, NotDecided):
            self.not_run("profile", d.rule.reason)

    def not_run(self, reason_kind: str, detail: str, *, user_error: bool = False) -> NoReturn:
        """The claim cannot run here (data, weights, device, ...): recorded, and the test is skipped. With
        ``user_error`` (a damaged data file or folder, a weights file that is not a state dict) it is recorded
        the same way and the test fails with one line, so the session exits non-zero whatever the family."""
        if reason_kind not in NOT_RUN_REASONS:
            raise ValueError(f"a 'not run' verdict needs a reason among {NOT_RUN_REASONS}, not {reason_kind!r}")
        # stored and published: this machine's folders by role (the session's header names them), home as ~
        detail = named_paths(detail, {"<data-dir>": self.bench.data_dir, "<cache-dir>": self.bench.cache_dir})
        self._store_and_report({"verdict": NOT_RUN, "not_run_reason": reason_kind, "reason": detail,
                                "ours": "-", "checks": [], **({"user_error": True} if user_error else {})},
                               {}, [], [], [])
        raise AssertionError("unreachable")  # skipped above

    def decide(self, arms: dict[str, list[dict]], *, tables: list[Table] | None = None,
               figures: list[Figure] | None = None,
               notes: list[str] | None = None) -> None:
        """Hand over the runs by arm label; the harness applies the registered rule (``harness.rulebook``) at
        its own level to these runs alone, stores the verdict with the rule, its identity and the run ids, and
        turns it into the test outcome. On seeds other than the claim's confirmatory draw of its registered
        count the outcome is exploratory: stored and shown, never the claim's verdict. Tables, figures and
        notes are presentation."""
        key = (self.case.claim_id, self.case.variant)
        if self.vary != "all":  # sources-of-variance runs are stored and shown; they never decide the claim
            for runs in arms.values():
                for r in runs:
                    r.get("run_id")  # wait for every run (another executor may still be training it)
            pytest.skip(f"{self.case}: --vary {self.vary} runs stored ({sum(len(v) for v in arms.values())}); the "
                        "claim's page shows the spread of each source beside its verdict")
        control = self._precision_control(arms)
        derived = D.derive(*key, self.profile, D.frame(arms))
        fields = D.as_fields(derived)
        fields["rule"] = D.rule_for(*key, self.profile).rule.to_dict()
        # confirmatory: exactly the draw of the seed count registered for the claim (its budget), never seeds
        # given by hand, nor a longer prefix of the draw (more seeds after an open verdict is optional stopping),
        # and every deciding run on a seed of that draw (a run on another seed could have existed before the rule)
        wanted = D.confirmatory_seeds(self.case.claim_id, self.profile, self.budget.seeds)
        off_draw = {r.get("seed") for runs in arms.values() for r in runs} - set(wanted)
        fields["exploratory"] = self.bench.seeds is not None or tuple(self.seeds) != wanted or bool(off_draw)
        if fields["verdict"] == NOT_RUN:
            fields["not_run_reason"] = "profile"
        if control:
            fields["precision_control"] = control
        self._store_and_report(fields, {k: [r["run_id"] for r in v] for k, v in arms.items()},
                               [as_stored(t) for t in tables or []], [as_stored(f) for f in figures or []],
                               notes or [])

    def _store_and_report(self, fields: dict, arm_ids: dict, tables: list, figures: list, notes: list) -> None:
        claim = self.claim
        verdict = fields["verdict"]
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}; valid: {', '.join(VERDICTS)}")
        smoke_note = ""
        if not self.bench.profile.gives_verdicts and verdict != NOT_RUN:
            smoke_note = LABELS[verdict]
            fields = dict(fields, verdict=NOT_RUN, not_run_reason="profile",
                          reason=f"the {self.profile} profile checks the machinery only (its would-be outcome: "
                                 f"{smoke_note})")
            verdict = NOT_RUN
        git = git_info()
        rec = {
            "kind": "verdict", "claim_id": claim.id, "variant": self.case.variant,
            "primary": self.case.primary, "family": claim.family, "profile": self.profile,
            "not_run_reason": "", "reason": "", **fields, "arms": arm_ids, "label": self.label,
            "posts_value": claim.posts_value, "seeds": list(self.seeds), "device": str(self.device),
            "device_name": self.bench.device_name, "deviation": self._deviation(),
            "budget": self.budget.as_config(), "tables": tables, "figures": figures, "notes": notes,
            "env_hash": self._env_hash(),
            "code": {"commit": git["commit"], "dirty": git["dirty"]}, "recorded_at": now_utc(),
        }
        self.bench.store.append(rec)
        self.bench.session_verdicts.append(rec)
        self.bench.claim_done(rec)
        label = f"{self.case}: {outcome_label(rec)}" + (f" [{self.label}]" if self.label else "")
        if verdict == NOT_RUN:
            if rec.get("user_error"):
                pytest.fail(f"{label} ({rec['not_run_reason']}): {rec['reason']}", pytrace=False)
            if smoke_note:
                return  # smoke: the machinery worked, no verdict
            pytest.skip(f"{label} ({rec['not_run_reason']}): {rec['reason']}")
        if rec.get("exploratory"):
            return  # runs on seeds the rule did not draw: stored and shown, never a verdict
        failing = "; ".join(f"{c['name']}: expected {c['expected']}, observed {c['observed']}"
                            for c in rec["checks"] if c["passed"] is not True)
        msg = (f"{label} -- posts: {claim.posts_value}; ours: {rec['ours']} "
               f"[profile {self.profile}, {self.bench.device_name}, {rec['decided_by']}, identity {rec['identity']}]"
               + (f"; {failing}" if failing else ""))
        if verdict == "not_reproduced":
            pytest.fail(msg, pytrace=False)
        if verdict == "inconclusive":
            pytest.xfail("inconclusive: " + msg)


def run_case(case: Case, claimbench: ClaimBench, /, **fixtures: Any) -> None:
    """The body of every family's ``test_claim``: start the claim and hand its context and the family's fixtures
    to the case's own function."""
    if case.run is None:
        raise TypeError(f"{case}: a Case needs run=<function(ctx, **fixtures)> to be run by run_case")
    case.run(claimbench.start(case), **fixtures)


__all__ = ["ClaimBench", "ClaimContext", "PUBLISHED", "ROOT", "USER_RESULTS", "run_case"]
