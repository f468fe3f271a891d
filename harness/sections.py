"""The optional sections of a claim's page: the fp32 precision control beside its bf16 twin, and the sources
of seed-to-seed variance (``--vary`` runs); with the markdown table helper every page uses."""
from __future__ import annotations

import datetime as dt
import json
from typing import Iterable

import numpy as np
from tabulate import tabulate

from harness import stability
from harness.decide import frame, rule_for
from harness.device import FP32_CHANNELS_LAST
from harness.verdicts import worded


def _cell(v) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")  # a bare | would split the markdown cell


def md_table(columns: list[str], rows: Iterable[Iterable]) -> str:
    return tabulate([[_cell(v) for v in r] for r in rows], headers=[_cell(c) for c in columns],
                    tablefmt="github", disable_numparse=True)


def seed_text(seeds: list[int]) -> str:
    if seeds and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}..{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])
    return ", ".join(map(str, seeds))


def precision_control_section(rec: dict, runs: dict, profile: str) -> str:
    """The family's fp32 control seed beside its bf16 twin and the bf16 seeds of the same arm, and the verdict
    the rule gives with the fp32 run in place of its twin, so a reader sees whether bf16 decides."""
    pc = rec["precision_control"]
    fp32, bf16 = runs.get(pc.get("fp32_run")), runs.get(pc.get("bf16_run"))
    if fp32 is None or bf16 is None:
        return "_the fp32 control run named here is not in the store_\n"
    arm_runs = [runs[i] for i in (rec.get("arms") or {}).get(pc["arm"], []) if i in runs]
    rows = []
    for k, v32 in (fp32.get("metrics") or {}).items():
        v16 = (bf16.get("metrics") or {}).get(k)
        if isinstance(v32, bool) or not isinstance(v32, (int, float)) or not isinstance(v16, (int, float)):
            continue
        vals = np.array([r["metrics"][k] for r in arm_runs
                         if isinstance((r.get("metrics") or {}).get(k), (int, float))], float)
        vals = vals[np.isfinite(vals)]
        sd = float(vals.std(ddof=1)) if vals.size > 1 else float("nan")
        spread = f"{vals.mean():.4g} (sd {sd:.3g}, n={vals.size})" if vals.size else "-"
        diff = abs(v32 - v16)
        rel = f"{diff / sd:.2f}" if sd == sd and sd > 0 else ("0" if diff == 0 else "-")
        rows.append([k, f"{v32:.4g}", f"{v16:.4g}", spread, rel])
    def outcome(swap: bool) -> str:
        try:
            arms = {label: [fp32 if swap and r.get("run_id") == bf16["run_id"] else r
                            for i in ids if (r := runs.get(i))] for label, ids in (rec.get("arms") or {}).items()}
            d = rule_for(rec["claim_id"], rec.get("variant", ""), profile)
            return worded(d.rule.decide(frame(arms), d.alpha).verdict, bool(d.analogue))
        except Exception as e:  # noqa: BLE001 -- presentation only; say why it is missing
            return f"cannot be computed ({type(e).__name__})"
    layout = ("channels_last memory like its twin" if (fp32.get("env") or {}).get("precision") == FP32_CHANNELS_LAST
              else "contiguous memory")
    head = (f"**precision control**: arm `{pc['arm']}` seed {pc['seed']} trained again in fp32 (no autocast, "
            f"{layout}), same seed, config and data order. The rule gives **{outcome(False)}** on the bf16 "
            f"runs and **{outcome(True)}** with the fp32 run in place of its bf16 twin\n")
    return head + "\n" + md_table(["metric", "fp32 control", "bf16, same seed", "bf16 seeds of the arm",
                                     "|fp32 - bf16| in bf16 seed sds"], rows) + "\n"


def variance_section(rec: dict, runs: dict, profile: str) -> str:
    """Which source of randomness drives the seed-to-seed spread: the rule's metrics over the claim's runs
    (every source follows the seed) beside runs of the same arms where one source follows it and the others
    are held at seed 0's values (``--vary``; Bouthillier et al. 2021). Empty when the store has none."""
    def key(r):
        cfg = {k: v for k, v in (r.get("config") or {}).items() if k != "vary"}
        return (r.get("experiment"), r.get("arm"), r.get("profile"), json.dumps(cfg, sort_keys=True))

    base = {label: [runs[i] for i in ids if i in runs] for label, ids in (rec.get("arms") or {}).items()}
    wanted = {key(r): label for label, rs in base.items() for r in rs}
    by_source: dict[str, dict[str, dict[int, dict]]] = {}
    for r in runs.values():
        src = (r.get("config") or {}).get("vary")
        if src and key(r) in wanted:
            by_source.setdefault(src, {}).setdefault(wanted[key(r)], {})[r["seed"]] = r  # latest per seed
    if not by_source:
        return ""
    try:
        terms = stability.rule_terms(rule_for(rec["claim_id"], rec.get("variant", ""), profile).rule)
    except KeyError:
        return ""
    sources = [s for s in ("init", "split", "order", "augment") if s in by_source]
    rows, drivers = [], []
    for term in terms:
        def sd_of(arms):
            try:
                v = term.values(frame(arms)).to_numpy(float)
            except KeyError:
                return None
            v = v[np.isfinite(v)]
            return (float(v.std(ddof=1)), v.size) if v.size > 1 else None
        every = sd_of(base)
        per = {s: sd_of({label: list(seeds.values()) for label, seeds in by_source[s].items()}) for s in sources}
        if every is None and not any(per.values()):
            continue
        cells = [f"{x[0]:.3g} (n={x[1]})" if x else "-" for x in [every] + [per[s] for s in sources]]
        rows.append([term.render()] + cells)
        known = {s: x[0] for s, x in per.items() if x}
        if known:
            top = max(known, key=known.get)
            drivers.append(f"{term.render()}: {top} (sd {known[top]:.3g}"
                           + (f" of {every[0]:.3g} with every source varying)" if every else ")"))
    if not rows:
        return ""
    head = ("**sources of variance** (seed-to-seed standard deviation of the rule's metrics; one source follows "
            "the seed, the others held at seed 0's values; these runs decide nothing). Largest with one source "
            "varying: " + "; ".join(drivers) + "\n")
    return head + "\n" + md_table(["metric", "every source"] + [f"{s} only" for s in sources], rows) + "\n"


def wall_seconds(run: dict) -> float:
    """A run's seconds: as it timed itself, else from its start and finish stamps."""
    if run.get("wall_s"):
        return float(run["wall_s"])
    try:
        start, end = dt.datetime.fromisoformat(run["started_at"]), dt.datetime.fromisoformat(run["finished_at"])
        return (end - start).total_seconds()
    except (KeyError, TypeError, ValueError):
        return 0.0
