"""Statistics for deciding claims over seeds (see docs/statistics.md for the method).

Pure functions on arrays of per-seed scores. Everything returns plain floats / dataclasses so that the
store can keep the numbers and a verdict can be recomputed from them.

Conventions: ``alternative='greater'`` tests "A > B"; all CIs are 95% unless ``level`` says otherwise;
bootstrap resampling is seeded (``rng=0``) so the same scores always give the same interval.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy import stats as st

ArrayLike = Sequence[float] | np.ndarray
BOOT_RESAMPLES = 9999


def _arr(x: ArrayLike) -> np.ndarray:
    a = np.asarray(x, dtype=float).ravel()
    if a.size == 0:
        raise ValueError("no scores given")
    return a


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    sd: float  # sample standard deviation (ddof=1); 0 for n == 1
    se: float
    ci_t: tuple[float, float]  # Student-t interval of the mean
    ci_boot: tuple[float, float]  # bootstrap (BCa, percentile fallback) interval of the mean
    level: float = 0.95

    def as_dict(self) -> dict:
        return asdict(self)

    def fmt(self, scale: float = 1.0, digits: int = 2, unit: str = "") -> str:
        """``mean ± half-width [lo, hi] (n=…)`` for tables."""
        if self.n == 1:
            return f"{self.mean * scale:.{digits}f}{unit} (n=1)"
        lo, hi = self.ci_t
        return (
            f"{self.mean * scale:.{digits}f}{unit} "
            f"[{lo * scale:.{digits}f}, {hi * scale:.{digits}f}] (n={self.n})"
        )


def t_ci(x: ArrayLike, level: float = 0.95) -> tuple[float, float]:
    a = _arr(x)
    if a.size < 2 or not np.all(np.isfinite(a)):
        m = float(np.mean(a))
        return (m, m) if a.size < 2 else (float("nan"), float("nan"))
    se = float(np.std(a, ddof=1) / math.sqrt(a.size))
    h = float(st.t.ppf(0.5 + level / 2, a.size - 1)) * se
    m = float(a.mean())
    return (m - h, m + h)


def bootstrap_ci(x: ArrayLike, level: float = 0.95, statistic=np.mean) -> tuple[float, float]:
    """BCa bootstrap CI of a one-sample statistic; percentile when BCa is undefined (e.g. all equal)."""
    a = _arr(x)
    if a.size < 2 or np.ptp(a) == 0 or not np.all(np.isfinite(a)):
        m = float(statistic(a))
        return (m, m)
    stat = lambda s, axis=-1: statistic(s, axis=axis)  # noqa: E731
    for method in ("BCa", "percentile"):
        with np.errstate(all="ignore"):
            res = st.bootstrap((a,), stat, confidence_level=level, method=method,
                               n_resamples=BOOT_RESAMPLES, rng=0)
        lo, hi = res.confidence_interval
        if np.isfinite(lo) and np.isfinite(hi):
            return (float(lo), float(hi))
    return (float("nan"), float("nan"))


def summary(x: ArrayLike, level: float = 0.95) -> Summary:
    a = _arr(x)
    sd = float(np.std(a, ddof=1)) if a.size > 1 else 0.0
    return Summary(
        n=int(a.size), mean=float(np.mean(a)), sd=sd, se=sd / math.sqrt(a.size),
        ci_t=t_ci(a, level), ci_boot=bootstrap_ci(a, level), level=level,
    )


@dataclass(frozen=True)
class TestResult:
    name: str
    statistic: float
    p: float
    alternative: str

    def as_dict(self) -> dict:
        return asdict(self)


@contextlib.contextmanager
def _near_constant_ok():
    """scipy warns when a sample's values are nearly identical (its variance is then mostly rounding); the
    p-value it returns is still the test's, and callers handle exactly constant samples themselves, so the
    warning is not allowed to stop a session that turns warnings into errors (a constant-prediction arm
    scores the same accuracy on every seed up to rounding)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Precision loss occurred in moment calculation",
                                category=RuntimeWarning)
        yield


def welch(a: ArrayLike, b: ArrayLike, alternative: str = "greater") -> TestResult:
    with _near_constant_ok():
        r = st.ttest_ind(_arr(a), _arr(b), equal_var=False, alternative=alternative)
    return TestResult("welch_t", float(r.statistic), float(r.pvalue), alternative)


def mann_whitney(a: ArrayLike, b: ArrayLike, alternative: str = "greater") -> TestResult:
    """Mann–Whitney U; exact distribution for small samples without ties (scipy's 'auto').

    Infinite values are ranks like any other (non-converged runs counted as +inf, AlgoPerf style).
    """
    r = st.mannwhitneyu(_arr(a), _arr(b), alternative=alternative, method="auto")
    return TestResult("mann_whitney_u", float(r.statistic), float(r.pvalue), alternative)


def one_sample(x: ArrayLike, mu: float = 0.0, alternative: str = "greater") -> TestResult:
    """One-sample t-test of mean(x) against ``mu`` (e.g. "train - test accuracy > 0")."""
    with _near_constant_ok():
        r = st.ttest_1samp(_arr(x), mu, alternative=alternative)
    return TestResult("one_sample_t", float(r.statistic), float(r.pvalue), alternative)


def paired_t(a: ArrayLike, b: ArrayLike, alternative: str = "greater") -> TestResult:
    with _near_constant_ok():
        r = st.ttest_rel(_arr(a), _arr(b), alternative=alternative)
    return TestResult("paired_t", float(r.statistic), float(r.pvalue), alternative)


def wilcoxon(a: ArrayLike, b: ArrayLike, alternative: str = "greater") -> TestResult:
    """Wilcoxon signed-rank on seed-paired differences (exact for small n without ties/zeros)."""
    d = _arr(a) - _arr(b)
    if np.all(d == 0):
        return TestResult("wilcoxon", 0.0, 1.0, alternative)
    r = st.wilcoxon(d, alternative=alternative, method="auto")
    return TestResult("wilcoxon", float(r.statistic), float(r.pvalue), alternative)


def bootstrap_diff_ci(a: ArrayLike, b: ArrayLike, paired: bool = False,
                      level: float = 0.95) -> tuple[float, float]:
    """BCa bootstrap CI of mean(A) − mean(B) (independent resampling, or of paired differences)."""
    x, y = _arr(a), _arr(b)
    if paired:
        return bootstrap_ci(x - y, level)
    if (np.ptp(x) == 0 and np.ptp(y) == 0) or x.size < 2 or y.size < 2:
        d = float(x.mean() - y.mean())
        return (d, d)
    stat = lambda s, t, axis=-1: np.mean(s, axis=axis) - np.mean(t, axis=axis)  # noqa: E731
    for method in ("BCa", "percentile"):
        with np.errstate(all="ignore"):
            res = st.bootstrap((x, y), stat, confidence_level=level, method=method,
                               n_resamples=BOOT_RESAMPLES, rng=0)
        lo, hi = res.confidence_interval
        if np.isfinite(lo) and np.isfinite(hi):
            return (float(lo), float(hi))
    return (float("nan"), float("nan"))


def hedges_g(a: ArrayLike, b: ArrayLike) -> float:
    """Standardised mean difference with Hedges' small-sample correction J = 1 − 3/(4(nA+nB)−9)."""
    x, y = _arr(a), _arr(b)
    nx, ny = x.size, y.size
    dof = nx + ny - 2
    if dof < 1:
        return float("nan")
    pooled = math.sqrt(((nx - 1) * np.var(x, ddof=1 if nx > 1 else 0)
                        + (ny - 1) * np.var(y, ddof=1 if ny > 1 else 0)) / dof)
    diff = float(x.mean() - y.mean())
    if pooled == 0:
        return 0.0 if diff == 0 else math.copysign(float("inf"), diff)
    j = 1 - 3 / (4 * (nx + ny) - 9)
    return j * diff / pooled


def prob_superiority(a: ArrayLike, b: ArrayLike) -> float:
    """P(A > B) = U/(nA·nB), ties counting one half (common-language effect size)."""
    x, y = _arr(a), _arr(b)
    gt = (x[:, None] > y[None, :]).sum()
    eq = (x[:, None] == y[None, :]).sum()
    return float((gt + 0.5 * eq) / (x.size * y.size))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the input order."""
    p = np.asarray(pvalues, dtype=float)
    m = p.size
    order = np.argsort(p, kind="stable")
    adj = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, (m - rank) * p[idx])
        adj[idx] = min(1.0, running)
    return adj.tolist()


def tost(x: ArrayLike, low: float, high: float) -> float:
    """Two one-sided t-tests that mean(x) lies inside (low, high); returns the larger one-sided p."""
    a = _arr(x)
    if a.size < 2:
        return float("nan")
    p_low = st.ttest_1samp(a, low, alternative="greater").pvalue
    p_high = st.ttest_1samp(a, high, alternative="less").pvalue
    return float(max(p_low, p_high))


def _power_t(d: float, n: int, alpha: float, alternative: str, paired: bool = False) -> float:
    """Power of the t-test at standardised effect d (noncentral t): two samples of n, or (``paired``) n
    paired differences with d = mean difference / sd of the differences."""
    dof, nc = (n - 1, d * math.sqrt(n)) if paired else (2 * n - 2, d * math.sqrt(n / 2))
    if alternative == "two-sided":
        crit = st.t.ppf(1 - alpha / 2, dof)
        return float(st.nct.sf(crit, dof, nc) + st.nct.cdf(-crit, dof, nc))
    crit = st.t.ppf(1 - alpha, dof)
    return float(st.nct.sf(crit, dof, nc))


def power(d: float, n: int, alpha: float = 0.05, alternative: str = "greater") -> float:
    if n < 2:
        return float("nan")
    return _power_t(abs(d), n, alpha, alternative)


def seeds_needed(delta: float, sd: float, power_target: float = 0.8, alpha: float = 0.05,
                 alternative: str = "greater", cap: int = 10_000) -> int:
    """Seeds per arm for a two-sample t-test to detect ``delta`` given seed ``sd`` (noncentral t)."""
    if sd <= 0:
        return 2
    d = abs(delta) / sd
    if d == 0:
        return cap
    n = 2
    while n < cap and _power_t(d, n, alpha, alternative) < power_target:
        n += 1
    return n


def min_detectable_difference(sd: float, n: int, power_target: float = 0.8, alpha: float = 0.05,
                              alternative: str = "greater", paired: bool = False) -> float:
    """Smallest true difference the run could detect with the given power (bisection on d); ``paired``: n
    paired differences whose sd is ``sd``."""
    if n < 2 or sd <= 0:
        return float("nan") if n < 2 else 0.0
    lo, hi = 0.0, 100.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if _power_t(mid, n, alpha, alternative, paired) >= power_target:
            hi = mid
        else:
            lo = mid
    return hi * sd


def welch_ci(x: ArrayLike, y: ArrayLike, level: float = 0.95) -> tuple[float, float]:
    """Welch-Satterthwaite t-interval of mean(x) - mean(y)."""
    a, b = _arr(x), _arr(y)
    va, vb = np.var(a, ddof=1) / a.size, np.var(b, ddof=1) / b.size
    se = math.sqrt(va + vb)
    d = float(a.mean() - b.mean())
    if se == 0:
        return d, d
    dof = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    h = float(st.t.ppf(0.5 + level / 2, dof)) * se
    return d - h, d + h


def min_mann_whitney_p(n_a: int, n_b: int) -> float:
    """Smallest attainable one-sided exact Mann–Whitney p with these group sizes: 1 / C(nA+nB, nA)."""
    return 1.0 / math.comb(n_a + n_b, n_a)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial CI for k successes out of n."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    r = st.binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    return (float(r.low), float(r.high))
