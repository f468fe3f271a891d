"""Transfer learning on the posts' folder datasets (post "Image Classification with fastai"; docs/claims.md
section A, A1-A5): impressionist vs modernist paintings (200 images) and cats vs kittens (330 used).

Each seed is one random 80/20 split (the posts' validation sets are 40 and 66 images, so a single split
decides nothing) and one run of the posts' sequence with the recipe of ``harness.recipe``:
``fit_one_cycle(5)`` at the default slice(3e-3) on the frozen ImageNet backbone, then unfreeze, the LR
finder, and ``fit_one_cycle(15, slice(1e-4))``. Every run's accuracy carries its Clopper-Pearson
interval; the claims are decided on the mean over splits with its CI.

The backbone follows the profile (``PRETRAINED``): the full profile runs the posts' ImageNet ResNet-34 at
224 px (torchvision's weights; without them the five claims are "not run (weights)"); the cpu profile runs
the declared analogue, ImageNet EfficientNet-Lite0 (``fixtures.backbones``, weights from the package index,
so it decides offline) at a smaller size, under the cpu analogue rules of ``harness.rulebook``.
Two controls: ``transfer_imagenet_vs_random`` runs the same backbone and sequence from random weights
(nothing frozen, as fastai does then) and asks what the ImageNet weights buy on each dataset;
``transfer_from_scratch`` runs a ResNet-10 from scratch (half width at 112 px at the cpu profile) against the
posts' pretrained levels.

    pytest benchmarks/test_transfer.py --profile cpu --data-dir ../shared/datasets
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from harness.rulebook import METRIC_DEFS, metric_def
from harness import recipe as R
from fixtures import fastai as FA
from fixtures.backbones import RecipeScale
from fixtures.data import DataCorrupt, DataUnavailable
from fixtures.folders import fetch_posts_folder, load_image_folder
from harness import stats
from harness.claims import Case
from harness.device import prepare_model
from harness.memo import session_cached
from harness.profiles import Budget
from harness.seeding import seed_all, source_seed
from harness.claim import ClaimBench, ClaimContext, run_case
from harness.records import Images, Lines, Table, accuracy_curves, epoch_table, images_figure, lr_finder_figure

LR_WINDOW = metric_def("lr_falling_share", "window")  # where the LR finder's falling share is read
@dataclass(frozen=True)
class TransferScale(RecipeScale):
    """The transfer family's knobs."""

    width: float
    size: int  # image side in px
    bs: int
    ep1: int  # epochs of stage 1 (body frozen when pretrained)
    ep2: int  # epochs of stage 2 (unfrozen)
    lr_find_it: int  # LR-finder iterations


SCALE = {
    "smoke": TransferScale(arch="resnet10", width=0.125, size=32, bs=16, ep1=1, ep2=1, lr_find_it=12),
    "cpu": TransferScale(arch="resnet10", width=0.5, size=112, bs=64, ep1=5, ep2=15, lr_find_it=100),
    "full": TransferScale(arch="resnet34", width=1.0, size=224, bs=64, ep1=5, ep2=15, lr_find_it=100),
}
DEVIATION = {
    "smoke": "toy sizes (32 px, 1 epoch per stage)",
    "cpu": "from scratch on a half-width ResNet-10 (the posts: ImageNet ResNet-34) at 112 px instead of 224",
    "full": "",
}
SEEDS = {"smoke": 1, "cpu": 5, "full": 10}
BUDGETS = {p: Budget(seeds=SEEDS[p], deviation=DEVIATION[p], settings=SCALE[p]) for p in SCALE}
# The posts' claims and the random-weights control: an ImageNet backbone in the posts' sequence and epochs.
PRETRAINED = {
    "smoke": TransferScale(arch="efficientnet_lite0", width=1.0, size=32, bs=16, ep1=1, ep2=1, lr_find_it=12),
    "cpu": TransferScale(arch="efficientnet_lite0", width=1.0, size=64, bs=64, ep1=5, ep2=15, lr_find_it=100),
    "full": SCALE["full"],
}
PRETRAINED_DEVIATION = {
    "smoke": "toy sizes (32 px, 1 epoch per stage), ImageNet EfficientNet-Lite0",
    "cpu": "ImageNet EfficientNet-Lite0 instead of ResNet-34 (weights from the package index), at 64 px instead "
           "of 224; the posts' sequence, epochs, batch size and learning rates",
    "full": "",
}
PRETRAINED_BUDGETS = {p: Budget(seeds=SEEDS[p], deviation=PRETRAINED_DEVIATION[p], settings=PRETRAINED[p])
                      for p in PRETRAINED}
DATASET_OF = {"paintings_resnet34_95pct": "paintings", "paintings_finetune_100pct": "paintings",
              "kittencat_resnet34_86pct": "kittencat", "kittencat_lr_finder_sweet_spot": "kittencat",
              "kittencat_finetune_92pct": "kittencat"}
LR_FIGURE = ("paintings_finetune_100pct", "kittencat_lr_finder_sweet_spot")  # claims about the LR finder's plot
VARIES = ("init", "split", "order", "augment")  # the sources --vary can isolate in this family's runs
TABLE_WHAT = "per epoch in the posts' format (stage 1, then stage 2; seed = the split)"
CURVES_TITLE = "{}: validation accuracy per epoch (stage 1 then stage 2)"
POSTS_ERROR = {  # the posts' error_rate per epoch: 5 frozen epochs, then 15 unfrozen (docs/claims.md A1-A5)
    "paintings": [.225, .100, .100, .050, .050] + [.025] * 14 + [0.0],
    "kittencat": [.378788, .136364, .136364, .151515, .136364] + [.121, .121, .136, .136, .136, .121, .121, .106,
                                                                   .091, .091, .076, .076, .076, .076, .076],
}


def folder(claimbench, ctx, name: str):
    """The folder dataset from --folder NAME=DIR, else <data-dir>/NAME; else the claim is not run (data)."""
    user = claimbench.folders.get(name)
    root = user or (claimbench.data_dir / name if claimbench.data_dir else None)

    def load():
        try:
            if root is None:
                raise DataUnavailable(f"the {name} images", [], f"give --data-dir / CLAIMBENCH_DATA_DIR (holding "
                                      f"{name}/<class>/) or --folder {name}=DIR")
            if user is None and not root.is_dir():
                if not claimbench.allow_download:
                    raise DataUnavailable(f"the {name} images", [root], "downloading is off (--offline / "
                                          "CLAIMBENCH_OFFLINE=1); put the posts' images there or give --folder")
                ctx.announce(f"fetching the posts' {name} images into {root}")
                fetch_posts_folder(name, claimbench.data_dir)
            return load_image_folder(root)
        except (DataUnavailable, DataCorrupt) as e:
            return e
    got = session_cached(("folder", name, str(root)), load)
    if isinstance(got, DataCorrupt):
        ctx.not_run("data", f"damaged: {got}", user_error=True)
    if isinstance(got, Exception):
        ctx.not_run("data", str(got))
    return got


def transfer_run(ctx: ClaimContext, data, name: str, seed: int, pretrained_state: dict | None,
                 weights_origin: str = "") -> dict:
    """One split seed's run of the posts' sequence on the budget's network: its backbone with the ImageNet
    ``pretrained_state`` (from ``weights_origin``), or from random weights when that is None."""
    s = ctx.budget.settings
    cfg = {"dataset": name, "n_images": len(data), "classes": data.classes, "pretrained": pretrained_state is not None,
           "metrics": 2,
           **s.as_dict(),
           "sequence": "fit_one_cycle(ep1, slice(3e-3)); unfreeze; lr_find; fit_one_cycle(ep2, slice(1e-4))"}
    if pretrained_state is not None:  # runs on other weights never resume as the ImageNet ones
        cfg["weights"] = ctx.label or weights_origin
    cfg["metric_defs"] = {"lr_falling_share": METRIC_DEFS["lr_falling_share"]}
    vary = ctx.vary
    if vary != "all":  # a sources-of-variance run: its own config, never resumed as (or deciding) the claim
        cfg["vary"] = vary

    def fn():
        if vary == "all":  # every source follows the seed, one generator for order and augmentation
            gens = seed_all(seed)
            order_gen, augment_gen, split_seed = gens.torch, None, seed
        else:  # one source follows the seed, the others are held at seed 0's values
            seed_all(source_seed("init", seed, vary))  # the model's initial weights
            order_gen = torch.Generator().manual_seed(source_seed("order", seed, vary))
            augment_gen = torch.Generator().manual_seed(1_000_003 + source_seed("augment", seed, vary))
            split_seed = source_seed("split", seed, vary)
        dev = ctx.device
        bank = FA.ImageBank.from_arrays(data.images, s.size).normalized(s.arch).to(dev)
        labels = torch.from_numpy(data.labels.astype(np.int64)).to(dev)
        tr_np, va_np = R.random_split(len(data), split_seed)
        tr, va = torch.from_numpy(tr_np).to(dev), torch.from_numpy(va_np).to(dev)
        model = prepare_model(FA.create_cnn(s.arch, len(data.classes), width=s.width,
                                           pretrained_state=pretrained_state), dev)
        stages = [("as_created", s.ep1, slice(3e-3)), ("unfrozen", s.ep2, slice(1e-4))]
        out = R.fit_stages(model, bank, tr, va, labels, stages, train_kind="default", generator=order_gen,
                           bs=s.bs, lr_find_before=1, lr_find_it=s.lr_find_it, label=f"{name} seed={seed}",
                           augment_generator=augment_gen)
        res = {"n_valid": len(va_np), "n_train": len(tr_np), **out}
        spot = (R.sweet_spot(out["lr_find"]["plot_lr"], out["lr_find"]["plot_loss"], *LR_WINDOW)
                if out.get("lr_find") and out["lr_find"].get("plot_lr") else None)
        res["metrics"] = {"acc_stage1": R.stage_accuracy(res, 0), "acc_stage2": R.stage_accuracy(res, 1),
                          "diverged": out.get("diverged") is not None,
                          "lr_falling_share": spot["falling_share"] if spot else None,
                          "lr_argmin_log10": float(np.log10(spot["argmin_lr"])) if spot else None}
        return res

    return ctx.run(name, seed, fn, config=cfg, experiment="transfer")


def _correct(run, stage: int) -> int:
    return int(round(R.stage_accuracy(run, stage) * run["n_valid"]))


def _runs_table(runs) -> Table:
    rows = []
    for r in runs:
        row = [r["seed"]]
        for st in (0, 1):
            if st < len(r["stages"]):
                k, n = _correct(r, st), r["n_valid"]
                lo, hi = stats.clopper_pearson(k, n)
                row.append(f"{k}/{n} = {100 * k / n:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]")
            else:
                row.append("—")
        rows.append(row)
    return Table(title="per split seed: validation accuracy with its 95% Clopper-Pearson interval", columns=["seed",
            "after stage 1 (5 epochs at slice(3e-3), body frozen when pretrained)",
                        "after stage 2 (unfrozen, 15 epochs at slice(1e-4))"], rows=rows)


def _lr_fig(name, runs) -> Lines | None:
    return lr_finder_figure(f"{name}: LR finder after unfreezing (shaded: the posts' 1e-5..1e-3)", runs,
                            [1e-5, 1e-3])


def _folder_samples(data, name, k=6) -> Images:
    per_class = k // len(data.classes)
    picks = np.concatenate([np.flatnonzero(data.labels == c)[:per_class] for c in range(len(data.classes))])
    items = []
    for i in picks:
        im = data.images[i]
        step = max(1, max(im.shape[:2]) // 160)
        items.append((data.classes[data.labels[i]], im[::step, ::step]))
    return images_figure(f"{name}: sample images ({len(data)} used; {data.counts()})", items)


def _sweet_spots(runs) -> list[dict]:
    return [R.sweet_spot(r["lr_find"]["plot_lr"], r["lr_find"]["plot_loss"],
                         *LR_WINDOW) for r in runs if r.get("lr_find")]


def _posts_claim(ctx: ClaimContext, *, claimbench: ClaimBench, weights, name: str, lr_figure: bool = False,
                 notes: tuple[str, ...] = ()) -> None:
    """One of the posts' five claims: an ImageNet backbone in fastai's recipe on its folder dataset ``name``
    (the posts' ResNet-34 at the full profile, the declared analogue's at cpu)."""
    data = folder(claimbench, ctx, name)
    state, origin = weights.imagenet(ctx)
    ctx.require_decided()
    runs = [transfer_run(ctx, data, name, sd, state, origin) for sd in ctx.seeds]
    figs = [_folder_samples(data, name), accuracy_curves(CURVES_TITLE.format(name), {name: runs})]
    figs += [_lr_fig(name, runs)] if lr_figure else []
    ctx.decide({name: runs}, tables=[_runs_table(runs), epoch_table(runs[0], name, POSTS_ERROR[name], TABLE_WHAT)],
               figures=[f for f in figs if f], notes=list(notes))


def _from_scratch(ctx: ClaimContext, *, claimbench: ClaimBench, **_) -> None:
    tables, figs, details, arms = [], [], {}, {}
    for name in ("paintings", "kittencat"):
        data = folder(claimbench, ctx, name)
        runs = [transfer_run(ctx, data, name, sd, None) for sd in ctx.seeds]
        arms[name] = runs
        final = np.array([R.stage_accuracy(r, 1) for r in runs])
        per_split = _runs_table(runs)
        tables += [dataclasses.replace(per_split, title=f"{name} from scratch: {per_split.title}"),
                   epoch_table(runs[0], name, POSTS_ERROR[name], TABLE_WHAT)]
        figs += [_folder_samples(data, name), accuracy_curves(CURVES_TITLE.format(name), {name: runs}),
                 _lr_fig(name, runs)]
        details[name] = {"gain": (final - np.array([R.stage_accuracy(r, 0) for r in runs])).tolist(),
                         "sweet_spots": _sweet_spots(runs), "skipped": data.skipped}
        ctx.announce(f"{name}: {len(data)} images, skipped {len(data.skipped)}")
    notes = ["Fine-tuning gain (stage 2 minus stage 1, mean over splits): "
             + ", ".join(f"{n} {100 * np.mean(d['gain']):+.2f} pts" for n, d in details.items()),
             "LR-finder minima from scratch (kittencat): "
             + ", ".join(f"{sp['argmin_lr']:.1e}" for sp in details["kittencat"]["sweet_spots"]),
             "Files skipped by the image-extension rule or as unreadable: "
             + "; ".join(f"{n}: {len(d['skipped'])}" for n, d in details.items())]
    ctx.decide(arms, tables=tables, figures=[f for f in figs if f], notes=notes)


def _imagenet_vs_random(ctx: ClaimContext, *, claimbench: ClaimBench, weights, **_) -> None:
    """The control only pretrained weights make possible: the posts' claims' runs (shared: same configs)
    beside the same backbone and sequence from random weights, paired by split seed."""
    state, origin = weights.imagenet(ctx)
    tables, figs, arms, notes = [], [], {}, []
    for name in ("paintings", "kittencat"):
        data = folder(claimbench, ctx, name)
        pre = [transfer_run(ctx, data, name, sd, state, origin) for sd in ctx.seeds]
        rnd = [transfer_run(ctx, data, name, sd, None) for sd in ctx.seeds]
        arms[name], arms[f"{name}-random"] = pre, rnd
        for what, runs in (("ImageNet weights", pre), ("random weights", rnd)):
            per_split = _runs_table(runs)
            tables.append(dataclasses.replace(per_split, title=f"{name}, {what}: {per_split.title}"))
        figs.append(accuracy_curves(CURVES_TITLE.format(name), {f"{name} (ImageNet)": pre,
                                                                 f"{name} (random)": rnd}))
        bought = [R.stage_accuracy(p, 1) - R.stage_accuracy(r, 1) for p, r in zip(pre, rnd)]
        notes.append(f"{name}: what the ImageNet weights buy after stage 2, per split: "
                     + ", ".join(f"{100 * b:+.1f}" for b in bought) + " pts")
    ctx.decide(arms, tables=tables, figures=[f for f in figs if f], notes=notes)


NOTES = {"kittencat_finetune_92pct": ("On one split the posts' 61/66 vs 57/66 is not significant (Fisher p ~ 0.4); "
                                      "the rule pairs the two stages of each split (the same run).",)}
CASES = [Case(c, PRETRAINED_BUDGETS, run=functools.partial(_posts_claim, name=name, lr_figure=c in LR_FIGURE,
                                                           notes=NOTES.get(c, ())))
         for c, name in DATASET_OF.items()] + [
    Case("transfer_imagenet_vs_random", PRETRAINED_BUDGETS, run=_imagenet_vs_random),
    Case("transfer_from_scratch", BUDGETS, run=_from_scratch)]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_claim(case: Case, claimbench: ClaimBench, weights) -> None:
    run_case(case, claimbench, claimbench=claimbench, weights=weights)
