"""What the counting family's claims share (posts "Image Classification with fastai" Part I and "Counting
Part II"): the posts' recipes as data, the profiles' settings, one stored run of a recipe (rendered dataset,
fastai's stages, the LR finder where the posts ran it) and the figures of its page. The claims are
``test_counting.py``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from harness.rulebook import METRIC_DEFS, metric_def
from harness import recipe as R
from fixtures import fastai as FA
from fixtures.backbones import RecipeScale
from fixtures.circles import RENDER_VERSION, counting_dataset
from harness.device import prepare_model
from harness.estimate import estimate, train_flops_per_image
from harness.profiles import Budget
from harness.seeding import seed_all
from harness.claim import ClaimContext
from harness.records import Images, images_figure
from harness.train import forward

PART1_SMALL = (1, 2, 3, 4, 5)
PART1_LARGE = (45, 46, 47, 48, 49, 50)
PART2 = (45, 46, 47, 48, 49)
OUT_OF_RANGE = (43, 44, 50, 51)


@dataclass(frozen=True)
class CountingScale(RecipeScale):
    """The counting family's knobs."""

    width: float
    size: int  # shorter image side in px (rendered at 432x288, then resized)
    bs: int
    per_part1: int  # images per class, Part I
    per_part2: int  # images per class, Part II
    ep_frozen: int
    ep_tune: int
    ep_part2: int
    lr_find_it: int
    noise_images: int
    pixel_images: int  # images per count for the pixel counter
    oor_per_count: int  # out-of-range images per count (the regression head)


SCALE = {
    "smoke": CountingScale(arch="resnet10", width=0.125, size=32, bs=16, per_part1=16, per_part2=24, ep_frozen=1,
                           ep_tune=1, ep_part2=1, lr_find_it=12, noise_images=60, pixel_images=40, oor_per_count=4),
    "cpu": CountingScale(arch="resnet10", width=0.25, size=96, bs=64, per_part1=200, per_part2=800, ep_frozen=3,
                         ep_tune=6, ep_part2=7, lr_find_it=100, noise_images=2000, pixel_images=400,
                         oor_per_count=50),
    "full": CountingScale(arch="resnet34", width=1.0, size=224, bs=64, per_part1=1000, per_part2=5000, ep_frozen=3,
                          ep_tune=15, ep_part2=15, lr_find_it=100, noise_images=10000, pixel_images=1000,
                          oor_per_count=200),
}
DEVIATION = {
    "smoke": "toy sizes (32 px, a few images, 1 epoch)",
    "cpu": "from scratch on a quarter-width ResNet-10 (the posts: ImageNet ResNet-34); images with shorter side "
           "96 px instead of 224 (same 432x288 rendering); 200 / 800 images per class instead of 1,000 / "
           "5,000; 6 fine-tuning epochs instead of 15 and 7 Part II epochs instead of 15",
    "full": "",
}
PERFECT = metric_def("perfect", "max_final_error_rate")  # a run is perfect at or below this final error
SEEDS = {"smoke": 1, "cpu": 5, "full": 5}  # at least 5 seeds per compared arm (docs/statistics.md)
ABLATION_SEEDS = {"smoke": 1, "cpu": 5, "full": 5}
BUDGETS = {p: Budget(seeds=SEEDS[p], deviation=DEVIATION[p], settings=SCALE[p]) for p in SCALE}
# The posts' five claims and the random-weights control: an ImageNet backbone in the posts' recipes and epochs.
# At cpu, EfficientNet-Lite0 at 64 px (a 16-pt marker is still 3.5 px across) on fewer images per class; a
# 50-step LR finder (its plot is shown, no cpu rule reads it).
PRETRAINED = {
    "smoke": CountingScale(arch="efficientnet_lite0", width=1.0, size=32, bs=16, per_part1=16, per_part2=24,
                           ep_frozen=1, ep_tune=1, ep_part2=1, lr_find_it=12, noise_images=60, pixel_images=40,
                           oor_per_count=4),
    "cpu": CountingScale(arch="efficientnet_lite0", width=1.0, size=64, bs=64, per_part1=80, per_part2=150,
                         ep_frozen=3, ep_tune=15, ep_part2=15, lr_find_it=50, noise_images=2000, pixel_images=400,
                         oor_per_count=50),
    "full": SCALE["full"],
}
PRETRAINED_DEVIATION = {
    "smoke": "toy sizes (32 px, a few images, 1 epoch), ImageNet EfficientNet-Lite0",
    "cpu": "ImageNet EfficientNet-Lite0 instead of ResNet-34 (weights from the package index), images with "
           "shorter side 64 px instead of 224 (same 432x288 rendering); 80 / 150 images per class instead of "
           "1,000 / 5,000; a 50-step LR finder instead of 100; the posts' stages, epochs, batch size and "
           "learning rates",
    "full": "",
}
PRETRAINED_BUDGETS = {p: Budget(seeds=SEEDS[p], deviation=PRETRAINED_DEVIATION[p], settings=PRETRAINED[p])
                      for p in PRETRAINED}
# Part II's two claims are decided as a share of perfect runs (an exact binomial interval): at 0.005 even a
# clean sweep clears 50% only from 8 seeds on, so the full profile runs 12 (the cpu analogues decide levels).
PERFECT_SHARE_SEEDS = {"smoke": 1, "cpu": SEEDS["cpu"], "full": 12}
PERFECT_SHARE_BUDGETS = {p: dataclasses.replace(b, seeds=PERFECT_SHARE_SEEDS[p]) for p, b in PRETRAINED_BUDGETS.items()}
ABLATION_BUDGETS = {p: Budget(seeds=ABLATION_SEEDS[p], deviation=DEVIATION[p], settings=SCALE[p]) for p in SCALE}
POSTS_ERROR = {  # the posts' error_rate per epoch (docs/claims.md), all stages of the run in order
    "part1_small": [.346, .165, .136] + [.133, .100, .056, .033, .022, .021, .003, .007, .003, .001, .002, .003,
                                         .002, .002, .002],
    "part1_large": [.795833, .711667, .748333],
    "part2": [.4254, .7586, .8022, .8022, .2624, .8050, .8088, .4610, .7822, .0046, .9456, .0002, 0, 0, 0],
    "part2_various": [.381, .797, .295, .802, .802, .806, .248, .802, .802, .760, .405, 0, 0, 0, 0],
}


# ------------------------------------------------------------------------------------------- recipes
def recipe(name: str, s: CountingScale) -> dict:
    """The posts' runs as data: dataset, transforms, head and fit_one_cycle stages (mode, epochs, lr)."""
    if name == "part1_small":  # A6 then A7
        return dict(counts=PART1_SMALL, per_class=s.per_part1, various=False, transforms="default",
                    head="classify", stages=[("as_created", s.ep_frozen, [None, 3e-3]),
                                             ("unfrozen", s.ep_tune, [None, 1e-4])], lr_find_before=1)
    if name == "part1_large":  # A8: 3 epochs, then the "27%" run at slice(1e-6)
        return dict(counts=PART1_LARGE, per_class=s.per_part1, various=False, transforms="default",
                    head="classify", stages=[("as_created", s.ep_frozen, [None, 3e-3]),
                                             ("unfrozen", s.ep_tune, [None, 1e-6])], lr_find_before=1)
    if name in ("part2", "part2_various"):  # B1 / B2
        return dict(counts=PART2, per_class=s.per_part2, various=name == "part2_various",
                    transforms="dihedral", head="classify", stages=[("unfrozen", s.ep_part2, [1e-4, 1e-2])],
                    lr_find_before=None)
    raise ValueError(name)


def ablation_arm(s: CountingScale, data: str, tfm: str, sched: str, classes: int = 5) -> dict:
    per = s.per_part2 if data == "large" else s.per_part1
    lr = [1e-4, 1e-2] if sched == "part2" else [None, 3e-3]
    return dict(counts=PART2 if classes == 5 else PART1_LARGE, per_class=per, various=False,
                transforms="dihedral" if tfm == "dihedral" else "default", head="classify",
                stages=[("unfrozen" if sched == "part2" else "as_created", s.ep_part2, lr)], lr_find_before=None)


def _lr(pair) -> float | slice:
    start, stop = pair
    return slice(stop) if start is None else slice(start, stop)


def _mse(out, y, reduction="mean"):
    return F.mse_loss(out.float().squeeze(1), y.float(), reduction=reduction)


def _dataset(ctx: ClaimContext, spec: dict, seed: int, counts=None, per_class=None):
    s = ctx.budget.settings
    return counting_dataset(tuple(counts or spec["counts"]), per_class or spec["per_class"],
                            various=spec["various"], seed=seed, size=s.size, cache_dir=str(ctx.bench.cache_dir))


def cost_estimate(spec: dict, s: CountingScale, device_name: str) -> str:
    """Training images of a recipe and their FLOPs (PyTorch's counter) with the expected time on the device."""
    n_train = int(0.8 * len(spec["counts"]) * spec["per_class"])
    images = sum(ep for _, ep, _ in spec["stages"]) * n_train
    model = FA.create_cnn(s.arch, len(spec["counts"]), width=s.width)
    per_image = train_flops_per_image(model, (3, s.size, s.size))
    cost = estimate(per_image, images, device_name)
    return f"{images:,} training images through {s.arch} at {s.size} px: {cost}"


def counting_run(ctx: ClaimContext, spec: dict, seed: int, pretrained_state: dict | None,
                 weights_origin: str = "ImageNet IMAGENET1K_V1") -> dict:
    """One stored run of a recipe on the budget's network (its ImageNet ``pretrained_state`` from
    ``weights_origin``, or random weights): stages of fit_one_cycle, the LR finder where the posts ran it."""
    s = ctx.budget.settings
    cfg = {"spec": {k: (list(v) if isinstance(v, tuple) else v) for k, v in spec.items()},
           "pretrained": pretrained_state is not None, "arch": s.arch, "width": s.width, "size": s.size,
           "bs": s.bs, "lr_find_it": s.lr_find_it, "recipe": "fastai-v1", "render": RENDER_VERSION}
    cfg["spec"]["stages"] = [list(st) for st in spec["stages"]]
    cfg["metrics"] = 2
    cfg["metric_defs"] = {"perfect": METRIC_DEFS["perfect"]}
    if pretrained_state is not None:  # runs on other weights never resume as the ImageNet ones
        cfg["weights"] = ctx.label or weights_origin

    def fn():
        gens = seed_all(seed)
        dev = ctx.device
        bank, labels, n_circles, _ = _dataset(ctx, spec, seed)
        tr, va = R.random_split(len(labels), seed)
        regress = spec["head"] == "regress"
        targets = torch.from_numpy(n_circles.astype(np.float32)) if regress else labels
        bank, targets = bank.normalized(s.arch).to(dev), targets.to(dev)
        tr_idx, va_idx = torch.from_numpy(tr).to(dev), torch.from_numpy(va).to(dev)
        model = FA.create_cnn(s.arch, 1 if regress else len(spec["counts"]), width=s.width,
                             pretrained_state=pretrained_state)
        model = prepare_model(model, dev)
        loss_fn = _mse if regress else F.cross_entropy
        stages = [(mode, epochs, _lr(lr)) for mode, epochs, lr in spec["stages"]]
        out = R.fit_stages(model, bank, tr_idx, va_idx, targets, stages, train_kind=spec["transforms"],
                           generator=gens.torch, bs=s.bs, lr_find_before=spec.get("lr_find_before"),
                           lr_find_it=s.lr_find_it, loss_fn=loss_fn, label=f"{ctx.case} seed={seed}")
        out.update(n_train=len(tr), n_valid=len(va))
        for st, (_, _, lr) in zip(out["stages"], spec["stages"]):
            st["lr"] = lr
            if regress:  # an argmax 'error rate' means nothing for one output
                st["history"] = [{k: v for k, v in h.items() if k != "error_rate"} for h in st["history"]]
        out["history"] = [dict(h, epoch=i + 1) for i, h in enumerate(h for st in out["stages"] for h in st["history"])]
        if out["diverged"] is None:
            out["final"] = _final_metrics(model, bank, va_idx, targets, n_circles, regress)
            if regress:
                out["out_of_range"] = _out_of_range(ctx, model, spec, seed)
        out["metrics"] = _run_metrics(out, regress)
        return out

    return ctx.run("run", seed, fn, config=cfg, experiment="counting")


def _run_metrics(out: dict, regress: bool) -> dict:
    """What the rules decide on, per run (a diverged run scores 0 accuracy from the stage it broke in)."""
    if regress:
        f = out.get("final") or {}
        return {"acc": f.get("acc", 0.0), "mae": f.get("mae"), "diverged": out["diverged"] is not None}
    last = out["stages"][-1]["history"]
    ok = out["diverged"] is None
    return {"acc": R.stage_accuracy(out), "acc_stage1": R.stage_accuracy(out, 0), "diverged": not ok,
            "best_acc_last_stage": max(1 - h["error_rate"] for h in last) if ok and last else 0.0,
            "perfect": float(ok and last[-1]["error_rate"] <= PERFECT)}


@torch.no_grad()
def _predict(model, bank, idx) -> torch.Tensor:
    model.eval()
    pipe = FA.Pipeline(bank, "center")
    outs = [forward(model, pipe(idx[i:i + 256]), idx.device) for i in range(0, idx.shape[0], 256)]
    return torch.cat(outs)


def _final_metrics(model, bank, va_idx, targets, n_circles, regress) -> dict:
    out = _predict(model, bank, va_idx)
    truth = n_circles[va_idx.cpu().numpy()]
    if regress:
        pred = out.squeeze(1).cpu().numpy()
        return {"acc": float(np.mean(np.rint(pred) == truth)), "mae": float(np.mean(np.abs(pred - truth))),
                "mse": float(np.mean((pred - truth) ** 2))}
    pred = out.argmax(1)
    return {"acc": float((pred == targets[va_idx]).float().mean()),
            "valid_loss": float(F.cross_entropy(out, targets[va_idx]))}


def _out_of_range(ctx: ClaimContext, model, spec, seed) -> dict:
    s = ctx.budget.settings
    bank, _, n_circles, _ = _dataset(ctx, spec, seed + 10_000, counts=OUT_OF_RANGE, per_class=s.oor_per_count)
    pred = _predict(model, bank.to(ctx.device), torch.arange(len(n_circles), device=ctx.device))
    pred = pred.squeeze(1).cpu().numpy()
    return {str(c): {"mean_pred": float(pred[n_circles == c].mean()),
                     "acc": float(np.mean(np.rint(pred[n_circles == c]) == c))} for c in OUT_OF_RANGE}


# ------------------------------------------------------------------------------------------- helpers
def circle_views(ctx: ClaimContext, spec: dict, seed: int, k: int = 6) -> Images:
    """A few validation views of the dataset as the network sees them (centre crop), for the report."""
    bank, _, n_circles, _ = _dataset(ctx, spec, seed)
    x = FA.crop_at(bank, torch.arange(k), torch.full((k,), 0.5), torch.full((k,), 0.5))
    title = (f"{len(spec['counts'])} classes {spec['counts'][0]}-{spec['counts'][-1]}"
             f"{' (sizes U(25, 250))' if spec['various'] else ''}: validation view, {ctx.budget.settings.size} px "
             "(label = circles)")
    return images_figure(title, [(str(int(n_circles[i])), x[i].permute(1, 2, 0).numpy()) for i in range(k)])
