"""VGG on MNIST and CIFAR-10 over repeated seeds (Learn TensorFlow Now parts 8, 10-12; CLAIMS.md C, D5, D8-D10).

* ``ltfn8_mnist_vgg_979_vs_973``: the modified VGG (MNIST zero-padded to 32x32) against the "previous
  best", the part 6 ConvNet with He/Xavier init; both Adam 1e-3, batch 100, 1,000 contiguous steps.
  Posts: 97.9% vs 97.3%, with the post's own doubt that the gap is more than chance.
* ``ltfn10_cifar_vgg_71pct``: the 3-channel VGG on raw 0-255 CIFAR-10 (the posts' seed-42 shuffle),
  Adam 1e-3, 10,000 steps: test accuracy about 71% (equivalence band 68-74%).
* ``ltfn11_mean_subtraction_gain``: the same with the per-pixel mean image subtracted: 70.9% -> 72.5%.
* ``ltfn12_bias_variance_gap``: in the mean-subtracted run, training accuracy (~84%) sits well above test
  (72.56%); the first batch's cost is large (131.96).

Every arm of a comparison shares the seed list (paired). Decisions: one-sided Welch at alpha/2 (Holm's
first step over this family's two comparative hypotheses, the conservative choice when each test decides
alone), the BCa CI of the difference must exclude 0; exact Mann-Whitney, paired t, Hedges' g, P(A>B),
the smallest detectable difference and the seeds the posts' gap would need are reported beside them. The
posts' flawed evaluation (updates on test batches) is run on copies as a flagged second number.

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
from harness.verdict import INCONCLUSIVE, NOT_RUN, Check, Outcome, decide_greater, from_checks

FAMILY_TESTS = 2  # comparative hypotheses in this family (MNIST VGG > ConvNet, mean-sub > raw)
CIFAR_BAND = (0.68, 0.74)
SCALE = {
    "smoke": dict(vgg_width=0.0625, base_width=0.125, mnist_steps=10, cifar_steps=10, n_train_cifar=2000,
                  test_n=500, curve_n=200, train_eval_n=500, eval_every=5, print_every=5),
    "cpu": dict(vgg_width=0.125, base_width=0.25, mnist_steps=500, cifar_steps=1500, n_train_cifar=10000,
                test_n=10000, curve_n=2000, train_eval_n=10000, eval_every=500, print_every=100),
    "full": dict(vgg_width=1.0, base_width=1.0, mnist_steps=1000, cifar_steps=10000, n_train_cifar=50000,
                 test_n=10000, curve_n=10000, train_eval_n=50000, eval_every=1000, print_every=100),
}
DEVIATION = {
    "smoke": "toy widths and 10 steps",
    "cpu": "1/8-width VGG (8..64 channels, FC 512), 1/4-width ConvNet; MNIST 500 steps instead of 1,000; "
           "CIFAR-10 on the first 10,000 (posts-shuffled) training images for 1,500 steps (15 passes) instead "
           "of 50,000 for 10,000 steps",
    "full": "",
}
SEEDS = {"smoke": 1, "cpu": 4, "full": 5}
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
           "curve_n": s["curve_n"], "eval_every": s["eval_every"], "optimizer": "adam 1e-3", "batch": 100}

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
        return out

    return ctx.run(arm, seed, fn, config=cfg, experiment="vgg-mnist")


def cifar_run(ctx, data, arm, seed):
    s = ctx.budget.settings
    cfg = {"arm": arm, "steps": s["cifar_steps"], "width": s["vgg_width"], "n_train": s["n_train_cifar"],
           "curve_n": s["curve_n"], "train_eval_n": s["train_eval_n"], "eval_every": s["eval_every"],
           "optimizer": "adam 1e-3", "batch": 100, "input": "raw 0-255" + (" minus mean image" if arm == "mean_sub" else "")}

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
        return out

    return ctx.run(arm, seed, fn, config=cfg, experiment="vgg-cifar10")


def _acc(run):
    return run["final"].get("test_acc", 0.0) if run.get("diverged") is None else 0.0


def _comparison_tables(name_a, name_b, a, b, comp, posts_gap) -> list[dict]:
    pooled = float(np.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / 2)) if len(a) > 1 else float("nan")
    need = stats.seeds_needed(posts_gap, pooled) if pooled == pooled else None
    rows = [["mean A - B (pts)", f"{100 * comp.diff:.3f}"],
            ["BCa 95% CI of A - B (pts)", f"{100 * comp.diff_ci[0]:.3f} .. {100 * comp.diff_ci[1]:.3f}"],
            ["Welch t, one-sided p", f"{comp.welch.statistic:.3f}, {comp.welch.p:.3g}"],
            ["Mann-Whitney U, one-sided p (exact)", f"{comp.mann_whitney.statistic:g}, {comp.mann_whitney.p:.3g}"],
            ["paired t, one-sided p", f"{comp.paired_t.p:.3g}" if comp.paired_t else "—"],
            ["Wilcoxon signed-rank, one-sided p", f"{comp.wilcoxon.p:.3g}" if comp.wilcoxon else "—"],
            ["Hedges' g", f"{comp.hedges_g:.3f}"], ["P(A > B)", f"{comp.p_superiority:.3f}"],
            ["seed sd A / B (pts)", f"{100 * np.std(a, ddof=1):.3f} / {100 * np.std(b, ddof=1):.3f}" if len(a) > 1 else "—"],
            ["smallest difference detectable at 80% power (pts)", f"{100 * comp.mdd:.3f}"],
            [f"seeds per arm to detect the posts' {100 * posts_gap:.1f}-pt gap at 80% power",
             str(need) if need else "—"]]
    return [{"title": f"{name_a} (A) vs {name_b} (B)", "columns": ["statistic", "value"], "rows": rows}]


def _strip(title, groups, refs) -> dict:
    return {"kind": "strip", "title": title, "ylabel": "test accuracy", "refs": refs,
            "groups": [{"label": k, "values": v} for k, v in groups.items()]}


def _curves(title, runs_by_arm) -> dict:
    return {"kind": "lines", "title": title, "xlabel": "step", "ylabel": "test accuracy (curve subset)",
            "series": accuracy_bands(runs_by_arm)}


def _decide_pair(name_a, a, name_b, b, posts_gap):
    verdict, comp, checks = decide_greater(a, b, m_tests=FAMILY_TESTS, min_seeds=4, paired=True,
                                           effect_of_interest=posts_gap)
    ours = (f"{name_a} {stats.summary(a).fmt(100, 2, '%')} vs {name_b} {stats.summary(b).fmt(100, 2, '%')}; "
            f"diff {100 * comp.diff:+.2f} pts [{100 * comp.diff_ci[0]:.2f}, {100 * comp.diff_ci[1]:.2f}]")
    return verdict, comp, checks, ours


@pytest.mark.parametrize("case", CASES, ids=str)
def test_claim(case: Case, claimbench, datasets) -> None:
    ctx = claimbench.start(case)
    cid = case.claim_id
    if cid == "ltfn8_mnist_vgg_979_vs_973":
        data = datasets.require(ctx, "mnist")
        runs = {arm: [mnist_run(ctx, data, arm, sd) for sd in ctx.seeds] for arm in ("vgg", "convnet")}
        a, b = np.array([_acc(r) for r in runs["vgg"]]), np.array([_acc(r) for r in runs["convnet"]])
        verdict, comp, checks, ours = _decide_pair("VGG", a, "ConvNet", b, 0.006)
        bug = {arm: np.mean([r["final"].get("buggy_test_acc", np.nan) for r in rs]) for arm, rs in runs.items()}
        ctx.conclude(Outcome(
            verdict, ours=ours, checks=checks, ours_stats=stats.summary(a).as_dict(),
            tables=_comparison_tables("VGG", "ConvNet", a, b, comp, 0.006),
            figures=[_strip("MNIST test accuracy per seed", {"VGG": a.tolist(), "ConvNet (He/Xavier, Adam)": b.tolist()},
                            [{"y": 0.979, "label": "posts: VGG 97.9%", "color": "tab:blue"},
                             {"y": 0.973, "label": "posts: previous best 97.3%", "color": "tab:orange"}]),
                     _curves("MNIST test accuracy while training", runs)],
            notes=[f"With the posts' flawed evaluation (training on test batches): VGG {100 * bug['vgg']:.2f}%, "
                   f"ConvNet {100 * bug['convnet']:.2f}% (clean: {100 * a.mean():.2f}% / {100 * b.mean():.2f}%).",
                   "The previous best is taken to be part 7's ConvNet with He/Xavier init and Adam 1e-3 for "
                   "1,000 steps (CLAIMS.md D5: plausible, not verified)."],
            details={"vgg": a.tolist(), "convnet": b.tolist(), "comparison": comp.as_dict()}))
        return
    data = datasets.require(ctx, "cifar10")
    arms = ("raw", "mean_sub") if cid == "ltfn11_mean_subtraction_gain" else (
        ("raw",) if cid == "ltfn10_cifar_vgg_71pct" else ("mean_sub",))
    runs = {arm: [cifar_run(ctx, data, arm, sd) for sd in ctx.seeds] for arm in arms}
    acc = {arm: np.array([_acc(r) for r in rs]) for arm, rs in runs.items()}
    bug = {arm: float(np.mean([r["final"].get("buggy_test_acc", np.nan) for r in rs])) for arm, rs in runs.items()}
    curves = _curves("CIFAR-10 test accuracy while training", runs)
    if cid == "ltfn10_cifar_vgg_71pct":
        a = acc["raw"]
        summ = stats.summary(a)
        band = stats.within_band(a, *CIFAR_BAND)
        tost_p = stats.tost(a, *CIFAR_BAND)
        check = Check("95% CI of the mean test accuracy inside 68-74%", "inside", f"{band} ({summ.fmt(100, 2, '%')}), "
                      f"TOST p = {tost_p:.3g}", {"inside": True, "outside": False}.get(band))
        gap = np.mean([r["final"].get("train_acc", np.nan) for r in runs["raw"]]) - a.mean()
        notes = [f"With the posts' flawed evaluation: {100 * bug['raw']:.2f}%.",
                 f"Training accuracy (full training set) minus test: {100 * gap:.2f} points."]
        if ctx.profile == "cpu":  # the 71% level belongs to the posts' scale; the analogue reports its own level
            ctx.conclude(Outcome(NOT_RUN, not_run_reason="profile", ours=summ.fmt(100, 2, "%"),
                                 ours_stats=summ.as_dict(), checks=[check],
                                 reason="the 71% level is a property of the full-scale run (50,000 images, 10,000 "
                                        "steps, full width); the cpu analogue's accuracy is reported, not judged",
                                 figures=[curves, _strip("CIFAR-10 raw input, test accuracy per seed",
                                                         {"raw": a.tolist()}, [{"y": 0.71, "label": "posts: ~71%"}])],
                                 notes=notes, details={"acc": a.tolist()}))
            return
        ctx.conclude(Outcome(from_checks([check]), ours=summ.fmt(100, 2, "%"), ours_stats=summ.as_dict(),
                             checks=[check], figures=[curves, _strip("CIFAR-10 raw input, test accuracy per seed",
                                                                     {"raw": a.tolist()},
                                                                     [{"y": 0.71, "label": "posts: ~71%"}])],
                             notes=notes, details={"acc": a.tolist()}))
        return
    if cid == "ltfn11_mean_subtraction_gain":
        a, b = acc["mean_sub"], acc["raw"]
        verdict, comp, checks, ours = _decide_pair("mean-subtracted", a, "raw", b, 0.016)
        ctx.conclude(Outcome(
            verdict, ours=ours, checks=checks, ours_stats=stats.summary(a - b).as_dict(),
            tables=_comparison_tables("mean-subtracted", "raw", a, b, comp, 0.016),
            figures=[_strip("CIFAR-10 test accuracy per seed", {"raw": b.tolist(), "mean-subtracted": a.tolist()},
                            [{"y": 0.709, "label": "posts: raw 70.9%", "color": "tab:blue"},
                             {"y": 0.7256, "label": "posts: mean-subtracted 72.56%", "color": "tab:orange"}]), curves],
            notes=[f"With the posts' flawed evaluation: raw {100 * bug['raw']:.2f}%, mean-subtracted "
                   f"{100 * bug['mean_sub']:.2f}%."],
            details={"mean_sub": a.tolist(), "raw": b.tolist(), "comparison": comp.as_dict()}))
        return
    # ltfn12: the mean-subtracted run's train/test gap
    rs = runs["mean_sub"]
    train_acc = np.array([r["final"].get("train_acc", np.nan) for r in rs])
    test_acc = acc["mean_sub"]
    gap = train_acc - test_acc
    one_batch = np.array([r["final"].get("one_batch_train_acc", np.nan) for r in rs])
    cost_ratio = np.array([r["final"].get("test_cost", np.nan) / r["final"].get("train_cost", np.nan) for r in rs])
    first_cost = np.array([r["printed_cost"][0][1] for r in rs])
    n = len(rs)
    p_gap = stats.one_sample(gap, 0.0).p if n > 1 else float("nan")
    checks = [
        Check("train - test accuracy (full training set), mean", ">= 5 points, one-sided t p < 0.05",
              f"{100 * gap.mean():.2f} pts, p = {p_gap:.3g}",
              None if n < 2 else bool(gap.mean() >= 0.05 and p_gap < 0.05)),
        Check("first printed batch cost (every seed)", "> 10 (posts 131.96)",
              f"{first_cost.min():.4g} .. {first_cost.max():.4g}", bool(first_cost.min() > 10)),
    ]
    notes = []
    if ctx.profile == "full":  # the posts' regime: train cost 0.47 at ~84% train accuracy vs test cost 1.05
        checks.append(Check("test cost / train cost, mean", ">= 1.5", f"{cost_ratio.mean():.2f}",
                            bool(cost_ratio.mean() >= 1.5)))
    else:
        notes.append(f"Test cost / train cost is {cost_ratio.mean():.2f} here; the >= 1.5 check belongs to the "
                     "full profile, where the network fits its training set as the posts' did.")
    verdict = from_checks(checks)
    rows = [[r["seed"], f"{100 * tr:.2f}", f"{100 * ob:.0f}", f"{100 * r['final'].get('last10_batches_train_acc', np.nan):.2f}",
             f"{100 * te:.2f}", f"{r['final'].get('train_cost', np.nan):.4g}", f"{r['final'].get('test_cost', np.nan):.4g}",
             f"{fc:.4g}"] for r, tr, ob, te, fc in zip(rs, train_acc, one_batch, test_acc, first_cost)]
    ctx.conclude(Outcome(
        verdict if n >= 2 else INCONCLUSIVE,
        ours=f"train {100 * train_acc.mean():.2f}% vs test {stats.summary(test_acc).fmt(100, 2, '%')}; "
             f"gap {stats.summary(gap).fmt(100, 2, ' pts')}", ours_stats=stats.summary(gap).as_dict(), checks=checks,
        tables=[{"title": "per seed (mean-subtracted run)", "columns": [
            "seed", "train acc % (full train set)", "train acc % (last batch, as the posts read it)",
            "train acc % (last 10 printed batches)", "test acc %", "train cost", "test cost", "first batch cost"],
            "rows": rows}],
        figures=[{"kind": "bars", "title": "accuracy: training set vs test set (mean over seeds)",
                  "labels": ["train (full set)", "train (last batch)", "test"],
                  "values": [float(train_acc.mean()), float(one_batch.mean()), float(test_acc.mean())],
                  "refs": [{"y": 0.84, "label": "posts: train ~84%", "color": "tab:blue"},
                           {"y": 0.7256, "label": "posts: test 72.56%", "color": "tab:red"}], "ylabel": "accuracy"},
                 curves], notes=notes,
        details={"gap": gap.tolist(), "cost_ratio": cost_ratio.tolist(), "first_cost": first_cost.tolist()}))
