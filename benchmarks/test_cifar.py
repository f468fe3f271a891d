"""VGG on CIFAR-10 over repeated seeds (Learn TensorFlow Now parts 10-12; docs/claims.md C, D8-D10).

* ``ltfn10_cifar_vgg_71pct``: the 3-channel VGG on raw 0-255 CIFAR-10 (the posts' seed-42 shuffle), Adam
  1e-3, 10,000 steps of 100: test accuracy about 71%.
* ``ltfn11_mean_subtraction_gain``: the same with the per-pixel mean image subtracted: 70.9% -> 72.5%.
* ``ltfn12_bias_variance_gap``: in the mean-subtracted run, training accuracy (~84%) sits well above test
  (72.56%), and the test cost well above the training cost.

The rules (``harness.rulebook``) decide; mean-subtracted vs raw is paired by seed (same initial weights and
batches). The posts' flawed evaluation (updates on test batches) is run on copies as a flagged number.

    pytest benchmarks/test_cifar.py --profile cpu --data-dir ../shared/datasets
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.convnet import acc_of
from benchmarks.vgg import SCALE, SEEDS, adam, curves, effect_table, strip, train_config
from fixtures.models import make_modified_vgg
from harness.claims import Case
from harness.device import prepare_model
from harness.memo import session_cached
from harness.claim import ClaimBench, ClaimContext, run_case
from harness.profiles import Budget
from harness.seeding import seed_all
from harness.train import evaluate, evaluate_while_training
from harness.records import Bars, Ref, Table, chance
from harness.stacked import SeedSetup, run_seeds

DEVIATION = {
    "smoke": "toy widths and 10 steps",
    "cpu": "1/8-width VGG (8..64 channels, FC 512) on the first 10,000 (posts-shuffled) training images for "
           "1,500 steps (15 passes) instead of 50,000 for 10,000 steps",
    "full": "",
}
BUDGETS = {p: Budget(seeds=SEEDS[p], deviation=DEVIATION[p], settings=SCALE[p]) for p in SCALE}


def _cifar_tensors(data, device, n_train):
    """Posts' order, raw 0..255 floats, NCHW on the device, plus the mean image of the training images."""
    def t(x, y):
        return (torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).float().to(device),
                torch.from_numpy(y.astype(np.int64)).to(device))

    def make():
        d = data.posts_order()
        mean = torch.from_numpy(d.mean_image().transpose(2, 0, 1).copy()).float().to(device)
        return t(d.x_train[:n_train], d.y_train[:n_train]), t(d.x_test, d.y_test), mean
    return session_cached(("cifar", str(device), n_train), make)


def cifar_runs(ctx: ClaimContext, data, arm, seeds):
    s = ctx.budget.settings
    cfg = {"arm": arm, "steps": s.cifar_steps, "width": s.vgg_width, "n_train": s.n_train_cifar,
           "curve_n": s.curve_n, "train_eval_n": s.train_eval_n, "eval_every": s.eval_every,
           "optimizer": "adam 1e-3", "batch": 100,
           "input": "raw 0-255" + (" minus mean image" if arm == "mean_sub" else ""),
           "metrics": 2}

    def tensors():
        (xtr, ytr), (xte, yte), mean = _cifar_tensors(data, ctx.device, s.n_train_cifar)
        if arm == "mean_sub":
            xtr, xte = xtr - mean, xte - mean
        return (xtr, ytr), (xte, yte)

    def setup(seed):
        gens = seed_all(seed)
        model = prepare_model(make_modified_vgg(in_channels=3, width=s.vgg_width), ctx.device)
        (xtr, ytr), (xte, yte) = tensors()
        return SeedSetup(model, adam, (xtr, ytr), (xte[:s.curve_n], yte[:s.curve_n]), gens.torch)

    def finish(model, opt, res, printed, execution, _before):
        (xtr, ytr), (xte, yte) = tensors()
        out = {"history": res.history, "printed_cost": printed, "diverged": res.diverged, "wall_s": res.wall_s,
               "images_per_s": res.images_per_s, "final": {}, "execution": execution}
        if res.diverged is None:
            test = evaluate(model, (xte, yte))
            tr_n = s.train_eval_n
            train_full = evaluate(model, (xtr[:tr_n], ytr[:tr_n]))
            n = xtr.shape[0]
            starts = [(k * 100) % (n - 100) for k in range(s.cifar_steps - 1, -1, -s.print_every)][:10]
            batch_accs = [evaluate(model, (xtr[a:a + 100], ytr[a:a + 100]))["acc"] for a in starts]
            bug = evaluate_while_training(model, opt, (xte, yte))
            out["final"] = {"test_acc": test["acc"], "test_cost": test["loss"], "train_acc": train_full["acc"],
                            "train_cost": train_full["loss"], "one_batch_train_acc": batch_accs[0],
                            "last10_batches_train_acc": float(np.mean(batch_accs)), "buggy_test_acc": bug["acc"]}
        f = out["final"]
        out["metrics"] = {"test_acc": f.get("test_acc", 0.0), "diverged": res.diverged is not None,
                          **{k: f.get(k) for k in ("test_cost", "train_acc", "train_cost", "one_batch_train_acc",
                                                   "buggy_test_acc")},
                          "cost_ratio": f["test_cost"] / f["train_cost"] if f else None,
                          "first_printed_cost": printed[0][1] if printed else None}
        return out

    return run_seeds(ctx, arm, seeds, setup=setup, finish=finish, train_config=train_config(s, s.cifar_steps),
                     print_every=s.print_every, label=f"cifar {arm}", config=cfg, experiment="vgg-cifar10")



def _arm_runs(ctx: ClaimContext, datasets, arms: tuple[str, ...]):
    """The claim's runs per arm, the arms as the rules name them ("meansub"), accuracies in % and the posts'
    flawed evaluation per arm, and the training-curve figure."""
    data = datasets.require(ctx, "cifar10")
    runs = {arm: cifar_runs(ctx, data, arm, ctx.seeds) for arm in arms}
    labelled = {"meansub" if arm == "mean_sub" else arm: rs for arm, rs in runs.items()}
    pct = {arm: [100 * acc_of(r) for r in rs] for arm, rs in runs.items()}
    bug = {arm: float(np.mean([r["final"].get("buggy_test_acc", np.nan) for r in rs])) for arm, rs in runs.items()}
    return runs, labelled, pct, bug, curves("CIFAR-10 test accuracy while training", runs,
                                            ctx.budget.settings.curve_n)


def _vgg_71pct(ctx: ClaimContext, *, datasets, **_) -> None:
    runs, labelled, pct, bug, curve_fig = _arm_runs(ctx, datasets, ("raw",))
    gap = np.mean([r["metrics"].get("train_acc") or np.nan for r in runs["raw"]]) - np.mean(pct["raw"]) / 100
    refs = [Ref(y=71, label="posts: ~71%", role="posts"), chance(10, 100)] + ctx.rule_refs("test_acc", 100, "%")
    ctx.decide(labelled, figures=[curve_fig, strip("CIFAR-10 raw input, test accuracy per seed (%)",
                                                 {"raw": pct["raw"]}, refs)],
               notes=[f"With the posts' flawed evaluation: {100 * bug['raw']:.2f}%.",
                      f"Training accuracy (training subset) minus test: {100 * gap:.2f} points."])


def _mean_subtraction(ctx: ClaimContext, *, datasets, **_) -> None:
    runs, labelled, pct, bug, curve_fig = _arm_runs(ctx, datasets, ("raw", "mean_sub"))
    ctx.decide(
        labelled, tables=[effect_table({"mean-subtracted": pct["mean_sub"], "raw": pct["raw"]}, 1.6)],
        figures=[strip("CIFAR-10 test accuracy per seed (%)", {"raw": pct["raw"],
                                                               "mean-subtracted": pct["mean_sub"]},
                        [{"y": 70.9, "label": "posts: raw 70.9%", "color": "tab:blue"},
                         {"y": 72.56, "label": "posts: mean-subtracted 72.56%", "color": "tab:orange"}]),
                 curve_fig],
        notes=[f"With the posts' flawed evaluation: raw {100 * bug['raw']:.2f}%, mean-subtracted "
               f"{100 * bug['mean_sub']:.2f}%.", "Both arms start from the same weights and see the same batches "
               "for a seed, so the rule pairs them by seed."])


def _bias_variance(ctx: ClaimContext, *, datasets, **_) -> None:
    """ltfn12: the mean-subtracted run's train/test gap and cost ratio."""
    runs, labelled, _, _, curve_fig = _arm_runs(ctx, datasets, ("mean_sub",))
    rs = runs["mean_sub"]
    m = [r["metrics"] for r in rs]
    pct = lambda v: f"{100 * v:.2f}" if v is not None else "-"  # noqa: E731
    num = lambda v: f"{v:.4g}" if v is not None else "-"  # noqa: E731
    rows = [[r["seed"], pct(x.get("train_acc")), pct(x.get("one_batch_train_acc")),
             pct(r["final"].get("last10_batches_train_acc")), pct(x["test_acc"]), num(x.get("train_cost")),
             num(x.get("test_cost")), num(x.get("cost_ratio")), num(x.get("first_printed_cost"))] for r, x in zip(rs,
                                                                                                                  m)]
    mean = lambda k: float(np.mean([x.get(k) or np.nan for x in m]))  # noqa: E731
    ctx.decide(
        labelled,
        tables=[Table(title="per seed (mean-subtracted run)", columns=[
            "seed", "train acc % (training subset)", "train acc % (last batch, as the posts read it)",
            "train acc % (last 10 printed batches)", "test acc %", "train cost", "test cost", "test / train cost",
            "first printed batch cost (posts 131.96)"], rows=rows)],
        figures=[Bars(title="accuracy (%): training set vs test set (mean over seeds)", labels=["train (full set)",
                                                                                                "train (last batch)",
                                                                                                "test"],
                values=[100 * mean("train_acc"), 100 * mean("one_batch_train_acc"), 100 * mean("test_acc")],
                refs=[{"y": 84, "label": "posts: train ~84%", "color": "tab:blue"},
                           {"y": 72.56, "label": "posts: test 72.56%", "color": "tab:red"}], ylabel="accuracy (%)"),
                 curve_fig],
        notes=["The first printed batch cost is shown, not decided: on raw or mean-subtracted 0-255 input it is "
               "large by construction."])


CASES = [Case("ltfn10_cifar_vgg_71pct", BUDGETS, run=_vgg_71pct),
         Case("ltfn11_mean_subtraction_gain", BUDGETS, run=_mean_subtraction),
         Case("ltfn12_bias_variance_gap", BUDGETS, run=_bias_variance)]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_claim(case: Case, claimbench: ClaimBench, datasets) -> None:
    run_case(case, claimbench, datasets=datasets)
