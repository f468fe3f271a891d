"""The rule vocabulary: each rule can hold, fail and stay undecided on data that could have come out either
way, and so can every registered rule; rules render their numbers, hash by content and survive the round
trip through the store."""
import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from harness import rules as R
from harness.rulebook import HISTORY, HYPOTHESES, RULES, stochastic_rows
from harness.claims import CATALOGUE
from harness.rules import AllOf, AtLeast, AtMost, Equal, Greater, InBand, M, NotDecided
from tests_support import registered_cases


def df(**arms):
    rows = []
    for arm, values in arms.items():
        for seed, v in enumerate(values):
            rows.append({"arm": arm, "seed": seed, "acc": v})
    return pd.DataFrame(rows)


ACC = M("a", "acc", "%")


@pytest.mark.parametrize("values,verdict", [
    ([0.91, 0.92, 0.93, 0.92, 0.91], R.REPRODUCED),        # CI wholly above 90%
    ([0.70, 0.72, 0.71, 0.69, 0.73], R.NOT_REPRODUCED),    # CI wholly below
    ([0.60, 0.99, 0.80, 0.95, 0.85], R.INCONCLUSIVE),      # CI straddles the level
    ([0.95], R.INCONCLUSIVE),                              # one seed: no interval
])
def test_at_least_decides_on_the_interval(values, verdict):
    assert AtLeast(ACC, 0.90).decide(df(a=values)).verdict == verdict


def test_at_most_mirrors_at_least():
    assert AtMost(ACC, 0.90).decide(df(a=[0.70, 0.72, 0.71])).verdict == R.REPRODUCED
    assert AtMost(ACC, 0.90).decide(df(a=[0.95, 0.96, 0.97])).verdict == R.NOT_REPRODUCED


def test_each_is_a_plain_assertion_on_every_seed():
    assert AtLeast(ACC, 0.5, stat="each").decide(df(a=[0.6, 0.7])).verdict == R.REPRODUCED
    assert AtLeast(ACC, 0.5, stat="each").decide(df(a=[0.6, 0.4])).verdict == R.NOT_REPRODUCED
    assert Equal(ACC, 0.0).decide(df(a=[0.0, 0.0])).verdict == R.REPRODUCED
    assert Equal(ACC, 0.0).decide(df(a=[0.0, 1e-9])).verdict == R.NOT_REPRODUCED
    assert Equal(ACC, math.log(10), 1e-3).decide(df(a=[2.3030, 2.3022])).verdict == R.REPRODUCED


def test_in_band_is_tost():
    inside = [0.709, 0.712, 0.708, 0.711, 0.710]
    assert InBand(ACC, 0.68, 0.74).decide(df(a=inside)).verdict == R.REPRODUCED
    assert InBand(ACC, 0.68, 0.74).decide(df(a=[0.60, 0.61, 0.62, 0.60, 0.61])).verdict == R.NOT_REPRODUCED
    assert InBand(ACC, 0.68, 0.74).decide(df(a=[0.66, 0.70, 0.75, 0.69, 0.72])).verdict == R.INCONCLUSIVE


def test_greater_needs_five_seeds_per_arm():
    res = Greater(M("a", "acc"), M("b", "acc")).decide(df(a=[0.99, 0.98, 0.99, 0.99], b=[0.5, 0.4, 0.5, 0.6]))
    assert res.verdict == R.INCONCLUSIVE and "too few seeds" in res.checks[0].observed


def test_greater_three_outcomes_by_interval_never_by_power():
    rng = np.random.default_rng(0)
    base = rng.normal(0.973, 0.002, 8)
    better = base + 0.006 + rng.normal(0, 0.001, 8)
    g = Greater(M("a", "acc"), M("b", "acc"), claimed=0.006)
    assert g.decide(df(a=better, b=base)).verdict == R.REPRODUCED
    same = rng.normal(0.973, 0.002, 20)
    assert g.decide(df(a=same[:10], b=same[10:])).verdict == R.NOT_REPRODUCED  # interval wholly below +0.6
    direction = Greater(M("a", "acc"), M("b", "acc"))  # no size claimed: refuted only wholly below the margin
    assert direction.decide(df(a=same[:10], b=same[10:])).verdict == R.INCONCLUSIVE


def test_an_interval_wholly_below_the_claimed_effect_refutes_even_underpowered():
    # counting_regression_head's shape: the claimed winner is 20 points behind, 5 noisy seeds per arm
    a = [0.40, 0.55, 0.30, 0.48, 0.37]
    b = [0.62, 0.70, 0.58, 0.66, 0.61]
    res = Greater(M("a", "acc", "%"), M("b", "acc", "%"), claimed=0.05).decide(df(a=a, b=b))
    assert res.verdict == R.NOT_REPRODUCED and "MDD" in res.checks[0].observed
    # ltfn8's shape: -0.48 points, interval reaching just above 0, below the claimed +0.6 points
    x = [0.9750, 0.9762, 0.9741, 0.9770, 0.9752]
    y = [0.9801, 0.9808, 0.9795, 0.9812, 0.9806]
    assert Greater(M("a", "acc", "%"), M("b", "acc", "%"), claimed=0.006).decide(df(a=x, b=y)).verdict == \
        R.NOT_REPRODUCED


def test_greater_margin_and_pairing():
    a = [0.90, 0.91, 0.92, 0.93, 0.94]
    b = [0.84, 0.85, 0.86, 0.87, 0.88]  # exactly 6 points below, seed by seed
    assert Greater(M("a", "acc"), M("b", "acc"), margin=0.05, paired=True).decide(df(a=a, b=b)).verdict == R.REPRODUCED
    assert Greater(M("a", "acc"), M("b", "acc"), margin=0.07, paired=True,
                   claimed=0.08).decide(df(a=a, b=b)).verdict == R.NOT_REPRODUCED
    # unpaired, the same numbers overlap: the spread between seeds hides a 6-point shift less well
    unpaired = Greater(M("a", "acc"), M("b", "acc"), margin=0.05).decide(df(a=a, b=b))
    assert unpaired.checks[0].p_raw > Greater(M("a", "acc"), M("b", "acc"), margin=0.05,
                                              paired=True).decide(df(a=a, b=b)).checks[0].p_raw
    with pytest.raises(ValueError, match="below the margin"):
        Greater(M("a", "acc"), M("b", "acc"), margin=0.1, claimed=0.05)


def test_the_level_is_the_rules_own():
    a = [0.90, 0.93, 0.91, 0.95, 0.92]
    b = [0.86, 0.90, 0.89, 0.85, 0.90]
    g = Greater(M("a", "acc"), M("b", "acc"))
    assert g.decide(df(a=a, b=b), 0.05).verdict == R.REPRODUCED
    assert g.decide(df(a=a, b=b), 0.0005).verdict == R.INCONCLUSIVE
    assert g.decide(df(a=a, b=b), 0.05).checks[0].level == 0.05


def test_a_missing_metric_is_never_silently_fewer_seeds():
    rows = [{"arm": "a", "seed": s, "acc": v} for s, v in enumerate([0.6, 0.7, float("nan"), 0.8, 0.9])]
    frame = pd.DataFrame(rows)
    each = AtLeast(ACC, 0.5, stat="each").decide(frame)
    assert each.verdict == R.INCONCLUSIVE and "1 of 5 seeds lack the metric" in each.checks[0].observed
    assert AtLeast(ACC, 0.5, stat="each", missing="fail").decide(frame).verdict == R.NOT_REPRODUCED
    assert AtLeast(ACC, 0.5).decide(frame).verdict == R.INCONCLUSIVE
    assert Equal(ACC, 0.6).decide(frame).verdict == R.INCONCLUSIVE
    # a seed one arm lacks is missing for a paired comparison too
    two = pd.DataFrame(rows + [{"arm": "b", "seed": s, "acc": 0.1} for s in range(4)])
    assert Greater(M("a", "acc"), M("b", "acc"), paired=True).decide(two).verdict == R.INCONCLUSIVE
    assert M("a", "acc").values(frame).size == 5


def test_a_typo_in_an_arm_or_metric_is_an_error_naming_it():
    with pytest.raises(KeyError, match="arm"):
        AtLeast(M("vggg", "acc"), 0.5).decide(df(vgg=[0.6, 0.7]))
    with pytest.raises(KeyError, match="accc"):
        AtLeast(M("a", "accc"), 0.5).decide(df(a=[0.6, 0.7]))


def test_all_of_and_not_decided():
    rule = AllOf(AtLeast(ACC, 0.5, stat="each"), AtMost(ACC, 0.6, stat="each"))
    assert rule.decide(df(a=[0.55, 0.56])).verdict == R.REPRODUCED
    assert rule.decide(df(a=[0.55, 0.66])).verdict == R.NOT_REPRODUCED
    nd = NotDecided("too small here", show=(ACC,))
    res = nd.decide(df(a=[0.5, 0.6]))
    assert res.verdict == R.NOT_RUN and "too small here" in nd.render() and "55.00%" in res.ours
    # a part this profile does not decide leaves the others to decide, and shows as its own sub-verdict
    mixed = AllOf(AtLeast(ACC, 0.5, stat="each", name="mechanism"), NotDecided("scale", name="accuracy"))
    out = mixed.decide(df(a=[0.55, 0.56]))
    assert out.verdict == R.REPRODUCED
    assert out.parts == [{"name": "mechanism", "verdict": R.REPRODUCED},
                         {"name": "accuracy", "verdict": R.NOT_RUN, "reason": "scale"}]


def test_several_arms_average_per_seed():
    frame = df(a=[1.0, 3.0], b=[3.0, 5.0])
    assert M(("a", "b"), "acc").values(frame).tolist() == [2.0, 4.0]


def test_rules_round_trip_and_hash_by_content():
    rule = AllOf(InBand(ACC, 0.68, 0.74), Greater(M("a", "acc"), M("b", "acc"), margin=0.05, paired=True, claimed=0.07))
    again = R.from_dict(rule.to_dict())
    assert again.hash == rule.hash and again.render() == rule.render()
    moved = AllOf(InBand(ACC, 0.68, 0.75), Greater(M("a", "acc"), M("b", "acc"), margin=0.05, paired=True,
                                                   claimed=0.07))
    assert moved.hash != rule.hash
    assert "68.00%" in rule.render() and "74.00%" in rule.render() and "paired t" in rule.render()
    with pytest.raises(ValueError, match="unknown rule type"):
        R.from_dict({"type": "vibes"})


def test_every_claim_has_a_rule_per_profile_that_renders_and_round_trips():
    claims = {cid for cid, _ in RULES}
    assert claims == set(CATALOGUE)
    for key, by_profile in RULES.items():
        assert set(by_profile) == {"cpu", "full"}, key
        for d in by_profile.values():
            assert d.rule.render() and R.from_dict(d.rule.to_dict()).hash == d.rule.hash
    for key, olds in HISTORY.items():
        assert key in RULES and all(o.rule is None or o.rule.hash != RULES[key][o.profile].rule.hash for o in olds)
        assert all(o.rule is not None or o.text for o in olds)
    controls = {c.id for c in CATALOGUE.values() if c.post == "control"}
    assert controls <= set(HYPOTHESES)


def test_levels_are_fixed_per_row_and_their_sum_is_the_guarantee():
    rows = stochastic_rows("cpu")
    assert len(rows) >= 10 and all(0 < a <= 0.01 for *_, a in rows)
    assert ("ltfn8_mnist_vgg_979_vs_973", "", R.ALPHA) in rows
    assert ("ltfn9_checkpoint_184mb", "", R.ALPHA) not in rows  # deterministic: an assertion, no level


def test_the_old_stored_rules_still_read():
    old = {"type": "greater", "a": M("a", "acc").to_dict(), "b": M("b", "acc").to_dict(), "margin": 0.1,
           "paired": False, "effect": 0.05, "stat": "test", "name": ""}
    assert R.from_dict(old).claimed == pytest.approx(0.15)


def _perfect(values):
    return pd.DataFrame([{"arm": "a", "seed": s, "perfect": v} for s, v in enumerate(values)])


PERFECT = M("a", "perfect")


@pytest.mark.parametrize("values,verdict", [
    ([1] * 12, R.REPRODUCED),             # 12 of 12: exact lower end 0.643 >= 50%
    ([1] * 11 + [0], R.REPRODUCED),       # 11 of 12: 0.552
    ([1] * 9 + [0] * 3, R.INCONCLUSIVE),  # 9 of 12: [0.37, 0.96] straddles 50%
    ([0] * 12, R.NOT_REPRODUCED),         # 0 of 12: upper end 0.357 < 50%
    ([1] * 7, R.INCONCLUSIVE),            # a clean sweep of 7 cannot clear 50% at 0.005
])
def test_a_share_is_decided_by_the_exact_binomial_interval(values, verdict):
    res = R.Share(PERFECT, 0.5).decide(_perfect(values))
    assert res.verdict == verdict, res.checks[0].observed
    assert "exact binomial" in res.checks[0].observed


def test_a_share_needs_enough_seeds_to_hold_and_only_0_or_1_values():
    rule = R.Share(PERFECT, 0.5)
    assert rule.seeds_to_hold() == 8  # 0.005 ** (1 / 8) = 0.516 >= 0.5 > 0.005 ** (1 / 7)
    assert R.Share(PERFECT, 0.5).decide(_perfect([1] * 8)).verdict == R.REPRODUCED
    assert R.Share(PERFECT, 0.5).decide(_perfect([1] * 7)).verdict == R.INCONCLUSIVE
    with pytest.raises(ValueError, match="0 or 1"):
        rule.decide(_perfect([1, 0.5, 1]))
    with pytest.raises(ValueError, match="strictly between"):
        R.Share(PERFECT, 1.0)
    assert rule.decide(_perfect([1, float("nan"), 1])).verdict == R.INCONCLUSIVE  # a missing seed is not a 0
    assert rule.stochastic() and R.from_dict(rule.to_dict()) == rule


# ------------------------------------------------------------------ every registered check can go either way
FAR = 1e9  # the ends of a metric without a bounded range (costs, ratios, sizes, log10 of a rate)


def _candidates(term: M, leaf, n: int) -> list[np.ndarray]:
    """Per-seed values the term's metric can take (an accuracy lies in 0-100%), near the ends of its range and
    at each threshold the rule names: each once the same on every seed and once spread a little (a t-test
    needs some variance). Enough to reach every outcome a rule of the vocabulary can give."""
    lo, hi = (0.0, 1.0) if term.unit == "%" else (-FAR, FAR)
    marks = [getattr(leaf, k, None) for k in ("level", "value", "low", "high")]
    if isinstance(leaf, InBand):
        marks.append((leaf.low + leaf.high) / 2)
    centres = {lo, hi} | {min(max(float(x), lo), hi) for x in marks if isinstance(x, (int, float))}
    out = []
    for c in sorted(centres):
        spread = 1e-3 * max(1.0, abs(c)) * np.arange(n)
        out.append(np.full(n, c))
        out.append(c - spread if c + spread[-1] > hi else c + spread)
    return out


def reachable_outcomes(leaf, alpha: float, n: int) -> set[str]:
    """The outcomes a decided part of a rule gives on n seeds of values its metrics can take."""
    if isinstance(leaf, R.Share):  # a 0/1 outcome per seed: every seed one way or the other
        values = [np.zeros(n), np.ones(n)]
        return {leaf.decide(_frame({leaf.term: v}), alpha).verdict for v in values}
    terms = [leaf.a, leaf.b] if isinstance(leaf, Greater) else [leaf.term]
    got = set()
    with warnings.catch_warnings():  # scipy warns of a t-test on values equal on every seed (TOST's p is shown only)
        warnings.simplefilter("ignore", RuntimeWarning)
        for combo in itertools.product(*(_candidates(t, leaf, n) for t in terms)):
            got.add(leaf.decide(_frame(dict(zip(terms, combo))), alpha).verdict)
            if {R.REPRODUCED, R.NOT_REPRODUCED} <= got:
                break
    return got


def _frame(values: dict) -> pd.DataFrame:
    """Runs of every arm the terms name, one per seed, with the term's metric set to its values."""
    rows = {}
    for term, v in values.items():
        for arm in term.arm_tuple:
            for seed, x in enumerate(v):
                rows.setdefault((arm, seed), {"arm": arm, "seed": seed})[term.metric] = float(x)
    return pd.DataFrame(list(rows.values()))


@pytest.mark.parametrize("leaf,missing", [
    (AtMost(ACC, 1.0), R.NOT_REPRODUCED),               # no accuracy exceeds 100%: cannot fail
    (AtLeast(ACC, 0.0), R.NOT_REPRODUCED),              # nor falls below 0%
    (InBand(ACC, -0.5, 1.5), R.NOT_REPRODUCED),
    (AtLeast(ACC, 1.01), R.REPRODUCED),                 # cannot hold
    (Greater(ACC, M("b", "acc", "%"), claimed=1.5), R.REPRODUCED),  # a difference of accuracies above 100 pts
    (R.Share(M("a", "perfect"), 0.99), R.REPRODUCED),    # 5 of 5 cannot clear 99% at 0.005
])
def test_a_check_that_cannot_go_both_ways_is_found(leaf, missing):
    assert missing not in reachable_outcomes(leaf, R.ALPHA, 5)


def test_every_registered_check_can_hold_and_can_fail():
    """A check that cannot fail is a defect (and one that cannot hold decides nothing): every decided part of
    every registered rule, at every profile, holds on some values its metrics can take and fails on others,
    on the number of seeds its claim's case runs at that profile (a share of perfect runs decided by the
    exact binomial interval cannot hold on too few seeds, even when every run is perfect)."""
    cases = registered_cases()
    checked = 0
    for (cid, var), by_profile in sorted(RULES.items()):
        for profile, d in by_profile.items():
            n = cases[(cid, var)].budgets[profile].seeds
            for leaf in d.rule.leaves():
                if isinstance(leaf, NotDecided):
                    continue
                got = reachable_outcomes(leaf, d.alpha, n)
                assert {R.REPRODUCED, R.NOT_REPRODUCED} <= got, (cid, var, profile, leaf.render(d.alpha), got)
                checked += 1
    assert checked > 100
