"""Helpers the tests share: a store filled with runs and verdict records that name them."""
from harness import rulebook
from harness.claims import CATALOGUE
from harness.store import Store


def decided(store: Store, claim_id: str, arms: dict[str, list[dict]], *, variant="", profile="cpu", verdict="?",
            figures=(), primary=True, rule=None, **kw) -> dict:
    """Store one run per (arm, seed) with the given metrics and a verdict record naming them."""
    ids = {}
    for arm, metrics in arms.items():
        ids[arm] = []
        for seed, m in enumerate(metrics):
            rec = store.append({"kind": "run", "run_id": f"{claim_id}-{variant}-{arm}-{seed}", "claim_id": "exp",
                                "arm": arm, "seed": seed, "profile": profile, "status": "finished", "metrics": m,
                                "wall_s": 1.0})
            ids[arm].append(rec["run_id"])
    rule = rule or rulebook.decision(claim_id, variant, profile).rule
    rec = {"kind": "verdict", "claim_id": claim_id, "variant": variant, "primary": primary, "profile": profile,
           "verdict": verdict, "not_run_reason": "", "reason": "", "arms": ids, "rule": rule.to_dict(),
           "rule_hash": rule.hash, "posts_value": CATALOGUE[claim_id].posts_value, "ours": "?",
           "seeds": list(range(max(len(v) for v in arms.values()))), "device_name": "CPU", "deviation": "narrower",
           "tables": [{"title": "per epoch", "columns": ["epoch", "error_rate"], "rows": [[1, "0.10"]]}],
           "figures": list(figures), "notes": ["a note"], "code": {"commit": "abc", "dirty": False},
           "recorded_at": "2026-11-28T00:00:00+00:00", **kw}
    return store.append(rec)


def not_run(store: Store, claim_id: str, reason: str, profile="cpu", variant=""):
    store.append({"kind": "verdict", "claim_id": claim_id, "variant": variant, "primary": True, "profile": profile,
                  "verdict": "not_run", "not_run_reason": reason, "reason": f"no {reason} here", "arms": {},
                  "posts_value": CATALOGUE[claim_id].posts_value, "ours": "-", "seeds": [0], "device_name": "CPU",
                  "tables": [], "figures": [], "notes": [], "recorded_at": "2026-11-29T00:00:00+00:00"})
