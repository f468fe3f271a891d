"""Verdicts: reproduced / not reproduced / inconclusive / not run, and how they become test outcomes.

Policy (documented in the README):

* reproduced      -> the test passes;
* not reproduced  -> the test fails, with the posts' value and ours (mean, 95% CI, n) in the message;
* inconclusive    -> the test is reported as XFAIL ("inconclusive: ..."): it ran, but too few seeds (or
  too little power) to decide either way; it does not fail the run;
* not run         -> the test is skipped with its reason (data / weights / device / profile / pending);
* the ``smoke`` profile never issues a verdict: the would-be outcome is kept for debugging, the stored
  verdict is "not run (profile)", and the test passes when the machinery worked.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Sequence

from harness import stats

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not_reproduced"
INCONCLUSIVE = "inconclusive"
NOT_RUN = "not_run"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_RUN)
NOT_RUN_REASONS = ("data", "weights", "device", "profile", "pending")

LABELS = {REPRODUCED: "reproduced", NOT_REPRODUCED: "not reproduced",
          INCONCLUSIVE: "inconclusive", NOT_RUN: "not run"}


@dataclass(frozen=True)
class Check:
    """One decided sub-condition: what the posts imply, what we measured, whether it held."""

    name: str
    expected: str
    observed: str
    passed: Optional[bool]  # None = could not be decided (inconclusive)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Outcome:
    verdict: str
    ours: str  # display string: mean [CI] (n=...)
    checks: list[Check] = field(default_factory=list)
    ours_stats: Optional[dict] = None  # Summary.as_dict() of the headline metric
    reason: str = ""  # for not run / inconclusive / not reproduced
    not_run_reason: str = ""  # one of NOT_RUN_REASONS when verdict == not_run
    tables: list[dict] = field(default_factory=list)  # {"title", "columns", "rows"}
    figures: list[dict] = field(default_factory=list)  # {"kind", "title", ...data}; see harness.report
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # raw numbers kept for recomputation

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}; valid: {', '.join(VERDICTS)}")
        if self.verdict == NOT_RUN and self.not_run_reason not in NOT_RUN_REASONS:
            raise ValueError(f"a 'not run' verdict needs a reason among {NOT_RUN_REASONS}")


def from_checks(checks: Sequence[Check]) -> str:
    """All checks held -> reproduced; any failed -> not reproduced; else (some undecided) inconclusive."""
    if not checks:
        raise ValueError("a verdict needs at least one check")
    if any(c.passed is False for c in checks):
        return NOT_REPRODUCED
    if any(c.passed is None for c in checks):
        return INCONCLUSIVE
    return REPRODUCED


def aggregate(verdicts: Sequence[str]) -> str:
    """Combine sub-claim verdicts into the claim's: all reproduced -> reproduced; any not reproduced ->
    not reproduced; any inconclusive -> inconclusive; otherwise not run."""
    if verdicts and all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    for v in (NOT_REPRODUCED, INCONCLUSIVE):
        if v in verdicts:
            return v
    return NOT_RUN


def decide_greater(a: Sequence[float], b: Sequence[float], *, alpha: float = 0.05, m_tests: int = 1,
                   min_seeds: int = 4, paired: bool = False, effect_of_interest: float | None = None,
                   ) -> tuple[str, stats.Comparison, list[Check]]:
    """Protocol for "A beats B" over seeds (STATISTICS.md): one-sided Welch (Bonferroni/Holm level
    alpha/m_tests for the smallest p) and the BCa CI of the difference must both exclude 0.

    * fewer than ``min_seeds`` per arm, or the exact Mann–Whitney floor cannot reach the level ->
      inconclusive (too few seeds);
    * supported -> reproduced;
    * not supported but the run could detect ``effect_of_interest`` (MDD <= it) -> not reproduced;
      otherwise inconclusive (underpowered).
    """
    comp = stats.compare(a, b, alternative="greater", paired=paired)
    level = alpha / max(1, m_tests)
    n = min(comp.n_a, comp.n_b)
    checks = []
    if n < min_seeds or stats.min_mann_whitney_p(comp.n_a, comp.n_b) > level:
        checks.append(Check("enough seeds", f">= {min_seeds} per arm", f"{comp.n_a} vs {comp.n_b}", None))
        return INCONCLUSIVE, comp, checks
    welch_ok = comp.welch.p < level
    ci_ok = comp.diff_ci[0] > 0
    checks.append(Check("Welch one-sided", f"p < {level:.4g}", f"p = {comp.welch.p:.3g}", welch_ok))
    checks.append(Check("BCa CI of A-B excludes 0", "lower bound > 0",
                        f"[{comp.diff_ci[0]:.4g}, {comp.diff_ci[1]:.4g}]", ci_ok))
    if welch_ok and ci_ok:
        return REPRODUCED, comp, checks
    if effect_of_interest is not None and comp.mdd > effect_of_interest:
        checks.append(Check("power", f"detects {effect_of_interest:.3g}", f"MDD {comp.mdd:.3g}", None))
        return INCONCLUSIVE, comp, [c if c.passed else Check(c.name, c.expected, c.observed, None)
                                    for c in checks]
    return NOT_REPRODUCED, comp, checks


def floor_check(name: str, values: Sequence[float], floor: float, posts: str) -> tuple[Check, stats.Summary]:
    """"The mean reaches ``floor``" over seeds: holds when the mean reaches it, fails when the t-CI's upper
    end stays below it, undecided in between (or with one seed). ``posts`` is the posts' number, shown."""
    summ = stats.summary(values)
    hi = summ.ci_t[1] if len(values) > 1 else float("nan")
    passed = True if summ.mean >= floor else (False if hi == hi and hi < floor else None)
    return Check(name, f"mean >= {100 * floor:.0f}% (posts {posts})", summ.fmt(100, 2, "%"), passed), summ
