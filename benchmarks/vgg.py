"""What the two VGG families share (Learn TensorFlow Now parts 8 and 10-12): the profiles' settings, the
training call that records the batch costs the scripts printed, and the figures and effect-size table
shown beside the rules' decisions (``test_vgg_mnist.py``, ``test_cifar.py``).
"""
from __future__ import annotations

import numpy as np

from harness import stats
from harness.plugin import ClaimContext
from harness.report import accuracy_bands
from harness.train import TrainConfig, train
from harness.records import Lines, Strip, Table

SCALE = {
    "smoke": dict(vgg_width=0.0625, base_width=0.125, mnist_steps=10, cifar_steps=10, n_train_cifar=2000,
                  test_n=500, curve_n=200, train_eval_n=500, eval_every=5, print_every=5),
    "cpu": dict(vgg_width=0.125, base_width=0.25, mnist_steps=500, cifar_steps=1500, n_train_cifar=10000,
                test_n=10000, curve_n=2000, train_eval_n=10000, eval_every=100, print_every=100),
    "full": dict(vgg_width=1.0, base_width=1.0, mnist_steps=1000, cifar_steps=10000, n_train_cifar=50000,
                 test_n=10000, curve_n=10000, train_eval_n=50000, eval_every=250, print_every=100),
}
SEEDS = {"smoke": 1, "cpu": 5, "full": 5}


def fit(ctx: ClaimContext, model, opt, train_t, curve_t, steps, gens, label):
    s = ctx.budget.settings
    printed = {}

    def on_step(k, loss):
        if k % s["print_every"] == 0:
            printed[k] = loss
    res = train(model, opt, train_t, curve_t,
                TrainConfig(steps=steps, batch_size=100, order="contiguous", eval_every=s["eval_every"],
                            channels_last=True), generator=gens.torch, label=label, on_step=on_step)
    return res, [[k, float(v)] for k, v in sorted(printed.items())]  # (step, batch cost) as the posts printed


def acc(run):
    return run["metrics"]["test_acc"]


def strip(title, groups, refs) -> dict:
    return Strip(title=title, ylabel="test accuracy (%)", refs=refs, groups=[{"label": k, "values": v} for k, v in groups.items()])


def curves(title, runs_by_arm) -> dict:
    return Lines(title=title, xlabel="step", ylabel="test accuracy (%, curve subset)", series=accuracy_bands(runs_by_arm, percent=True))




def effect_table(arms: dict[str, list[float]], posts_gap: float) -> dict:
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
    return Table(title=f"{na} (A) vs {nb} (B): effect sizes (the decision is the rule's)", columns=["statistic", "value"], rows=rows)
