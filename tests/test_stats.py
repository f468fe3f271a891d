"""harness.stats against scipy, against textbook worked examples, and against the statistics notes' worked tables."""
import math

import numpy as np
import pytest
from scipy import stats as st

from harness import stats

# Welch's t-test, worked example 1 of the Wikipedia article "Welch's t-test" (t = -2.46, p = 0.021).
A1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
A2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]


def test_summary_matches_numpy_and_scipy():
    x = [0.971, 0.975, 0.969, 0.978, 0.973]
    s = stats.summary(x)
    assert s.n == 5 and s.mean == pytest.approx(np.mean(x)) and s.sd == pytest.approx(np.std(x, ddof=1))
    lo, hi = st.t.interval(0.95, 4, loc=np.mean(x), scale=st.sem(x))
    assert s.ci_t == pytest.approx((lo, hi))
    assert s.ci_boot[0] <= s.mean <= s.ci_boot[1]
    assert "n=5" in s.fmt(100, 2, "%")


def test_summary_of_one_and_of_constants():
    assert stats.summary([3.0]).ci_t == (3.0, 3.0)
    s = stats.summary([2.0, 2.0, 2.0])
    assert s.sd == 0 and s.ci_boot == (2.0, 2.0)


def test_welch_textbook_and_scipy():
    r = stats.welch(A1, A2, alternative="two-sided")
    assert r.statistic == pytest.approx(-2.46, abs=0.01)
    assert r.p == pytest.approx(0.021, abs=0.001)
    ref = st.ttest_ind(A2, A1, equal_var=False, alternative="greater")
    assert stats.welch(A2, A1).p == pytest.approx(ref.pvalue)


def test_mann_whitney_exact_small_n_matches_scipy():
    a, b = [5.1, 5.5, 6.0, 6.2], [4.0, 4.4, 4.9, 5.0]
    r = stats.mann_whitney(a, b)
    ref = st.mannwhitneyu(a, b, alternative="greater", method="exact")
    assert r.p == pytest.approx(ref.pvalue) and r.statistic == ref.statistic == 16
    assert r.p == pytest.approx(1 / math.comb(8, 4))  # complete separation: the exact floor


def test_mann_whitney_handles_infinite_steps_to_target():
    steps_a = [300, 350, 400, 420, 500]
    steps_b = [600, math.inf, math.inf, 800, 900]  # non-converged runs count as +inf
    assert stats.mann_whitney(steps_b, steps_a).p < 0.01


@pytest.mark.parametrize("n,floor", [(3, 0.050), (4, 0.014), (5, 0.0040), (6, 0.0011)])
def test_min_mann_whitney_p_matches_statistics_md(n, floor):
    assert stats.min_mann_whitney_p(n, n) == pytest.approx(floor, rel=0.06)


def test_paired_tests_match_scipy():
    a, b = np.array([0.91, 0.93, 0.92, 0.95, 0.94]), np.array([0.90, 0.91, 0.915, 0.93, 0.925])
    assert stats.paired_t(a, b).p == pytest.approx(st.ttest_rel(a, b, alternative="greater").pvalue)
    assert stats.wilcoxon(a, b).p == pytest.approx(st.wilcoxon(a - b, alternative="greater").pvalue)
    assert stats.wilcoxon(a, a).p == 1.0


def test_bootstrap_diff_matches_scipy_bca():
    rng = np.random.default_rng(1)
    a, b = rng.normal(1.0, 1.0, 12), rng.normal(0.0, 1.0, 12)
    ours = stats.bootstrap_diff_ci(a, b)
    ref = st.bootstrap((a, b), lambda x, y, axis=-1: x.mean(axis) - y.mean(axis), method="BCa",
                       n_resamples=stats.BOOT_RESAMPLES, rng=0).confidence_interval
    assert ours == pytest.approx((ref.low, ref.high))
    assert ours[0] < a.mean() - b.mean() < ours[1]
    paired = stats.bootstrap_diff_ci(a, b, paired=True)
    assert paired[0] < (a - b).mean() < paired[1]


def test_hedges_g_worked_example():
    # d = (3 - 5) / 1.5811 = -1.2649; J = 1 - 3 / (4 * 10 - 9) = 0.90323; g = -1.1425
    assert stats.hedges_g([1, 2, 3, 4, 5], [3, 4, 5, 6, 7]) == pytest.approx(-1.1425, abs=1e-4)


def test_prob_superiority_equals_u_over_nm():
    a, b = [3, 5, 5, 8], [1, 5, 6]
    u = st.mannwhitneyu(a, b, alternative="greater").statistic
    assert stats.prob_superiority(a, b) == pytest.approx(u / 12)


def test_holm_textbook():
    # sorted p (0.005, 0.01, 0.03, 0.04) x (4, 3, 2, 1) = (0.02, 0.03, 0.06, 0.04) -> monotone 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_equivalence_band_and_tost():
    x = [0.70, 0.71, 0.72, 0.705, 0.715]
    assert stats.tost(x, 0.68, 0.74) < 0.05
    assert stats.tost(x, 0.70, 0.705) > 0.05


@pytest.mark.parametrize("d,one_sided,two_sided", [(0.5, 51, 64), (0.8, 21, 26), (1.0, 14, 17),
                                                   (1.5, 7, 9), (2.0, 4, 6)])
def test_seeds_needed_matches_statistics_md(d, one_sided, two_sided):
    assert stats.seeds_needed(d, 1.0) == one_sided
    assert stats.seeds_needed(d, 1.0, alternative="two-sided") == two_sided


def test_min_detectable_difference_inverts_power():
    mdd = stats.min_detectable_difference(sd=0.1, n=10)
    assert stats.power(mdd / 0.1, 10) == pytest.approx(0.8, abs=1e-3)


def test_clopper_pearson_matches_claims_md():
    assert stats.clopper_pearson(38, 40) == pytest.approx((0.831, 0.994), abs=6e-4)
    assert stats.clopper_pearson(864, 1000) == pytest.approx((0.841, 0.885), abs=6e-4)
    with pytest.raises(ValueError):
        stats.clopper_pearson(5, 3)


def test_one_sample_matches_scipy():
    gap = [0.08, 0.11, 0.09, 0.12]
    assert stats.one_sample(gap, 0.05).p == pytest.approx(st.ttest_1samp(gap, 0.05, alternative="greater").pvalue)


def test_paired_mdd_and_welch_interval():
    """The paired MDD inverts the one-sample power; the Welch interval matches scipy's."""
    mdd = stats.min_detectable_difference(sd=0.01, n=5, alpha=0.01, paired=True)
    crit = st.t.ppf(1 - 0.01, 4)
    assert st.nct.sf(crit, 4, mdd / 0.01 * math.sqrt(5)) == pytest.approx(0.8, abs=1e-3)
    a, b = np.array([0.9, 0.91, 0.93, 0.92, 0.95]), np.array([0.8, 0.84, 0.81, 0.86, 0.83, 0.85])
    ci = st.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert stats.welch_ci(a, b) == pytest.approx((ci.low, ci.high))


def test_nearly_constant_samples_give_a_p_value_not_a_warning():
    """scipy's 'catastrophic cancellation' warning on nearly identical values (a constant-prediction arm scores
    the same accuracy on every seed, up to rounding) must not stop a session whose warnings are errors; the
    p-value is scipy's unchanged."""
    import warnings

    from harness import stats

    a, b = [0.1135, 0.1135 + 1e-17, 0.1135], [0.2, 0.25, 0.3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for p in (stats.welch(b, a).p, stats.one_sample(a, 0.1).p, stats.paired_t(b, a).p):
            assert 0 <= p <= 1
