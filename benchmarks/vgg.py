"""What the two VGG families share (Learn TensorFlow Now parts 8 and 10-12): the profiles' settings, the
training call that records the batch costs the scripts printed, and the figures and effect-size table
shown beside the rules' decisions (``test_vgg_mnist.py``, ``test_cifar.py``).
"""
from __future__ import annotations

import numpy as np
import torch

from harness import stats
from harness.claim import ClaimContext
from harness.stacked import train_stacked_runs, unstack_optimizer
from harness.train import TrainConfig, train
from harness.records import Lines, Strip, Table, accuracy_bands

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
    res = train(model, opt, train_t, curve_t, _train_config(s, steps), generator=gens.torch, label=label,
                on_step=on_step)
    return res, [[k, float(v)] for k, v in sorted(printed.items())]  # (step, batch cost) as the posts printed


def _train_config(s: dict, steps: int) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=100, order="contiguous", eval_every=s["eval_every"],
                       channels_last=True)


def _stopped_at(res) -> int:
    """The step a run-by-run training stops at: the end, or the evaluation that found a divergence."""
    return res.history[-1]["step"] if res.history else res.steps


def run_seeds(ctx: ClaimContext, arm: str, seeds, *, setup, finish, steps: int, label: str, config: dict,
              experiment: str) -> list[dict]:
    """The runs of an arm over ``seeds``, trained one by one or, where ``ctx.stacking`` says so (CUDA by
    default), together (harness.stacked); the same stored runs either way, each saying how it was executed.

    ``setup(seed) -> (model, make_optimizer, train data, curve data, generators)`` builds a seed's model exactly
    as a run-by-run training does; ``finish(model, optimizer, result, printed, execution) -> record`` turns the
    trained model into the run's record."""
    s = ctx.budget.settings
    seeds = list(seeds)

    def one(seed):
        def fn():
            model, make_opt, train_t, curve_t, gens = setup(seed)
            opt = make_opt(model.parameters())
            res, printed = fit(ctx, model, opt, train_t, curve_t, steps, gens, f"{label} seed={seed}")
            return finish(model, opt, res, printed, {"mode": "run-by-run"})
        return fn

    def many(todo: list[int]) -> dict[int, dict]:
        built = [setup(seed) for seed in todo]
        models, make_opt, train_t, curve_t = [b[0] for b in built], built[0][1], built[0][2], built[0][3]
        printed: dict[int, torch.Tensor] = {}

        def on_step(k, losses):
            if k % s["print_every"] == 0:
                printed[k] = losses
        results, opt, params = train_stacked_runs(
            models, make_opt, train_t, curve_t, _train_config(s, steps), on_step=on_step,
            label=f"{label} seeds={','.join(map(str, todo))} (stacked)")
        execution = {"mode": "stacked", "seeds": list(todo)}
        host = {k: v.cpu() for k, v in printed.items()}
        return {seed: finish(m, unstack_optimizer(opt, params, i, m, make_opt), res,
                             [[k, float(host[k][i])] for k in sorted(host) if k < _stopped_at(res)], execution)
                for i, (seed, m, res) in enumerate(zip(todo, models, results))}

    if not ctx.stacking(len(seeds)):
        return [ctx.run(arm, seed, one(seed), config=config, experiment=experiment) for seed in seeds]
    return ctx.run_group(arm, seeds, many, one, config=config, experiment=experiment)


def acc(run):
    return run["metrics"]["test_acc"]


def strip(title, groups, refs) -> dict:
    return Strip(title=title, ylabel="test accuracy (%)", refs=refs, groups=[{"label": k, "values": v} for k,
                                                                             v in groups.items()])


def curves(title, runs_by_arm, curve_n: int | None = None) -> dict:
    subset = (f"curves: accuracy on the first {curve_n:,} test images, evaluated while training (the verdict reads "
              "the whole test set)" if curve_n else "")
    return Lines(title=title, xlabel="step", ylabel="test accuracy (%, curve subset)",
                 series=accuracy_bands(runs_by_arm, percent=True), caption=subset)




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
    return Table(title=f"{na} (A) vs {nb} (B): effect sizes (the decision is the rule's)", columns=["statistic",
                                                                                                    "value"], rows=rows)
