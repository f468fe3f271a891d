"""Helpers the tests share: a store filled with runs and verdict records that name them; the claim cases the
benchmark modules register."""
import importlib
from pathlib import Path

from harness import decide, rulebook
from harness.version import DECISION_VERSION
from harness.claims import CATALOGUE, Case
from harness.store import Store


def registered_cases() -> dict[tuple[str, str], Case]:
    """Every claim case the benchmark modules define, by (claim id, variant): their budgets per profile."""
    cases = {}
    for path in sorted((Path(__file__).resolve().parent.parent / "benchmarks").glob("test_*.py")):
        module = importlib.import_module(f"benchmarks.{path.stem}")
        for value in vars(module).values():
            if isinstance(value, list) and value and all(isinstance(c, Case) for c in value):
                cases.update({(c.claim_id, c.variant): c for c in value})
    return cases


def decided(store: Store, claim_id: str, arms: dict[str, list[dict]], *, variant="", profile="cpu", verdict="?",
            figures=(), primary=True, rule=None, **kw) -> dict:
    """Store one run per (arm, seed) with the given metrics and a verdict record naming them."""
    """By default the verdict is a current one: its identity, confirmatory seeds and this decision version."""
    n = max(len(v) for v in arms.values())
    d = rulebook.decision(claim_id, variant, profile)
    seeds = list(kw.pop("seeds", None) or decide.confirmatory_seeds(claim_id, profile, n))
    ids = {}
    for arm, metrics in arms.items():
        ids[arm] = []
        for seed, m in zip(seeds, metrics):
            rec = store.append({"kind": "run", "run_id": f"{claim_id}-{variant}-{arm}-{seed}", "claim_id": "exp",
                                "arm": arm, "seed": seed, "profile": profile, "status": "finished", "metrics": m,
                                "wall_s": 1.0})
            ids[arm].append(rec["run_id"])
    current = {"identity": d.identity, "exploratory": False, "decision_version": DECISION_VERSION,
               "decided_by": d.decided_by} if rule is None else {}
    rule = rule or d.rule
    rec = {"kind": "verdict", "claim_id": claim_id, "variant": variant, "primary": primary, "profile": profile,
           "verdict": verdict, "not_run_reason": "", "reason": "", "arms": ids, "rule": rule.to_dict(),
           "rule_hash": rule.hash, "posts_value": CATALOGUE[claim_id].posts_value, "ours": "?",
           "seeds": seeds, "device_name": "CPU", "deviation": "narrower",
           "tables": [{"title": "per epoch", "columns": ["epoch", "error_rate"], "rows": [[1, "0.10"]]}],
           "figures": list(figures), "notes": ["a note"], "code": {"commit": "abc", "dirty": False},
           "recorded_at": "2026-11-28T00:00:00+00:00", **current, **kw}
    return store.append(rec)


def not_run(store: Store, claim_id: str, reason: str, profile="cpu", variant=""):
    store.append({"kind": "verdict", "claim_id": claim_id, "variant": variant, "primary": True, "profile": profile,
                  "verdict": "not_run", "not_run_reason": reason, "reason": f"no {reason} here", "arms": {},
                  "posts_value": CATALOGUE[claim_id].posts_value, "ours": "-", "seeds": [0], "device_name": "CPU",
                  "tables": [], "figures": [], "notes": [], "recorded_at": "2026-11-29T00:00:00+00:00"})
