"""Does a verdict survive a change of environment? The stability page of a store that holds several.

Every run records its environment (torch / torchvision / CUDA versions, device model, precision,
deterministic flag, threads; ``harness.device.environment``) and its hash, which resume keys on, so runs from
different environments coexist in one store and never stand in for each other. Here the store is split by
environment: each environment's runs and verdicts are re-derived on their own (each verdict from its own
runs; one decided by an earlier decision code is shown as it was recorded), and each claim decided in more than one
environment
gets a row: its verdict in each, its rule's numbers in each, whether the verdict is stable or flips (flips
first), and which of the rule's metrics moved between environments by more than their seed-to-seed spread.

    python -m harness.report --store reports/matrix/store --out reports/matrix   # builds stability.md too
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable

import numpy as np

from harness.decide import arms_of, frame, rule_for, run_index
from harness.verdict import NOT_RUN

def env_label(env: dict) -> str:
    """A short, readable name for an environment (the hash is the identity; this is for people)."""
    if not env:
        return "(unrecorded)"
    bits = [f"torch {env.get('torch', '?')}", str(env.get("precision", "?")).split(" ")[0]]
    if env.get("deterministic"):
        bits.append("deterministic")
    bits.append(str(env.get("device", "?")))
    return " · ".join(bits)


def verdict_env(rec: dict, runs: dict[str, dict]) -> str | None:
    """The environment a verdict was decided in: recorded with it, else the one most of its runs share."""
    if rec.get("env_hash"):
        return rec["env_hash"]
    hashes = Counter(runs[i].get("env_hash") for ids in (rec.get("arms") or {}).values() for i in ids if i in runs)
    return hashes.most_common(1)[0][0] if hashes else None


def split_by_env(records: list[dict]) -> dict[str, list[dict]]:
    """The store's records per environment hash: that environment's decided verdicts with every run (runs
    are looked up by id, so a verdict naming a run of another environment still finds it)."""
    runs = run_index(records)
    run_recs = [r for r in records if r.get("kind") == "run"]
    out: dict[str, list[dict]] = {}
    for r in records:
        if r.get("kind") == "verdict" and r.get("arms"):
            env = verdict_env(r, runs)
            if env is not None:
                out.setdefault(env, list(run_recs)).append(r)
    return out


def environments(records: Iterable[dict]) -> dict[str, dict]:
    return {r["env_hash"]: r.get("env") or {} for r in records if r.get("kind") == "run" and r.get("env_hash")}


def rule_terms(rule) -> list:
    """The metric terms (``M``) a rule reads, each once, in the rule's order."""
    out = []
    for leaf in rule.leaves():
        for name in ("term", "a", "b"):
            t = getattr(leaf, name, None)
            if t is not None and t not in out:
                out.append(t)
    return out


def _moved(rows_by_env: dict[str, dict], runs: dict[str, dict], profile: str) -> list[str]:
    """The rule's terms whose mean over seeds differs between two environments by more than the larger
    seed-to-seed standard deviation of the two (n=1 terms: any difference beyond rounding, said so)."""
    any_rec = next(iter(rows_by_env.values()))
    try:
        rule = rule_for(any_rec["claim_id"], any_rec.get("variant", ""), profile).rule
    except KeyError:
        return []
    moved = []
    for term in rule_terms(rule):
        stats = {}
        for env, rec in rows_by_env.items():
            try:
                v = term.values(frame(arms_of(rec, runs))).to_numpy(float)
            except (KeyError, LookupError):
                continue
            v = v[np.isfinite(v)]
            if v.size:
                stats[env] = (float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else float("nan"), v.size)
        envs = list(stats)
        worst, worst_ratio = None, 0.0  # the pair of environments that moved the term most, in seed sds
        for i, a in enumerate(envs):
            for b in envs[i + 1:]:
                (ma, sa, _), (mb, sb, _) = stats[a], stats[b]
                diff = abs(ma - mb)
                spread = np.nanmax([sa, sb]) if not (np.isnan(sa) and np.isnan(sb)) else float("nan")
                if np.isnan(spread):
                    if diff > 1e-9 * max(1.0, abs(ma), abs(mb)) and worst_ratio < float("inf"):
                        worst, worst_ratio = f"{term.render()}: {diff:.3g} (n=1, no seed spread)", float("inf")
                elif diff > spread:
                    ratio = diff / spread if spread > 0 else float("inf")
                    if worst is None or ratio > worst_ratio:
                        worst, worst_ratio = f"{term.render()}: {diff:.3g} = {ratio:.1f} seed sd", ratio
        if worst:
            moved.append(worst)
    return moved


def stability(records: list[dict], collect) -> tuple[dict[str, dict], list[dict], dict[str, set[str]]]:
    """(environments by hash, one row per (profile, claim, variant) decided in two or more of them, and per claim
    id the environments that decided it); ``collect`` is the report's own re-derivation (records -> profile ->
    claim -> row), applied environment by environment, once."""
    runs = run_index(records)
    envs = environments(records)
    per_env = {env: collect(recs) for env, recs in split_by_env(records).items()}
    keys = sorted({(p, k) for by_profile in per_env.values() for p, rows in by_profile.items() for k in rows
                   if p != "smoke"})
    rows = []
    for profile, key in keys:
        found = {env: by_profile[profile][key] for env, by_profile in per_env.items()
                 if key in by_profile.get(profile, {}) and by_profile[profile][key]["verdict"] != NOT_RUN}
        if len(found) < 2:
            continue
        verdicts = {env: rec["verdict"] for env, rec in found.items()}
        rows.append({"profile": profile, "claim_id": key[0], "variant": key[1], "verdicts": verdicts,
                     "ours": {env: rec.get("ours", "-") for env, rec in found.items()},
                     "stable": len(set(verdicts.values())) == 1, "moved": _moved(found, runs, profile)})
    rows.sort(key=lambda r: (r["stable"], r["profile"], r["claim_id"], r["variant"]))
    covered: dict[str, set[str]] = {}  # claim id -> environments that decided it (any profile but smoke)
    for env, by_profile in per_env.items():
        for profile, decided in by_profile.items():
            for (cid, _var), rec in decided.items():
                if profile != "smoke" and rec["verdict"] != NOT_RUN:
                    covered.setdefault(cid, set()).add(env)
    return envs, rows, covered


SHORT = {"reproduced": "held", "not_reproduced": "failed", "inconclusive": "undecided", NOT_RUN: "not run"}


def _cell(verdict: str, ours: str, width: int = 20) -> str:
    """A grid cell: the verdict in one word and the first number of 'ours', cut to ``width`` characters."""
    first = str(ours).split(";")[0].split(": ", 1)[-1].strip()
    first = first if len(first) <= width else first[:width - 1] + "…"
    return f"{SHORT.get(verdict, verdict)} · {first}" if first and first != "-" else SHORT.get(verdict, verdict)


def render(records: list[dict], store_path: str, header: str, table, collect, catalogue_ids=()) -> str:
    """The stability page's markdown (``table`` is the report's markdown-table helper; ``catalogue_ids`` every
    claim, so that those left out of the grid are named with the reason)."""
    envs, rows, covered = stability(records, collect)
    used = sorted({e for r in rows for e in r["verdicts"]}, key=lambda e: (env_label(envs.get(e, {})), e))
    out = [header.format(store=store_path), "# Verdict stability across environments\n",
           "[back to the index](README.md)\n",
           "Each claim decided in more than one environment of the store, with its verdict and its rule's numbers "
           "in each. Each environment's verdicts are re-derived from its own runs alone (verdicts of an earlier "
           "decision code as recorded: they are not yet confirmed under the current one). *Stable* means the same "
           "verdict everywhere; flips come first. *Moved beyond seed "
           "spread* names the rule's metrics whose mean over seeds differs between two environments by more "
           "than the larger seed-to-seed standard deviation, even where the verdict holds.\n"]
    if not rows:
        out.append("_No claim is decided in more than one environment of this store yet._\n")
        return "\n".join(out) + "\n"
    out.append("## Environments\n")
    out.append(table(["environment", "hash", "torch / torchvision / CUDA", "precision", "device", "threads"],
                     [[f"E{i + 1}", e, f"{envs[e].get('torch')} / {envs[e].get('torchvision')} / {envs[e].get('cuda')}",
                       envs[e].get("precision"), envs[e].get("device"), envs[e].get("threads")]
                      for i, e in enumerate(used)]) + "\n")
    name = {e: f"E{i + 1}" for i, e in enumerate(used)}
    flips = sum(not r["stable"] for r in rows)
    out.append(f"## Claims\n\n{len(rows)} rows (claim or sub-claim) decided in two or more environments: {flips} "
               f"flip, {len(rows) - flips} stable. Each cell: the verdict in one word (held = reproduced, failed = "
               "not reproduced, undecided = inconclusive) and the first of the rule's numbers; every number is on "
               "the claim's page.\n")
    cols = ["claim", "stable?"] + [name[e] for e in used]
    body = []
    for r in rows:
        cid = r["claim_id"] + (f" / {r['variant']}" if r["variant"] else "")
        body.append([cid, "stable" if r["stable"] else "**flips**"]
                    + [_cell(r["verdicts"][e], r["ours"][e]) if e in r["verdicts"] else "-" for e in used])
    out.append(table(cols, body) + "\n")
    moved = [r for r in rows if r["moved"]]
    if moved:
        out.append("**Moved beyond seed spread** (the verdict may hold; the number moved more than the larger seed "
                   "sd of two environments):\n")
        out += [f"- {r['claim_id']}{' / ' + r['variant'] if r['variant'] else ''}: {'; '.join(r['moved'])}"
                for r in moved]
        out.append("")
    in_grid = {r["claim_id"] for r in rows}
    left = [(cid, covered.get(cid, set())) for cid in catalogue_ids if cid not in in_grid]
    if left:
        out.append("**Left out of the grid** (a claim needs a verdict in two environments to be compared; the "
                   "matrix's tox envs, `claims-torch*`, select the cheap claims: the others cost hours of CPU per "
                   "environment or need the ImageNet weights):\n")
        for cid, envs_of in left:
            why = (f"decided in one environment only ({', '.join(name.get(e, e[:8]) for e in sorted(envs_of))})"
                   if envs_of else "not run in the matrix")
            out.append(f"- {cid}: {why}")
        out.append("")
    return "\n".join(out) + "\n"
