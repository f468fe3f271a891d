"""Which verdict is current, claim by claim, and how it is labelled: the collection of verdict records from a
store (the latest confirmatory record under today's rule identity, re-derived from its runs), the rows of the
index (variants combined) and the labels an analogue, a sub-verdict and an unconfirmed row get. Pages are
rendered from these by ``harness.report``; the terminal comparison reads them through ``harness.compare``.
"""
from __future__ import annotations

from harness.claims import READ_BESIDE, Claim
from harness.decide import as_fields, derive_profile, history, latest_decided, record_version, run_index
from harness.rulebook import decision
from harness.rules import combine
from harness.verdict import INCONCLUSIVE, LABELS, NOT_REPRODUCED, NOT_RUN, REPRODUCED

PROFILE_ORDER = ("full", "cpu", "smoke")

ANALOGUE_LABELS = {REPRODUCED: "analogue held", NOT_REPRODUCED: "analogue failed",
                   INCONCLUSIVE: "analogue inconclusive", NOT_RUN: "not run"}
PART_LABELS = {REPRODUCED: "held", NOT_REPRODUCED: "failed", INCONCLUSIVE: "undecided",
               NOT_RUN: "not tested at this profile"}
UNCONFIRMED = "not yet confirmed"
ANALOGUE_DECIDER = "cpu analogue rule"  # what a verdict record stores as decided_by when an analogue decided it


def analogue_setting(rec: dict) -> str:
    """What the analogue that decided a record changes against the posts, in short ('' for the posts' rule)."""
    d = decision(rec["claim_id"], rec.get("variant", ""), rec.get("profile", ""))
    return d.analogue if d is not None else ""


def is_analogue(rec: dict) -> bool:
    return bool(analogue_setting(rec))


def worded(verdict: str, analogue: bool) -> str:
    """A verdict in words: an analogue's as the analogue's ("analogue failed"), never as a verdict on the posts'
    number; the posts' rule's as "reproduced" / "not reproduced" / ... Every page and summary words them here."""
    return (ANALOGUE_LABELS if analogue else LABELS).get(verdict, verdict)


def outcome_label(rec: dict) -> str:
    """A verdict record's outcome in words, by today's rule for its claim and profile."""
    return worded(rec["verdict"], is_analogue(rec))


def recorded_label(rec: dict) -> str:
    """A stored verdict record's outcome in words, by what decided it then (its own ``decided_by``), not by
    today's rule: an earlier analogue's verdict stays the analogue's in the history and in an unconfirmed row."""
    return worded(rec["verdict"], rec.get("decided_by") == ANALOGUE_DECIDER)


def off_draw(run_ids, seeds, runs: dict[str, dict]) -> list:
    """The seeds of the runs ``run_ids`` (looked up in ``runs``, the store's run index; a missing one is left
    out) outside a verdict's seed list ``seeds``: a confirmatory verdict may rest on none."""
    return sorted({runs[i].get("seed") for i in run_ids if i in runs} - set(seeds or ()), key=str)


def labelled_history(mine: list[dict], claim_id: str, variant: str, profile: str,
                     runs: dict[str, dict]) -> list[dict]:
    """``decide.history`` with each row's outcome in words (``recorded_label`` of the record it came from), a
    change of the experiment's scale (its budget: images, epochs, network) said where the rule identity, which
    does not cover it, stayed the same, and ``off_draw``: the seeds of the record's runs (``runs``, the store's
    run index) outside its seed list, which no confirmatory verdict may rest on. ``mine``: the claim's own
    verdict records at the profile, oldest first (``collect`` groups them once)."""
    by_time = {r.get("recorded_at", ""): r for r in mine}
    moves: dict[str, set[str]] = {}
    for rec, _, moved in scale_changes([r for r in mine if r.get("arms")]):
        moves.setdefault(rec.get("recorded_at", ""), set()).update(moved)
    rows = []
    for h in history(mine, claim_id, variant, profile):
        row = dict(h, outcome=recorded_label({**by_time.get(h["recorded_at"], {}), "verdict": h["verdict"]}))
        moved = sorted(moves.get(h["recorded_at"], ()))
        if moved:
            said = "" if row["changed"].startswith("nothing") else row["changed"] + "; "
            row["changed"] = said + f"**experiment scale** ({', '.join(moved)})"
        row["off_draw"] = off_draw(h["run_ids"], h["seeds"], runs)
        rows.append(row)
    return rows


def history_kind(h: dict) -> str:
    """A history row's standing: its runs off its seed list (so it decides nothing, whatever it was stored as),
    current (today's identity, confirmatory), confirmatory under an earlier identity, or exploratory."""
    if h.get("off_draw") and h["confirmatory"]:
        return f"runs on seed {', '.join(map(str, h['off_draw']))}, off its draw"
    return "current" if h["current"] else "confirmatory" if h["confirmatory"] else "exploratory"


def scale_changes(records: list[dict]) -> list[tuple[dict, dict, list[str]]]:
    """Each change of scale among one claim's verdict records at a profile (oldest first, those with runs):
    (the record, the earlier one it differs from, the settings that moved), against the record just before and
    against the last confirmatory one, so an exploratory record in between cannot hide a change. The claim's
    history names them; a test requires a rulebook revision for those under an unchanged identity."""
    out, last, confirmed = [], None, None
    for rec in records:
        for before in (last,) if confirmed is last else (last, confirmed):
            moved = scale_change(before, rec) if before is not None else []
            if moved:
                out.append((rec, before, moved))
        last = rec
        if not rec.get("exploratory", True):
            confirmed = rec
    return out


def scale_change(before: dict, after: dict) -> list[str]:
    """The budget settings (images, epochs, network, ...) two verdict records of a claim were decided at that
    differ, by name (none where either record lacks a budget: older records, runs without a case), and "seeds
    per arm" where both are confirmatory on different counts: the draw extends as a prefix, so a count raised
    after a verdict decides partly on the runs that gave it (a revision, like a new scale)."""
    def flat(rec: dict) -> dict:
        budget = dict(rec.get("budget") or {})
        return {**{k: v for k, v in budget.items() if k != "settings"}, **(budget.get("settings") or {})}
    a, b = flat(before), flat(after)
    moved = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)) if a and b else []
    confirmatory = not before.get("exploratory", True) and not after.get("exploratory", True)
    if confirmatory and len(before.get("seeds") or []) != len(after.get("seeds") or []):
        moved.append("seeds per arm")
    return moved


def verdict_label(rec: dict) -> str:
    if rec.get("unconfirmed"):
        seeds = ", exploratory seeds" if rec.get("exploratory", True) else ""
        return (f"{UNCONFIRMED} under the current rule (latest, decision v{record_version(rec)}{seeds}: "
                f"{recorded_label(rec)})")
    label = outcome_label(rec)
    if rec["verdict"] == NOT_RUN and rec.get("not_run_reason"):
        label += f" ({rec['not_run_reason']})"
    return label


def parts_text(rec: dict) -> str:
    parts = rec.get("parts") or []
    if len(parts) < 2:
        return ""
    return "; ".join(f"{p['name']}: {PART_LABELS[p['verdict']]}" for p in parts)


def collect(records: list[dict]) -> dict[str, dict[tuple[str, str], dict]]:
    """Per profile and (claim, variant): the current verdict (the latest confirmatory record under today's rule
    identity) re-derived from its runs. A later attempt that could not run (missing data, weights, ...) never
    replaces it and is shown beside it. A claim with verdicts but none under today's identity shows its latest,
    marked as not yet confirmed; claims never decided show the latest attempt."""
    out: dict[str, dict[tuple[str, str], dict]] = {}
    decided: dict[tuple[str, str, str], dict] = {}
    attempt: dict[tuple[str, str, str], dict] = {}
    own: dict[tuple[str, str, str], list[dict]] = {}  # each claim's verdict records, oldest first
    for r in records:
        if r.get("kind") != "verdict":
            continue
        key = (r["profile"], r["claim_id"], r.get("variant", ""))
        own.setdefault(key, []).append(r)
        if r.get("arms"):
            decided[key] = r
            attempt.pop(key, None)
        else:
            attempt[key] = r
    profiles = sorted({k[0] for k in list(decided) + list(attempt)}, key=PROFILE_ORDER.index)
    runs = run_index(records)
    for profile in profiles:
        derived = derive_profile(records, profile)
        current = latest_decided(records, profile)
        rows = {}
        for (p, cid, var), rec in decided.items():
            if p != profile:
                continue
            row = dict(current.get((cid, var), rec))
            if (cid, var) in derived:
                row.update(as_fields(derived[(cid, var)]))
                if row["verdict"] == NOT_RUN:
                    row["not_run_reason"] = "profile"
            elif profile != "smoke":
                row["unconfirmed"] = True
            if profile == "smoke":
                row["verdict"], row["not_run_reason"] = NOT_RUN, "profile"
            row["attempt"] = attempt.get((p, cid, var))
            row["history"] = labelled_history(own[(p, cid, var)], cid, var, profile, runs) if profile != "smoke" else []
            rows[(cid, var)] = row
        for (p, cid, var), rec in attempt.items():
            if p == profile and (cid, var) not in rows:
                rows[(cid, var)] = dict(rec, attempt=None, history=[])
        out[profile] = rows
    return out


def pending_row(claim: Claim, profile: str) -> dict:
    return {"claim_id": claim.id, "variant": "", "profile": profile, "verdict": NOT_RUN,
            "not_run_reason": "pending", "reason": "no verdict in this store yet", "ours": "-",
            "device_name": "-", "recorded_at": "", "primary": True, "decided_by": "-"}


def claim_rows(rows: dict[tuple[str, str], dict], profile: str, claims: list[Claim]) -> list[dict]:
    """One row per catalogue claim: the primary variants combined; each variant's numbers shown."""
    out = []
    for claim in claims:
        recs = sorted((r for (cid, _v), r in rows.items() if cid == claim.id), key=lambda r: r.get("variant", ""))
        if not recs:
            out.append({"claim": claim, "rec": pending_row(claim, profile), "recs": []})
            continue
        primary = [r for r in recs if r.get("primary", True)] or recs
        head = dict(primary[0])
        if len(primary) > 1:
            head["ours"] = "; ".join(f"{r['variant']}: {r.get('ours', '-')}" for r in primary)
            head["verdict"] = combine([r["verdict"] for r in primary])
            reasons = sorted({r.get("not_run_reason", "") for r in primary if r["verdict"] == NOT_RUN})
            head["not_run_reason"] = ", ".join(x for x in reasons if x)
            head["earlier"] = [e for r in primary for e in r.get("earlier", [])]
            head["decided_by"] = ", ".join(sorted({r.get("decided_by", "-") for r in primary}))
            head["unconfirmed"] = any(r.get("unconfirmed") for r in primary)
            head["parts"] = [{"name": r["variant"], "verdict": r["verdict"]} for r in primary]
        head["recorded_at"] = max(r.get("recorded_at", "") for r in recs)
        out.append({"claim": claim, "rec": head, "recs": recs})
    return out


def read_beside(claim_id: str, rows: list[dict]) -> str:
    """The claim to read beside this one (``harness.claims.READ_BESIDE``), why, and its verdict among ``rows``
    (the ``claim_rows`` of the same profile), in words; '' where the claim has none or ``rows`` lack it."""
    other, why = READ_BESIDE.get(claim_id, ("", ""))
    row = next((r for r in rows if r["claim"].id == other), None)
    return f"read beside `{other}` ({why}): {verdict_label(row['rec'])}" if row else ""
