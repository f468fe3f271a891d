"""What the two VGG families share (Learn TensorFlow Now parts 8 and 10-12): the profiles' settings, the
scripts' training configuration and optimiser (their runs go through ``harness.stacked.run_seeds``, which
records the batch costs the scripts printed), and the figures and effect-size table shown beside the rules'
decisions (``test_vgg_mnist.py``, ``test_cifar.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from benchmarks.convnet import OPTIMIZERS
from harness import stats
from harness.train import TrainConfig
from harness.records import Lines, Strip, Table, accuracy_curves
from harness.profiles import Scale


@dataclass(frozen=True)
class VggScale(Scale):
    """The VGG families' knobs (parts 8 and 10-12)."""

    vgg_width: float  # of the posts' VGG
    base_width: float  # of the part 6 ConvNet it is compared with
    mnist_steps: int
    cifar_steps: int
    n_train_cifar: int  # CIFAR-10 training images used
    test_n: int
    curve_n: int  # test images behind the accuracy-while-training curve
    train_eval_n: int  # training images evaluated for the bias/variance gap
    eval_every: int
    print_every: int


SCALE = {
    "smoke": VggScale(vgg_width=0.0625, base_width=0.125, mnist_steps=10, cifar_steps=10, n_train_cifar=2000,
                      test_n=500, curve_n=200, train_eval_n=500, eval_every=5, print_every=5),
    "cpu": VggScale(vgg_width=0.125, base_width=0.25, mnist_steps=500, cifar_steps=1500, n_train_cifar=10000,
                    test_n=10000, curve_n=2000, train_eval_n=10000, eval_every=100, print_every=100),
    "full": VggScale(vgg_width=1.0, base_width=1.0, mnist_steps=1000, cifar_steps=10000, n_train_cifar=50000,
                     test_n=10000, curve_n=10000, train_eval_n=50000, eval_every=250, print_every=100),
}
SEEDS = {"smoke": 1, "cpu": 5, "full": 5}


def train_config(s: VggScale, steps: int) -> TrainConfig:
    """The scripts' training: batch 100 in contiguous order, evaluated every ``eval_every`` steps."""
    return TrainConfig(steps=steps, batch_size=100, order="contiguous", eval_every=s.eval_every,
                       channels_last=True)


def adam(params) -> torch.optim.Optimizer:
    """The scripts' optimiser: the ConvNet families' Adam (TensorFlow's defaults) at 1e-3."""
    return OPTIMIZERS["adam"](params, 1e-3)


def strip(title, groups, refs) -> Strip:
    return Strip(title=title, ylabel="test accuracy (%)", refs=refs, groups=[{"label": k, "values": v} for k,
                                                                             v in groups.items()])


def curves(title, runs_by_arm, curve_n: int | None = None) -> Lines:
    subset = (f"curves: accuracy on the first {curve_n:,} test images, evaluated while training (the verdict reads "
              "the whole test set)" if curve_n else "")
    return accuracy_curves(title, runs_by_arm, x="step", ylabel="test accuracy (%, curve subset)", percent=True,
                           note=subset)


def effect_table(arms: dict[str, list[float]], posts_gap: float) -> Table:
    """Effect sizes beside the rule's test (shown, not decided): Hedges' g, P(A>B), exact Mann-Whitney, the seeds
    the posts' gap would need at 80% power."""
    (na, a), (nb, b) = arms.items()
    sd = float(np.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / 2)) if len(a) > 1 else float("nan")
    need = stats.seeds_needed(posts_gap, sd) if sd == sd and sd > 0 else None
    rows = [["mean A - B (pts)", f"{np.mean(a) - np.mean(b):.3f}"],
            ["Mann-Whitney U, one-sided p (exact)", f"{stats.mann_whitney(a, b).p:.3g}" if len(a) > 1 else "-"],
            ["Hedges' g", f"{stats.hedges_g(a, b):.3f}" if len(a) > 1 else "-"],
            ["P(A > B)", f"{stats.prob_superiority(a, b):.3f}"],
            ["seed sd A / B (pts)", f"{np.std(a, ddof=1):.3f} / {np.std(b, ddof=1):.3f}" if len(a) > 1 else "-"],
            [f"seeds per arm to detect the posts' {posts_gap:.1f}-pt gap at 80% power (alpha 0.05)",
             str(need) if need else "-"]]
    return Table(title=f"{na} (A) vs {nb} (B): effect sizes (the decision is the rule's)", columns=["statistic",
                                                                                                    "value"], rows=rows)
