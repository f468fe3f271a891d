"""The rule vocabulary: each rule can hold, fail and stay undecided on data that could have come out either
way; rules render their numbers, hash by content and survive the round trip through the store."""
import math

import numpy as np
import pandas as pd
import pytest

from harness import rules as R
from harness.rulebook import HISTORY, HYPOTHESES, RULES, comparative_family
from harness.claims import CATALOGUE
from harness.rules import AllOf, AtLeast, AtMost, Equal, Greater, InBand, M, NotDecided


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


def test_greater_holds_fails_when_powered_and_is_underpowered_otherwise():
    rng = np.random.default_rng(0)
    base = rng.normal(0.973, 0.002, 8)
    better = base + 0.006 + rng.normal(0, 0.001, 8)
    g = Greater(M("a", "acc"), M("b", "acc"), effect=0.01)
    assert g.decide(df(a=better, b=base)).verdict == R.REPRODUCED
    same = rng.normal(0.973, 0.002, 20)
    assert g.decide(df(a=same[:10], b=same[10:])).verdict == R.NOT_REPRODUCED  # MDD < 1 point: refuted
    tiny = Greater(M("a", "acc"), M("b", "acc"), effect=0.0001)
    assert tiny.decide(df(a=same[:10], b=same[10:])).verdict == R.INCONCLUSIVE  # cannot see 0.01 points
    never = Greater(M("a", "acc"), M("b", "acc"))
    assert never.decide(df(a=same[:10], b=same[10:])).verdict == R.INCONCLUSIVE  # no effect declared


def test_greater_margin_and_pairing():
    a = [0.90, 0.91, 0.92, 0.93, 0.94]
    b = [0.84, 0.85, 0.86, 0.87, 0.88]  # exactly 6 points below, seed by seed
    assert Greater(M("a", "acc"), M("b", "acc"), margin=0.05, paired=True).decide(df(a=a, b=b)).verdict == R.REPRODUCED
    assert Greater(M("a", "acc"), M("b", "acc"), margin=0.07, paired=True,
                   effect=0.01).decide(df(a=a, b=b)).verdict == R.NOT_REPRODUCED
    # unpaired, the same numbers overlap: the spread between seeds hides a 6-point shift less well
    unpaired = Greater(M("a", "acc"), M("b", "acc"), margin=0.05).decide(df(a=a, b=b))
    assert unpaired.checks[0].p_raw > Greater(M("a", "acc"), M("b", "acc"), margin=0.05,
                                              paired=True).decide(df(a=a, b=b)).checks[0].p_raw


def test_holm_adjusts_across_the_family():
    adj = R.holm_adjust({"x": 0.01, "y": 0.04, "z": None})
    assert adj["x"] == (pytest.approx(0.03), pytest.approx(0.05 / 3))
    assert adj["y"][0] == pytest.approx(0.08) and adj["z"][0] == 1.0
    a = [0.90, 0.91, 0.92, 0.93, 0.94]
    b = [0.80, 0.81, 0.82, 0.83, 0.84]
    g = Greater(M("a", "acc"), M("b", "acc"))
    assert g.decide(df(a=a, b=b), {0: (0.2, 0.01)}).verdict == R.INCONCLUSIVE  # held back by the family


def test_all_of_and_not_decided():
    rule = AllOf(AtLeast(ACC, 0.5, stat="each"), AtMost(ACC, 0.6, stat="each"))
    assert rule.decide(df(a=[0.55, 0.56])).verdict == R.REPRODUCED
    assert rule.decide(df(a=[0.55, 0.66])).verdict == R.NOT_REPRODUCED
    nd = NotDecided("too small here", show=(ACC,))
    res = nd.decide(df(a=[0.5, 0.6]))
    assert res.verdict == R.NOT_RUN and "too small here" in nd.render() and "55.00%" in res.ours


def test_several_arms_average_per_seed():
    frame = df(a=[1.0, 3.0], b=[3.0, 5.0])
    assert M(("a", "b"), "acc").values(frame).tolist() == [2.0, 4.0]


def test_rules_round_trip_and_hash_by_content():
    rule = AllOf(InBand(ACC, 0.68, 0.74), Greater(M("a", "acc"), M("b", "acc"), margin=0.05, paired=True, effect=0.02))
    again = R.from_dict(rule.to_dict())
    assert again.hash == rule.hash and again.render() == rule.render()
    moved = AllOf(InBand(ACC, 0.68, 0.75), Greater(M("a", "acc"), M("b", "acc"), margin=0.05, paired=True, effect=0.02))
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
        assert key in RULES and all(o.rule.hash != RULES[key][o.profile].rule.hash for o in olds)
    controls = {c.id for c in CATALOGUE.values() if c.post == "control"}
    assert controls <= set(HYPOTHESES)


def test_the_comparative_family_is_declared_in_advance():
    fam = comparative_family("cpu")
    assert len(fam) == len(set(fam)) >= 10
    assert ("ltfn8_mnist_vgg_979_vs_973", "", 0) in fam
