"""Verdicts as a pure function of (rule, stored runs).

A claim test runs its experiments and hands over its runs grouped by arm label. This module turns run
records into a DataFrame (one row per run: ``run_id``, ``arm``, ``seed`` and one column per metric), applies
the claim's rule from ``harness.rulebook`` and adjusts the comparative hypotheses with Holm across the
whole profile. ``derive_profile`` does the same from the store alone, so the report (and anyone holding the
store) re-derives every verdict without training.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import pandas as pd

from harness import rules as R
from harness.rulebook import HISTORY, RULES, decision

SMOKE_RULE_FROM = "cpu"  # smoke exercises the cpu rule's machinery; it never issues a verdict


def frame(arms: dict[str, Iterable[dict]]) -> pd.DataFrame:
    """The analysis table of a claim: one row per run, metrics as columns (NaN where a run lacks one)."""
    rows = []
    for label, runs in arms.items():
        for r in runs:
            rows.append({"arm": label, "seed": r.get("seed"), "run_id": r.get("run_id"),
                         "experiment": r.get("experiment"), "config_hash": r.get("config_hash"),
                         **{k: (float("nan") if v is None else v) for k, v in (r.get("metrics") or {}).items()}})
    return pd.DataFrame(rows, columns=None if rows else ["arm", "seed", "run_id"])


def rule_for(claim_id: str, variant: str, profile: str):
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


def pvalues(rule: R.Rule, df: pd.DataFrame) -> list[float]:
    return [g.pvalue(df)[0] for g in rule.comparisons()]


@dataclass
class Derived:
    claim_id: str
    variant: str
    profile: str
    rule_hash: str
    decided_by: str
    result: R.Result
    earlier: list[dict] = field(default_factory=list)  # {"rule", "rule_hash", "verdict", "replaced", "reason", "ours"}


def adjust_family(profile: str, raw: dict[tuple[str, str], list[float]]) -> dict[tuple[str, str], dict[int, tuple]]:
    """Holm over every comparative hypothesis the rulebook declares for the profile (missing p = 1)."""
    family = {}
    for (cid, var) in sorted(RULES):
        try:
            d = rule_for(cid, var, profile)
        except KeyError:
            continue
        ps = raw.get((cid, var), [])
        for i in range(len(d.rule.comparisons())):
            family[(cid, var, i)] = ps[i] if i < len(ps) else None
    adj = R.holm_adjust(family)
    out: dict[tuple[str, str], dict[int, tuple]] = {}
    for (cid, var, i), v in adj.items():
        out.setdefault((cid, var), {})[i] = v
    return out


def derive(claim_id: str, variant: str, profile: str, df: pd.DataFrame,
           adjusted: dict[int, tuple] | None, stored_rules: Iterable[dict] = ()) -> Derived:
    """The verdict of one claim under its current rule, and under every earlier rule (entered in the rulebook's
    HISTORY, or found with earlier verdicts of the store), on the same runs."""
    d = rule_for(claim_id, variant, profile)
    res = d.rule.decide(df, adjusted)
    earlier, seen = [], {d.rule.hash}
    if profile == "smoke":  # the machinery only: no verdict, so no history either
        stored_rules = ()
    prof = profile
    for e in HISTORY.get((claim_id, variant), []):
        if e.profile == prof and e.rule.hash not in seen:
            seen.add(e.rule.hash)
            verdict, ours = _apply(e.rule, df)
            earlier.append({"rule": e.rule.render(), "rule_hash": e.rule.hash, "verdict": verdict,
                            "ours": ours, "replaced": e.replaced, "reason": e.reason})
    for sr in stored_rules:
        try:
            rule = R.from_dict(sr)
        except (ValueError, KeyError, TypeError):
            continue
        if rule.hash in seen:
            continue
        seen.add(rule.hash)
        verdict, ours = _apply(rule, df)
        earlier.append({"rule": rule.render(), "rule_hash": rule.hash, "verdict": verdict, "ours": ours,
                        "replaced": "", "reason": "a verdict in the store was decided by this rule; the rulebook "
                                                  "now holds another"})
    return Derived(claim_id, variant, profile, d.rule.hash, d.decided_by if profile != "smoke" else "smoke",
                   res, earlier)


def _apply(rule: R.Rule, df: pd.DataFrame) -> tuple[str, str]:
    """An earlier rule on today's runs (alone, at its own alpha); one naming a metric the runs lack says so."""
    try:
        r = rule.decide(df, None)
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


def latest_decided(records: list[dict], profile: str) -> tuple[dict[tuple[str, str], dict], dict]:
    """Per (claim, variant): the latest verdict record that names its runs, and every rule the store's verdicts
    of it were decided by."""
    latest: dict[tuple[str, str], dict] = {}
    rules_seen: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        if r.get("kind") != "verdict" or r.get("profile") != profile:
            continue
        key = (r["claim_id"], r.get("variant", ""))
        if r.get("rule"):
            rules_seen.setdefault(key, []).append(r["rule"])
        if r.get("arms"):
            latest[key] = r
    return latest, rules_seen


def derive_profile(records: list[dict], profile: str, extra: dict[tuple[str, str], pd.DataFrame] | None = None,
                   only: tuple[str, str] | None = None) -> dict[tuple[str, str], Derived]:
    """Re-derive every decided verdict of a profile from the store's records (latest decided verdict per
    claim and variant, plus ``extra`` frames not stored yet), Holm across the profile. ``only``: derive that
    claim alone (the others still give their p-values to the Holm family)."""
    runs = run_index(records)
    latest, rules_seen = latest_decided(records, profile)
    frames = {k: frame(arms_of(v, runs)) for k, v in latest.items() if (k in RULES)}
    frames.update(extra or {})
    raw = {}
    for (cid, var), df in frames.items():
        raw[(cid, var)] = pvalues(rule_for(cid, var, profile).rule, df)
    adjusted = adjust_family(profile, raw)
    return {(cid, var): derive(cid, var, profile, df, adjusted.get((cid, var)), rules_seen.get((cid, var), []))
            for (cid, var), df in frames.items() if only is None or (cid, var) == only}


def as_fields(dv: Derived) -> dict[str, Any]:
    res = dv.result
    return {"verdict": res.verdict, "ours": res.ours, "checks": [c.as_dict() for c in res.checks],
            "rule_hash": dv.rule_hash, "decided_by": dv.decided_by, "earlier": dv.earlier,
            "reason": res.reason}
