"""Short forms of verdicts for readers: a row's headline number, what a profile taught us, a machine-readable
export of every verdict, and paths made safe to publish.

The family pages keep every detail; these are the index's narrow cells and the files people load in pandas.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

from harness.verdict import INCONCLUSIVE, NOT_REPRODUCED, NOT_RUN, REPRODUCED
from harness.verdicts import read_beside, worded

EXPORT_FIELDS = ("claim_id", "variant", "profile", "verdict", "outcome", "decided_by", "identity", "rule_hash",
                 "decision_version", "alpha", "ours", "n", "seeds", "recorded_at")


def shorten(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1].rstrip(" ,;([") + "…"


def headline(rec: dict, width: int = 44) -> str:
    """The one number a reader wants for a row, in the posts' unit (see ``headline_parts``), after the name of
    the check it comes from where the claim has several."""
    name, value = headline_parts(rec, width)
    return f"{name}: {value}" if name else value


def headline_parts(rec: dict, width: int = 44) -> tuple[str, str]:
    """(which check, its number) for a row, from the check that decided the verdict (the first failed one of a
    claim that did not hold, the first undecided one of an open claim, else the first decided by an interval,
    else the first): its observation without test statistics (a comparison as its difference with the
    interval), else the stored summary. The name is '' for a claim with one check; a claim with several names
    the one shown, so a number never stands beside a verdict that another part decided."""
    checks = [c for c in rec.get("checks") or [] if c.get("observed")]
    shown = _deciding(rec.get("verdict"), checks)
    text = (_observation(shown) if shown else "") or rec.get("ours") or "-"
    text = text.split(", p = ")[0].split(", TOST p")[0].split("; MDD")[0]  # the number, not its test statistics
    text = re.sub(r"\[(\S+) pts, (\S+) pts\]", r"[\1, \2] pts", text)
    text = re.sub(r"^diff (\S+) pts \[", r"diff \1 [", text)
    name = re.split(r" \(|: ", shown.get("name") or "")[0] if shown and len(checks) > 1 else ""
    return shorten(name, 60) if name else "", shorten(mark_past_range(text), width)


def _deciding(verdict: str | None, checks: list[dict]) -> dict | None:
    """The check whose outcome the verdict reports (see ``headline``)."""
    wanted = {NOT_REPRODUCED: False, INCONCLUSIVE: None}.get(verdict or "", True)
    if wanted is not True:
        for c in checks:
            if c.get("passed") is wanted:
                return c
    return next((c for c in checks if c.get("level") is not None), checks[0] if checks else None)


def _observation(check: dict) -> str:
    """A check's observation in short: an interval as '(n, CI)'; per-seed values as one value on every seed, or
    their range."""
    text = check["observed"]
    if check.get("level") is not None:  # decided by an interval: its observation carries the interval
        text = re.sub(r"\s*\((\d+(?:\.\d+)?)% (?:t-interval|CI)\)", r" (\1% CI)", text)
        return re.sub(r"\(n=(\d+), (\d+(?:\.\d+)?)% t-interval\)", r"(n=\1, \2% CI)", text)
    values = text.split(", ")
    nums = [_number(v) for v in values]
    if len(values) > 1 and len(set(values)) == 1:
        return f"{values[0]} (all {len(values)} seeds)"
    if len(values) > 1 and all(x is not None for x in nums):
        lo, hi = min(range(len(nums)), key=nums.__getitem__), max(range(len(nums)), key=nums.__getitem__)
        return f"{values[lo]} to {values[hi]} ({len(values)} seeds)"
    return text


PAST_RANGE = "†"
PAST_RANGE_NOTE = (f"{PAST_RANGE} This end of the interval lies outside 0-100%, the range a share or an accuracy "
                   "can take: a t-interval does not know the bound (few seeds, values near it). The true mean lies "
                   "inside the range, and only the end facing the rule's level decides.")


def past_range_note(texts: list[str]) -> list[str]:
    """The note explaining the mark, once, where any of ``texts`` carries it (``[]`` otherwise)."""
    return [PAST_RANGE_NOTE + "\n"] if any(PAST_RANGE in x for x in texts) else []


def mark_past_range(text: str) -> str:
    """Marks with a dagger each end of a percent interval ``[lo%, hi%]`` that lies below 0% or above 100%."""
    def mark(m: re.Match) -> str:
        lo, hi = m.group(1), m.group(2)
        return (f"[{lo}%{PAST_RANGE if float(lo) < 0 else ''}, "
                f"{hi}%{PAST_RANGE if float(hi) > 100 else ''}]")
    return re.sub(r"\[(-?\d+(?:\.\d+)?)%, (-?\d+(?:\.\d+)?)%\]", mark, text)


def _number(text: str) -> float | None:
    m = re.fullmatch(r"\s*(-?[\d,]*\.?\d+(?:e[-+]?\d+)?)\s*(%|pts|MiB)?\s*", text)
    if not m:
        return None
    try:
        return float(m.group(1).replace(",", ""))
    except ValueError:
        return None


def learned(rows: list[dict], setting) -> list[str]:
    """Bullets generated from the decided rows of a profile: what held, what did not, what stays open. An
    analogue's bullet names its setting (``setting(rec)``: what it changes against the posts, '' for the posts'
    own rule), so a bullet read alone never passes an analogue's outcome off as the posts' claim."""
    groups: dict[str, list[str]] = {"held": [], "failed": [], "open": []}
    for r in rows:
        rec = r["rec"]
        if not r["recs"] or rec.get("unconfirmed") or rec.get("verdict") == NOT_RUN:
            continue
        c = r["claim"]
        what = c.claim.rstrip(".")
        where = setting(rec)
        scale = f" (scaled-down analogue: {where})" if where else ""
        name, value = headline_parts(rec, 60)
        line = f"{what}{scale}: ours, {name}: {value}" if name else f"{what}{scale}: ours {value}"
        beside = read_beside(c.id, rows)
        if beside:
            line += f" ({beside})"
        key = {REPRODUCED: "held", NOT_REPRODUCED: "failed"}.get(rec["verdict"], "open")
        groups[key].append(line)
    out = []
    for key, title in (("held", "Held"), ("failed", "Did not hold"), ("open", "Still open (more seeds would decide)")):
        if groups[key]:
            out.append(f"**{title}.** " + " · ".join(groups[key]))
    return out


def export_rows(by_profile: dict[str, dict], is_analogue) -> list[dict]:
    """One row per (profile, claim, variant) shown on the index, with what decided it."""
    rows = []
    for profile, recs in by_profile.items():
        for (cid, var), rec in sorted(recs.items()):
            ana = bool(rec.get("arms")) and is_analogue(rec)
            status = "not yet confirmed" if rec.get("unconfirmed") else worded(rec.get("verdict", NOT_RUN), ana)
            seeds = rec.get("seeds") or []
            rows.append({"claim_id": cid, "variant": var, "profile": profile, "verdict": rec.get("verdict"),
                         "outcome": status, "decided_by": rec.get("decided_by", ""),
                         "identity": rec.get("identity", ""), "rule_hash": rec.get("rule_hash", ""),
                         "decision_version": str(rec.get("decision_version", "")), "alpha": rec.get("alpha", ""),
                         "ours": " ".join(str(rec.get("ours", "")).split()), "n": len(seeds) if rec.get("arms") else 0,
                         "seeds": " ".join(map(str, seeds)), "recorded_at": rec.get("recorded_at", "")})
    return rows


def export_files(rows: list[dict]) -> dict[str, str]:
    """verdicts.json and verdicts.csv (same rows)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=EXPORT_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in EXPORT_FIELDS})
    return {"verdicts.json": json.dumps(rows, indent=1, sort_keys=True, default=str) + "\n",
            "verdicts.csv": buf.getvalue()}


_ABS = re.compile(r"(?<![\w.~])(/(?:[\w.@+-]+/)+[\w.@+-]*)")


def named_paths(text: str, folders: dict[str, Path | None]) -> str:
    """``text`` with each folder of ``folders`` (as given and resolved) written by its name, ``''`` making paths
    under it relative, in the order given; then the home folder as ``~``."""
    for name, folder in folders.items():
        if folder is None or str(folder) in ("", ".", os.sep):
            continue
        for form in dict.fromkeys((str(folder), str(Path(folder).resolve()))):
            text = text.replace(form + os.sep, f"{name}/" if name else "")
            if name:
                text = text.replace(form, name)
    return text.replace(str(Path.home()) + os.sep, "~/")


def publishable(text: str, root: Path | None = None) -> str:
    """A string fit for a published page: the checkout's paths relative, the home folder as ~, any other
    absolute path cut to its last two parts (a reader's machine has other folders anyway)."""
    if not text:
        return text
    text = named_paths(text, {"": root})

    def cut(m: re.Match) -> str:
        parts = [p for p in m.group(1).split("/") if p]
        return "…/" + "/".join(parts[-2:]) if len(parts) > 2 else m.group(1)

    return _ABS.sub(cut, " ".join(text.split()))
