"""Verdicts as a pure function of (rule, its level, the claim's own stored runs).

A claim test runs its experiments and hands over its runs grouped by arm label. This module turns run
records into a DataFrame (one row per run: ``run_id``, ``arm``, ``seed`` and one column per metric) and
applies the claim's decision from ``harness.rulebook`` at the level written into it. Nothing else enters a
verdict: no other claim's runs or p-values, no rank in a family. ``derive_profile`` does the same from the
store alone, so the report (and anyone holding the store) re-derives every verdict without training.

Confirmatory seeds (:func:`confirmatory_seeds`) are drawn from the identities of every rule that reads a
claim's experiments, so the runs that decide a verdict cannot predate its rule. A verdict record decided on
other seeds is exploratory: stored and shown, never the claim's verdict. The current verdict of a claim is
its latest confirmatory record whose identity is the rulebook's current one; older records make its history.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import pandas as pd

from harness import rules as R
from harness.rulebook import HISTORY, RULES, Decision, decision, seed_group
from harness.version import DECISION_VERSION

SMOKE_RULE_FROM = "cpu"  # smoke exercises the cpu rule's machinery; it never issues a verdict
SEED_RANGE = (100_000, 1_000_000_000)  # confirmatory seeds: far from the hand-picked 0..n and tuning offsets
LEGACY_VERSION = "1"  # verdict records without a decision version were decided by the first decision code


def frame(arms: dict[str, Iterable[dict]]) -> pd.DataFrame:
    """The analysis table of a claim: one row per run, metrics as columns (NaN where a run lacks one)."""
    rows = []
    for label, runs in arms.items():
        for r in runs:
            rows.append({"arm": label, "seed": r.get("seed"), "run_id": r.get("run_id"),
                         "experiment": r.get("experiment"), "config_hash": r.get("config_hash"),
                         **{k: (float("nan") if v is None else v) for k, v in (r.get("metrics") or {}).items()}})
    return pd.DataFrame(rows, columns=None if rows else ["arm", "seed", "run_id"])


def rule_for(claim_id: str, variant: str, profile: str) -> Decision:
    """The registered decision; smoke exercises the cpu rule (the full one where cpu does not decide)."""
    if profile == "smoke":
        d = decision(claim_id, variant, SMOKE_RULE_FROM)
        if d is not None and isinstance(d.rule, R.NotDecided):
            d = decision(claim_id, variant, "full")
    else:
        d = decision(claim_id, variant, profile)
    if d is None:
        raise KeyError(f"no rule registered for {claim_id!r} variant {variant!r} at profile {profile!r} "
                       "(add it to harness/rulebook.py before running it)")
    return d


def group_identities(claim_id: str, profile: str) -> list[str]:
    """The identities of every rule that reads the experiments of ``claim_id``'s seed group at a profile."""
    group = seed_group(claim_id)
    out = []
    for (cid, var) in sorted(RULES):
        if seed_group(cid) != group:
            continue
        try:
            out.append(rule_for(cid, var, profile).identity)
        except KeyError:
            continue
    return sorted(out)


def confirmatory_seeds(claim_id: str, profile: str, n: int) -> tuple[int, ...]:
    """The ``n`` seeds that decide ``claim_id`` at ``profile``: drawn from a hash of its seed group, its rules'
    identities and the decision version, so they change whenever any of those changes. The first ``n`` of a
    longer list are the same (asking for more seeds extends the set)."""
    payload = {"group": seed_group(claim_id), "profile": profile, "decision_version": DECISION_VERSION,
               "identities": group_identities(claim_id, profile)}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    rng = np.random.default_rng(int(digest[:16], 16))
    seeds: list[int] = []
    while len(seeds) < n:
        s = int(rng.integers(*SEED_RANGE))
        if s not in seeds:
            seeds.append(s)
    return tuple(seeds)


@dataclass
class Derived:
    claim_id: str
    variant: str
    profile: str
    identity: str
    rule_hash: str
    decided_by: str
    alpha: float
    result: R.Result
    earlier: list[dict] = field(default_factory=list)  # {"rule", "rule_hash", "verdict", "replaced", "reason", "ours"}


def derive(claim_id: str, variant: str, profile: str, df: pd.DataFrame) -> Derived:
    """The verdict of one claim under its current decision on its own runs, and what each earlier rule of the
    rulebook's HISTORY gives on the same runs."""
    d = rule_for(claim_id, variant, profile)
    res = d.rule.decide(df, d.alpha)
    earlier = []
    if profile != "smoke":  # the machinery only: no verdict, so no history either
        for e in HISTORY.get((claim_id, variant), []):
            if e.profile != profile:
                continue
            if e.rule is None:
                earlier.append({"rule": e.text, "rule_hash": "-", "verdict": "", "ours": "",
                                "replaced": e.replaced, "reason": e.reason})
                continue
            verdict, ours = _apply(e.rule, df, d.alpha)
            earlier.append({"rule": e.rule.render(d.alpha), "rule_hash": e.rule.hash, "verdict": verdict,
                            "ours": ours, "replaced": e.replaced, "reason": e.reason})
    return Derived(claim_id, variant, profile, d.identity, d.rule.hash,
                   d.decided_by if profile != "smoke" else "smoke", d.alpha, res, earlier)


def _apply(rule: R.Rule, df: pd.DataFrame, level: float) -> tuple[str, str]:
    """An earlier rule on today's runs under today's decision code; one naming a metric or an arm the runs
    lack says so."""
    try:
        r = rule.decide(df, level)
        return r.verdict, r.ours
    except KeyError as e:
        return R.INCONCLUSIVE, f"cannot be applied to these runs ({e.args[0]})"


def run_index(records: Iterable[dict]) -> dict[str, dict]:
    return {r["run_id"]: r for r in records if r.get("kind") == "run" and r.get("run_id")}


def arms_of(verdict_rec: dict, runs: dict[str, dict]) -> dict[str, list[dict]]:
    """The runs a verdict was decided on, by arm label; a missing run id is an error naming it."""
    out = {}
    for label, ids in (verdict_rec.get("arms") or {}).items():
        missing = [i for i in ids if i not in runs]
        if missing:
            raise LookupError(f"verdict of {verdict_rec['claim_id']} ({verdict_rec['profile']}) names run(s) "
                              f"{', '.join(missing)} that the store does not hold")
        out[label] = [runs[i] for i in ids]
    return out


def record_version(rec: dict) -> str:
    return str(rec.get("decision_version") or LEGACY_VERSION)


def is_current(rec: dict) -> bool:
    """A verdict record that decides its claim now: confirmatory, decided with runs, under the identity the
    rulebook gives the claim today (so under today's decision version)."""
    if rec.get("kind") != "verdict" or not rec.get("arms") or rec.get("exploratory", True):
        return False
    try:
        d = rule_for(rec["claim_id"], rec.get("variant", ""), rec["profile"])
    except KeyError:
        return False
    return rec.get("identity") == d.identity


def latest_decided(records: list[dict], profile: str) -> dict[tuple[str, str], dict]:
    """Per (claim, variant): the latest current verdict record (see :func:`is_current`)."""
    latest: dict[tuple[str, str], dict] = {}
    for r in records:
        if r.get("kind") == "verdict" and r.get("profile") == profile and is_current(r):
            latest[(r["claim_id"], r.get("variant", ""))] = r
    return latest


def derive_profile(records: list[dict], profile: str, extra: dict[tuple[str, str], pd.DataFrame] | None = None,
                   only: tuple[str, str] | None = None) -> dict[tuple[str, str], Derived]:
    """Re-derive every current verdict of a profile from the store's records (plus ``extra`` frames not stored
    yet); each from its own runs alone."""
    runs = run_index(records)
    frames = {k: frame(arms_of(v, runs)) for k, v in latest_decided(records, profile).items() if k in RULES}
    frames.update(extra or {})
    return {(cid, var): derive(cid, var, profile, df) for (cid, var), df in frames.items()
            if only is None or (cid, var) == only}


def history(records: list[dict], claim_id: str, variant: str, profile: str) -> list[dict]:
    """Every verdict a session recorded for the claim at a profile, oldest first, with what changed against the
    one before: its rule identity, decision version, seeds, confirmatory or exploratory, and any flip."""
    rows, prev = [], None
    for r in records:
        if (r.get("kind") != "verdict" or r.get("claim_id") != claim_id or r.get("variant", "") != variant
                or r.get("profile") != profile or not r.get("arms")):
            continue
        version = record_version(r)
        ident = r.get("identity") or f"rule {r.get('rule_hash', '?')}"
        confirm = not r.get("exploratory", True) if version != LEGACY_VERSION else False
        seeds = list(r.get("seeds") or [])
        changed = []
        if prev is None:
            changed.append("first verdict")
        else:
            if ident != prev["identity"]:
                changed.append("rule identity" + (" (rule text unchanged)" if r.get("rule_hash") == prev["rule_hash"]
                                                  else " (rule revised)"))
            if version != prev["version"]:
                changed.append(f"decision code v{prev['version']} -> v{version}")
            if seeds != prev["seeds"]:
                changed.append("seeds")
            if (r.get("verdict") != prev["verdict"] and ident == prev["identity"]):
                why = ("under decision code v1 a comparison's level came from Holm's rank among every comparison of "
                       "the profile, so other claims' p-values moved it" if version == LEGACY_VERSION
                       else "the same rule on other runs" if seeds != prev["seeds"]
                       else "the same rule and seeds on retrained runs")
                changed.append(f"**flip under the same rule**: {why}")
            if not changed:
                changed.append("nothing (the same rule and seeds, retrained)")
        row = {"recorded_at": r.get("recorded_at", ""), "commit": (r.get("code") or {}).get("commit", "")[:10],
               "identity": ident, "rule_hash": r.get("rule_hash", ""), "version": version, "seeds": seeds,
               "verdict": r.get("verdict", ""), "confirmatory": confirm, "current": is_current(r),
               "run_ids": [i for ids in r["arms"].values() for i in ids], "changed": "; ".join(changed)}
        rows.append(row)
        prev = row
    return rows


def as_fields(dv: Derived) -> dict[str, Any]:
    res = dv.result
    return {"verdict": res.verdict, "ours": res.ours, "checks": [c.as_dict() for c in res.checks],
            "parts": res.parts, "identity": dv.identity, "rule_hash": dv.rule_hash, "decided_by": dv.decided_by,
            "alpha": dv.alpha, "decision_version": DECISION_VERSION, "earlier": dv.earlier, "reason": res.reason}
