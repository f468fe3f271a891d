"""Decision rules as data: a small closed vocabulary that the harness applies to stored runs.

A rule is fixed before its runs exist (see ``harness.rulebook``). Its wording on the report is rendered from
the rule itself, its hash identifies it in every verdict record, and ``decide`` is a pure function of the
rule and a DataFrame of runs (one row per run: ``arm``, ``seed`` and one column per metric), so anyone can
re-derive a verdict from the store.

Vocabulary (every threshold lives here as a value, never in a benchmark module):

* ``AtLeast(term, level)`` / ``AtMost(term, level)`` -- the mean over seeds reaches a level: holds when the
  95% t-interval of the mean lies on the claimed side, fails when it lies wholly on the other side,
  undecided otherwise. ``stat="each"`` is a plain assertion on every seed (deterministic measurements).
* ``InBand(term, low, high)`` -- "about X": equivalence by TOST at alpha (the 90% t-interval inside the
  band) holds; the 95% interval wholly outside fails; otherwise undecided.
* ``Equal(term, value, tol)`` -- every seed within ``tol`` of ``value`` (deterministic claims).
* ``Greater(a, b, margin, paired, effect)`` -- a comparative hypothesis "A exceeds B by more than margin":
  one-sided Welch t (paired t only where the arms share their randomness), decided at the Holm-adjusted
  level across every comparative hypothesis of the profile, and the t-interval of the difference must
  exclude the margin. Fewer than ``MIN_SEEDS`` seeds per arm is undecided (too few seeds); not supported
  but powered to detect ``effect`` at the adjusted level fails; otherwise undecided (underpowered).
  ``stat="each"`` compares seed by seed (deterministic).
* ``AllOf(*rules)`` -- every part holds.
* ``NotDecided(reason)`` -- this profile does not decide the claim; fixed before the runs like any rule.

A term ``M(arms, metric)`` is the per-seed value of a metric; with several arms it is their mean per seed
(e.g. a factor's main effect over the arms of a factorial design).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Optional

import numpy as np
import pandas as pd

from harness import stats
from harness.verdict import INCONCLUSIVE, NOT_REPRODUCED, NOT_RUN, REPRODUCED

ALPHA = 0.05
MIN_SEEDS = 5  # per arm, for a comparative hypothesis decided by a test


@dataclass(frozen=True)
class Check:
    """One decided part of a rule: what the rule asks, what the runs gave, whether it held."""

    name: str
    expected: str
    observed: str
    passed: Optional[bool]  # None = undecided
    p_raw: Optional[float] = None
    p_adj: Optional[float] = None

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class Result:
    verdict: str
    checks: list[Check]
    ours: str
    reason: str = ""


def _fmt(x: float, unit: str) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    if unit == "%":
        return f"{100 * x:.2f}%"
    if unit == "pts":
        return f"{100 * x:.2f} pts"
    ax = abs(x)
    if float(x).is_integer() and ax < 1e15:  # counts (weights, bytes) in full
        return f"{int(x):,}"
    if ax != 0 and (ax >= 1e5 or ax < 1e-3):
        return f"{x:.3g}"
    return f"{x:.4g}"


@dataclass(frozen=True)
class M:
    """A metric of one arm (or the per-seed mean over several arms) of a claim's runs."""

    arms: tuple[str, ...] | str
    metric: str
    unit: str = ""  # "%" shows fractions as percent; "" plain numbers

    @property
    def arm_tuple(self) -> tuple[str, ...]:
        return (self.arms,) if isinstance(self.arms, str) else tuple(self.arms)

    def to_dict(self) -> dict:
        return {"arms": list(self.arm_tuple), "metric": self.metric, "unit": self.unit}

    @classmethod
    def from_dict(cls, d: dict) -> "M":
        arms = tuple(d["arms"])
        return cls(arms[0] if len(arms) == 1 else arms, d["metric"], d.get("unit", ""))

    def render(self) -> str:
        arms = self.arm_tuple
        where = arms[0] if len(arms) == 1 else "mean of (" + ", ".join(arms) + ")"
        return f"{self.metric}[{where}]"

    def values(self, df: pd.DataFrame) -> pd.Series:
        """Per-seed values (index: seed, sorted). Seeds missing from any listed arm are dropped."""
        arms = self.arm_tuple
        if df.empty or "arm" not in df:
            return pd.Series(dtype=float)
        sub = df[df["arm"].isin(arms)]
        if self.metric not in sub:
            raise KeyError(f"no metric {self.metric!r} in the runs of arm(s) {', '.join(arms)}")
        table = sub.pivot_table(index="seed", columns="arm", values=self.metric, aggfunc="first",
                                dropna=False)
        if any(a not in table for a in arms):
            return pd.Series(dtype=float)
        table = table[list(arms)].astype(float).dropna(how="any")
        return table.mean(axis=1).sort_index()


class Rule:
    kind: ClassVar[str] = ""

    def to_dict(self) -> dict:
        raise NotImplementedError

    def render(self) -> str:
        raise NotImplementedError

    def leaves(self) -> list["Rule"]:
        return [self]

    def decide(self, df: pd.DataFrame, adjusted: dict[int, tuple[float, float]] | None = None,
               _start: int = 0) -> Result:
        raise NotImplementedError

    @property
    def hash(self) -> str:
        return rule_hash(self)

    def comparisons(self) -> list["Greater"]:
        """The comparative hypotheses (tests) of this rule, in a fixed order: its Holm family members."""
        return [r for r in self.leaves() if isinstance(r, Greater) and r.stat == "test"]


def rule_hash(rule: Rule) -> str:
    return hashlib.sha256(json.dumps(rule.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def _summary_text(v: np.ndarray, unit: str) -> str:
    if v.size == 0:
        return "no runs"
    if v.size == 1:
        return f"{_fmt(float(v[0]), unit)} (n=1)"
    lo, hi = stats.t_ci(v)
    return f"{_fmt(float(v.mean()), unit)} [{_fmt(lo, unit)}, {_fmt(hi, unit)}] (n={v.size}, 95% t-interval)"


def _observe(rule) -> tuple[Callable[[pd.DataFrame], pd.Series], str, str]:
    """A one-term rule's per-seed value getter, its display unit, and the check's title."""
    return rule.term.values, rule.term.unit, rule.name or rule.term.render()


def _no_runs(title: str, expected: str) -> Result:
    return Result(INCONCLUSIVE, [Check(title, expected, "no runs", None)], "no runs")


@dataclass(frozen=True)
class _Level(Rule):
    term: M
    level: float
    stat: str = "mean"  # "mean" (interval over seeds) | "each" (every seed, deterministic)
    name: str = ""
    sign: ClassVar[int] = 1
    op: ClassVar[str] = ">="

    def to_dict(self) -> dict:
        return {"type": self.kind, "term": self.term.to_dict(), "level": self.level, "stat": self.stat,
                "name": self.name}

    def render(self) -> str:
        what = "every seed's" if self.stat == "each" else "the mean over seeds of"
        tail = "" if self.stat == "each" else " (decided by the 95% t-interval)"
        return f"{what} {self.term.render()} {self.op} {_fmt(self.level, self.term.unit)}{tail}"

    def decide(self, df, adjusted=None, _start=0) -> Result:
        values, u, title = _observe(self)
        v = values(df).to_numpy(dtype=float)
        expected = f"{self.op} {_fmt(self.level, u)}" + ("" if self.stat == "each" else " (95% CI)")
        if v.size == 0:
            return _no_runs(title, expected)
        ours = _summary_text(v, u)
        ok = (lambda x: x >= self.level) if self.sign > 0 else (lambda x: x <= self.level)
        if self.stat == "each":
            obs = ", ".join(_fmt(float(x), u) for x in v[:8]) + (" ..." if v.size > 8 else "")
            passed = bool(np.all([ok(x) for x in v]))
            return Result(REPRODUCED if passed else NOT_REPRODUCED, [Check(title, expected + " (every seed)",
                                                                           obs, passed)], ours)
        if v.size < 2 or not np.all(np.isfinite(v)):
            return Result(INCONCLUSIVE, [Check(title, expected, ours, None)], ours)
        lo, hi = stats.t_ci(v)
        near, far = (lo, hi) if self.sign > 0 else (hi, lo)
        passed = True if ok(near) else (False if not ok(far) else None)
        verdict = {True: REPRODUCED, False: NOT_REPRODUCED, None: INCONCLUSIVE}[passed]
        return Result(verdict, [Check(title, expected, ours, passed)], ours)


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

    def to_dict(self) -> dict:
        return {"type": self.kind, "term": self.term.to_dict(), "low": self.low, "high": self.high,
                "stat": self.stat, "name": self.name}

    def render(self) -> str:
        u = self.term.unit
        if self.stat == "each":
            return f"every seed's {self.term.render()} inside [{_fmt(self.low, u)}, {_fmt(self.high, u)}]"
        return (f"the mean over seeds of {self.term.render()} inside [{_fmt(self.low, u)}, {_fmt(self.high, u)}] "
                f"(TOST at alpha {ALPHA}: the 90% t-interval inside; the 95% interval wholly outside refutes)")

    def decide(self, df, adjusted=None, _start=0) -> Result:
        values, u, title = _observe(self)
        v = values(df).to_numpy(dtype=float)
        expected = f"inside [{_fmt(self.low, u)}, {_fmt(self.high, u)}]"
        if v.size == 0:
            return _no_runs(title, expected)
        ours = _summary_text(v, u)
        if self.stat == "each":
            passed = bool(np.all((v >= self.low) & (v <= self.high)))
            return Result(REPRODUCED if passed else NOT_REPRODUCED, [Check(title, expected, ours, passed)], ours)
        if v.size < 2 or not np.all(np.isfinite(v)):
            return Result(INCONCLUSIVE, [Check(title, expected, ours, None)], ours)
        lo90, hi90 = stats.t_ci(v, level=1 - 2 * ALPHA)
        lo95, hi95 = stats.t_ci(v)
        p = stats.tost(v, self.low, self.high)
        if lo90 >= self.low and hi90 <= self.high:
            passed = True
        elif hi95 < self.low or lo95 > self.high:
            passed = False
        else:
            passed = None
        verdict = {True: REPRODUCED, False: NOT_REPRODUCED, None: INCONCLUSIVE}[passed]
        return Result(verdict, [Check(title, expected + f" (TOST p = {p:.3g})", ours, passed, p_raw=p)], ours)


@dataclass(frozen=True)
class Equal(Rule):
    kind: ClassVar[str] = "equal"
    term: M
    value: float
    tol: float = 0.0
    name: str = ""

    def to_dict(self) -> dict:
        return {"type": self.kind, "term": self.term.to_dict(), "value": self.value, "tol": self.tol,
                "name": self.name}

    def render(self) -> str:
        u = self.term.unit
        tol = "exactly" if self.tol == 0 else f"within {_fmt(self.tol, u)} of"
        return f"every seed's {self.term.render()} {tol} {_fmt(self.value, u)}"

    def decide(self, df, adjusted=None, _start=0) -> Result:
        values, u, title = _observe(self)
        v = values(df).to_numpy(dtype=float)
        expected = f"{_fmt(self.value, u)}" + (f" +- {_fmt(self.tol, u)}" if self.tol else " exactly")
        if v.size == 0:
            return _no_runs(title, expected)
        passed = bool(np.all(np.abs(v - self.value) <= self.tol))
        obs = ", ".join(_fmt(float(x), u) for x in v[:8]) + (" ..." if v.size > 8 else "")
        return Result(REPRODUCED if passed else NOT_REPRODUCED, [Check(title, expected, obs, passed)],
                      _summary_text(v, u))


@dataclass(frozen=True)
class Greater(Rule):
    kind: ClassVar[str] = "greater"
    a: M
    b: M
    margin: float = 0.0
    paired: bool = False
    effect: Optional[float] = None  # smallest effect of interest (beyond the margin) for "refuted"
    stat: str = "test"  # "test" (over seeds, Holm family member) | "each" (seed by seed, deterministic)
    name: str = ""

    def to_dict(self) -> dict:
        return {"type": self.kind, "a": self.a.to_dict(), "b": self.b.to_dict(), "margin": self.margin,
                "paired": self.paired, "effect": self.effect, "stat": self.stat, "name": self.name}

    def render(self) -> str:
        u = self.a.unit
        gap = f" by more than {_fmt(self.margin, 'pts' if u == '%' else u)}" if self.margin else ""
        if self.stat == "each":
            return f"{self.a.render()} > {self.b.render()}{gap} on every seed"
        test = "paired t (the arms share their randomness)" if self.paired else "Welch t"
        eff = (f"; refuted only when powered (80%) to detect {_fmt(self.effect, 'pts' if u == '%' else u)}"
               if self.effect is not None else "; never refuted (no effect of interest declared)")
        return (f"{self.a.render()} > {self.b.render()}{gap}: one-sided {test} at the Holm-adjusted level "
                f"(alpha {ALPHA} across the profile's comparative hypotheses) and the 95% t-interval of the "
                f"difference above {_fmt(self.margin, 'pts' if u == '%' else u)}; at least {MIN_SEEDS} seeds per "
                f"arm{eff}")

    def pvalue(self, df) -> tuple[float, np.ndarray, np.ndarray]:
        a = self.a.values(df)
        b = self.b.values(df)
        if self.paired:
            common = a.index.intersection(b.index)
            a, b = a.loc[common], b.loc[common]
        x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
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

    def decide(self, df, adjusted=None, _start=0) -> Result:
        u = self.a.unit
        du = "pts" if u == "%" else u
        title = self.name or f"{self.a.render()} > {self.b.render()}"
        p, x, y = self.pvalue(df)
        ours = (f"{_fmt(float(x.mean()), u) if x.size else '-'} vs {_fmt(float(y.mean()), u) if y.size else '-'} "
                f"(n={x.size} vs {y.size})")
        if self.stat == "each":
            n = min(x.size, y.size)
            passed = bool(n > 0 and np.all(x[:n] - y[:n] > self.margin))
            obs = ", ".join(f"{_fmt(float(i), u)} vs {_fmt(float(j), u)}" for i, j in zip(x[:4], y[:4]))
            return Result(REPRODUCED if passed else NOT_REPRODUCED,
                          [Check(title, f"difference > {_fmt(self.margin, du)} on every seed", obs, passed)], ours)
        expected = f"difference > {_fmt(self.margin, du)}"
        if min(x.size, y.size) < MIN_SEEDS or math.isnan(p):
            return Result(INCONCLUSIVE, [Check(title, expected + f", >= {MIN_SEEDS} seeds per arm",
                                               ours + " (too few seeds to decide)", None, p_raw=p)], ours)
        if self.paired:
            d = x - y
            lo, hi = stats.t_ci(d)
            sd = float(np.std(d, ddof=1))
        else:
            lo, hi = stats.welch_ci(x, y)
            sd = math.sqrt((np.var(x, ddof=1) + np.var(y, ddof=1)) / 2)
        p_adj, level = (adjusted or {}).get(_start, (p, ALPHA))
        diff = float(x.mean() - y.mean())
        n = min(x.size, y.size)
        mdd = stats.min_detectable_difference(sd, n, alpha=level, paired=self.paired)
        obs = (f"diff {_fmt(diff, du)} [{_fmt(lo, du)}, {_fmt(hi, du)}], p = {p:.3g}, Holm p = {p_adj:.3g}; "
               f"MDD at level {level:.3g}: {_fmt(mdd, du)}")
        if p_adj < ALPHA and lo > self.margin:
            passed: Optional[bool] = True
        elif self.effect is not None and mdd <= self.effect:
            passed = False
        else:
            passed = None
            obs += " (underpowered)"
        verdict = {True: REPRODUCED, False: NOT_REPRODUCED, None: INCONCLUSIVE}[passed]
        return Result(verdict, [Check(title, expected, obs, passed, p_raw=p, p_adj=p_adj)], ours)


@dataclass(frozen=True)
class AllOf(Rule):
    kind: ClassVar[str] = "all_of"
    parts: tuple[Rule, ...] = field(default_factory=tuple)

    def __init__(self, *parts: Rule):
        object.__setattr__(self, "parts", tuple(parts))

    def to_dict(self) -> dict:
        return {"type": self.kind, "parts": [p.to_dict() for p in self.parts]}

    def render(self) -> str:
        return "all of: " + "; ".join(f"({i + 1}) {p.render()}" for i, p in enumerate(self.parts))

    def leaves(self) -> list[Rule]:
        return [leaf for p in self.parts for leaf in p.leaves()]

    def decide(self, df, adjusted=None, _start=0) -> Result:
        checks, verdicts, ours = [], [], []
        k = _start
        for p in self.parts:
            r = p.decide(df, adjusted, k)
            k += len(p.comparisons())
            checks += r.checks
            verdicts.append(r.verdict)
            ours.append(r.ours)
        shown = [f"{_short(p)} {o}" for p, o in zip(self.parts, ours)]
        return Result(combine(verdicts), checks, "; ".join(shown[:4]) + (" ..." if len(shown) > 4 else ""))


@dataclass(frozen=True)
class NotDecided(Rule):
    kind: ClassVar[str] = "not_decided"
    reason: str = ""
    show: tuple[M, ...] = ()

    def to_dict(self) -> dict:
        return {"type": self.kind, "reason": self.reason, "show": [m.to_dict() for m in self.show]}

    def render(self) -> str:
        return f"not decided at this profile: {self.reason}"

    def decide(self, df, adjusted=None, _start=0) -> Result:
        shown = [f"{m.render()} {_summary_text(m.values(df).to_numpy(dtype=float), m.unit)}"
                 for m in self.show] if not df.empty else []
        return Result(NOT_RUN, [], "; ".join(shown) or "-", reason=self.reason)


def _short(rule: Rule) -> str:
    if isinstance(rule, Greater):
        return f"{rule.a.render()} vs {rule.b.render()}:"
    term = getattr(rule, "term", None)
    return f"{term.render()}:" if term is not None else ""


def combine(verdicts: list[str]) -> str:
    """All parts reproduced -> reproduced; any not reproduced -> not reproduced; else inconclusive."""
    if not verdicts:
        return INCONCLUSIVE
    if NOT_REPRODUCED in verdicts:
        return NOT_REPRODUCED
    if all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    if all(v == NOT_RUN for v in verdicts):
        return NOT_RUN
    return INCONCLUSIVE


_TYPES = {c.kind: c for c in (AtLeast, AtMost, InBand, Equal, Greater, AllOf, NotDecided)}


def from_dict(d: dict) -> Rule:
    """Rebuild a rule from its stored form (the verdict records keep every rule they were decided by)."""
    kind = d.get("type")
    if kind not in _TYPES:
        raise ValueError(f"unknown rule type {kind!r}; known: {', '.join(sorted(_TYPES))}")
    if kind == "all_of":
        return AllOf(*(from_dict(p) for p in d["parts"]))
    if kind == "not_decided":
        return NotDecided(d["reason"], tuple(M.from_dict(m) for m in d.get("show", [])))
    kw: dict[str, Any] = {k: v for k, v in d.items() if k != "type"}
    for key in ("term", "a", "b"):
        if key in kw:
            kw[key] = M.from_dict(kw[key])
    return _TYPES[kind](**kw)


def holm_adjust(pvalues: dict[Any, float]) -> dict[Any, tuple[float, float]]:
    """Holm over a family: key -> (adjusted p, the level that hypothesis was compared against).
    Missing p-values (hypotheses not run) count as 1, so the family size stays as declared."""
    keys = list(pvalues)
    ps = [1.0 if (pvalues[k] is None or math.isnan(pvalues[k])) else float(pvalues[k]) for k in keys]
    adj = stats.holm(ps) if ps else []
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    level = {}
    for rank, i in enumerate(order):
        level[keys[i]] = ALPHA / (len(ps) - rank)
    return {k: (adj[i], level[k]) for i, k in enumerate(keys)}
