"""The catalogue of claims: one record per canonical claim id (rendered as docs/claims.md by harness.catalogue).

Claims are paraphrased, never quoted; the posts' numbers carry over. Per-profile budgets live next to
each claim's test in ``benchmarks/`` (they are part of what a run's config hash covers). A claim whose
test does not exist yet is listed in the report as "not run: not implemented yet".
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Callable, Optional

from harness.profiles import PROFILES, UsageError

POSTS = {
    "fastai": "Image Classification with fastai (2019-01-29)",
    "counting2": "Image Classification: Counting Part II (2019-02-01)",
    "ltfn6": "Learn TensorFlow Now, Part 6: Weight Initialization",
    "ltfn7": "Learn TensorFlow Now, Part 7: Optimization",
    "ltfn8": "Learn TensorFlow Now, Part 8: Deeper ConvNets (VGG)",
    "ltfn9": "Learn TensorFlow Now, Part 9: Saving and Restoring",
    "ltfn10": "Learn TensorFlow Now, Part 10: CIFAR-10",
    "ltfn11": "Learn TensorFlow Now, Part 11: Image Pre-processing",
    "ltfn12": "Learn TensorFlow Now, Part 12: Bias and Variance",
    "control": "control beyond the posts",
}

@dataclass(frozen=True)
class Family:
    """A claim family: one module in ``benchmarks/``, one report page (``<name>.md``). ``needs_data`` and
    ``slow`` become the pytest markers ``data`` and ``slow`` of its claims (``data_claims`` / ``slow_claims``
    name single claims of other families that read a dataset or are slow); ``full_plan`` is what the full
    profile trains (the network, the training images, in words) for the cost estimate printed before it."""
    name: str
    title: str
    needs_data: bool = False
    slow: bool = False
    data_claims: tuple[str, ...] = ()
    slow_claims: tuple[str, ...] = ()
    full_plan: tuple = ()  # (network of harness.estimate.model_table, training images, how) or ()
    full_pflop: float = 0.0  # the full plan's training FLOPs (PyTorch's counter; tests/test_train.py checks it)


FAMILY = {f.name: f for f in [
    Family("transfer", "Transfer learning on folder datasets", needs_data=True, slow=True,
           full_plan=("ResNet-34", 0.2e6, "10 splits x 2 datasets"), full_pflop=4.35),
    Family("counting", "Counting circles (Part I and II)", slow=True,
           full_plan=("ResNet-34", 3.8e6 + 3.8e6 + 7.3e6, "posts' claims and from-scratch control 3.8 M images "
                      "each, Part II ablation 7.3 M (5 seeds each)"), full_pflop=324.02),
    Family("init", "Weight initialisation vs activation scale (MNIST ConvNet)", needs_data=True,
           slow_claims=("ltfn6_init_controlled",),
           full_plan=("part 6 ConvNet", 46 * 5000 * 100, "about 46 ConvNet runs of 5,000 steps x 100 images"),
           full_pflop=10.02),
    Family("optimizers", "Optimisers (SGD, momentum, Adam)", data_claims=("ltfn7_optimizers_on_mnist",),
           full_plan=("part 6 ConvNet", 24 * 5000 * 100, "about 24 ConvNet runs (6 seeds x 3 optimisers + sweeps)"),
           full_pflop=5.23),
    Family("vgg_mnist", "VGG vs the 4-layer ConvNet on MNIST", needs_data=True,
           full_plan=("modified VGG, MNIST", 5 * 1000 * 100, "5 VGG runs of 1,000 steps (+ 5 ConvNet runs)"),
           full_pflop=0.88),
    Family("params", "Parameter tables and checkpoints"),
    Family("cifar", "VGG on CIFAR-10", needs_data=True, slow=True,
           full_plan=("modified VGG, CIFAR-10", 10 * 10000 * 100, "2 arms x 5 seeds x 10,000 steps x 100 images"),
           full_pflop=17.56),
]}


@dataclass(frozen=True)
class Claim:
    id: str
    family: str
    post: str  # key of POSTS
    claim: str  # paraphrase
    posts_value: str  # the posts' number(s), as a short string
    metric: str
    section: str = ""  # section of the claims catalogue; the decision rule is in harness/rulebook.py

    @property
    def post_title(self) -> str:
        return POSTS[self.post]


_C = Claim
CATALOGUE: dict[str, Claim] = {c.id: c for c in [
    _C("paintings_resnet34_95pct", "transfer", "fastai",
       "A frozen ImageNet ResNet-34 trained 5 epochs separates impressionist from modernist paintings.",
       "95% (38/40)", "validation accuracy", "A1"),
    _C("paintings_finetune_100pct", "transfer", "fastai",
       "Unfreezing and 15 more epochs at slice(1e-4) reach perfect validation accuracy.",
       "100% (40/40)", "validation error", "A2"),
    _C("kittencat_resnet34_86pct", "transfer", "fastai",
       "The same recipe tells cats from kittens at about 86%.",
       "86% (57/66)", "validation accuracy", "A3"),
    _C("kittencat_lr_finder_sweet_spot", "transfer", "fastai",
       "The LR finder shows a sweet spot between 1e-5 and 1e-3.",
       "1e-5 .. 1e-3, pick 1e-4", "smoothed loss vs lr",
       "A4"),
    _C("kittencat_finetune_92pct", "transfer", "fastai",
       "Fine-tuning the unfrozen net for 15 epochs lifts cats vs kittens to about 92%.",
       "92% (61/66)", "validation accuracy", "A5"),
    _C("transfer_imagenet_vs_random", "transfer", "control",
       "What the posts' ImageNet weights buy: the same backbone and sequence from random weights does worse on "
       "both datasets after both stages.", "(none; posts ran pretrained only)", "validation accuracy", "A"),
    _C("transfer_from_scratch", "transfer", "control",
       "The posts' paintings and cats-vs-kittens accuracies need the ImageNet weights: the same runs from "
       "scratch fall short.", "(none; posts ran pretrained only)", "validation accuracy",
       "A"),
    _C("counting_1to5_baseline_86pct", "counting", "fastai",
       "A frozen ResNet-34 counts 1 to 5 circles at over 85% after 3 epochs.",
       "86.4% (error .136)", "validation accuracy", "A6"),
    _C("counting_1to5_finetune_99pct", "counting", "fastai",
       "Unfrozen fine-tuning for 15 epochs at slice(1e-4) reaches 99% on 1-5 circles.",
       "99.8% (error .002)", "validation accuracy", "A7"),
    _C("counting_45to50_near_chance", "counting", "fastai",
       "Counting 45-50 circles stays near chance (about 25%, at best 27%).",
       "25-27% (6 classes, chance 16.7%)", "validation accuracy",
       "A8"),
    _C("counting_45to49_sensible_transforms_100pct", "counting", "counting2",
       "With 5,000 images per class and dihedral-only transforms, 45-49 circles are counted perfectly.",
       "100% (error 0 at epochs 13-15)", "validation error", "B1"),
    _C("counting_various_sizes_100pct", "counting", "counting2",
       "The Part II recipe still counts perfectly with circles of random sizes.",
       "100% (error 0 at epochs 12-15)", "validation error", "B2"),
    _C("counting_pixel_baseline", "counting", "control",
       "A non-learned counter from blue-pixel area: where is a CNN needed at all?",
       "(none; posts say pixels would solve equal circles)", "accuracy", "B"),
    _C("counting_part2_ablation", "counting", "control",
       "Factorial over data size, transforms, schedule and class count attributes Part II's jump.",
       "(none)", "validation accuracy", "A8/B1"),
    _C("counting_imagenet_vs_random", "counting", "control",
       "What the posts' ImageNet weights buy at counting: the same backbone and recipes from random weights do "
       "worse on 1-5 after both stages and on 45-49 with Part II's recipe.", "(none; posts ran pretrained only)",
       "validation accuracy", "A6/A7/B1"),
    _C("counting_from_scratch", "counting", "control",
       "The counting runs without ImageNet weights.", "(none)", "validation accuracy",
       "A"),
    _C("counting_regression_head", "counting", "control",
       "Counting posed as regression (MSE head), accuracy after rounding.", "(none)",
       "rounded accuracy", "A10"),
    _C("ltfn6_large_init_overconfident", "init", "ltfn6",
       "N(0,1) weights make activations explode layer by layer and the softmax saturate.",
       "test cost 15,083; accuracy 81.88%; layer 4 in +-20,000", "test cost, accuracy, spread ratio",
       "D1"),
    _C("ltfn6_small_init_no_learning", "init", "ltfn6",
       "Weights scaled by 0.01 give uniform predictions and no learning.",
       "cost 2.3025865; accuracy 5.02%", "test cost, accuracy",
       "D2"),
    _C("ltfn6_he_xavier_init_better", "init", "ltfn6",
       "He init for ReLU convs and Xavier for the output layer train much better.",
       "much better (numbers lost)", "test accuracy, spread ratio",
       "D3"),
    _C("ltfn6_init_controlled", "init", "control",
       "The three inits compared at one learning rate and at tuned rates (removes the 1e-7 vs 1e-3 confound).",
       "(none)", "test accuracy", "D2"),
    _C("ltfn7_optimizer_2d_comparison", "optimizers", "ltfn7",
       "On the Beale surface from (1, 1.5): SGD is slow, momentum overshoots, Adam is a reasonable balance.",
       "120 steps: SGD short of the minimum; momentum overshoots; Adam balanced",
       "distance to (3, 0.5), max x, final f",
       "D4"),
    _C("ltfn7_optimizers_on_mnist", "optimizers", "control",
       "SGD vs momentum vs Adam on the He-init MNIST ConvNet over seeds.", "(none)",
       "test accuracy, steps to target", "D4"),
    _C("ltfn8_mnist_vgg_979_vs_973", "vgg_mnist", "ltfn8",
       "The modified VGG beats the previous best ConvNet on MNIST, 97.9% vs 97.3%.",
       "97.9% vs 97.3%", "test accuracy", "D5"),
    _C("ltfn8_vgg_param_tables", "params", "ltfn8",
       "The posts' tables of per-layer weight counts and output shapes for VGG-16 and the modified VGG.",
       "VGG-16 138,344,128 weights; modified VGG 16,062,144", "per-layer weights and shapes",
       "D6"),
    _C("ltfn9_checkpoint_184mb", "params", "ltfn9",
       "A checkpoint of the modified VGG takes 184 MB.", "184M (data file)", "checkpoint bytes",
       "D7"),
    _C("ltfn9_checkpoint_restore_roundtrip", "params", "control",
       "Save, restore in a fresh process (and without the model class) with identical predictions.",
       "(restore works)", "max |prediction difference|", "D7"),
    _C("ltfn10_cifar_vgg_71pct", "cifar", "ltfn10",
       "The VGG reaches about 71% test accuracy on CIFAR-10 after 10,000 steps.",
       "~71% test (train 82-87%)", "test accuracy", "D8"),
    _C("ltfn11_mean_subtraction_gain", "cifar", "ltfn11",
       "Subtracting the mean image moves CIFAR-10 accuracy from 70.9% to 72.5%.",
       "70.9% -> 72.5%", "test accuracy difference", "D9"),
    _C("ltfn12_bias_variance_gap", "cifar", "ltfn12",
       "Training accuracy (~84%) sits well above test accuracy (~73%).",
       "train ~84% vs test 72.56%; first cost 131.96", "train - test accuracy",
       "D10"),
]}


# Some checks pass anyway where a network learns little, as a scaled-down analogue may: "stays near chance",
# "falls short of the posts' level". Such a claim is shown beside the claim that tells how much
# its outcome says, with that claim's verdict at the same profile (presentation only: each verdict stays its
# own rule's). Claim id -> (the claim to read beside it, why).
_IMAGENET_BUYS = ("what ImageNet weights buy, measured directly: one network and recipe from ImageNet and from "
                  "random weights; falling short of the posts' levels from scratch says little where runs with "
                  "ImageNet weights fall short of them too")
READ_BESIDE: dict[str, tuple[str, str]] = {
    "counting_45to50_near_chance": ("counting_1to5_baseline_86pct",
                                    "its positive control: the same network, recipe and scale counting 1-5 circles "
                                    "after the same frozen stage; near chance holds wherever nothing is learned"),
    "counting_from_scratch": ("counting_imagenet_vs_random", _IMAGENET_BUYS),
    "transfer_from_scratch": ("transfer_imagenet_vs_random", _IMAGENET_BUYS),
}


def register_family(name: str, title: str, **facts) -> None:
    """A claim family from outside the package (a plugin or a test module): its report page is ``<name>.md``;
    ``facts`` are the other fields of :class:`Family`."""
    family = Family(name, title, **facts)
    if name in FAMILY and FAMILY[name] != family:
        raise ValueError(f"family {name!r} is already registered as {FAMILY[name]}")
    FAMILY[name] = family


def is_data_claim(claim: Claim) -> bool:
    fam = FAMILY.get(claim.family)
    return bool(fam and (fam.needs_data or claim.id in fam.data_claims))


def is_slow_claim(claim: Claim) -> bool:
    fam = FAMILY.get(claim.family)
    return bool(fam and (fam.slow or claim.id in fam.slow_claims))


def register_claim(claim: Claim) -> None:
    """Add a claim to the catalogue from outside the package; its family must be registered and its id new
    (re-registering the same record, as a re-imported module does, is allowed)."""
    if claim.family not in FAMILY:
        raise ValueError(f"{claim.id}: unknown family {claim.family!r}; register_family() it first")
    if claim.post not in POSTS:
        raise ValueError(f"{claim.id}: unknown post {claim.post!r}; known: {', '.join(POSTS)}")
    if claim.id in CATALOGUE and CATALOGUE[claim.id] != claim:
        raise ValueError(f"claim id {claim.id!r} is already in the catalogue with another record")
    CATALOGUE[claim.id] = claim


def get_claim(claim_id: str) -> Claim:
    try:
        return CATALOGUE[claim_id]
    except KeyError:
        raise UsageError(unknown_claim_message(claim_id)) from None


def unknown_claim_message(claim_id: str) -> str:
    close = difflib.get_close_matches(claim_id, CATALOGUE, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return (f"unknown claim id {claim_id!r}.{hint} Valid ids: {', '.join(sorted(CATALOGUE))}")


def parse_claim_ids(text: str | None) -> tuple[str, ...] | None:
    """Parse ``--claims id1,id2``; unknown ids are a UsageError listing the valid ones."""
    if text is None:
        return None
    ids = tuple(s.strip() for s in text.split(",") if s.strip())
    if not ids:
        raise UsageError(f"--claims {text!r} names no claim; give comma-separated ids, e.g. "
                         f"--claims ltfn9_checkpoint_184mb. Valid ids: {', '.join(sorted(CATALOGUE))}")
    for cid in ids:
        get_claim(cid)
    return ids


@dataclass(frozen=True)
class Case:
    """One parametrised claim test: a claim, optionally one sub-claim ``variant``, and its budgets.

    ``primary`` variants make up the claim's headline verdict; secondary ones (e.g. the repository's
    100-step variant next to the posts' 120) are shown on the family page only.

    ``run(ctx, **fixtures)`` is the claim's experiment: it trains through ``ctx.run`` and ends with
    ``ctx.decide`` (``harness.claim.run_case`` calls it), so a family's test needs no branch on a claim id.
    """

    claim_id: str
    budgets: dict  # profile name -> harness.profiles.Budget
    variant: str = ""
    primary: bool = True
    params: tuple = ()  # (key, value) pairs, hashable and part of the run config
    run: Optional[Callable[..., None]] = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        get_claim(self.claim_id)

        missing = set(PROFILES) - set(self.budgets)
        if missing:
            raise ValueError(f"{self.claim_id}: no budget for profile(s) {sorted(missing)}")

    @property
    def claim(self) -> Claim:
        return CATALOGUE[self.claim_id]

    @property
    def param(self) -> dict:
        return dict(self.params)

    def __str__(self) -> str:
        return f"{self.claim_id}-{self.variant}" if self.variant else self.claim_id
