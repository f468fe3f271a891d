"""VGG on MNIST and CIFAR-10 over repeated seeds (Learn TensorFlow Now parts 8, 10-12; CLAIMS.md C, D5, D8-D10).

* ``ltfn8_mnist_vgg_979_vs_973``: the modified VGG (MNIST zero-padded to 32x32) against the "previous
  best", the part 6 ConvNet with He/Xavier init; both Adam 1e-3, batch 100, 1,000 contiguous steps.
  Posts: 97.9% vs 97.3%, with the post's own doubt that the gap is more than chance.
* ``ltfn10_cifar_vgg_71pct``: the 3-channel VGG on raw 0-255 CIFAR-10 (the posts' seed-42 shuffle),
  Adam 1e-3, 10,000 steps: test accuracy about 71% (equivalence band 68-74%).
* ``ltfn11_mean_subtraction_gain``: the same with the per-pixel mean image subtracted: 70.9% -> 72.5%.
* ``ltfn12_bias_variance_gap``: in the mean-subtracted run, training accuracy (~84%) sits well above test
  (72.56%); the first batch's cost is large (131.96).

Every arm of a comparison shares the seed list. The rules (``harness.rulebook``) decide: VGG vs ConvNet
unpaired (different networks share no randomness), mean-subtracted vs raw paired by seed (same initial
weights and batches), Holm across the profile's comparative hypotheses. Exact Mann-Whitney, Hedges' g,
P(A>B) and the seeds the posts' gap would need are shown beside them. The posts' flawed evaluation
(updates on test batches) is run on copies as a flagged second number.

    pytest benchmarks/test_vgg.py --profile cpu --data-dir ../shared/datasets
"""
from __future__ import annotations


import numpy as np
import pytest
import torch

from fixtures.models import init_convnet4, make_convnet4, make_modified_vgg
from harness import stats
from harness.claims import Case
from harness.device import prepare_model
from harness.profiles import Budget
from harness.report import accuracy_bands
from harness.seeding import seed_all
from harness.train import TrainConfig, evaluate, evaluate_while_training, train
from harness.plugin import ClaimBench

SCALE = {
    "smoke": dict(vgg_width=0.0625, base_width=0.125, mnist_steps=10, cifar_steps=10, n_train_cifar=2000,
                  test_n=500, curve_n=200, train_eval_n=500, eval_every=5, print_every=5),
    "cpu": dict(vgg_width=0.125, base_width=0.25, mnist_steps=500, cifar_steps=1500, n_train_cifar=10000,
                test_n=10000, curve_n=2000, train_eval_n=10000, eval_every=100, print_every=100),
    "full": dict(vgg_width=1.0, base_width=1.0, mnist_steps=1000, cifar_steps=10000, n_train_cifar=50000,
                 test_n=10000, curve_n=10000, train_eval_n=50000, eval_every=250, print_every=100),
}
DEVIATION = {
    "smoke": "toy widths and 10 steps",
    "cpu": "1/8-width VGG (8..64 channels, FC 512), 1/4-width ConvNet; MNIST 500 steps instead of 1,000; "
           "CIFAR-10 on the first 10,000 (posts-shuffled) training images for 1,500 steps (15 passes) instead "
           "of 50,000 for 10,000 steps",
    "full": "",
}
SEEDS = {"smoke": 1, "cpu": 5, "full": 5}
BUDGETS = {p: Budget(seeds=SEEDS[p], deviation=DEVIATION[p], settings=SCALE[p]) for p in SCALE}
CASES = [Case(c, BUDGETS) for c in ("ltfn8_mnist_vgg_979_vs_973", "ltfn10_cifar_vgg_71pct",
                                    "ltfn11_mean_subtraction_gain", "ltfn12_bias_variance_gap")]
_TENSORS: dict = {}


def _mnist_tensors(data, device):
    key = ("mnist", str(device))
    if key not in _TENSORS:
        _TENSORS[key] = (data.tensors("train", device), data.tensors("test", device))
    return _TENSORS[key]


def _cifar_tensors(data, device, n_train):
    """Posts' order, raw 0..255 floats, NCHW on the device, plus the mean image of the training images."""
    key = ("cifar", str(device), n_train)
    if key not in _TENSORS:
        d = data.posts_order()

        def t(x, y):
            return (torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).float().to(device),
                    torch.from_numpy(y.astype(np.int64)).to(device))

        mean = torch.from_numpy(d.mean_image().transpose(2, 0, 1).copy()).float().to(device)
        _TENSORS[key] = (t(d.x_train[:n_train], d.y_train[:n_train]), t(d.x_test, d.y_test), mean)
    return _TENSORS[key]


def _fit(ctx, model, opt, train_t, curve_t, steps, gens, label):
    s = ctx.budget.settings
    printed = {}

    def on_step(k, loss):
        if k % s["print_every"] == 0:
            printed[k] = loss
    res = train(model, opt, train_t, curve_t,
                TrainConfig(steps=steps, batch_size=100, order="contiguous", eval_every=s["eval_every"],
                            channels_last=True), generator=gens.torch, label=label, on_step=on_step)
    return res, [[k, float(v)] for k, v in sorted(printed.items())]  # (step, batch cost) as the posts printed


def mnist_run(ctx, data, arm, seed):
    s = ctx.budget.settings
    cfg = {"arm": arm, "steps": s["mnist_steps"], "width": s["vgg_width" if arm == "vgg" else "base_width"],
           "curve_n": s["curve_n"], "eval_every": s["eval_every"], "optimizer": "adam 1e-3", "batch": 100,
           "metrics": 2}

    def fn():
        gens = seed_all(seed)
        if arm == "vgg":
            model = make_modified_vgg(in_channels=1, width=cfg["width"])
        else:
            model = init_convnet4(make_convnet4(width=cfg["width"]), "he_xavier", gens.torch)
        model = prepare_model(model, ctx.device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
        train_t, test_t = _mnist_tensors(data, ctx.device)
        curve_t = (test_t[0][:s["curve_n"]], test_t[1][:s["curve_n"]])
        res, printed = _fit(ctx, model, opt, train_t, curve_t, s["mnist_steps"], gens, f"mnist {arm} seed={seed}")
        out = {"history": res.history, "printed_cost": printed, "diverged": res.diverged, "wall_s": res.wall_s,
               "images_per_s": res.images_per_s, "final": {}}
        if res.diverged is None:
            ev = evaluate(model, test_t)
            bug = evaluate_while_training(model, opt, test_t)
            out["final"] = {"test_acc": ev["acc"], "test_cost": ev["loss"], "buggy_test_acc": bug["acc"]}
        out["metrics"] = {"test_acc": out["final"].get("test_acc", 0.0), "diverged": res.diverged is not None,
                          "test_cost": out["final"].get("test_cost"), "buggy_test_acc": out["final"].get("buggy_test_acc")}
        return out

    return ctx.run(arm, seed, fn, config=cfg, experiment="vgg-mnist")


def cifar_run(ctx, data, arm, seed):
    s = ctx.budget.settings
    cfg = {"arm": arm, "steps": s["cifar_steps"], "width": s["vgg_width"], "n_train": s["n_train_cifar"],
           "curve_n": s["curve_n"], "train_eval_n": s["train_eval_n"], "eval_every": s["eval_every"],
           "optimizer": "adam 1e-3", "batch": 100, "input": "raw 0-255" + (" minus mean image" if arm == "mean_sub" else ""),
           "metrics": 2}

    def fn():
        gens = seed_all(seed)
        model = prepare_model(make_modified_vgg(in_channels=3, width=s["vgg_width"]), ctx.device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
        (xtr, ytr), (xte, yte), mean = _cifar_tensors(data, ctx.device, s["n_train_cifar"])
        if arm == "mean_sub":
            xtr, xte = xtr - mean, xte - mean
        curve_t = (xte[:s["curve_n"]], yte[:s["curve_n"]])
        res, printed = _fit(ctx, model, opt, (xtr, ytr), curve_t, s["cifar_steps"], gens, f"cifar {arm} seed={seed}")
        out = {"history": res.history, "printed_cost": printed, "diverged": res.diverged, "wall_s": res.wall_s,
               "images_per_s": res.images_per_s, "final": {}}
        if res.diverged is None:
            test = evaluate(model, (xte, yte))
            tr_n = s["train_eval_n"]
            train_full = evaluate(model, (xtr[:tr_n], ytr[:tr_n]))
            n = xtr.shape[0]
            starts = [(k * 100) % (n - 100) for k in range(s["cifar_steps"] - 1, -1, -s["print_every"])][:10]
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

    return ctx.run(arm, seed, fn, config=cfg, experiment="vgg-cifar10")


def _acc(run):
    return run["metrics"]["test_acc"]


def _strip(title, groups, refs) -> dict:
    return {"kind": "strip", "title": title, "ylabel": "test accuracy (%)", "refs": refs,
            "groups": [{"label": k, "values": v} for k, v in groups.items()]}


def _curves(title, runs_by_arm) -> dict:
    return {"kind": "lines", "title": title, "xlabel": "step", "ylabel": "test accuracy (%, curve subset)",
            "series": accuracy_bands(runs_by_arm, percent=True)}


@pytest.mark.parametrize("case", CASES, ids=str)
def test_claim(case: Case, claimbench: ClaimBench, datasets) -> None:
    ctx = claimbench.start(case)
    cid = case.claim_id
    if cid == "ltfn8_mnist_vgg_979_vs_973":
        data = datasets.require(ctx, "mnist")
        runs = {arm: [mnist_run(ctx, data, arm, sd) for sd in ctx.seeds] for arm in ("vgg", "convnet")}
        a, b = [100 * _acc(r) for r in runs["vgg"]], [100 * _acc(r) for r in runs["convnet"]]
        bug = {arm: np.mean([r["final"].get("buggy_test_acc", np.nan) for r in rs]) for arm, rs in runs.items()}
        ctx.decide(
            runs, tables=[_effect_table({"VGG": a, "ConvNet": b}, 0.6)],
            figures=[_strip("MNIST test accuracy per seed (%)", {"VGG": a, "ConvNet (He/Xavier, Adam)": b},
                            [{"y": 97.9, "label": "posts: VGG 97.9%", "color": "tab:blue"},
                             {"y": 97.3, "label": "posts: previous best 97.3%", "color": "tab:orange"}]),
                     _curves("MNIST test accuracy while training", runs)],
            notes=[f"With the posts' flawed evaluation (training on test batches): VGG {100 * bug['vgg']:.2f}%, "
                   f"ConvNet {100 * bug['convnet']:.2f}% (clean: {np.mean(a):.2f}% / {np.mean(b):.2f}%).",
                   "The previous best is taken to be part 7's ConvNet with He/Xavier init and Adam 1e-3 for "
                   "1,000 steps (CLAIMS.md D5: plausible, not verified). The arms share no randomness (different "
                   "networks), so the rule compares them unpaired."])
        return
    data = datasets.require(ctx, "cifar10")
    arms = ("raw", "mean_sub") if cid == "ltfn11_mean_subtraction_gain" else (
        ("raw",) if cid == "ltfn10_cifar_vgg_71pct" else ("mean_sub",))
    runs = {arm: [cifar_run(ctx, data, arm, sd) for sd in ctx.seeds] for arm in arms}
    labelled = {"meansub" if arm == "mean_sub" else arm: rs for arm, rs in runs.items()}
    acc = {arm: [100 * _acc(r) for r in rs] for arm, rs in runs.items()}
    bug = {arm: float(np.mean([r["final"].get("buggy_test_acc", np.nan) for r in rs])) for arm, rs in runs.items()}
    curves = _curves("CIFAR-10 test accuracy while training", runs)
    if cid == "ltfn10_cifar_vgg_71pct":
        gap = np.mean([r["metrics"].get("train_acc") or np.nan for r in runs["raw"]]) - np.mean(acc["raw"]) / 100
        ctx.decide(labelled, figures=[curves, _strip("CIFAR-10 raw input, test accuracy per seed (%)",
                                                     {"raw": acc["raw"]}, [{"y": 71, "label": "posts: ~71%"}])],
                   notes=[f"With the posts' flawed evaluation: {100 * bug['raw']:.2f}%.",
                          f"Training accuracy (training subset) minus test: {100 * gap:.2f} points."])
        return
    if cid == "ltfn11_mean_subtraction_gain":
        ctx.decide(
            labelled, tables=[_effect_table({"mean-subtracted": acc["mean_sub"], "raw": acc["raw"]}, 1.6)],
            figures=[_strip("CIFAR-10 test accuracy per seed (%)", {"raw": acc["raw"], "mean-subtracted": acc["mean_sub"]},
                            [{"y": 70.9, "label": "posts: raw 70.9%", "color": "tab:blue"},
                             {"y": 72.56, "label": "posts: mean-subtracted 72.56%", "color": "tab:orange"}]), curves],
            notes=[f"With the posts' flawed evaluation: raw {100 * bug['raw']:.2f}%, mean-subtracted "
                   f"{100 * bug['mean_sub']:.2f}%.", "Both arms start from the same weights and see the same batches "
                   "for a seed, so the rule pairs them by seed."])
        return
    # ltfn12: the mean-subtracted run's train/test gap
    rs = runs["mean_sub"]
    m = [r["metrics"] for r in rs]
    pct = lambda v: f"{100 * v:.2f}" if v is not None else "-"  # noqa: E731
    num = lambda v: f"{v:.4g}" if v is not None else "-"  # noqa: E731
    rows = [[r["seed"], pct(x.get("train_acc")), pct(x.get("one_batch_train_acc")),
             pct(r["final"].get("last10_batches_train_acc")), pct(x["test_acc"]), num(x.get("train_cost")),
             num(x.get("test_cost")), num(x.get("cost_ratio")), num(x.get("first_printed_cost"))] for r, x in zip(rs, m)]
    mean = lambda k: float(np.mean([x.get(k) or np.nan for x in m]))  # noqa: E731
    ctx.decide(
        labelled,
        tables=[{"title": "per seed (mean-subtracted run)", "columns": [
            "seed", "train acc % (training subset)", "train acc % (last batch, as the posts read it)",
            "train acc % (last 10 printed batches)", "test acc %", "train cost", "test cost", "test / train cost",
            "first printed batch cost (posts 131.96)"], "rows": rows}],
        figures=[{"kind": "bars", "title": "accuracy (%): training set vs test set (mean over seeds)",
                  "labels": ["train (full set)", "train (last batch)", "test"],
                  "values": [100 * mean("train_acc"), 100 * mean("one_batch_train_acc"), 100 * mean("test_acc")],
                  "refs": [{"y": 84, "label": "posts: train ~84%", "color": "tab:blue"},
                           {"y": 72.56, "label": "posts: test 72.56%", "color": "tab:red"}], "ylabel": "accuracy (%)"},
                 curves],
        notes=["The first printed batch cost is shown, not decided: on raw or mean-subtracted 0-255 input it is "
               "large by construction."])


def _effect_table(arms: dict[str, list[float]], posts_gap: float) -> dict:
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
    return {"title": f"{na} (A) vs {nb} (B): effect sizes (the decision is the rule's)", "columns": ["statistic", "value"],
            "rows": rows}
