"""Decision rules as data: a small closed vocabulary that the harness applies to stored runs.

A rule is fixed before its runs exist (see ``harness.rulebook``). Its wording on the report is rendered from
the rule itself, its identity (``harness.rulebook.Decision.identity``: the rule, its level, the seed minimum,
the decision code's version and the metric definitions it reads) names it in every verdict record, and
``decide`` is a pure function of the rule, its level and a DataFrame of runs (one row per run: ``arm``,
``seed`` and one column per metric), so anyone can re-derive a verdict from the store. No verdict depends on
another claim's runs: each rule is decided at the level written into its own decision.

Three outcomes, decided by intervals (never by post-hoc power). At level alpha the interval is the two-sided
(1 - 2 alpha) t-interval, so each of its ends is a one-sided test at alpha:

* ``AtLeast(term, level)`` / ``AtMost(term, level)`` -- the mean over seeds reaches a level: holds when the
  interval lies on the claimed side, fails when it lies wholly on the other side, undecided otherwise.
  ``stat="each"`` is a plain assertion on every seed (deterministic measurements).
* ``InBand(term, low, high)`` -- "about X": holds when the interval lies inside the band (TOST at alpha),
  fails when it lies wholly outside, undecided otherwise.
* ``Equal(term, value, tol)`` -- every seed within ``tol`` of ``value`` (deterministic claims).
* ``Greater(a, b, margin, paired, claimed)`` -- "A exceeds B by more than margin; the claim says by about
  ``claimed``": one-sided Welch t (paired t only where the arms share their randomness). Holds when the test
  rejects at alpha and the interval clears the margin; fails when the interval lies wholly below the claimed
  difference (below the margin where the claim names no size), whatever the power; undecided otherwise, and
  with fewer than ``MIN_SEEDS`` seeds per arm. The minimum detectable difference is shown, never decides.
  ``stat="each"`` compares seed by seed (deterministic).
* ``Share(term, level)`` -- the share of seeds on which a 0/1 outcome holds reaches a level: the exact
  (Clopper-Pearson) binomial interval of k of n at the same coverage; holds when its lower end reaches the
  level, fails when its upper end lies below it.
* ``AllOf(*rules)`` -- every part holds (an intersection-union test: each part at the rule's own level, no
  split needed for "all hold"). Parts that this profile does not decide (``NotDecided``) are shown as such
  and leave the others to decide.
* ``NotDecided(reason)`` -- this profile does not decide the claim (or this part of it).

Missing is never silently fewer: a seed whose metric is missing (or whose run is missing from one arm) makes
the rule undecided, or failed where the rule says so (``missing="fail"``).

A term ``M(arms, metric)`` is the per-seed value of a metric; with several arms it is their mean per seed
(e.g. a factor's main effect over the arms of a factorial design).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

import numpy as np

from harness import stats
from harness.rulebase import (ALPHA, MIN_SEEDS, OUTCOME, Check, M, Result, Rule, _fmt, _missing_result, _no_runs,
                              _opt, _pct, _split, _summary_text)
from harness.verdict import INCONCLUSIVE, NOT_REPRODUCED, NOT_RUN, REPRODUCED


@dataclass(frozen=True)
class _Level(Rule):
    term: M
    level: float
    stat: str = "mean"  # "mean" (interval over seeds) | "each" (every seed, deterministic)
    name: str = ""
    missing: str = "undecided"  # a seed without the metric: "undecided" | "fail"
    sign: ClassVar[int] = 1
    op: ClassVar[str] = ">="

    def to_dict(self) -> dict:
        return _opt({"type": self.kind, "term": self.term.to_dict(), "level": self.level, "stat": self.stat,
                     "name": self.name, "missing": self.missing}, missing="undecided")

    def render(self, level: float = ALPHA) -> str:
        what = "every seed's" if self.stat == "each" else "the mean over seeds of"
        tail = "" if self.stat == "each" else f" (decided by the {_pct(level)} t-interval)"
        return f"{what} {self.term.render()} {self.op} {_fmt(self.level, self.term.unit)}{tail}"

    def decide(self, df, level=ALPHA) -> Result:
        u, title = self.term.unit, self.name or self.term.render()
        v_all = self.term.values(df).to_numpy(dtype=float)
        expected = f"{self.op} {_fmt(self.level, u)}" + ("" if self.stat == "each" else f" ({_pct(level)} CI)")
        if v_all.size == 0:
            return _no_runs(title, expected)
        v, n_missing = _split(v_all)
        ours = _summary_text(v, u, n_missing)
        if n_missing:
            return _missing_result(self, title, expected, ours, n_missing, v_all.size)
        ok = (lambda x: x >= self.level) if self.sign > 0 else (lambda x: x <= self.level)
        if self.stat == "each":
            obs = ", ".join(_fmt(float(x), u) for x in v[:8]) + (" ..." if v.size > 8 else "")
            passed = bool(np.all([ok(x) for x in v]))
            return Result(OUTCOME[passed], [Check(title, expected + " (every seed)", obs, passed)], ours)
        if v.size < 2:
            return Result(INCONCLUSIVE, [Check(title, expected, ours + " (one seed: no interval)", None)], ours)
        lo, hi = stats.t_ci(v, level=1 - 2 * level)
        near, far = (lo, hi) if self.sign > 0 else (hi, lo)
        passed = True if ok(near) else (False if not ok(far) else None)
        obs = f"{_fmt(float(v.mean()), u)} [{_fmt(lo, u)}, {_fmt(hi, u)}] (n={v.size}, {_pct(level)} t-interval)"
        return Result(OUTCOME[passed], [Check(title, expected, obs, passed, level=level)], ours)


@dataclass(frozen=True)
class AtLeast(_Level):
    kind: ClassVar[str] = "at_least"
    sign: ClassVar[int] = 1
    op: ClassVar[str] = ">="


@dataclass(frozen=True)
class AtMost(_Level):
    kind: ClassVar[str] = "at_most"
    sign: ClassVar[int] = -1
    op: ClassVar[str] = "<="


@dataclass(frozen=True)
class InBand(Rule):
    kind: ClassVar[str] = "in_band"
    term: M
    low: float
    high: float
    stat: str = "mean"
    name: str = ""
    missing: str = "undecided"

    def to_dict(self) -> dict:
        return _opt({"type": self.kind, "term": self.term.to_dict(), "low": self.low, "high": self.high,
                     "stat": self.stat, "name": self.name, "missing": self.missing}, missing="undecided")

    def render(self, level: float = ALPHA) -> str:
        u = self.term.unit
        band = f"[{_fmt(self.low, u)}, {_fmt(self.high, u)}]"
        if self.stat == "each":
            return f"every seed's {self.term.render()} inside {band}"
        return (f"the mean over seeds of {self.term.render()} inside {band} (TOST at {level:g}: the {_pct(level)} "
                f"t-interval inside holds, wholly outside fails)")

    def decide(self, df, level=ALPHA) -> Result:
        u, title = self.term.unit, self.name or self.term.render()
        v_all = self.term.values(df).to_numpy(dtype=float)
        expected = f"inside [{_fmt(self.low, u)}, {_fmt(self.high, u)}]"
        if v_all.size == 0:
            return _no_runs(title, expected)
        v, n_missing = _split(v_all)
        ours = _summary_text(v, u, n_missing)
        if n_missing:
            return _missing_result(self, title, expected, ours, n_missing, v_all.size)
        if self.stat == "each":
            passed = bool(np.all((v >= self.low) & (v <= self.high)))
            return Result(OUTCOME[passed], [Check(title, expected, ours, passed)], ours)
        if v.size < 2:
            return Result(INCONCLUSIVE, [Check(title, expected, ours + " (one seed: no interval)", None)], ours)
        lo, hi = stats.t_ci(v, level=1 - 2 * level)
        p = stats.tost(v, self.low, self.high)
        if lo >= self.low and hi <= self.high:
            passed: Optional[bool] = True
        elif hi < self.low or lo > self.high:
            passed = False
        else:
            passed = None
        obs = (f"{_fmt(float(v.mean()), u)} [{_fmt(lo, u)}, {_fmt(hi, u)}] (n={v.size}, {_pct(level)} "
               f"t-interval), TOST p = {p:.3g}")
        return Result(OUTCOME[passed], [Check(title, expected, obs, passed, p_raw=p, level=level)], ours)


@dataclass(frozen=True)
class Equal(Rule):
    kind: ClassVar[str] = "equal"
    term: M
    value: float
    tol: float = 0.0
    name: str = ""
    missing: str = "undecided"

    def to_dict(self) -> dict:
        return _opt({"type": self.kind, "term": self.term.to_dict(), "value": self.value, "tol": self.tol,
                     "name": self.name, "missing": self.missing}, missing="undecided")

    def render(self, level: float = ALPHA) -> str:
        u = self.term.unit
        tol = "exactly" if self.tol == 0 else f"within {_fmt(self.tol, u)} of"
        return f"every seed's {self.term.render()} {tol} {_fmt(self.value, u)}"

    def decide(self, df, level=ALPHA) -> Result:
        u, title = self.term.unit, self.name or self.term.render()
        v_all = self.term.values(df).to_numpy(dtype=float)
        expected = f"{_fmt(self.value, u)}" + (f" +- {_fmt(self.tol, u)}" if self.tol else " exactly")
        if v_all.size == 0:
            return _no_runs(title, expected)
        v, n_missing = _split(v_all)
        if n_missing:
            return _missing_result(self, title, expected, _summary_text(v, u, n_missing), n_missing, v_all.size)
        passed = bool(np.all(np.abs(v - self.value) <= self.tol))
        obs = ", ".join(_fmt(float(x), u) for x in v[:8]) + (" ..." if v.size > 8 else "")
        return Result(OUTCOME[passed], [Check(title, expected, obs, passed)], _summary_text(v, u))


@dataclass(frozen=True)
class Greater(Rule):
    kind: ClassVar[str] = "greater"
    a: M
    b: M
    margin: float = 0.0
    paired: bool = False
    claimed: Optional[float] = None  # the difference the claim states ("by about d"); None = direction only
    stat: str = "test"  # "test" (over seeds) | "each" (seed by seed, deterministic)
    name: str = ""
    missing: str = "undecided"

    def __post_init__(self):
        if self.claimed is not None and self.claimed < self.margin:
            raise ValueError(f"claimed difference {self.claimed} below the margin {self.margin}")

    def to_dict(self) -> dict:
        return _opt({"type": self.kind, "a": self.a.to_dict(), "b": self.b.to_dict(), "margin": self.margin,
                     "paired": self.paired, "claimed": self.claimed, "stat": self.stat, "name": self.name,
                     "missing": self.missing}, missing="undecided")

    @property
    def refute_below(self) -> float:
        return self.margin if self.claimed is None else self.claimed

    def render(self, level: float = ALPHA) -> str:
        du = "pts" if self.a.unit == "%" else self.a.unit
        gap = f" by more than {_fmt(self.margin, du)}" if self.margin else ""
        if self.stat == "each":
            return f"{self.a.render()} > {self.b.render()}{gap} on every seed"
        test = "paired t (the arms share their randomness)" if self.paired else "Welch t"
        size = (f"the claim's difference {_fmt(self.claimed, du)}" if self.claimed is not None
                else f"the margin {_fmt(self.margin, du)} (the claim names no size)")
        return (f"{self.a.render()} > {self.b.render()}{gap}: one-sided {test} at {level:g} with the {_pct(level)} "
                f"interval of the difference above {_fmt(self.margin, du)} holds; that interval wholly below {size} "
                f"fails; at least {MIN_SEEDS} seeds per arm")

    def _arms(self, df) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.a.values(df), self.b.values(df)
        if self.paired:
            seeds = a.index.union(b.index)
            a, b = a.reindex(seeds), b.reindex(seeds)
        return a.to_numpy(dtype=float), b.to_numpy(dtype=float)

    def pvalue(self, df) -> tuple[float, np.ndarray, np.ndarray]:
        """The one-sided p-value of "difference > margin" (NaN when a value is missing or n < 2)."""
        x, y = self._arms(df)
        if min(x.size, y.size) < 2 or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            return float("nan"), x, y
        if self.paired:
            d = x - y - self.margin
            if np.all(d == d[0]):
                return (0.0 if d[0] > 0 else 1.0), x, y
            return float(stats.one_sample(d, 0.0).p), x, y
        if np.ptp(x) == 0 and np.ptp(y) == 0:
            return (0.0 if x[0] - y[0] > self.margin else 1.0), x, y
        return float(stats.welch(x - self.margin, y).p), x, y

    def decide(self, df, level=ALPHA) -> Result:
        u = self.a.unit
        du = "pts" if u == "%" else u
        title = self.name or f"{self.a.render()} > {self.b.render()}"
        p, x, y = self.pvalue(df)
        fx, mx = _split(x)
        fy, my = _split(y)
        ours = (f"{_fmt(float(fx.mean()), u) if fx.size else '-'} vs {_fmt(float(fy.mean()), u) if fy.size else '-'} "
                f"(n={x.size} vs {y.size})")
        if mx or my:
            expected = f"difference > {_fmt(self.margin, du)}"
            return _missing_result(self, title, expected, ours, mx + my, x.size + y.size)
        if self.stat == "each":
            n = min(x.size, y.size)
            passed = bool(n > 0 and np.all(x[:n] - y[:n] > self.margin))
            obs = ", ".join(f"{_fmt(float(i), u)} vs {_fmt(float(j), u)}" for i, j in zip(x[:4], y[:4]))
            return Result(OUTCOME[passed], [Check(title, f"difference > {_fmt(self.margin, du)} on every seed", obs,
                                                  passed)], ours)
        expected = (f"difference > {_fmt(self.margin, du)}; refuted below {_fmt(self.refute_below, du)} "
                    f"({_pct(level)} CI)")
        if min(x.size, y.size) < MIN_SEEDS or math.isnan(p):
            return Result(INCONCLUSIVE, [Check(title, expected + f", >= {MIN_SEEDS} seeds per arm",
                                               ours + " (too few seeds to decide)", None, p_raw=p, level=level)], ours)
        cover = 1 - 2 * level
        if self.paired:
            d = x - y
            lo, hi = stats.t_ci(d, level=cover)
            sd = float(np.std(d, ddof=1))
        else:
            lo, hi = stats.welch_ci(x, y, level=cover)
            sd = math.sqrt((np.var(x, ddof=1) + np.var(y, ddof=1)) / 2)
        diff = float(x.mean() - y.mean())
        n = min(x.size, y.size)
        mdd = stats.min_detectable_difference(sd, n, alpha=level, paired=self.paired)
        obs = (f"diff {_fmt(diff, du)} [{_fmt(lo, du)}, {_fmt(hi, du)}] ({_pct(level)} CI), p = {p:.3g}; "
               f"MDD at {level:g}: {_fmt(mdd, du)}")
        if hi < self.refute_below:
            passed: Optional[bool] = False
        elif p < level and lo > self.margin:
            passed = True
        else:
            passed = None
        return Result(OUTCOME[passed], [Check(title, expected, obs, passed, p_raw=p, level=level)], ours)


@dataclass(frozen=True)
class Share(Rule):
    """The share of seeds on which a 0/1 outcome holds reaches a level, decided by the exact (Clopper-Pearson)
    binomial interval of k successes out of n seeds: holds when its lower end reaches the level, fails when its
    upper end lies below it, undecided otherwise. The outcome must be 0 or 1 on every seed (a t-interval on
    0/1 values is not a proportion's interval)."""

    kind: ClassVar[str] = "share"
    stat: ClassVar[str] = "share"  # decided by an interval over seeds (``Rule.stochastic``)
    term: M
    level: float
    name: str = ""
    missing: str = "undecided"

    def __post_init__(self):
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"a share's level must lie strictly between 0 and 1, got {self.level}")

    def to_dict(self) -> dict:
        return _opt({"type": self.kind, "term": self.term.to_dict(), "level": self.level, "name": self.name,
                     "missing": self.missing}, missing="undecided")

    def render(self, level: float = ALPHA) -> str:
        return (f"the share of seeds with {self.term.render()} = 1 >= {self.level:.0%} (decided by the "
                f"{_pct(level)} exact binomial interval of k of n)")

    def seeds_to_hold(self, level: float = ALPHA) -> int:
        """The fewest seeds with which the rule can hold at all (every seed a success)."""
        n = 1
        while stats.clopper_pearson(n, n, level=1 - 2 * level)[0] < self.level:
            n += 1
        return n

    def decide(self, df, level=ALPHA) -> Result:
        title = self.name or f"share of seeds with {self.term.render()} = 1"
        v_all = self.term.values(df).to_numpy(dtype=float)
        expected = f">= {self.level:.0%} ({_pct(level)} exact binomial interval)"
        if v_all.size == 0:
            return _no_runs(title, expected)
        v, n_missing = _split(v_all)
        k, n = int((v == 1).sum()), int(v.size)
        ours = f"{k} of {n} seeds" if n else "no values"
        if n_missing:
            return _missing_result(self, title, expected, ours, n_missing, v_all.size)
        if not np.all((v == 0) | (v == 1)):
            raise ValueError(f"{self.term.render()} must be 0 or 1 on every seed for a share, got "
                             f"{sorted(set(v.tolist()))[:5]}")
        lo, hi = stats.clopper_pearson(k, n, level=1 - 2 * level)
        passed: Optional[bool] = True if lo >= self.level else (False if hi < self.level else None)
        obs = f"{k} of {n} = {k / n:.0%} [{lo:.0%}, {hi:.0%}] ({_pct(level)} exact binomial interval)"
        return Result(OUTCOME[passed], [Check(title, expected, obs, passed, level=level)], ours)


@dataclass(frozen=True)
class AllOf(Rule):
    kind: ClassVar[str] = "all_of"
    parts: tuple[Rule, ...] = field(default_factory=tuple)

    def __init__(self, *parts: Rule):
        object.__setattr__(self, "parts", tuple(parts))

    def to_dict(self) -> dict:
        return {"type": self.kind, "parts": [p.to_dict() for p in self.parts]}

    def render(self, level: float = ALPHA) -> str:
        return "all of: " + "; ".join(f"({i + 1}) {p.render(level)}" for i, p in enumerate(self.parts))

    def leaves(self) -> list[Rule]:
        return [leaf for p in self.parts for leaf in p.leaves()]

    def decide(self, df, level=ALPHA) -> Result:
        checks, verdicts, ours, parts = [], [], [], []
        for p in self.parts:
            r = p.decide(df, level)
            checks += r.checks
            verdicts.append(r.verdict)
            if r.ours and r.ours != "-":
                ours.append(f"{_short(p)} {r.ours}".strip())
            parts.append({"name": part_name(p), "verdict": r.verdict,
                          **({"reason": r.reason} if r.verdict == NOT_RUN else {})})
        text = "; ".join(ours[:4]) + (" ..." if len(ours) > 4 else "")
        return Result(combine(verdicts), checks, text or "-", parts=parts)


@dataclass(frozen=True)
class NotDecided(Rule):
    kind: ClassVar[str] = "not_decided"
    reason: str = ""
    show: tuple[M, ...] = ()
    name: str = ""

    def to_dict(self) -> dict:
        return _opt({"type": self.kind, "reason": self.reason, "show": [m.to_dict() for m in self.show],
                     "name": self.name}, name="")

    def render(self, level: float = ALPHA) -> str:
        what = f"{self.name}: " if self.name else ""
        return f"{what}not decided at this profile: {self.reason}"

    def decide(self, df, level=ALPHA) -> Result:
        shown = []
        if not df.empty:
            for m in self.show:
                try:
                    v, k = _split(m.values(df).to_numpy(dtype=float))
                except KeyError:
                    continue
                shown.append(f"{m.render()} {_summary_text(v, m.unit, k)}")
        return Result(NOT_RUN, [], "; ".join(shown) or "-", reason=self.reason)


def part_name(rule: Rule) -> str:
    """A part's name for its sub-verdict: its own name, else its terms."""
    name = getattr(rule, "name", "")
    if name:
        return name
    if isinstance(rule, Greater):
        return f"{rule.a.render()} > {rule.b.render()}"
    term = getattr(rule, "term", None)
    if term is not None:
        return term.render()
    if isinstance(rule, AllOf):
        return " and ".join(part_name(p) for p in rule.parts)
    return rule.kind


def _short(rule: Rule) -> str:
    if isinstance(rule, Greater):
        return f"{rule.a.render()} vs {rule.b.render()}:"
    term = getattr(rule, "term", None)
    return f"{term.render()}:" if term is not None else ""


def combine(verdicts: list[str]) -> str:
    """Over the decided parts: all reproduced -> reproduced; any not reproduced -> not reproduced; else
    inconclusive. Parts not decided at this profile leave the others to decide; all of them -> not run."""
    if not verdicts:
        return INCONCLUSIVE
    decided = [v for v in verdicts if v != NOT_RUN]
    if not decided:
        return NOT_RUN
    if NOT_REPRODUCED in decided:
        return NOT_REPRODUCED
    if all(v == REPRODUCED for v in decided):
        return REPRODUCED
    return INCONCLUSIVE


_TYPES = {c.kind: c for c in (AtLeast, AtMost, InBand, Equal, Greater, Share, AllOf, NotDecided)}


def from_dict(d: dict) -> Rule:
    """Rebuild a rule from its stored form (the verdict records keep every rule they were decided by). Rules
    stored by the first decision code (``effect`` beyond the margin) read as ``claimed = margin + effect``."""
    kind = d.get("type")
    if kind not in _TYPES:
        raise ValueError(f"unknown rule type {kind!r}; known: {', '.join(sorted(_TYPES))}")
    if kind == "all_of":
        return AllOf(*(from_dict(p) for p in d["parts"]))
    if kind == "not_decided":
        return NotDecided(d["reason"], tuple(M.from_dict(m) for m in d.get("show", [])), d.get("name", ""))
    kw: dict[str, Any] = {k: v for k, v in d.items() if k != "type"}
    if "effect" in kw:
        effect = kw.pop("effect")
        kw["claimed"] = None if effect is None else kw.get("margin", 0.0) + effect
    for key in ("term", "a", "b"):
        if key in kw:
            kw[key] = M.from_dict(kw[key])
    return _TYPES[kind](**kw)
