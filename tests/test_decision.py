"""Verdicts that depend only on their own rule and runs, identities that cover everything a verdict depends on,
and confirmatory seeds that cannot predate their rule."""
import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from harness import decide as D
from harness import rulebook, version
from harness import rules as R
from harness.rulebook import METRIC_DEFS, RULES, Decision
from harness.store import Store
from tests_support import decided, registered_cases


def _frame(a, b):
    rows = [{"arm": "vgg", "seed": s, "test_acc": v} for s, v in enumerate(a)]
    rows += [{"arm": "convnet", "seed": s, "test_acc": v} for s, v in enumerate(b)]
    return pd.DataFrame(rows)


VGG = ("ltfn8_mnist_vgg_979_vs_973", "")
FRAME = _frame([0.9752, 0.9761, 0.9748, 0.9770, 0.9755], [0.9801, 0.9811, 0.9796, 0.9805, 0.9808])


def test_adding_or_removing_an_unrelated_rule_leaves_every_other_verdict_alone(monkeypatch):
    before = D.derive(*VGG, "cpu", FRAME)
    extra = dict(RULES)
    extra.pop(("counting_regression_head", ""))
    extra[("counting_regression_head", "")] = {"cpu": Decision(R.Greater(R.M("x", "acc"), R.M("y", "acc"))),
                                               "full": RULES[("counting_regression_head", "")]["full"]}
    for rules in (extra, {k: v for k, v in RULES.items() if k != ("counting_regression_head", "")}):
        monkeypatch.setattr(rulebook, "RULES", rules)
        monkeypatch.setattr(D, "RULES", rules)
        after = D.derive(*VGG, "cpu", FRAME)
        assert (after.result.verdict, after.identity, after.result.checks) == \
               (before.result.verdict, before.identity, before.result.checks)


@pytest.mark.parametrize("change", ["alpha", "min_seeds", "statistic", "metric_threshold", "version"])
def test_everything_a_verdict_depends_on_is_in_its_identity(change, monkeypatch):
    d = rulebook.decision(*VGG, "cpu")
    before = d.identity
    if change == "alpha":
        d = dataclasses.replace(d, alpha=0.01)
    elif change == "min_seeds":
        monkeypatch.setattr(rulebook, "MIN_SEEDS", 6)
    elif change == "statistic":
        d = dataclasses.replace(d, rule=dataclasses.replace(d.rule, paired=True))
    elif change == "metric_threshold":
        monkeypatch.setitem(METRIC_DEFS, "test_acc", {"diverged_run_scores": 0.1})
    else:
        monkeypatch.setattr(rulebook, "DECISION_VERSION", "999")
    assert d.identity != before


def test_a_changed_metric_definition_marks_the_stored_verdict_not_current(tmp_path, monkeypatch):
    store = Store(tmp_path)
    cid = "counting_pixel_baseline"
    d = rulebook.decision(cid, "", "cpu")
    seeds = D.confirmatory_seeds(cid, "cpu", 2)
    rec = decided(store, cid, {"pixel": [{"equal_min_acc": 1.0, "various_acc": 0.3}] * 2}, seeds=list(seeds),
                  identity=d.identity, exploratory=False, decision_version=version.DECISION_VERSION)
    assert D.is_current(rec)
    monkeypatch.setitem(METRIC_DEFS, "equal_min_acc", {"crop": "whole image"})
    assert not D.is_current(rec)  # revised: the page says "not yet confirmed" until new seeds decide it


def test_confirmatory_seeds_come_from_the_rules_and_move_with_them(monkeypatch):
    seeds = D.confirmatory_seeds(*VGG[:1], "cpu", 5)
    assert len(set(seeds)) == 5 and all(s >= D.SEED_RANGE[0] for s in seeds)
    assert D.confirmatory_seeds(VGG[0], "cpu", 7)[:5] == seeds  # more seeds extend the set
    assert D.confirmatory_seeds(VGG[0], "full", 5) != seeds
    changed = dict(RULES)
    changed[VGG] = {"cpu": Decision(R.Greater(R.M("vgg", "test_acc", "%"), R.M("convnet", "test_acc", "%"),
                                              claimed=0.007)), "full": RULES[VGG]["full"]}
    monkeypatch.setattr(rulebook, "RULES", changed)
    monkeypatch.setattr(D, "RULES", changed)
    assert D.confirmatory_seeds(VGG[0], "cpu", 5) != seeds


def test_shared_runs_share_their_seeds_and_no_published_verdict_is_on_seeds_0_to_4():
    assert D.confirmatory_seeds("ltfn6_he_xavier_init_better", "cpu", 5) == \
           D.confirmatory_seeds("ltfn7_optimizers_on_mnist", "cpu", 5)
    records = Store(Path(__file__).resolve().parent.parent / "reports" / "store").records()
    assert len(D.latest_decided(records, "cpu")) >= 20  # the published cpu rows decided under this code
    for profile in ("cpu", "full"):
        for rec in D.latest_decided(records, profile).values():
            assert not set(rec["seeds"]) & set(range(5)), rec["claim_id"]
            assert tuple(rec["seeds"]) == D.confirmatory_seeds(rec["claim_id"], profile, len(rec["seeds"]))


def test_every_published_verdict_and_its_runs_come_from_committed_code():
    """Published numbers come from a clean checkout: each current published verdict, and every run it reads,
    was recorded with no uncommitted change to the code, at a commit this repository holds, and its runs at
    the verdict's own commit (the one its page names): a run resumed from older code would stand under a
    commit that did not produce it (``--publish`` resumes only its own commit's runs)."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    records = Store(root / "reports" / "store").records()
    runs = D.run_index(records)
    commits = set()
    for profile in ("cpu", "full"):
        for (cid, var), rec in D.latest_decided(records, profile).items():
            read = [runs[i] for ids in rec["arms"].values() for i in ids]
            for code in [rec["code"]] + [r["git"] for r in read]:
                assert code["dirty"] is False, (cid, var, profile, code)
                assert code["commit"] == rec["code"]["commit"], (cid, var, profile, code, rec["code"])
                commits.add(code["commit"])
    assert commits
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True).returncode:
        pytest.skip("not a git checkout: the commits cannot be looked up")
    for commit in sorted(commits):
        held = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=root, capture_output=True)
        assert held.returncode == 0, f"a published verdict or run names commit {commit}, which this repository lacks"


def test_the_declared_decision_version_matches_the_decision_code():
    assert version.mismatch() == "", version.mismatch()


def test_a_change_to_the_decision_code_is_caught(tmp_path):
    for name in version.DECISION_MODULES:
        (tmp_path / name).write_text((version.HERE / name).read_text())
    same = version.code_digest(tmp_path)
    (tmp_path / "rules.py").write_text((tmp_path / "rules.py").read_text() + "\n# a comment changes nothing\n")
    assert version.code_digest(tmp_path) == same
    base = (tmp_path / "rulebase.py").read_text()
    (tmp_path / "rulebase.py").write_text(base.replace("MIN_SEEDS = 5", "MIN_SEEDS = 4"))
    assert version.code_digest(tmp_path) != same


def test_moving_a_definition_between_decision_modules_keeps_the_digest(tmp_path):
    for name in version.DECISION_MODULES:
        (tmp_path / name).write_text((version.HERE / name).read_text())
    same = version.code_digest(tmp_path)
    rules, base = (tmp_path / "rules.py").read_text(), (tmp_path / "rulebase.py").read_text()
    start = rules.index("def combine(")
    end = rules.index("\n\n\n", start)
    moved = rules[start:end]
    (tmp_path / "rules.py").write_text(rules[:start] + rules[end:] + "\nfrom harness.rulebase import combine\n")
    (tmp_path / "rulebase.py").write_text(base + "\n\n" + moved + "\n")
    assert version.code_digest(tmp_path) == same  # the same statements, laid out differently
    (tmp_path / "rules.py").write_text(rules + "\nfrom harness.rulebase import AtLeast as AtMost\n")
    assert version.code_digest(tmp_path) != same  # a renaming import changes what a name means
    (tmp_path / "rules.py").write_text(rules + "\nfrom scipy.stats import ttest_1samp\n")
    assert version.code_digest(tmp_path) != same  # so does code from outside the decision modules
    (tmp_path / "rules.py").write_text(rules.replace("if NOT_REPRODUCED in decided:", "if NOT_RUN in decided:"))
    assert version.code_digest(tmp_path) != same


def test_a_rule_marked_changed_before_data_had_no_runs_at_that_profile():
    """PRE_DATA says a rule changed before any run at its profile; the published store must agree (no run and
    no verdict there), otherwise the change is a revision after data and belongs in HISTORY."""
    records = Store(Path(__file__).resolve().parent.parent / "reports" / "store").records()
    assert rulebook.PRE_DATA
    for (cid, var), changes in rulebook.PRE_DATA.items():
        for e in changes:
            now = rulebook.decision(cid, var, e.profile)
            assert now is not None and now.rule != e.rule, (cid, e.profile)
            at_profile = [r for r in records if r.get("profile") == e.profile
                          and (r.get("kind") == "run" or r.get("claim_id") == cid)]
            assert not at_profile, f"{cid}: {len(at_profile)} record(s) at {e.profile}: a revision after data"


def test_the_transfer_claims_are_decided_at_cpu_by_declared_lite0_analogues():
    """Issue 20: no transfer claim waits for ResNet-34's weights at cpu. Each has an analogue rule naming the
    backbone that decides it, and the family's cpu budget builds that backbone from its ImageNet weights."""
    import importlib

    transfer = importlib.import_module("benchmarks.test_transfer")
    for cid in transfer.DATASET_OF:
        d = rulebook.decision(cid, "", "cpu")
        assert not isinstance(d.rule, R.NotDecided) and "EfficientNet-Lite0 instead of ResNet-34" in d.analogue, cid
        assert rulebook.decision(cid, "", "full").analogue == ""  # the posts' rule where the posts' network runs
    assert transfer.PRETRAINED["cpu"].arch == "efficientnet_lite0" and transfer.PRETRAINED["full"].arch == "resnet34"
    assert "EfficientNet-Lite0 instead of ResNet-34" in transfer.PRETRAINED_DEVIATION["cpu"]
    control = rulebook.decision("transfer_imagenet_vs_random", "", "cpu").rule
    arms = {arm for leaf in control.leaves() for arm in leaf.b.arm_tuple}
    assert arms == {"paintings-random", "kittencat-random"} and "transfer_imagenet_vs_random" in rulebook.HYPOTHESES


def test_an_analogue_outcome_is_worded_as_the_analogues_in_the_terminal():
    """The terminal lines (summary, per-claim progress, the failure message) word a cpu analogue's outcome as
    the analogue's, never as "not reproduced" beside the posts' number; the posts' rule keeps its words."""
    from harness.verdict import NOT_REPRODUCED, NOT_RUN, REPRODUCED
    from harness.verdicts import outcome_label

    rec = {"claim_id": "kittencat_resnet34_86pct", "variant": "", "verdict": NOT_REPRODUCED}
    assert outcome_label({**rec, "profile": "cpu"}) == "analogue failed"
    assert outcome_label({**rec, "profile": "full"}) == "not reproduced"
    assert outcome_label({**rec, "profile": "smoke", "verdict": NOT_RUN}) == "not run"
    assert outcome_label({**rec, "claim_id": "ltfn9_checkpoint_184mb", "profile": "cpu",
                          "verdict": REPRODUCED}) == "reproduced"


def test_the_counting_claims_are_decided_at_cpu_by_declared_lite0_analogues():
    """Issue 20, the counting half: the five posts' counting claims have cpu analogue rules naming the backbone,
    the family's pretrained cpu budget builds ImageNet EfficientNet-Lite0, and the random-weights control pairs
    the same recipes (1-5 after both stages, 45-49) with and without the ImageNet weights."""
    import importlib

    counting = importlib.import_module("benchmarks.counting")
    claims = importlib.import_module("benchmarks.test_counting")
    for cid in claims.POSTS_CASES:
        d = rulebook.decision(cid, "", "cpu")
        assert not isinstance(d.rule, R.NotDecided) and "EfficientNet-Lite0 instead of ResNet-34" in d.analogue, cid
        assert rulebook.decision(cid, "", "full").analogue == ""
    assert counting.PRETRAINED["cpu"].arch == "efficientnet_lite0" and counting.PRETRAINED["full"].arch == "resnet34"
    assert "EfficientNet-Lite0 instead of ResNet-34" in counting.PRETRAINED_DEVIATION["cpu"]
    control = rulebook.decision("counting_imagenet_vs_random", "", "cpu").rule
    arms = {(leaf.a.arm_tuple, leaf.b.arm_tuple) for leaf in control.leaves()}
    assert arms == {((a,), (f"{a}-random",)) for a in claims.IMAGENET_VS_RANDOM}
    assert "counting_imagenet_vs_random" in rulebook.HYPOTHESES


def test_every_published_verdict_was_decided_at_the_scale_the_code_runs_today():
    """A rule's identity does not cover its experiment's scale (images, epochs, network) nor its seed count,
    yet either can change an outcome. So every current published verdict must carry the budget and the number
    of seeds its claim's case has today: a change after publication fails here until the claim is republished
    (and, where it came after the claim's data, marked as revised)."""
    import json

    root = Path(__file__).resolve().parent.parent
    cases = registered_cases()
    for store in ("store", "matrix/store"):
        records = Store(root / "reports" / store).records()
        for profile in ("cpu", "full"):
            for (cid, var), rec in D.latest_decided(records, profile).items():
                budget = cases[(cid, var)].budgets[profile]
                today = json.loads(json.dumps(budget.as_config()))
                assert rec.get("budget") == today, (f"{store}: {cid} {var!r} at {profile} was decided on budget "
                                                    f"{rec.get('budget')}; its case runs {today} today")
                assert len(rec["seeds"]) == budget.seeds, (f"{store}: {cid} {var!r} at {profile} was decided on "
                                                           f"{len(rec['seeds'])} seeds; its case registers "
                                                           f"{budget.seeds}")


def test_a_published_scale_change_under_an_unchanged_rule_is_marked_as_a_revision():
    """Changing an experiment's scale after its verdict, under the same rule identity, changes the rule's
    meaning after data: the rulebook must record it (an ``Earlier`` entry for the profile, replaced on or after
    the day of the verdict decided at the old scale), so the page marks the row as revised."""
    from harness.verdicts import scale_change, scale_changes

    root = Path(__file__).resolve().parent.parent
    for store in ("store", "matrix/store"):
        by_claim: dict = {}
        for rec in Store(root / "reports" / store).records():
            if rec.get("kind") == "verdict" and rec.get("arms"):
                by_claim.setdefault((rec["claim_id"], rec.get("variant", ""), rec["profile"]), []).append(rec)
        for key, records in by_claim.items():
            for rec, before, moved in scale_changes(records):
                if before.get("identity") != rec.get("identity"):
                    continue
                marks = [e for e in rulebook.HISTORY.get(key[:2], []) if e.profile == key[2]
                         and e.replaced >= before.get("recorded_at", "")[:10]]
                assert marks, (f"{store}: {key} was decided at another scale ({moved}) under the same rule after "
                               f"{before.get('recorded_at')}, without a revision in the rulebook")
    assert scale_change({"budget": {"settings": {"a": 1}}}, {"budget": {"settings": {"a": 2}}}) == ["a"]
    assert scale_change({"budget": {"settings": {"a": 1}}}, {}) == []
    five, eight = ({"exploratory": False, "seeds": list(range(n))} for n in (5, 8))
    assert scale_change(five, eight) == ["seeds per arm"]  # more confirmatory seeds after a verdict: a revision
    assert scale_change(five, dict(eight, exploratory=True)) == []  # seeds by hand decide nothing
    by_hand = dict(eight, exploratory=True)  # an exploratory record between cannot hide the change
    assert scale_changes([five, by_hand, eight]) == [(eight, five, ["seeds per arm"])]
