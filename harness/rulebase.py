"""The ground the decision rules stand on: what a rule decides (``Check``, ``Result``), the term a rule reads
(``M``: a metric of one arm, or the per-seed mean over several arms), the ``Rule`` base class and the
helpers every rule shares (formatting, missing values, stored fields). The rules themselves and what they
decide are ``harness.rules``; both are decision code (``harness.version``).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

import numpy as np
import pandas as pd

from harness import stats
from harness.verdict import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED

ALPHA = 0.005  # the level of one decided row unless its decision says otherwise (one-sided, per side)
MIN_SEEDS = 5  # per arm, for a comparative hypothesis decided by a test
MISSING = ("undecided", "fail")

OUTCOME = {True: REPRODUCED, False: NOT_REPRODUCED, None: INCONCLUSIVE}


@dataclass(frozen=True)
class Check:
    """One decided part of a rule: what the rule asks, what the runs gave, whether it held."""

    name: str
    expected: str
    observed: str
    passed: Optional[bool]  # None = undecided
    p_raw: Optional[float] = None
    level: Optional[float] = None  # the one-sided level this part was decided at (tests and intervals)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class Result:
    verdict: str
    checks: list[Check]
    ours: str
    reason: str = ""
    parts: list[dict] = field(default_factory=list)  # sub-verdicts of an AllOf: {"name", "verdict"}


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


def _pct(level: float) -> str:
    """The two-sided coverage of the interval whose ends are one-sided tests at ``level``."""
    return f"{100 * (1 - 2 * level):g}%"


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
        """Per-seed values (index: seed, sorted) over every seed any listed arm ran; NaN where a seed's metric
        is missing or one of the arms has no run for that seed (never silently dropped). An arm or a metric
        that no run has is an error naming it (a typo in the rulebook, not an undecided claim)."""
        arms = self.arm_tuple
        if df.empty or "arm" not in df:
            return pd.Series(dtype=float)
        have = sorted(set(df["arm"]))
        absent = [a for a in arms if a not in have]
        if absent:
            raise KeyError(f"the rule names arm(s) {', '.join(absent)} that the runs do not have "
                           f"(arms: {', '.join(map(str, have))})")
        sub = df[df["arm"].isin(arms)]
        if self.metric not in sub:
            raise KeyError(f"no metric {self.metric!r} in the runs of arm(s) {', '.join(arms)}")
        col = pd.to_numeric(sub[self.metric], errors="coerce").astype(float)
        table = col.groupby([sub["seed"], sub["arm"]]).first().unstack("arm")
        table = table.reindex(columns=list(arms))
        return table.mean(axis=1, skipna=False).sort_index()


def _split(v: np.ndarray) -> tuple[np.ndarray, int]:
    """The finite values and how many seeds lack the metric."""
    ok = np.isfinite(v)
    return v[ok], int((~ok).sum())


class Rule:
    kind: ClassVar[str] = ""

    def to_dict(self) -> dict:
        raise NotImplementedError

    def render(self, level: float = ALPHA) -> str:
        raise NotImplementedError

    def leaves(self) -> list["Rule"]:
        return [self]

    def decide(self, df: pd.DataFrame, level: float = ALPHA) -> Result:
        raise NotImplementedError

    @property
    def hash(self) -> str:
        return rule_hash(self)

    def terms(self) -> list[M]:
        out: list[M] = []
        for leaf in self.leaves():
            for key in ("term", "a", "b"):
                t = getattr(leaf, key, None)
                if isinstance(t, M):
                    out.append(t)
            out += list(getattr(leaf, "show", ()))
        return out

    def metrics(self) -> list[str]:
        """Every metric name the rule reads (its identity covers their definitions)."""
        return sorted({t.metric for t in self.terms()})

    def stochastic(self) -> bool:
        """Whether any part is decided by an interval over seeds (a level applies) rather than by assertion."""
        return any(getattr(leaf, "stat", "each") in ("mean", "test", "share") for leaf in self.leaves())


def rule_hash(rule: Rule) -> str:
    return hashlib.sha256(json.dumps(rule.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def _summary_text(v: np.ndarray, unit: str, n_missing: int = 0) -> str:
    miss = f"; {n_missing} seed(s) without a value" if n_missing else ""
    if v.size == 0:
        return "no runs" if not n_missing else f"no values ({n_missing} seed(s) without a value)"
    if v.size == 1:
        return f"{_fmt(float(v[0]), unit)} (n=1{miss})"
    lo, hi = stats.t_ci(v)
    if lo == hi:
        return f"{_fmt(float(v.mean()), unit)} on every seed (n={v.size}{miss})"
    return f"{_fmt(float(v.mean()), unit)} [{_fmt(lo, unit)}, {_fmt(hi, unit)}] (n={v.size}, 95% t-interval{miss})"


def _no_runs(title: str, expected: str) -> Result:
    return Result(INCONCLUSIVE, [Check(title, expected, "no runs", None)], "no runs")


def _missing_result(rule, title: str, expected: str, ours: str, n_missing: int, n: int) -> Result:
    """A seed lacks the metric: undecided, or failed where the rule says a missing value fails."""
    passed = False if getattr(rule, "missing", "undecided") == "fail" else None
    obs = f"{ours}; {n_missing} of {n} seeds lack the metric" + ("" if passed is False else " (undecided)")
    return Result(OUTCOME[passed], [Check(title, expected, obs, passed)], ours)


def _opt(d: dict, **defaults: Any) -> dict:
    """Fields whose value differs from its default (so adding a field leaves older rules' hashes alone)."""
    return {k: v for k, v in d.items() if k not in defaults or defaults[k] != v}
