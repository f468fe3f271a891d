"""Compare the conclusions of two stores, the way ``pytest-benchmark compare`` compares timings.

    python -m harness.compare A B                 # two store folders (or runs.jsonl files)
    python -m harness.compare HEAD~3 HEAD         # two git revisions of the published reports/store

Each side's verdicts are re-derived from its own runs by the current rules (``harness.decide``), so the
comparison is about the runs, not about when they were decided. It prints the verdicts that changed, the
headline metrics that moved beyond their intervals, and the runs (by experiment, arm and seed) that exist
on one side only. Exit status: 1 when a verdict flipped (so CI can watch a dependency upgrade), 0 otherwise,
2 on bad input.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness import stats
from harness.decide import arms_of, derive_profile, frame, latest_decided, run_index
from harness.rulebook import decision
from harness.store import STORE_FILE, Store, StoreCorruptError, same_run
from harness.verdicts import ANALOGUE_DECIDER, worded

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Side:
    name: str
    records: list[dict]


def load_side(spec: str) -> Side:
    """A store folder, a runs.jsonl file, or a git revision of the published store."""
    p = Path(spec)
    if p.is_dir() or p.is_file():
        folder = p if p.is_dir() else p.parent
        return Side(spec, Store(folder).records())
    try:
        blob = subprocess.run(["git", "show", f"{spec}:reports/store/{STORE_FILE}"], cwd=ROOT, capture_output=True,
                              check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        raise FileNotFoundError(f"{spec!r} is neither a store folder, a {STORE_FILE} file, nor a git revision "
                                f"holding reports/store/{STORE_FILE}") from None
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / STORE_FILE).write_bytes(blob)
        return Side(spec, Store(tmp).records())


def _headline(records: list[dict], profile: str, key: tuple[str, str]) -> np.ndarray | None:
    """Per-seed values of the first term of the claim's rule, from the latest decided verdict's runs."""
    latest = latest_decided(records, profile).get(key)
    d = decision(key[0], key[1], profile)
    if latest is None or d is None:
        return None
    leaves = d.rule.leaves()
    term = getattr(leaves[0], "term", None) or getattr(leaves[0], "a", None)
    if term is None:
        return None
    try:
        df = frame(arms_of(latest, run_index(records)))
        return term.values(df).to_numpy(dtype=float)
    except (KeyError, LookupError):
        return None


def _run_keys(records: list[dict]) -> set[tuple]:
    return {same_run(r) for r in records if r.get("kind") == "run"}


def compare(a: Side, b: Side) -> tuple[list[str], list[str], list[str]]:
    """(verdict flips, metrics moved beyond their intervals, runs on one side only), as report lines."""
    flips, moved = [], []
    profiles = sorted({r.get("profile") for s in (a, b) for r in s.records if r.get("kind") == "verdict"} - {None})
    for profile in profiles:
        da, db = derive_profile(a.records, profile), derive_profile(b.records, profile)
        for key in sorted(set(da) | set(db)):
            va = da[key].result.verdict if key in da else None
            vb = db[key].result.verdict if key in db else None
            name = f"{key[0]}{'-' + key[1] if key[1] else ''} [{profile}]"
            if va is not None and vb is not None and va != vb:
                analogue = (db[key] if key in db else da[key]).decided_by == ANALOGUE_DECIDER
                flips.append(f"FLIP  {name}: {worded(va, analogue)} -> {worded(vb, analogue)}")
            elif va is None or vb is None:
                only = a.name if vb is None else b.name
                moved.append(f"ONLY  {name}: decided in {only} only")
            xa, xb = _headline(a.records, profile, key), _headline(b.records, profile, key)
            if xa is None or xb is None or xa.size < 2 or xb.size < 2:
                continue
            lo_a, hi_a = stats.t_ci(xa)
            lo_b, hi_b = stats.t_ci(xb)
            spread = max(float(np.std(xa, ddof=1)), float(np.std(xb, ddof=1)))
            shift = float(xb.mean() - xa.mean())
            if hi_a < lo_b or hi_b < lo_a or abs(shift) > spread:
                why = "intervals disjoint" if (hi_a < lo_b or hi_b < lo_a) else "shift beyond the seed spread"
                moved.append(f"MOVED {name}: {xa.mean():.4g} [{lo_a:.4g}, {hi_a:.4g}] -> {xb.mean():.4g} "
                             f"[{lo_b:.4g}, {hi_b:.4g}] ({why})")
    ka, kb = _run_keys(a.records), _run_keys(b.records)
    only = [f"RUN   {k[1]} {k[2]} seed {k[4]} [{k[0]}]: only in {a.name}" for k in sorted(ka - kb, key=str)]
    only += [f"RUN   {k[1]} {k[2]} seed {k[4]} [{k[0]}]: only in {b.name}" for k in sorted(kb - ka, key=str)]
    return flips, moved, only


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.compare", description=__doc__.splitlines()[0])
    ap.add_argument("a", help="store folder, runs.jsonl, or git revision (its reports/store)")
    ap.add_argument("b", help="the same, the side compared against A")
    ap.add_argument("--runs", action="store_true", help="list every run that exists on one side only")
    args = ap.parse_args(argv)
    try:
        a, b = load_side(args.a), load_side(args.b)
        flips, moved, only = compare(a, b)
    except (FileNotFoundError, StoreCorruptError, LookupError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for line in flips + moved:
        print(line)
    if args.runs:
        for line in only:
            print(line)
    print(f"{len(flips)} verdict(s) flipped, {len(moved)} metric(s) moved or decided on one side, "
          f"{len(only)} run(s) on one side only ({os.path.basename(args.a)} -> {os.path.basename(args.b)})")
    return 1 if flips else 0


if __name__ == "__main__":
    raise SystemExit(main())


def against_published(mine: list[dict], published: list[dict]) -> list[dict]:
    """Claim by claim, a user's current verdicts beside the published ones (same profile): ``agrees``,
    ``differs`` (with both verdicts and numbers) or ``unpublished``; "a reproduction of the reproduction"."""
    rows = []
    profiles = sorted({r.get("profile") for r in mine if r.get("kind") == "verdict"} - {None, "smoke"})
    for profile in profiles:
        ours, theirs = derive_profile(mine, profile), derive_profile(published, profile)
        for key in sorted(ours):
            a = ours[key].result
            b = theirs[key].result if key in theirs else None
            status = "unpublished" if b is None else ("agrees" if a.verdict == b.verdict else "differs")
            rows.append({"profile": profile, "claim_id": key[0], "variant": key[1], "status": status,
                         "mine": a.verdict, "mine_ours": a.ours, "published": b.verdict if b else None,
                         "published_ours": b.ours if b else "",
                         "analogue": ours[key].decided_by == ANALOGUE_DECIDER})
    return rows


def render_against_published(rows: list[dict], published_dir: str) -> str:
    """The comparison as a markdown page (the user's report folder gets it as comparison.md)."""
    n = {s: sum(r["status"] == s for r in rows) for s in ("agrees", "differs", "unpublished")}
    out = ["# Your verdicts beside the published ones\n",
           f"Published report: `{published_dir}`. {n['agrees']} agree, {n['differs']} differ, {n['unpublished']} "
           f"have no published verdict at that profile. Only confirmatory verdicts are compared (runs on the seeds "
           f"each rule draws); a difference means your runs, on your machine, decide the same rule otherwise: "
           f"compare the numbers, and the environments with `python -m harness.compare`.\n",
           "| claim | profile | yours | published | your numbers | published numbers |",
           "| --- | --- | --- | --- | --- | --- |"]
    order = {"differs": 0, "unpublished": 1, "agrees": 2}
    for r in sorted(rows, key=lambda r: (order[r["status"]], r["claim_id"], r["variant"])):
        name = r["claim_id"] + (f" ({r['variant']})" if r["variant"] else "")
        pub = worded(r["published"], r["analogue"]) if r["published"] else "-"
        mark = "**differs**: " if r["status"] == "differs" else ""
        cells = [name, r["profile"], mark + worded(r["mine"], r["analogue"]), pub, r["mine_ours"],
                 r["published_ours"] or "-"]
        out.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(out) + "\n"
