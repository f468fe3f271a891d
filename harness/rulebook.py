"""The decision rules of every claim, per profile, fixed before their runs (pre-registration).

``RULES[(claim_id, variant)]`` maps a profile to a ``Decision``: the rule, the level it is decided at and,
where a scaled-down profile cannot reach the posts' level, the words saying which qualitative version of the
claim it decides instead (an *analogue* rule, whose outcome is the analogue's, never a verdict on the posts'
number). The smoke profile never decides (``harness.plugin`` stores its would-be outcome only).

A verdict's **identity** (:func:`identity`) is everything that can change it: the rule, its level, the seed
minimum, the decision code's version (``harness.version``) and the definitions of the metrics it reads
(``METRIC_DEFS``: thresholds that live inside a metric, read from here by the benchmarks). The **confirmatory
seeds** of a claim are drawn from the identities of every rule that reads its experiments (its seed group,
``SEED_GROUPS``), so no deciding run can exist before its rule; runs on other seeds are exploratory.

Multiplicity: each decided row is tested at its own level, fixed here before the runs (``ALPHA`` = 0.005
one-sided unless a decision says otherwise; a weighted Bonferroni scheme with equal weights). A verdict
never depends on another claim's p-value; the index states the suite's guarantee, the expected number of
false "reproduced" being at most the sum of the levels of the rows with a random component.

``HISTORY`` keeps the rules that decided a claim before the current one, each with the date it was
replaced and why; the report shows them beside the current one ("rule revised after data").

Arms named in the rules are the labels each claim test hands over with its runs; metrics are the
``metrics`` each run record carries. No benchmark module holds a threshold.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

from harness.claims import CATALOGUE
from harness.rules import (ALPHA, MIN_SEEDS, AllOf, AtLeast, AtMost, Equal, Greater, InBand, M, NotDecided, Rule,
                           Share)
from harness.version import DECISION_VERSION

LN10 = math.log(10.0)

# Thresholds that live inside a metric's definition (what a benchmark computes per run). Benchmarks read them
# from here; a verdict's identity covers the definitions of the metrics its rule reads, so changing one marks
# those claims revised and re-draws their confirmatory seeds (new runs).
METRIC_DEFS: dict[str, dict] = {
    "perfect": {"max_final_error_rate": 0.001, "diverged_run": 0.0},
    "saturated_after": {"softmax_max_above": 0.99},
    "saturated": {"softmax_max_above": 0.99},
    "test_acc": {"diverged_run_scores": 0.0},
    "acc": {"diverged_run_scores": 0.0},
    "acc_stage1": {"diverged_run_scores": 0.0},
    "acc_stage2": {"diverged_run_scores": 0.0},
    "best_acc_last_stage": {"diverged_run_scores": 0.0},
    "acc_above_constant": {"constant": "share of the most frequent label in the evaluated test images"},
    "lr_falling_share": {"window": [1e-5, 1e-3], "curve": "fastai's shown curve (first 10, last 5 dropped)"},
    "lr_argmin_log10": {"curve": "fastai's shown curve (first 10, last 5 dropped)"},
}


def metric_def(metric: str, key: str):
    """One threshold of a metric's definition (a KeyError names what is missing)."""
    return METRIC_DEFS[metric][key]


# Claims whose runs are shared share their confirmatory seeds: the families of the MNIST ConvNet train the
# same (init, optimiser, rate) runs. Every other family is its own group.
SEED_GROUPS = {"init": "convnet-mnist", "optimizers": "convnet-mnist"}


@dataclass(frozen=True)
class Decision:
    rule: Rule
    analogue: str = ""  # "" = the posts' rule; else what the scaled-down profile decides instead, in short
    alpha: float = ALPHA  # the one-sided level of this row (its intervals are (1 - 2 alpha) two-sided)

    @property
    def decided_by(self) -> str:
        return "cpu analogue rule" if self.analogue else "posts' rule"

    @property
    def identity(self) -> str:
        return identity(self)

    def render(self) -> str:
        return self.rule.render(self.alpha)


def identity_payload(d: Decision) -> dict:
    return {"rule": d.rule.to_dict(), "alpha": d.alpha, "min_seeds": MIN_SEEDS,
            "decision_version": DECISION_VERSION,
            "metric_defs": {m: METRIC_DEFS.get(m) for m in d.rule.metrics()}}


def identity(d: Decision) -> str:
    """The hash of everything that can change the verdict (see the module text)."""
    return hashlib.sha256(json.dumps(identity_payload(d), sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Earlier:
    profile: str
    rule: Rule | None  # None: the earlier logic lived in a benchmark module and is not in the vocabulary
    replaced: str  # date the rule was replaced
    reason: str
    text: str = ""  # what the earlier rule was, where ``rule`` is None


def _same(rule: Rule, analogue_cpu: str = "") -> dict[str, Decision]:
    return {"cpu": Decision(rule, analogue_cpu), "full": Decision(rule)}


# ---------------------------------------------------------------------------------------------- params
VGG16_TOTAL = 138_344_128
MODIFIED_TOTAL = 16_062_144


def _table_rule(total: int) -> Rule:
    return AllOf(Equal(M("table", "weight_rows_differing"), 0, name="posts' rows whose weight count differs"),
                 Equal(M("table", "shape_rows_differing"), 0, name="posts' rows whose output shape differs"),
                 Equal(M("table", "built_weights"), total, name="weights of the built network = the posts' total"))


CKPT_SIZE = AllOf(
    InBand(M("checkpoint", "size_mib"), 183.0, 184.0, stat="each",
           name="checkpoint size as `ls -h` prints it: 184M means (183, 184] MiB"),
    AtMost(M("checkpoint", "overhead_bytes"), 65536.0, stat="each",
           name="bytes beyond parameters + two Adam moments (float32): container overhead only"))
ROUNDTRIP = AllOf(Equal(M("checkpoint", "restored_max_abs_diff"), 0.0, name="state dict restored in a fresh process"),
                  Equal(M("checkpoint", "exported_max_abs_diff"), 0.0,
                        name="exported program restored without the model class"))

# ------------------------------------------------------------------------------------------ optimisers
BEALE = {
    "sgd_slow": AllOf(AtLeast(M("beale", "sgd_final_dist"), 0.5, stat="each", name="SGD's final distance to (3, 0.5)"),
                      AtLeast(M("beale", "sgd_min_dist"), 0.1, stat="each",
                              name="SGD's closest approach to the minimum (never within 0.1)")),
    "momentum_overshoots": AtLeast(M("beale", "momentum_max_x"), 3.0, stat="each",
                                   name="momentum's largest x passes the minimum's x = 3"),
    "adam_balance": AllOf(AtMost(M("beale", "adam_max_x"), 3.0, stat="each", name="Adam's largest x (no overshoot)"),
                          Greater(M("beale", "sgd_final_f"), M("beale", "adam_final_f"), stat="each",
                                  name="Adam ends lower than SGD"),
                          Greater(M("beale", "adam_final_f"), M("beale", "momentum_final_f"), stat="each",
                                  name="momentum ends lower than Adam")),
}
OPT_ANALOGUE = "1/4-width ConvNet, 300 SGD/momentum/Adam steps: the same comparison at a smaller scale"
ACC = "test_acc"


def _acc(arm: str) -> M:
    return M(arm, ACC, "%")


OPT = {
    "momentum_beats_sgd": Greater(_acc("momentum"), _acc("sgd"), paired=True, claimed=0.01),
    "adam_best": AllOf(Greater(_acc("adam"), _acc("momentum"), paired=True, claimed=0.01),
                       Greater(_acc("adam"), _acc("sgd"), paired=True, claimed=0.01)),
}

# ------------------------------------------------------------------------------------------------ init
INIT_ANALOGUE = ("1/4-width ConvNet, 300 steps: decides the mechanism (activation growth, saturation, cost) "
                 "on the trained network; the posts' 5,000-step accuracy is not an analogue")
LARGE_MECHANISM = [
    AtLeast(M("large", "spread_ratio_after"), 100.0, stat="each",
            name="layer-4 / layer-1 pre-activation spread after training (explodes by layer)"),
    AtLeast(M("large", "saturated_after"), 0.9, stat="each", name="share of saturated softmax outputs after training"),
]
LARGE_FULL = AllOf(
    AtLeast(M("large", "spread_ratio_after"), 1000.0, stat="each",
            name="layer-4 / layer-1 pre-activation spread after training"),
    LARGE_MECHANISM[1],
    AtLeast(M("large", "test_cost"), 1000.0, stat="each", name="test cost (posts 15,083)"),
    InBand(_acc("large"), 0.70, 0.90, name="test accuracy about the posts' 81.88%"))
LARGE_CPU = AllOf(*LARGE_MECHANISM,
                  AtLeast(M("large", "test_cost"), 100.0, stat="each",
                          name="test cost far above a uniform prediction's ln 10"),
                  NotDecided("the posts' 81.88% comes from 5,000 full-width steps; 300 quarter-width steps do not "
                             "reach it, so the accuracy is decided at the full profile only",
                             (_acc("large"),), name="test accuracy about the posts' 81.88%"))
SMALL = AllOf(
    Equal(M("small", "test_cost"), LN10, 1e-3, name="test cost after training = ln 10 (uniform predictions)"),
    AtMost(M("small", "cost_moved"), 1e-3, stat="each", name="test cost moved by training (nothing learned)"),
    AtMost(M("small", "acc_above_constant"), 0.0, stat="each",
           name="accuracy minus the best constant prediction's (no better than chance)"))
HE_FULL = AllOf(
    AtLeast(_acc("he"), 0.90, name="He/Xavier test accuracy"),
    AtMost(M("he", "test_cost"), 0.5, name="He/Xavier test cost"),
    InBand(M("he", "spread_ratio_after"), 0.1, 10.0, stat="each", name="layer spreads within 10x after training"),
    Greater(_acc("he"), _acc("large"), margin=0.10, claimed=0.15, name="He/Xavier beats N(0,1) by > 10 points"),
    Greater(_acc("he"), _acc("small"), margin=0.10, claimed=0.15, name="He/Xavier beats 0.01 x N(0,1) by > 10 points"))
HE_CPU = AllOf(
    InBand(M("he", "spread_ratio_after"), 0.1, 10.0, stat="each", name="layer spreads within 10x after training"),
    AtMost(M("he", "test_cost"), LN10, name="He/Xavier test cost below a uniform prediction's ln 10"),
    Greater(_acc("he"), _acc("large"), margin=0.10, claimed=0.15, name="He/Xavier beats N(0,1) by > 10 points"),
    Greater(_acc("he"), _acc("small"), margin=0.10, claimed=0.15, name="He/Xavier beats 0.01 x N(0,1) by > 10 points"))
CONTROLLED = AllOf(*(Greater(_acc(f"he@{where}"), _acc(f"{other}@{where}"), claimed=0.05,
                             name=f"He/Xavier beats {other} at the {where} learning rate")
                     for where in ("shared", "best") for other in ("large", "small")))

# ------------------------------------------------------------------------------------------------- VGG
VGG_ANALOGUE = ("1/8-width VGG vs 1/4-width ConvNet, 500 steps: decides the direction of the gap at a "
                "smaller scale")
CIFAR_ANALOGUE = ("1/8-width VGG on 10,000 training images for 1,500 steps cannot reach the posts' level; "
                  "decides that it learns CIFAR-10 far above chance: at least twice the 10% of a guess")
VGG_MNIST = Greater(_acc("vgg"), _acc("convnet"), claimed=0.006, name="VGG beats the ConvNet (posts: +0.6 points)")
CIFAR_FULL = InBand(_acc("raw"), 0.68, 0.74, name="test accuracy about 71%")
CIFAR_CPU = AtLeast(_acc("raw"), 0.20, name="test accuracy at least twice chance (10%)")
MEANSUB = Greater(_acc("meansub"), _acc("raw"), paired=True, claimed=0.016,
                  name="mean subtraction gains (posts: +1.6 points)")
GAP = AllOf(Greater(M("meansub", "train_acc", "%"), M("meansub", "test_acc", "%"), margin=0.05, paired=True,
                    claimed=0.10, name="training accuracy above test accuracy by > 5 points"),
            AtLeast(M("meansub", "cost_ratio"), 1.5, name="test cost / training cost"))

# --------------------------------------------------------------------------------------- counting
SCRATCH_CPU = "quarter-width ResNet-10 from random weights at 96 px, fewer images and epochs"
COUNT_SCRATCH = AllOf(
    AtMost(M("part1_small", "acc_stage1", "%"), 0.85, name="1-5 after the first stage below A6's 85%"),
    AtMost(M("part2", "acc", "%"), 0.99, name="45-49 (Part II) below B1's perfect count"),
    AtMost(M("part2_various", "acc", "%"), 0.99, name="various sizes (Part II) below B2's perfect count"))
ABLATION_FACTORS = {
    "data size": (("large/default/part1", "large/default/part2", "large/dihedral/part1", "large/dihedral/part2"),
                  ("small/default/part1", "small/default/part2", "small/dihedral/part1", "small/dihedral/part2")),
    "transforms": (("small/dihedral/part1", "small/dihedral/part2", "large/dihedral/part1", "large/dihedral/part2"),
                   ("small/default/part1", "small/default/part2", "large/default/part1", "large/default/part2")),
}
ABLATION = AllOf(*(Greater(M(hi, "acc", "%"), M(lo, "acc", "%"), paired=True, claimed=0.05,
                           name=f"main effect of {f} (per seed, mean over the other factors)")
                   for f, (hi, lo) in ABLATION_FACTORS.items()))
REGRESSION = Greater(M("regression", "acc", "%"), M("classifier", "acc", "%"), claimed=0.05,
                     name="rounded regression beats the classifier")
PIXEL = AllOf(AtLeast(M("pixel", "equal_min_acc", "%"), 0.99, stat="each",
                      name="pixel counter on equal circles (worst of 1-5, 45-50, 45-49), centre crop"),
              AtMost(M("pixel", "various_acc", "%"), 0.5, stat="each",
                     name="pixel counter on random sizes U(25, 250)"))

# --------------------------------------------------------------------------------------- transfer
TRANSFER_SCRATCH = AllOf(*(AtMost(M(arm, f"acc_stage{st}", "%"), level, name=f"{arm} from scratch after stage {st}")
                           for arm, levels in (("paintings", (0.90, 0.975)), ("kittencat", (0.80, 0.92)))
                           for st, level in zip((1, 2), levels)))


FINETUNE_GAIN = Greater(M("kittencat", "acc_stage2", "%"), M("kittencat", "acc_stage1", "%"), paired=True,
                        claimed=0.06, name="fine-tuning gain")
NEAR_CHANCE_6 = 2 / 6  # "near chance" with 6 classes: at most twice chance (16.7%); the posts saw 25-27%


def _transfer_full() -> dict[str, Rule]:
    return {
        "paintings_resnet34_95pct": AtLeast(M("paintings", "acc_stage1", "%"), 0.90),
        "paintings_finetune_100pct": AtLeast(M("paintings", "acc_stage2", "%"), 1 - 1 / 40),
        "kittencat_resnet34_86pct": InBand(M("kittencat", "acc_stage1", "%"), 0.80, 0.92),
        "kittencat_lr_finder_sweet_spot": AllOf(
            AtLeast(M("kittencat", "lr_falling_share"), 0.6, name="share of LR-finder steps falling over 1e-5..1e-3"),
            InBand(M("kittencat", "lr_argmin_log10"), math.log10(3e-4), math.log10(5e-3),
                   name="log10 of the LR-finder minimum")),
        "kittencat_finetune_92pct": AllOf(FINETUNE_GAIN, InBand(M("kittencat", "acc_stage2", "%"), 0.87, 0.97,
                                                                name="accuracy after fine-tuning about the posts' "
                                                                     "92.4%")),
    }


LITE0_ANALOGUE = ("ImageNet EfficientNet-Lite0 instead of ResNet-34, at 64 px instead of 224, in the posts' "
                  "sequence and epochs: {}")


def _transfer_cpu() -> dict[str, Decision]:
    """The cpu analogues of the five transfer claims, registered before their first run (issue 20): the same
    statements on ImageNet EfficientNet-Lite0 at 64 px. Levels below the posts' where a smaller network on
    smaller images cannot be expected to match ResNet-34 at 224 px; the LR finder's shape and the fine-tuning
    gain are the posts' rules, read on Lite0's own runs."""
    full = _transfer_full()
    return {
        "paintings_resnet34_95pct": Decision(AtLeast(M("paintings", "acc_stage1", "%"), 0.80,
                                                     name="accuracy after the frozen stage (posts: 95%)"),
                                             LITE0_ANALOGUE.format("the frozen network separates the paintings, at "
                                                                   "least 80% (chance 50%)")),
        "paintings_finetune_100pct": Decision(AtLeast(M("paintings", "acc_stage2", "%"), 0.90,
                                                      name="accuracy after fine-tuning (posts: 100%)"),
                                              LITE0_ANALOGUE.format("fine-tuning reaches at least 90%")),
        "kittencat_resnet34_86pct": Decision(AtLeast(M("kittencat", "acc_stage1", "%"), 0.70,
                                                     name="accuracy after the frozen stage (posts: 86%)"),
                                             LITE0_ANALOGUE.format("the frozen network tells cats from kittens, "
                                                                   "at least 70% (majority class 52%)")),
        "kittencat_lr_finder_sweet_spot": Decision(full["kittencat_lr_finder_sweet_spot"], LITE0_ANALOGUE.format(
            "the posts' shape and sweet spot, on Lite0's own LR-finder curve")),
        "kittencat_finetune_92pct": Decision(AllOf(FINETUNE_GAIN, AtLeast(M("kittencat", "acc_stage2", "%"), 0.80,
                                                                          name="accuracy after fine-tuning "
                                                                               "(posts: 92.4%)")),
                                             LITE0_ANALOGUE.format("fine-tuning gains (the posts' rule) and reaches "
                                                                   "at least 80%")),
    }


IMAGENET_VS_RANDOM = AllOf(*(Greater(M(arm, f"acc_stage{st}", "%"), M(f"{arm}-random", f"acc_stage{st}", "%"),
                                     paired=True, name=f"{arm} after stage {st}: ImageNet weights beat random ones")
                             for arm in ("paintings", "kittencat") for st in (1, 2)))


PERFECT_SHARE = "share of seeds with final error <= 0.001"


def _counting_full() -> dict[str, Rule]:
    return {
        "counting_1to5_baseline_86pct": AtLeast(M("part1_small", "acc_stage1", "%"), 0.85),
        "counting_1to5_finetune_99pct": AtLeast(M("part1_small", "acc", "%"), 0.99),
        "counting_45to50_near_chance": AllOf(
            AtMost(M("part1_large", "acc_stage1", "%"), NEAR_CHANCE_6,
                   name="accuracy after the first stage at most twice chance (posts: 25.2%)"),
            AtMost(M("part1_large", "best_acc_last_stage", "%"), NEAR_CHANCE_6, stat="each",
                   name="every seed's best accuracy while fine-tuning at most twice chance (posts: 27%)")),
        "counting_45to49_sensible_transforms_100pct": Share(M("part2", "perfect"), 0.5, name=PERFECT_SHARE),
        "counting_various_sizes_100pct": Share(M("part2_various", "perfect"), 0.5, name=PERFECT_SHARE),
    }


LITE0_COUNTING = ("ImageNet EfficientNet-Lite0 instead of ResNet-34, at 64 px instead of 224, on 80 / 150 images "
                  "per class instead of 1,000 / 5,000, in the posts' stages and epochs: {}")
COUNT_GAIN = Greater(M("part1_small", "acc", "%"), M("part1_small", "acc_stage1", "%"), paired=True,
                     name="fine-tuning gain (after fine-tuning minus after the frozen stage)")
COUNTED = 0.50  # "counts" at cpu: 2.5 x chance with 5 classes, well clear of "near chance" (at most 2 x chance)


def _counting_cpu() -> dict[str, Decision]:
    """The cpu analogues of the five counting claims, registered before their first run (issue 20): the same
    statements on ImageNet EfficientNet-Lite0 at 64 px on fewer images. Levels below the posts' where a smaller
    network on smaller images and a few percent of the data cannot be expected to match them; "near chance" is
    the posts' rule, read on Lite0's runs."""
    full = _counting_full()
    return {
        "counting_1to5_baseline_86pct": Decision(
            AtLeast(M("part1_small", "acc_stage1", "%"), 0.60, name="accuracy after the frozen stage (posts: 86%)"),
            LITE0_COUNTING.format("the frozen network counts 1-5 circles, at least 60% (chance 20%)")),
        "counting_1to5_finetune_99pct": Decision(
            AllOf(COUNT_GAIN, AtLeast(M("part1_small", "acc", "%"), 0.90,
                                      name="accuracy after fine-tuning (posts: 99.8%)")),
            LITE0_COUNTING.format("fine-tuning gains and reaches at least 90%")),
        "counting_45to50_near_chance": Decision(full["counting_45to50_near_chance"], LITE0_COUNTING.format(
            "the posts' rule (at most twice chance after the frozen stage and while fine-tuning at 1e-6)")),
        "counting_45to49_sensible_transforms_100pct": Decision(
            AtLeast(M("part2", "acc", "%"), COUNTED, name="accuracy on 45-49 after Part II's recipe (posts: 100%)"),
            LITE0_COUNTING.format("Part II's recipe counts 45-49, at least 50% (chance 20%; near chance is at most "
                                  "twice chance)")),
        "counting_various_sizes_100pct": Decision(
            AtLeast(M("part2_various", "acc", "%"), COUNTED,
                    name="accuracy on 45-49 of various sizes after Part II's recipe (posts: 100%)"),
            LITE0_COUNTING.format("Part II's recipe counts 45-49 circles of sizes U(25, 250), at least 50% "
                                  "(chance 20%)")),
    }


COUNT_IMAGENET_VS_RANDOM = AllOf(*(Greater(M(arm, metric, "%"), M(f"{arm}-random", metric, "%"), paired=True,
                                           name=f"{what}: ImageNet weights beat random ones")
                                   for arm, metric, what in (("part1_small", "acc_stage1", "1-5 after stage 1"),
                                                             ("part1_small", "acc", "1-5 after stage 2"),
                                                             ("part2", "acc", "45-49 (Part II)"))))

RULES: dict[tuple[str, str], dict[str, Decision]] = {
    ("ltfn8_vgg_param_tables", "vgg16"): _same(_table_rule(VGG16_TOTAL)),
    ("ltfn8_vgg_param_tables", "modified_vgg"): _same(_table_rule(MODIFIED_TOTAL)),
    ("ltfn9_checkpoint_184mb", ""): _same(CKPT_SIZE),
    ("ltfn9_checkpoint_restore_roundtrip", ""): _same(ROUNDTRIP),
    **{("ltfn7_optimizer_2d_comparison", f"{sub}-{steps}steps"): _same(rule)
       for sub, rule in BEALE.items() for steps in (120, 100)},
    **{("ltfn7_optimizers_on_mnist", v): _same(rule, OPT_ANALOGUE) for v, rule in OPT.items()},
    **{("ltfn6_large_init_overconfident", v): {"cpu": Decision(LARGE_CPU, INIT_ANALOGUE), "full": Decision(LARGE_FULL)}
       for v in ("mnist", "fashion-mnist")},
    **{("ltfn6_small_init_no_learning", v): _same(SMALL, "1/4-width ConvNet, 300 steps at the posts' rate 1e-7")
       for v in ("conv-only-mnist", "all-five-mnist", "conv-only-fashion-mnist")},
    **{("ltfn6_he_xavier_init_better", v): {"cpu": Decision(HE_CPU, INIT_ANALOGUE), "full": Decision(HE_FULL)}
       for v in ("mnist", "fashion-mnist")},
    ("ltfn6_init_controlled", ""): _same(CONTROLLED, "1/4-width ConvNet, 300 steps, a 4-rate sweep"),
    ("ltfn8_mnist_vgg_979_vs_973", ""): _same(VGG_MNIST, VGG_ANALOGUE),
    ("ltfn10_cifar_vgg_71pct", ""): {"cpu": Decision(CIFAR_CPU, CIFAR_ANALOGUE), "full": Decision(CIFAR_FULL)},
    ("ltfn11_mean_subtraction_gain", ""): _same(MEANSUB, "the same comparison on the scaled-down CIFAR-10 runs"),
    ("ltfn12_bias_variance_gap", ""): _same(GAP, "the same gap and cost ratio on the scaled-down CIFAR-10 runs"),
    **{(cid, ""): {"cpu": cpu, "full": Decision(_counting_full()[cid])} for cid, cpu in _counting_cpu().items()},
    ("counting_imagenet_vs_random", ""): _same(COUNT_IMAGENET_VS_RANDOM, LITE0_COUNTING.format("the same comparison")),
    ("counting_from_scratch", ""): _same(COUNT_SCRATCH, SCRATCH_CPU),
    ("counting_part2_ablation", ""): _same(ABLATION, SCRATCH_CPU),
    ("counting_regression_head", ""): _same(REGRESSION, SCRATCH_CPU),
    ("counting_pixel_baseline", ""): _same(PIXEL),
    **{(cid, ""): {"cpu": cpu, "full": Decision(_transfer_full()[cid])} for cid, cpu in _transfer_cpu().items()},
    ("transfer_imagenet_vs_random", ""): _same(IMAGENET_VS_RANDOM, LITE0_ANALOGUE.format("the same comparison")),
    ("transfer_from_scratch", ""): _same(TRANSFER_SCRATCH, "half-width ResNet-10 from random weights at 112 px"),
}



@dataclass(frozen=True)
class PreData:
    """A rule changed at a profile where no run of the claim existed yet: not a revision after data (nothing
    could have steered it), shown on the page beside the current rule. ``tests/test_decision.py`` checks the
    store holds no run at that profile, so the mark cannot hide a change made after data."""

    profile: str
    rule: Rule
    changed: str  # date
    reason: str


_ISSUE20 = "2026-12-01"
_BINOMIAL = "2026-12-02"
PRE_DATA: dict[tuple[str, str], list[PreData]] = {
    ("kittencat_finetune_92pct", ""): [PreData(
        "full", FINETUNE_GAIN, _ISSUE20,
        "the claim names a level (61/66 = 92.4% after fine-tuning), and a gain alone held at any level; the level "
        "is now decided too, inside [87%, 97%]")],
    ("counting_45to50_near_chance", ""): [PreData(
        "full", AllOf(AtMost(M("part1_large", "acc_stage1", "%"), 0.50),
                      AtMost(M("part1_large", "best_acc_last_stage", "%"), 0.50, stat="each")), _ISSUE20,
        "'near chance' was tested as at most 50%, three times chance with 6 classes; now at most twice chance "
        "(33.3%), which the posts' 25-27% satisfy")],
    **{(cid, ""): [PreData(
        "full", AtLeast(M(arm, "perfect"), 0.5, name=PERFECT_SHARE), _BINOMIAL,
        "a share of perfect runs was decided by a t-interval on 0/1 values; now by the exact binomial interval "
        "of k perfect runs of n (12 seeds: with fewer than 8 even 8 of 8 cannot clear 50% at 0.005)")]
       for cid, arm in (("counting_45to49_sensible_transforms_100pct", "part2"),
                        ("counting_various_sizes_100pct", "part2_various"))},
}


# Controls state their hypothesis in one sentence; "reproduced" means it held.
HYPOTHESES = {
    "ltfn6_init_controlled": "He/Xavier's advantage survives when every init gets the same learning rate, and "
                             "when each gets its own best rate (chosen on tuning seeds not used to decide).",
    "ltfn7_optimizers_on_mnist": "On the He-init MNIST ConvNet, momentum beats SGD and Adam beats both.",
    "ltfn9_checkpoint_restore_roundtrip": "A checkpoint restores in a fresh process, with and without the model's "
                                          "class, to bit-identical predictions.",
    "counting_pixel_baseline": "Counting equal circles needs no CNN: blue-pixel area counts them exactly; with "
                               "random sizes it fails.",
    "counting_part2_ablation": "Part II's jump comes from its data size and its transforms: each has a positive "
                               "main effect.",
    "counting_imagenet_vs_random": "ImageNet weights buy accuracy at counting: on 1-5 after each stage and on "
                                   "45-49 with Part II's recipe, the pretrained backbone beats the same network "
                                   "and recipe from random weights.",
    "counting_from_scratch": "Without ImageNet weights the posts' counting recipes fall short of the posts' "
                             "pretrained levels.",
    "counting_regression_head": "Posed as regression (MSE, rounded), counting is more accurate than as "
                                "classification.",
    "transfer_imagenet_vs_random": "ImageNet weights buy accuracy: on each dataset, after each stage, the "
                                   "pretrained backbone beats the same network and sequence from random weights.",
    "transfer_from_scratch": "Without ImageNet weights the posts' transfer recipes fall short of the posts' "
                             "pretrained levels after each stage.",
}

_AUDIT = "2026-11-29"
HISTORY: dict[tuple[str, str], list[Earlier]] = {
    ("ltfn12_bias_variance_gap", ""): [Earlier(
        "cpu", Greater(M("meansub", "train_acc", "%"), M("meansub", "test_acc", "%"), margin=0.05, paired=True,
                       claimed=0.10), _AUDIT,
        "the test-cost / train-cost >= 1.5 check had been moved to the full profile right after it failed at cpu "
        "(1.43); restored in the cpu rule")],
    ("transfer_from_scratch", ""): [Earlier(
        "cpu", AllOf(*(AtMost(M(arm, "acc_stage2", "%"), level) for arm, level in (("paintings", 0.90),
                                                                                    ("kittencat", 0.80)))),
        _AUDIT, "the floors were replaced (paintings 90% -> a stage-2 level of 97.5%) in the commit that brought "
                "its runs into the store; now each stage is decided against the pretrained claim of that stage")],
    **{("ltfn6_large_init_overconfident", v): [Earlier(
        "cpu", AllOf(AtLeast(M("probe-large", "spread_ratio"), 1000.0, stat="each"),
                     AtLeast(M("large", "test_cost"), 1000.0, stat="each"),
                     InBand(_acc("large"), 0.70, 0.90)), _AUDIT,
        "the page printed this rule while the code applied another one at cpu (accuracy band dropped, spreads "
        "probed at initialisation); now a declared cpu analogue on the trained network")] for v in ("mnist",
                                                                                                  "fashion-mnist")},
    **{("ltfn6_he_xavier_init_better", v): [Earlier(
        "cpu", AllOf(AtLeast(_acc("he"), 0.90), AtMost(M("he", "test_cost"), 0.5),
                     InBand(M("probe-he", "spread_ratio"), 0.1, 10.0, stat="each")), _AUDIT,
        "the page printed this rule while the code applied another at cpu; now a declared cpu analogue with "
        "seed-level comparisons against both bad inits")] for v in ("mnist", "fashion-mnist")},
    **{("ltfn6_small_init_no_learning", v): [Earlier(
        "cpu", AllOf(Equal(M("small", "test_cost"), LN10, 1e-3), AtMost(M("small", "acc_moved"), 0.02, stat="each"),
                     InBand(_acc("small"), 0.089, 0.1135)), _AUDIT,
        "the chance-band half was never checked and an 'accuracy moved <= 2 points' check was replaced by "
        "'test cost moved <= 1e-3' after the runs failed it; now: cost at ln 10 and unmoved, accuracy no better "
        "than the best constant prediction")] for v in ("conv-only-mnist", "all-five-mnist",
                                                        "conv-only-fashion-mnist")},
    ("ltfn10_cifar_vgg_71pct", ""): [Earlier(
        "cpu", InBand(_acc("raw"), 0.68, 0.74), _AUDIT,
        "the cpu runs failed this band and the claim was then shown as 'not run (profile)' while ltfn12 was "
        "judged on the same runs; now a declared cpu analogue")],
    ("counting_from_scratch", ""): [Earlier(
        "cpu", AllOf(AtLeast(M("part1_small", "acc_stage1", "%"), 0.85), AtMost(M("part1_large", "acc_stage1", "%"),
                                                                                0.50),
                     AtLeast(M("part2", "perfect"), 0.5)), _AUDIT,
        "the control asked whether the posts' pretrained outcomes also appear from scratch, so 'not reproduced' "
        "meant what transfer_from_scratch called 'reproduced'; both controls now state one hypothesis: from "
        "scratch, the recipes fall short of the posts' pretrained levels")],
    ("ltfn9_checkpoint_184mb", ""): [Earlier(
        "cpu", AllOf(AtMost(M("checkpoint", "overhead_bytes"), 0.01 * 12 * 16_062_144, stat="each"),
                     Equal(M("checkpoint", "moments_per_param"), 2.0)), _AUDIT,
        "a 1% size tolerance (1.9 MB) where the container adds 28 KB, and a moment count certain by construction; "
        "now the size as `ls -h` prints it and at most 64 KiB beside parameters and moments")],
    ("ltfn8_mnist_vgg_979_vs_973", ""): [Earlier(
        "cpu", Greater(_acc("vgg"), _acc("convnet"), paired=True, claimed=0.006), _AUDIT,
        "decided with a paired interval although VGG and ConvNet share no randomness, at alpha/2 inside the family; "
        "now Welch across the suite's Holm family")],
}


_PRE_RULEBOOK = "2026-11-29"
_PRE = ("before the rulebook (git 4490721^) this claim was decided by logic inside its benchmark module; the rulebook "
        "replaced it in the commit that introduced it, after runs for the claim existed, without a mark until now")
HISTORY.update({
    ("counting_regression_head", ""): [Earlier(
        "cpu", None, _PRE_RULEBOOK, _PRE,
        "rounded-regression accuracy minus classifier accuracy paired by seed (a diverged regression run scored 0): "
        "the 95% t-interval above 0; plus predictions outside the training range keeping their order")],
    ("counting_part2_ablation", ""): [Earlier(
        "cpu", None, _PRE_RULEBOOK, _PRE,
        "main effects of data size, transforms and schedule pooled over (other factors, seed) pairs: the 95% "
        "t-interval above 0 holds, below 0.02 fails; undecided unless the best arm beat chance by 10 points")],
    ("ltfn6_init_controlled", ""): [Earlier(
        "cpu", None, _PRE_RULEBOOK, _PRE,
        "the worst He/Xavier seed above the best seed of every other init, at the shared rate and at each init's "
        "best swept rate (no test; the sweep's tuning seed was one of the deciding seeds)")],
    **{("ltfn7_optimizers_on_mnist", v): [Earlier(
        "cpu", None, _PRE_RULEBOOK, _PRE,
        "paired t over seeds with Holm over momentum > SGD, Adam > momentum and Adam > SGD, adjusted p < 0.05 and a "
        "paired bootstrap interval above 0; undecided below 4 seeds")] for v in OPT},
    ("ltfn11_mean_subtraction_gain", ""): [Earlier(
        "cpu", None, _PRE_RULEBOOK, _PRE,
        "mean-subtracted minus raw test accuracy compared by the module's own pair test against the posts' "
        "+1.6 points")],
})
HISTORY[("ltfn10_cifar_vgg_71pct", "")].append(Earlier(
    "cpu", AtLeast(_acc("raw"), 0.50, name="test accuracy far above chance"), "2026-12-01",
    "the analogue's stated purpose is 'learns CIFAR-10 far above chance (10%)', but its rule demanded 50%, a level "
    "nobody derived from that purpose (36.05% on the exploratory seeds: far above chance, yet 'not reproduced'); "
    "now at least twice chance, decided on new confirmatory seeds"))


def register_rule(claim_id: str, variant: str, decisions: dict[str, Decision], hypothesis: str = "") -> None:
    """Register the rule of a claim added from outside the package (``harness.claims.register_claim``), per
    profile, before its first run; a control states its hypothesis. Replacing a registered rule is refused:
    a rule changed after data is a revision, kept in ``HISTORY`` with the date and the reason."""
    if claim_id not in CATALOGUE:
        raise KeyError(f"{claim_id!r} is not in the catalogue; register_claim() it first")
    unknown = set(decisions) - {"cpu", "full"}
    if unknown:
        raise ValueError(f"{claim_id}: rules are registered for the cpu and full profiles, not {sorted(unknown)}")
    key = (claim_id, variant)
    if key in RULES and RULES[key] != decisions:
        raise ValueError(f"{claim_id} {variant!r} already has a rule; a change after data is a revision (HISTORY)")
    RULES[key] = dict(decisions)
    if hypothesis:
        HYPOTHESES[claim_id] = hypothesis


def seed_group(claim_id: str) -> str:
    """The group of claims that share runs, and so their confirmatory seeds."""
    family = CATALOGUE[claim_id].family
    return SEED_GROUPS.get(family, family)


def decision(claim_id: str, variant: str, profile: str) -> Decision | None:
    by_profile = RULES.get((claim_id, variant))
    if by_profile is None:
        return None
    return by_profile.get(profile)


def stochastic_rows(profile: str) -> list[tuple[str, str, float]]:
    """The rows of a profile decided with a random component (an interval over seeds), with their levels: the
    suite's guarantee is that the expected number of false "reproduced" among them is at most the sum."""
    rows = []
    for (cid, var), by_profile in sorted(RULES.items()):
        d = by_profile.get(profile)
        if d is not None and d.rule.stochastic():
            rows.append((cid, var, d.alpha))
    return rows
